"""The search configuration: every key a search reads, its default (the offline digits search),
and the checks that turn a bad value into a one-line error before any expensive work.

Experiment files in `configs/` start from `get_config()` and change what they need; the command
line changes single keys (`--config.epochs=10`). A key that is not listed here does not exist.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from jaxnas import config_blocks
from jaxnas.errors import ConfigError  # noqa: F401  (its old home: `from jaxnas.search.config import ConfigError` works)
from jaxnas.nn.precision import COMPUTE_DTYPES, MATMUL_PRECISIONS
from jaxnas.parallel import check_batch_split
from jaxnas.search import hypergrad
from jaxnas.search.strategies import STRATEGY_OPTIONS, get_strategy
from jaxnas.spaces.base import SPACES, get_space
from jaxnas.spaces.cost import METRICS as COST_METRICS
from jaxnas.tasks import TASK_OPTIONS

IMPLEMENTATIONS = ("scanned", "grouped", "reference")
# The config's blocks ({name, ...options}) and their owners' choices: {choice: {option: default}}.
BLOCKS = {"strategy": STRATEGY_OPTIONS, "estimator": hypergrad.ESTIMATOR_OPTIONS, "task": TASK_OPTIONS}


def task_block(name: str, **options: Any) -> ml_collections.ConfigDict:
    """The `task` block of task `name`: its default options, `options` changed."""
    return config_blocks.block(TASK_OPTIONS, name, **options)


def strategy_block(name: str, **options: Any) -> ml_collections.ConfigDict:
    """The `strategy` block of strategy `name`: its default options, `options` changed."""
    return config_blocks.block(STRATEGY_OPTIONS, name, **options)


def estimator_block(name: str, **options: Any) -> ml_collections.ConfigDict:
    """The `estimator` block of estimator `name`: its default options, `options` changed."""
    return config_blocks.block(hypergrad.ESTIMATOR_OPTIONS, name, **options)


def get_config() -> ml_collections.ConfigDict:
    """Offline default: first-order DARTS on scikit-learn's digits, minutes on a laptop CPU.

    Every key has a one-line description (its trailing comment, or the comment lines right above
    it) under a `# --- group ---` line: `python -m jaxnas.search --help` prints them from here.
    """
    c = ml_collections.ConfigDict()
    # --- data --- what to search on
    # {name, ...its options}: image_classification | language_model (jaxnas/tasks/); a language model
    # sets its BPTT window, dropouts and TAR here, e.g. `--config.task.bptt=35`
    c.task = task_block("image_classification")
    c.dataset = "digits"  # images: "digits" (offline) or a TFDS set, e.g. "cifar10"; text: pydoc, ptb, wikitext2
    c.data_dir = ""  # TFDS data directory; "" = TFDS's default (~/tensorflow_datasets)
    c.train_portion = 0.5  # the train split's first part trains w, the rest (search-val) trains α
    c.crop_padding = 1  # random crop after zero padding by this many pixels (CIFAR: 4)
    c.flip = False  # random horizontal flips (CIFAR: True; digits are not mirror-symmetric)
    # --- space --- what to search
    c.space = "darts"  # darts | nb201 | chain | darts_rnn (jaxnas/spaces/)
    c.channels = 8  # initial channels of the supernet (DARTS: 16); darts_rnn: embedding and hidden size
    c.layers = 5  # cells (darts), cells per stage (nb201), layers (chain), nodes (darts_rnn)
    c.impl = "scanned"  # darts supernet implementation: scanned (default), grouped or reference
    c.remat = False  # darts: recompute cell activations in backward passes (less memory, more compute)
    # "bfloat16": the supernet computes in bfloat16 (TPU/GPU); weights, α, BN statistics and optimizer
    # states stay float32. Slower on XLA:CPU, where bfloat16 is emulated.
    c.compute_dtype = "float32"
    # float32 dots and convolutions: "highest" (float32 on every backend), "high" (TF32 on GPUs) or
    # "default" (the backend's fast path: TF32 on GPUs, one bfloat16 pass on TPUs)
    c.matmul_precision = "highest"
    # --- strategy --- how to search
    # {name, ...its options}: darts | darts_pt | gdas | pcdarts | random_ws | enas | pnas
    # (jaxnas/search/strategies/); `--config.strategy.name=gdas --config.strategy.tau_max=5`
    c.strategy = strategy_block("darts")
    c.alpha_warmup_epochs = 0  # train only the weights for this many epochs first (PC-DARTS: 15)
    # Resource-aware search (any space): α objective L_val + cost_weight·E_α[cost].
    c.cost_weight = 0.0
    c.cost_metric = "params"  # params | madds | path of a JSON latency table {op: cost}
    # --- estimator --- the α gradient of the gradient strategies
    # {name, ...its options}: first_order | darts_fd | unrolled | implicit (jaxnas/search/hypergrad.py);
    # `--config.estimator.name=darts_fd --config.estimator.eps_scale=0.001`
    c.estimator = estimator_block("first_order")
    # --- optimisation --- weights: SGD with momentum, cosine lr; α: Adam with L2 weight decay, as DARTS
    c.epochs = 12  # passes over search-train
    c.batch_size = 32  # global, over all devices and hosts
    c.seed = 0  # initialisation, data order, augmentation, sampling: a run is a function of its config
    c.lr = 0.05  # weight learning rate, cosine to lr_min over the epochs
    c.lr_min = 0.001  # the weight learning rate of the last step
    c.momentum = 0.9  # weight SGD momentum
    c.weight_decay = 3e-4  # weight L2 decay
    c.clip_norm = 5.0  # weight gradient clipping by global norm
    c.alpha_lr = 3e-3  # α Adam learning rate
    c.alpha_b1 = 0.5  # α Adam β1
    c.alpha_b2 = 0.999  # α Adam β2
    c.alpha_weight_decay = 1e-3  # α L2 decay
    # --- run --- how the run is watched and stored; a resumed run may change these
    c.eval_batch_size = 256  # batch of the end-of-epoch evaluation on search-val
    c.log_every_steps = 20  # a progress line every this many steps
    c.checkpoint_every_steps = 0  # 0: only at the end of every epoch
    c.keep_checkpoints = 3  # the newest checkpoints kept
    c.max_nonfinite_steps = 10  # stop after this many consecutive non-finite steps
    c.compilation_cache = "~/.cache/jaxnas/xla"  # persistent XLA cache ("" to turn off)
    c.plots = True  # write cells.png and alphas.png at each epoch's end
    return c


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """`path/to/file.py[:arg]` -> that file's get_config(arg) (the same syntax as --config)."""
    import importlib.util
    import os

    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} not found")
    module_spec = importlib.util.spec_from_file_location("jaxnas_user_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def _choice(config, key: str, valid) -> None:
    if config[key] not in valid:
        raise ConfigError(f"unknown {key} {config[key]!r}; valid choices: {', '.join(map(str, valid))}")


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with each block complete: the options its choice has and it leaves out,
    at their defaults. ConfigError for an unknown choice or an option the choice does not have."""
    return config_blocks.resolve_blocks(config, BLOCKS)


def validate(config: ml_collections.ConfigDict, device_count: int = 1, process_count: int = 1) -> None:
    """Raise ConfigError naming the first problem; cheap (reads no data, compiles nothing)."""
    defaults = get_config()
    missing = sorted(set(defaults.keys()) - set(config.keys()))
    extra = sorted(set(config.keys()) - set(defaults.keys()))
    if extra:
        raise ConfigError(f"unknown config key(s) {', '.join(extra)}; valid keys: {', '.join(sorted(defaults))}")
    if missing:
        raise ConfigError(f"config is missing key(s) {', '.join(missing)}; start from "
                          "jaxnas.search.config.get_config()")
    config = resolve(config)
    _choice(config, "space", tuple(SPACES))
    tasks = SPACES[config.space].tasks
    if config.task.name not in tasks:
        raise ConfigError(f"space {config.space!r} learns {', '.join(tasks)}, not task {config.task.name!r}; set "
                          f"--config.task.name={tasks[0]} or pick a space for {config.task.name}")
    strategy = get_strategy(config.strategy.name)
    problem = strategy.check(config) or hypergrad.check_options(config.estimator.name, config.estimator)
    if problem:
        raise ConfigError(problem)
    for key in strategy.ignored_keys:
        value, default = config_blocks.plain(config[key]), config_blocks.plain(defaults[key])
        if value != default:
            raise ConfigError(f"{key} applies to the gradient strategies (darts, gdas, pcdarts); strategy "
                              f"{strategy.name!r} has its own step (leave {key} at {default!r})")
    _choice(config, "impl", IMPLEMENTATIONS)
    _choice(config, "compute_dtype", tuple(COMPUTE_DTYPES))
    _choice(config, "matmul_precision", tuple(MATMUL_PRECISIONS))
    if config.compute_dtype != "float32" and config.estimator.name == "darts_fd":
        raise ConfigError(f"estimator darts_fd needs compute_dtype float32: its finite difference (ε = "
                          f"{config.estimator.eps_scale}/‖∇‖) is below {config.compute_dtype}'s resolution; use "
                          "first_order, unrolled or implicit")
    for key in ("epochs", "batch_size", "channels", "layers", "eval_batch_size", "keep_checkpoints",
                "max_nonfinite_steps", "log_every_steps"):
        if int(config[key]) < 1:
            raise ConfigError(f"{key} must be a positive integer, got {config[key]!r}")
    if not 0 <= config.alpha_warmup_epochs < config.epochs:
        raise ConfigError(f"alpha_warmup_epochs must be in [0, epochs={config.epochs}), got "
                          f"{config.alpha_warmup_epochs!r}")
    if not 0.0 < config.train_portion < 1.0:
        raise ConfigError(f"train_portion must be in (0, 1), got {config.train_portion!r}")
    if config.cost_weight < 0:
        raise ConfigError(f"cost_weight must be >= 0, got {config.cost_weight!r}")
    if config.cost_weight > 0:
        if config.cost_metric not in COST_METRICS and not str(config.cost_metric).endswith(".json"):
            raise ConfigError(f"unknown cost_metric {config.cost_metric!r}; valid: params, madds, or a .json "
                              "latency table {op: cost}")
    check_batch_split(config, ("batch_size", "eval_batch_size"), device_count, process_count)


def estimator_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The hyperparameters of the configured estimator, as `hypergrad.get_estimator` takes them."""
    return {k: v for k, v in config.estimator.items() if k != "name"}


def train_batches_per_step(config: ml_collections.ConfigDict) -> int:
    return hypergrad.train_batches_needed(config.estimator.name, estimator_options(config))


# The flat keys of configs saved before the blocks (jaxnas <= 2026-12-01): key -> (choices, option).
_FLAT_STRATEGY_KEYS = {
    "gdas_tau_max": (("gdas",), "tau_max"), "gdas_tau_min": (("gdas",), "tau_min"),
    "pc_partial_channels": (("pcdarts",), "partial_channels"),
    "pc_edge_normalization": (("pcdarts",), "edge_normalization"),
    "derive_samples": (("random_ws", "enas"), "derive_samples"),
    **{f"enas_{k}": (("enas",), k) for k in ("hidden", "samples", "temperature", "tanh_constant", "entropy_weight",
                                             "baseline_decay", "reward_cost")},
    **{f"pnas_{k}": (("pnas",), k) for k in ("beam", "evaluator", "scratch_steps")},
}
_FLAT_ESTIMATOR_KEYS = {
    "fd_eps_scale": (("darts_fd",), "eps_scale"), "unroll_steps": (("unrolled",), "steps"),
    **{f"implicit_{k}": (("implicit",), k) for k in ("method", "iterations", "step_size", "tol")},
}


def upgrade_flat_keys(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved search config (config.json) in today's form: one written before the blocks had
    `strategy` and `estimator` as names and each option as a flat prefixed key (`gdas_tau_max`,
    `fd_eps_scale`, ...); those become the blocks, and the options of other choices are dropped
    (that run never read them). The one place that knows the old keys."""
    out = dict(saved)
    for key, flat in (("strategy", _FLAT_STRATEGY_KEYS), ("estimator", _FLAT_ESTIMATOR_KEYS)):
        if not isinstance(out.get(key), str):
            continue
        name = out[key]
        options = {option: out[k] for k, (names, option) in flat.items() if name in names and k in out}
        for k in flat:
            out.pop(k, None)
        out[key] = {"name": name, **options}
    return out


def space_and_strategy(config: ml_collections.ConfigDict) -> tuple[Any, Any]:
    """The config's search space and strategy as objects, its names resolved once at the top (the
    space built with the options the config and the strategy give it) and then passed down."""
    strategy = get_strategy(config.strategy.name)
    fields = {f.name for f in dataclasses.fields(SPACES[config.space])}
    preferred = {k: v for k, v in strategy.space_preferences(config).items() if k in fields}
    options = {**SPACES[config.space].config_options(config), **strategy.space_options(config), **preferred}
    try:
        return get_space(config.space, **options), strategy
    except ValueError as e:
        raise ConfigError(str(e)) from None
