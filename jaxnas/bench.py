"""`python -m jaxnas.bench`: compile time, step time, images/s and peak memory of supernet steps.

    python -m jaxnas.bench --channels 8 --layers 5 --batch-size 32 --step weight
    python -m jaxnas.bench --impl reference --step weight --json

Steps: `weight` (forward + backward + SGD-momentum update of the weights only), or a full search
step (`jaxnas.search.step`: the α update from a hypergradient estimator, then the weight update)
with `--step first_order | darts_fd | unrolled | implicit`. Times are medians after one warm-up
call; compile time is `jit(...).lower(...).compile()` wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.parallel import DATA_AXIS, data_mesh, data_parallel, replicate, shard_batch
from jaxnas.search.hypergrad import ESTIMATORS
from jaxnas.search.state import SearchState, alpha_optimizer, cosine_lr, weight_optimizer
from jaxnas.search.step import init_state, make_search_step, supernet_loss
from jaxnas.spaces.base import get_space

STEPS = ("weight",) + ESTIMATORS


def weight_step(net, opt):
    """Forward, backward and SGD-momentum update of the weights at fixed α (no search)."""

    def step(state: SearchState, train_batches, val_batch):
        loss = supernet_loss(net, state.batch_stats)
        (value, (_, stats)), g = jax.value_and_grad(loss, has_aux=True)(state.params, state.alphas, train_batches[0])
        updates, opt_state = opt.update(g, state.weight_opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(params=params, batch_stats=stats, weight_opt_state=opt_state), {"train_loss": value}

    return step


def run(channels: int, layers: int, batch_size: int, step: str, impl: str = "grouped", repeats: int = 5,
        image_size: int = 32) -> dict:
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; valid steps: {', '.join(STEPS)}")
    space = get_space("darts", channels=channels, layers=layers, impl=impl)
    net = space.supernet(10, axis_name=DATA_AXIS)
    alphas = space.init_alphas(jax.random.key(1))
    keys = jax.random.split(jax.random.key(2), 3)
    batches = [(jax.random.normal(k, (batch_size, image_size, image_size, 3), jnp.float32),
                jnp.arange(batch_size) % 10) for k in keys]
    schedule = cosine_lr(0.025, 0.001, epochs=50, steps_per_epoch=100)
    if step == "weight":
        w_opt, a_opt = weight_optimizer(schedule), alpha_optimizer()
        search_step = weight_step(net, w_opt)
    else:
        search_step, w_opt, a_opt = make_search_step(net, step, schedule, axis_name=DATA_AXIS)
    init = jax.jit(lambda: init_state(space.supernet(10), alphas, batches[0][0][:2], jax.random.key(0), w_opt, a_opt))
    mesh = data_mesh()
    state = replicate(init(), mesh)
    train, val = shard_batch((batches[0],), mesh), shard_batch(batches[1], mesh)
    fn = data_parallel(search_step, mesh)
    t0 = time.perf_counter()
    compiled = fn.lower(state, train, val).compile()
    compile_seconds = time.perf_counter() - t0
    state, metrics = compiled(state, train, val)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = compiled(state, train, val)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    step_seconds = float(np.median(times))
    return {
        "config": dict(channels=channels, layers=layers, batch_size=batch_size, step=step, impl=impl),
        "device": f"{jax.devices()[0].platform} x{jax.device_count()}",
        "compile_seconds": round(compile_seconds, 2),
        "step_seconds": round(step_seconds, 3),
        "images_per_second": round(batch_size / step_seconds, 1),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxnas.bench", description=__doc__.split("\n")[0])
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--step", default="first_order", help=f"one of {', '.join(STEPS)}")
    p.add_argument("--impl", default="grouped", help="grouped | reference")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    try:
        r = run(a.channels, a.layers, a.batch_size, a.step, a.impl, a.repeats)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(r))
    else:
        c = r["config"]
        print(f"{c['impl']} DARTS supernet C={c['channels']} cells={c['layers']} batch={c['batch_size']} "
              f"{c['step']} step on {r['device']}")
        print(f"  compile {r['compile_seconds']:.1f} s | step {r['step_seconds']:.3f} s | "
              f"{r['images_per_second']:.1f} images/s | peak RSS {r['peak_memory_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
