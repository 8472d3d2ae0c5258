"""`python -m jaxnas.bench`: compile time, step time, images/s and peak memory of supernet steps.

    python -m jaxnas.bench --channels 8 --layers 5 --batch-size 32 --step weight
    python -m jaxnas.bench --impl reference --step weight --json

Steps: `weight` (forward + backward + SGD-momentum update of the weights) and `first_order`
(the α gradient on a validation batch, then the weight step). Times are medians after one
warm-up call; compile time is `jit(...).lower(...).compile()` wall time.
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

from jaxnas.spaces.base import get_space

STEPS = ("weight", "first_order")


def build_step(kind: str, net, opt):
    def loss(params, stats, alphas, x, y):
        logits, upd = net.apply({"params": params, "batch_stats": stats}, x, alphas, train=True,
                                mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd["batch_stats"]

    def weight_step(params, stats, opt_state, alphas, x, y):
        (value, stats), g = jax.value_and_grad(loss, has_aux=True)(params, stats, alphas, x, y)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, alphas, value

    def first_order_step(params, stats, opt_state, alphas, x, y):
        g_alpha = jax.grad(lambda a: loss(params, stats, a, x, y)[0])(alphas)
        alphas = jax.tree.map(lambda a, g: a - 3e-4 * g, alphas, g_alpha)
        return weight_step(params, stats, opt_state, alphas, x, y)

    return {"weight": weight_step, "first_order": first_order_step}[kind]


def run(channels: int, layers: int, batch_size: int, step: str, impl: str = "grouped", repeats: int = 5,
        image_size: int = 32) -> dict:
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; valid steps: {', '.join(STEPS)}")
    space = get_space("darts", channels=channels, layers=layers, impl=impl)
    net = space.supernet(10)
    alphas = space.init_alphas(jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (batch_size, image_size, image_size, 3), jnp.float32)
    y = jnp.arange(batch_size) % 10
    variables = jax.jit(lambda: net.init(jax.random.key(0), x[:2], alphas, train=False))()
    opt = optax.chain(optax.add_decayed_weights(3e-4), optax.sgd(0.025, momentum=0.9))
    state = (variables["params"], variables["batch_stats"], opt.init(variables["params"]), alphas)
    fn = jax.jit(build_step(step, net, opt), donate_argnums=(0, 1, 2))
    t0 = time.perf_counter()
    compiled = fn.lower(*state, x, y).compile()
    compile_seconds = time.perf_counter() - t0
    *state, value = compiled(*state, x, y)
    jax.block_until_ready(value)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        *state, value = compiled(*state, x, y)
        jax.block_until_ready(value)
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
    p.add_argument("--step", default="weight", help=f"one of {', '.join(STEPS)}")
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
