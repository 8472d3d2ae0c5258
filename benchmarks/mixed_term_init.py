"""DARTS's second-order term at initialisation, in the setting the fidelity issue measured: the
DARTS search supernet at C=8, 5 cells, 10 classes, CIFAR-shaped input (32×32×3), batch 8, float64.

    python benchmarks/mixed_term_init.py            # writes benchmarks/results/mixed_term_init.json

It reports ‖M‖ of the exact mixed term M = d/dα ⟨∇_w L_train(w, α), v⟩ (v = ∇_{w'} L_val at one
virtual SGD step, lr 0.025, momentum 0.9, weight decay 3e-4 as DARTS), DARTS's central difference
of it at ε scales 1e-1 … 1e-6 (norm, cosine and relative L2 error to M), and the cosine of the
whole `darts_fd` hypergradient to the exact `unrolled(1)` one. The data are seeded Gaussian images
with random labels; the weights are jaxnas's own initialisation (not the PyTorch code's), so the
figures are comparable with the issue's in order of magnitude, not digit for digit.
`docs/fidelity.md` shows the file (`benchmarks/fidelity_report.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suite import environment  # noqa: E402  (the date, machine, versions and commit of every result file)

from jaxnas.compilation import FAST_COMPILE, enable_compilation_cache  # noqa: E402
from jaxnas.search import hypergrad  # noqa: E402
from jaxnas.search.state import inner_optimizer  # noqa: E402
from jaxnas.search.step import supernet_loss  # noqa: E402
from jaxnas.spaces.base import get_space  # noqa: E402
from jaxnas.study.loop import compare  # noqa: E402  (cosine and relative L2 error, as the study reports them)
from jaxnas.study.mixed import mixed_terms  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPS_SCALES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def measure(seed: int = 0, batch: int = 8, channels: int = 8, layers: int = 5, lr: float = 0.025) -> dict:
    """The figures above for one seeded initialisation and batch pair (float64 throughout)."""
    space = get_space("darts", channels=channels, layers=layers)
    net = space.supernet(10)
    keys = jax.random.split(jax.random.key(seed), 5)
    alphas = space.init_alphas(keys[0])
    variables = net.init(keys[1], jnp.zeros((2, 32, 32, 3)), alphas, train=False)
    jax.config.update("jax_enable_x64", True)
    to64 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), t)  # noqa: E731
    w, stats, alphas = to64(variables["params"]), to64(variables["batch_stats"]), to64(alphas)
    labels = jax.random.randint(keys[3], (2, batch), 0, 10)
    train = (jax.random.normal(keys[2], (batch, 32, 32, 3), jnp.float64), labels[0])
    val = (jax.random.normal(keys[4], (batch, 32, 32, 3), jnp.float64), labels[1])
    inner = inner_optimizer(lambda count: lr)
    inner_state = inner.init(w)
    loss_fn = supernet_loss(net, stats)

    t0 = time.perf_counter()
    mixed = jax.jit(lambda w, a: mixed_terms(loss_fn, w, a, inner, inner_state, train, val, EPS_SCALES),
                    compiler_options=FAST_COMPILE)
    exact, fds = mixed(w, alphas)
    out = {"exact_norm": float(hypergrad.tree_norm(exact)), "finite_difference": []}
    for r, fd in zip(EPS_SCALES, fds):
        c = compare(fd, exact)
        out["finite_difference"].append({"eps_scale": r, "norm": float(hypergrad.tree_norm(fd)),
                                         "cosine": c["cosine"], "rel_l2": c["rel_l2"]})

    def whole(name, **options):
        estimate = hypergrad.get_estimator(name, **options)
        fn = jax.jit(lambda w, a: estimate(loss_fn, w, a, inner, inner_state, (train,), val, xi=lr)[0],
                     compiler_options=FAST_COMPILE)
        return fn(w, alphas)

    fd, exact_one_step = whole("darts_fd", eps_scale=0.01), whole("unrolled", steps=1)
    out["darts_fd_vs_unrolled_k1_cosine"] = compare(fd, exact_one_step)["cosine"]
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "mixed_term_init.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compilation_cache", default="~/.cache/jaxnas/xla")
    args = parser.parse_args()
    enable_compilation_cache(args.compilation_cache)
    result = {"setting": "DARTS supernet C=8, 5 cells, 10 classes, 32x32x3 Gaussian input, batch 8, float64, "
                         f"jaxnas initialisation, seed {args.seed}",
              "command": "python benchmarks/mixed_term_init.py" + (f" --seed={args.seed}" if args.seed else ""),
              **environment(), **measure(args.seed)}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps({k: result[k] for k in ("exact_norm", "darts_fd_vs_unrolled_k1_cosine")}),
          [(d["eps_scale"], round(d["norm"], 3), round(d["cosine"], 3)) for d in result["finite_difference"]])


if __name__ == "__main__":
    main()
