"""Every hypergradient estimator gives the same dα on the fast (scanned) supernet as on the per-edge
reference, on the same weights (float64): the fast path is what searches run, the reference is the
readable DARTS structure, and the second-order estimators differentiate through the scan in ways a
plain gradient does not (reverse over reverse through the virtual step, forward over reverse for
the implicit estimator's Hessian-vector products)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.compilation import FAST_COMPILE
from jaxnas.nn.supernet import DartsSupernet, scanned_variables_from_reference
from jaxnas.search import hypergrad
from jaxnas.spaces.darts import init_alphas

C, LAYERS, BATCH, SIZE = 4, 1, 2, 6  # one reduction cell: both of its scans, the strided edges
HYPERPARAMETERS = {"first_order": {}, "darts_fd": {"xi": 0.1}, "unrolled": {"steps": 1},
                   "implicit": {"method": "cg", "iterations": 1}}


@functools.cache
def problem():
    keys = jax.random.split(jax.random.key(0), 4)
    batches = [(jax.random.normal(k, (BATCH, SIZE, SIZE, 3), jnp.float64), jnp.arange(BATCH) % 10) for k in keys]
    alphas = jax.tree.map(lambda a: (300 * a).astype(jnp.float64), init_alphas(jax.random.key(1)))
    ref = DartsSupernet(C, LAYERS, 10, impl="reference")
    v = ref.init(jax.random.key(2), batches[0][0], alphas, train=False)
    v = jax.tree.map(lambda t: t.astype(jnp.float64), v)
    opt = optax.chain(optax.add_decayed_weights(3e-4), optax.sgd(0.1, momentum=0.9))
    return batches, alphas, v, opt


def estimates(impl: str) -> dict:
    """dα of every estimator on `impl`'s supernet, from the same weights, α and batches.

    The scanned supernet is jitted (as it runs in a search); the reference runs eagerly, op by op,
    which at this size takes half the time its compile would."""
    batches, alphas, v, opt = problem()
    if impl != "reference":
        v = scanned_variables_from_reference(v)
    net = DartsSupernet(C, LAYERS, 10, impl=impl)

    def loss_fn(w, a, batch):
        x, y = batch
        logits, _ = net.apply({"params": w, "batch_stats": v["batch_stats"]}, x, a, True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), None

    def run(w, a):
        state = opt.init(w)
        # A non-zero momentum buffer, so the virtual step's optimizer state matters.
        g = jax.grad(lambda p: loss_fn(p, a, batches[3])[0])(w)
        _, state = opt.update(g, state, w)
        return {name: hypergrad.get_estimator(name, **hp)(loss_fn, w, a, opt, state, batches[:2], batches[2])[0]
                for name, hp in HYPERPARAMETERS.items()}

    run = run if impl == "reference" else jax.jit(run, compiler_options=FAST_COMPILE)
    return run(v["params"], alphas)


def test_every_estimator_gives_the_same_dalpha_on_the_scanned_supernet_as_on_the_reference():
    fast, ref = estimates("scanned"), estimates("reference")
    for name in HYPERPARAMETERS:
        for kind in ("normal", "reduce"):
            np.testing.assert_allclose(fast[name][kind], ref[name][kind], rtol=1e-7, atol=1e-12, err_msg=name)
        assert np.abs(np.asarray(ref[name]["reduce"])).sum() > 0, name  # not trivially zero
    # The estimators differ from each other here, so agreeing per estimator is not agreeing on one.
    assert not np.allclose(ref["unrolled"]["reduce"], ref["first_order"]["reduce"])
