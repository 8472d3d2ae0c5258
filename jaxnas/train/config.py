"""The training configuration (train a genotype from scratch): every key, its default (the offline
digits run), and the checks that fail fast with one line naming the valid choices."""

from __future__ import annotations

import ml_collections

from jaxnas import config_blocks
from jaxnas.errors import ConfigError
from jaxnas.nn.precision import COMPUTE_DTYPES, MATMUL_PRECISIONS
from jaxnas.parallel import check_batch_split
from jaxnas.tasks import TASK_OPTIONS

LR_SCHEDULES = ("cosine", "exponential", "constant")
BLOCKS = {"task": TASK_OPTIONS}


def get_config() -> ml_collections.ConfigDict:
    """Offline default: DARTS_V2 on scikit-learn's digits, a few minutes on a laptop CPU.

    Every key has a one-line description (its trailing comment) under a `# --- group ---` line:
    `python -m jaxnas.train --help` prints them from here.
    """
    c = ml_collections.ConfigDict()
    # --- task --- {name, ...its options}: image_classification | language_model (jaxnas/tasks/); a
    # language model sets its windows, dropouts and TAR here, e.g. `--config.task.bptt=35`
    c.task = config_blocks.block(TASK_OPTIONS, "image_classification")
    # --- data ---
    c.dataset = "digits"  # images: "digits" (offline) or a TFDS set, e.g. "cifar10"; text: pydoc, ptb, wikitext2
    c.data_dir = ""  # TFDS data directory; "" = TFDS's default (~/tensorflow_datasets)
    c.train_split = "train"  # the TFDS split trained on
    c.test_split = "test"  # the TFDS split evaluated at each epoch's end
    c.image_size = 0  # 0: images as stored, in memory; > 0: streamed, random-resized crops to this size
    c.eval_resize = 256  # streamed evaluation: shorter side to this, then the central image_size square
    c.crop_padding = 1  # random crop after zero padding by this many pixels (CIFAR: 4)
    c.flip = False  # random horizontal flips (CIFAR: True)
    c.cutout = 0  # cutout square side in pixels (0: off; DARTS CIFAR: 16)
    # --- network --- what is trained
    c.genotype = "DARTS_V2"  # a constant (DARTS_V1, DARTS_V2; a cell: also ENAS), a genotype.json or a search workdir
    c.network = "cifar"  # images: cifar (3C stem) or imagenet (mobile stems); text: cell, or lstm (its size)
    c.channels = 16  # initial channels (DARTS CIFAR: 36); a language model's embedding and hidden size
    c.layers = 5  # cells (DARTS CIFAR: 20)
    c.auxiliary_weight = 0.0  # > 0 adds the auxiliary head at 2/3 depth with this loss weight
    c.drop_path = 0.1  # final drop-path rate, ramped linearly from 0 over training
    c.compute_dtype = "float32"  # "bfloat16": activations and matmuls; params and BN statistics stay float32
    c.matmul_precision = "highest"  # float32 dots and convolutions: highest (float32), high (TF32) or default
    # --- optimisation --- SGD with momentum
    c.epochs = 25  # passes over the train split
    c.batch_size = 32  # global, over all devices and hosts
    c.seed = 0  # initialisation, data order, augmentation, drop path: a run is a function of its config
    c.lr = 0.05  # initial learning rate
    c.lr_schedule = "cosine"  # cosine to 0 over the epochs, exponential: lr·lr_decay^epoch, or constant
    c.lr_decay = 0.97  # exponential schedule: per-epoch factor
    c.momentum = 0.9  # SGD momentum
    c.weight_decay = 3e-4  # L2 decay
    c.clip_norm = 5.0  # gradient clipping by global norm
    c.label_smoothing = 0.0  # cross-entropy label smoothing (DARTS ImageNet: 0.1)
    c.asgd_nonmono = 5  # language model: average weights once valid is worse than the best but the last N (0: never)
    # --- run --- how the run is watched and stored; a resumed run may change these
    c.eval_batch_size = 256  # batch of the end-of-epoch evaluation (test; a language model's valid)
    c.test_batch_size = 0  # a language model's final test batch (0: eval_batch_size; DARTS: 1)
    c.log_every_steps = 20  # a progress line every this many steps
    c.checkpoint_every_steps = 0  # 0: only at the end of every epoch
    c.keep_checkpoints = 3  # the newest checkpoints kept
    c.max_nonfinite_steps = 10  # stop after this many consecutive non-finite steps
    c.compilation_cache = "~/.cache/jaxnas/xla"  # persistent XLA cache ("" to turn off)
    return c


RUNTIME_KEYS = ("data_dir", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints", "compilation_cache",
                "max_nonfinite_steps", "eval_batch_size", "test_batch_size")


def _choice(config, key: str, valid) -> None:
    if config[key] not in valid:
        raise ConfigError(f"unknown {key} {config[key]!r}; valid choices: {', '.join(map(str, valid))}")


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with its task block complete (the options it leaves out at their defaults)."""
    return config_blocks.resolve_blocks(config, BLOCKS)


def validate(config: ml_collections.ConfigDict, device_count: int = 1, process_count: int = 1) -> None:
    """Raise ConfigError naming the first problem; the task's trainer says which networks it builds
    and which batches are split over the devices."""
    from jaxnas.tasks import get_task
    from jaxnas.train.loop import trainer_of

    valid = set(get_config().keys())
    extra = sorted(set(config.keys()) - valid)
    if extra:
        raise ConfigError(f"unknown config key(s) {', '.join(extra)}; valid keys: {', '.join(sorted(valid))}")
    missing = sorted(valid - set(config.keys()))
    if missing:
        raise ConfigError(f"config is missing key(s) {', '.join(missing)}; start from jaxnas.train.config.get_config()")
    _choice(config, "lr_schedule", LR_SCHEDULES)
    _choice(config, "compute_dtype", tuple(COMPUTE_DTYPES))
    _choice(config, "matmul_precision", tuple(MATMUL_PRECISIONS))
    trainer = trainer_of(get_task(config_blocks.complete(config.task, TASK_OPTIONS, "task")))
    _choice(config, "network", trainer.networks)
    for key in ("epochs", "batch_size", "channels", "layers", "eval_batch_size", "keep_checkpoints",
                "max_nonfinite_steps", "log_every_steps"):
        if int(config[key]) < 1:
            raise ConfigError(f"{key} must be a positive integer, got {config[key]!r}")
    for key in ("test_batch_size", "asgd_nonmono"):
        if int(config[key]) < 0:
            raise ConfigError(f"{key} must be >= 0, got {config[key]!r}")
    if not 0.0 <= config.drop_path < 1.0:
        raise ConfigError(f"drop_path must be in [0, 1), got {config.drop_path!r}")
    check_batch_split(config, trainer.split_keys, device_count, process_count)
