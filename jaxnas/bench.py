"""`python -m jaxnas.bench`: compile time, step time, images/s and peak memory of supernet steps.

    python -m jaxnas.bench --config=configs/darts_cifar10.py --step=darts_fd        # the paper config
    python -m jaxnas.bench --config.channels=16 --config.layers=8 --config.batch_size=64 --config.dataset=cifar10
    python -m jaxnas.bench --config.impl=reference --step=weight --json
    python -m jaxnas.bench --config=configs/darts_cifar10.py --step=unrolled --config.remat=True

The network, optimizers, estimator options and input shape come from a search config (default: the
offline default's; `--config.key=value` overrides any key, as for `python -m jaxnas.search`). Input is random
data of the data set's image shape (read from TFDS metadata, nothing downloaded). Steps: `weight`
(forward + backward + SGD-momentum update of the weights only), or a full search step
(`jaxnas.search.step`: the α update from a hypergradient estimator, then the weight update); the
default is the config's estimator. Times are medians after warm-up steps (1, or 50 where edges run
behind a switch: GDAS and the sampling strategies, whose branches are slow the first time they run); compile time is
`jit(...).lower(...).compile()` wall time; peak memory is the process's peak RSS (compiler
included); step memory is XLA's buffer assignment for the step (what it needs on a device). The time
to build the search setup and to initialise the state (once per run) is reported beside them.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags
from ml_collections import config_flags

from jaxnas.data.pipeline import image_shape_and_classes
from jaxnas.parallel import data_mesh, data_parallel, replicate, shard_batch
from jaxnas.search import config as config_lib
from jaxnas.search.hypergrad import ESTIMATORS
from jaxnas.search.loop import search_setup
from jaxnas.search.state import SearchState
from jaxnas.search.step import supernet_loss
from jaxnas.search.strategies import get_strategy
from jaxnas.spaces.base import get_space

STEPS = ("weight",) + ESTIMATORS


def weight_step(net, opt, forward=None):
    """Forward, backward and SGD-momentum update of the weights at fixed α (no search);
    `forward` is the strategy's per-step supernet inputs (`SearchSetup.forward`)."""

    def step(state: SearchState, train_batches, val_batch):
        loss = supernet_loss(net, state.batch_stats, **(forward(state)[1] if forward is not None else {}))
        (value, (_, stats)), g = jax.value_and_grad(loss, has_aux=True)(state.params, state.alphas, train_batches[0])
        updates, opt_state = opt.update(g, state.weight_opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(params=params, batch_stats=stats, weight_opt_state=opt_state), {"train_loss": value}

    return step


# Untimed steps before timing by default. A supernet whose edges run one op behind `lax.switch`
# (GDAS, the sampling strategies) is slow the first time each branch runs (XLA:CPU loads the
# kernels lazily): one GDAS cell measured 76 ms over a few draws and 13 ms after 100.
WARMUP_STEPS = 1
SWITCH_WARMUP_STEPS = 50


def default_warmup(config: ml_collections.ConfigDict) -> int:
    """`SWITCH_WARMUP_STEPS` where the supernet's edges run behind a switch, else `WARMUP_STEPS`."""
    mixing = get_strategy(config.strategy).space_options(config).get("mixing", "softmax")
    return SWITCH_WARMUP_STEPS if mixing != "softmax" else WARMUP_STEPS


def run(config: ml_collections.ConfigDict, step: str | None = None, repeats: int = 5,
        warmup: int | None = None, exclusive: contextlib.AbstractContextManager | None = None) -> dict:
    """Compile and time one step of the search `config` on random data of its image shape;
    `warmup` untimed steps first (default: `default_warmup(config)`). `exclusive` is held while the
    steps run (warm-up and timed), so that benchmark processes sharing one accelerator can compile
    at the same time without overlapping their timed steps."""
    step = step or config.estimator
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; valid steps: {', '.join(STEPS)}")
    config = config.copy_and_resolve_references()
    own_step = get_strategy(config.strategy).own_step
    if own_step and step != "first_order":
        raise ValueError(f"strategy {config.strategy!r} has its own step; bench it without --step")
    if step != "weight":
        config.estimator = step
    config_lib.validate(config, jax.device_count())
    warmup = default_warmup(config) if warmup is None else warmup
    space = get_space(config.space, **config_lib.space_options(config))
    shape, num_classes = image_shape_and_classes(config.dataset, config.data_dir)
    batch_size = config.batch_size
    keys = jax.random.split(jax.random.key(2), 3)
    batches = [(jax.random.normal(k, (batch_size, *shape), jnp.float32), jnp.arange(batch_size) % num_classes)
               for k in keys]
    # The search's own setup (strategy, cost penalty, warm-up and all), as `python -m jaxnas.search` builds it.
    t0 = time.perf_counter()
    setup = search_setup(config, space, num_classes, tuple(shape), steps_per_epoch=100)
    search_step = weight_step(setup.net, setup.weight_opt, setup.forward) if step == "weight" else setup.step
    train = tuple(batches[i % 2] for i in range(config_lib.train_batches_per_step(config)))
    init = setup.init
    setup_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    mesh = data_mesh()
    state = jax.block_until_ready(replicate(init(), mesh))
    init_seconds = time.perf_counter() - t0
    train, val = shard_batch(train, mesh), shard_batch(batches[2], mesh)
    fn = data_parallel(search_step, mesh)
    t0 = time.perf_counter()
    compiled = fn.lower(state, train, val).compile()
    compile_seconds = time.perf_counter() - t0
    step_memory = _step_memory_mb(compiled)
    kernels = _fusion_count(compiled)
    times = []
    with exclusive or contextlib.nullcontext():
        for _ in range(warmup):
            state, metrics = compiled(state, train, val)
            jax.block_until_ready(metrics)
        for _ in range(repeats):
            t0 = time.perf_counter()
            state, metrics = compiled(state, train, val)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - t0)
    step_seconds = float(np.median(times))
    return {
        "config": dict(space=config.space, dataset=config.dataset, image_shape=list(shape), channels=config.channels,
                       layers=config.layers, batch_size=batch_size, step=config.strategy if own_step else step,
                       impl=config.impl, remat=config.remat,
                       strategy=config.strategy),
        "device": f"{jax.devices()[0].platform} x{jax.device_count()}",
        "setup_seconds": round(setup_seconds, 2),
        "init_seconds": round(init_seconds, 2),
        "compile_seconds": round(compile_seconds, 2),
        "step_seconds": round(step_seconds, 5),
        "step_seconds_min": round(min(times), 5),
        "images_per_second": round(batch_size / step_seconds, 1),
        "timed_steps": repeats,
        "warmup_steps": warmup,
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "step_memory_mb": step_memory,
        "hlo_fusions": kernels,
    }


def _fusion_count(compiled) -> int | None:
    """Fusions in the optimised HLO: each is one generated kernel, and on XLA:CPU their number
    (LLVM codegen per kernel), not any one op, is what the compile time follows."""
    try:
        return compiled.as_text().count(" fusion(")
    except Exception:  # noqa: BLE001 - some backends give no text; the count is informative only
        return None


def _step_memory_mb(compiled) -> float | None:
    """What the compiled step needs on its device (XLA's buffer assignment: arguments, outputs and
    temporaries, less donated aliases); unlike peak RSS it leaves out the compiler's own memory."""
    try:
        m = compiled.memory_analysis()
        total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    except (AttributeError, NotImplementedError):  # not every backend reports it
        return None
    return round(total / 2**20, 1)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config, --config.key=value, --step, ...")
    try:
        r = run(_CONFIG.value, _STEP.value, _REPEATS.value, _WARMUP.value)
    except ValueError as e:  # ConfigError included
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if _JSON.value:
        print(json.dumps(r))
        return
    c = r["config"]
    print(f"{c['strategy']} {c['impl']} {c['space']} supernet C={c['channels']} cells={c['layers']} "
          f"batch={c['batch_size']} "
          f"{c['dataset']} {tuple(c['image_shape'])} {c['step']} step{' (remat)' if c['remat'] else ''} "
          f"on {r['device']}")
    print(f"  compile {r['compile_seconds']:.1f} s | step {r['step_seconds']:.3f} s | "
          f"{r['images_per_second']:.1f} images/s | peak RSS {r['peak_memory_mb']:.0f} MB | "
          f"step memory {r['step_memory_mb']} MB | {r['hlo_fusions']} HLO fusions")


if __name__ == "__main__":
    from jaxnas import cli

    cli.check_override_keys(sys.argv, set(config_lib.get_config().keys()))
    _CONFIG = config_flags.DEFINE_config_file("config", os.path.abspath(config_lib.__file__),
                                              "search config file[:variant] (default: the offline default)",
                                              lock_config=True)
    _STEP = flags.DEFINE_string("step", None, f"one of {', '.join(STEPS)} (default: the config's estimator)")
    _REPEATS = flags.DEFINE_integer("repeats", 5, "timed steps (the median is reported)")
    _WARMUP = flags.DEFINE_integer("warmup", None, f"untimed steps after compiling (default: {WARMUP_STEPS}; "
                                   f"{SWITCH_WARMUP_STEPS} for GDAS and the sampling strategies)")
    _JSON = flags.DEFINE_bool("json", False, "print one JSON line")
    app.run(main)
