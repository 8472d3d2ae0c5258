"""The search configuration: every key a search reads, its default (the offline digits search),
and the checks that turn a bad value into a one-line error before any expensive work.

Experiment files in `configs/` start from `get_config()` and change what they need; the command
line changes single keys (`--config.epochs=10`). A key that is not listed here does not exist.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from jaxnas.errors import ConfigError  # noqa: F401  (its old home: `from jaxnas.search.config import ConfigError` works)
from jaxnas.nn.precision import COMPUTE_DTYPES
from jaxnas.search.cost import METRICS as COST_METRICS
from jaxnas.search.hypergrad import ESTIMATORS
from jaxnas.search.strategies import STRATEGIES, get_strategy
from jaxnas.spaces.base import SPACES

IMPLEMENTATIONS = ("scanned", "grouped", "reference")
IMPLICIT_METHODS = ("cg", "neumann")


def get_config() -> ml_collections.ConfigDict:
    """Offline default: first-order DARTS on scikit-learn's digits, minutes on a laptop CPU.

    Every key has a one-line description (its trailing comment, or the comment lines right above
    it) under a `# --- group ---` line: `python -m jaxnas.search --help` prints them from here.
    """
    c = ml_collections.ConfigDict()
    # --- data --- what to search on
    c.dataset = "digits"  # "digits" (offline) or any TFDS image-classification set, e.g. "cifar10"
    c.data_dir = ""  # TFDS data directory; "" = TFDS's default (~/tensorflow_datasets)
    c.train_portion = 0.5  # the train split's first part trains w, the rest (search-val) trains α
    c.crop_padding = 1  # random crop after zero padding by this many pixels (CIFAR: 4)
    c.flip = False  # random horizontal flips (CIFAR: True; digits are not mirror-symmetric)
    # --- space --- what to search
    c.space = "darts"  # darts | nb201 | chain (jaxnas/spaces/)
    c.channels = 8  # initial channels of the supernet (DARTS: 16)
    c.layers = 5  # cells (darts), cells per stage (nb201), layers (chain)
    c.impl = "scanned"  # darts supernet implementation: scanned (default), grouped or reference
    c.remat = False  # darts: recompute cell activations in backward passes (less memory, more compute)
    # "bfloat16": the supernet computes in bfloat16 (TPU/GPU); weights, α, BN statistics and optimizer
    # states stay float32. Slower on XLA:CPU, where bfloat16 is emulated.
    c.compute_dtype = "float32"
    # --- strategy --- how to search
    c.strategy = "darts"  # darts | darts_pt | gdas | pcdarts | random_ws | enas | pnas (jaxnas/search/strategies/)
    c.alpha_warmup_epochs = 0  # train only the weights for this many epochs first (PC-DARTS: 15)
    c.gdas_tau_max = 10.0  # gdas: Gumbel-softmax temperature, linear per epoch from max to min
    c.gdas_tau_min = 0.1  # gdas: the temperature of the last epoch
    c.pc_partial_channels = 4  # pcdarts: 1/K of each edge's channels go through the mixed op
    c.pc_edge_normalization = True  # pcdarts: weigh each node's incoming edges by softmax(β)
    # Sampling strategies (random_ws, enas, pnas): one architecture per step, no estimator.
    c.derive_samples = 64  # random_ws, enas: candidates scored with the shared weights at each epoch's end
    c.enas_hidden = 100  # enas: LSTM controller width (ENAS: 100)
    c.enas_samples = 2  # enas: architectures rewarded per controller step
    c.enas_temperature = 5.0  # enas: logits = tanh_constant·tanh(logits / temperature), as ENAS's code
    c.enas_tanh_constant = 2.5  # enas: see enas_temperature
    c.enas_entropy_weight = 1e-4  # enas: entropy bonus of the REINFORCE loss
    c.enas_baseline_decay = 0.99  # enas: moving-average reward baseline
    c.enas_reward_cost = 0.0  # enas: reward = val accuracy − this · parameters in millions
    c.pnas_beam = 8  # pnas: cells kept (and evaluated) per stage (PNAS: 256)
    c.pnas_evaluator = "inherited"  # pnas: "inherited" (shared weights) or "scratch" (short training)
    c.pnas_scratch_steps = 20  # pnas, scratch evaluator: training steps per candidate
    # Resource-aware search (any space): α objective L_val + cost_weight·E_α[cost].
    c.cost_weight = 0.0
    c.cost_metric = "params"  # params | madds | path of a JSON latency table {op: cost}
    # --- estimator --- the α gradient of the gradient strategies
    c.estimator = "first_order"  # first_order | darts_fd | unrolled | implicit
    c.fd_eps_scale = 0.01  # darts_fd: ε = fd_eps_scale / ‖∇w' L_val‖
    c.unroll_steps = 1  # unrolled: inner optimizer steps differentiated through
    c.implicit_method = "cg"  # implicit: "cg" or "neumann"
    c.implicit_iterations = 5  # implicit: iterations of the inverse-Hessian solve
    c.implicit_step_size = 0.01  # neumann step size
    c.implicit_tol = 1e-10  # cg tolerance
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


def validate(config: ml_collections.ConfigDict, device_count: int = 1, process_count: int = 1) -> None:
    """Raise ConfigError naming the first problem; cheap (reads no data, compiles nothing)."""
    missing = sorted(set(get_config().keys()) - set(config.keys()))
    extra = sorted(set(config.keys()) - set(get_config().keys()))
    if extra:
        raise ConfigError(f"unknown config key(s) {', '.join(extra)}; valid keys: {', '.join(sorted(get_config()))}")
    if missing:
        raise ConfigError(f"config is missing key(s) {', '.join(missing)}; start from "
                          "jaxnas.search.config.get_config()")
    _choice(config, "space", tuple(SPACES))
    _choice(config, "strategy", tuple(STRATEGIES))
    problem = get_strategy(config.strategy).check(config)
    if problem:
        raise ConfigError(problem)
    _choice(config, "estimator", ESTIMATORS)
    for key, default in get_strategy(config.strategy).ignored_keys:
        if config[key] != default:
            raise ConfigError(f"{key} applies to the gradient strategies (darts, gdas, pcdarts); strategy "
                              f"{config.strategy!r} has its own step (leave {key} at {default!r})")
    _choice(config, "impl", IMPLEMENTATIONS)
    _choice(config, "compute_dtype", tuple(COMPUTE_DTYPES))
    if config.compute_dtype != "float32" and config.estimator == "darts_fd":
        raise ConfigError(f"estimator darts_fd needs compute_dtype float32: its finite difference (ε = "
                          f"{config.fd_eps_scale}/‖∇‖) is below {config.compute_dtype}'s resolution; use first_order, "
                          "unrolled or implicit")
    _choice(config, "implicit_method", IMPLICIT_METHODS)
    for key in ("epochs", "batch_size", "channels", "layers", "eval_batch_size", "unroll_steps", "keep_checkpoints",
                "max_nonfinite_steps", "log_every_steps", "derive_samples"):
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
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % device_count:
            fits = -(-config[key] // device_count) * device_count
            raise ConfigError(f"{key} {config[key]} does not split over {device_count} devices; use a multiple "
                              f"of {device_count}, e.g. --config.{key}={fits}")
        if config[key] % process_count:
            raise ConfigError(f"{key} {config[key]} does not split over {process_count} processes")


def estimator_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The hyperparameters of the configured estimator, as `hypergrad.get_estimator` takes them."""
    if config.estimator == "darts_fd":
        return {"eps_scale": config.fd_eps_scale}
    if config.estimator == "unrolled":
        return {"steps": config.unroll_steps}
    if config.estimator == "implicit":
        return {"method": config.implicit_method, "iterations": config.implicit_iterations,
                "step_size": config.implicit_step_size, "tol": config.implicit_tol}
    return {}


def train_batches_per_step(config: ml_collections.ConfigDict) -> int:
    return config.unroll_steps if config.estimator == "unrolled" else 1


def space_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The options of `get_space(config.space, ...)`, the strategy's included."""
    return {**SPACES[config.space].config_options(config), **get_strategy(config.strategy).space_options(config)}
