"""The DARTS supernet: the fast paths (scanned, grouped) against the per-edge reference, and derivatives.

Everything runs in float64 so that differences are real ones, not rounding. The fast network is
compiled once per mode and shared between tests; the reference runs eagerly (XLA:CPU compile time
dominates here, and the per-edge reference compiles slowest).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas.compilation import FAST_COMPILE
from jaxnas.nn.grouped import EdgeGroup
from jaxnas.nn.scanned import SearchCellScanned
from jaxnas.nn.supernet import (
    DartsSupernet,
    grouped_variables_from_reference,
    scanned_variables_from_reference,
    search_cell_class,
)
from jaxnas.spaces.darts import init_alphas

# The networks are compiled once per test process: keep this module's tests on one xdist worker.
pytestmark = pytest.mark.xdist_group("supernet")

C, LAYERS, BATCH, SIZE = 4, 3, 4, 8  # cells: normal, reduce, reduce (with a FactorizedReduce input)
FAST = ("scanned", "grouped")  # the default first
CONVERT = {"scanned": scanned_variables_from_reference, "grouped": grouped_variables_from_reference,
           "reference": lambda v: v}


def loss_fn(net, params, stats, alphas, x, y):
    logits, upd = net.apply({"params": params, "batch_stats": stats}, x, alphas, train=True, mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (logits, upd["batch_stats"])


@functools.cache
def setup():
    x = jax.random.normal(jax.random.key(2), (BATCH, SIZE, SIZE, 3), jnp.float64)
    y = jnp.arange(BATCH) % 10
    alphas = jax.tree.map(lambda a: (300 * a).astype(jnp.float64), init_alphas(jax.random.key(1)))  # far from uniform
    ref = DartsSupernet(C, LAYERS, 10, impl="reference")
    v_ref = ref.init(jax.random.key(0), x, alphas, train=False)  # eager: seconds; jitted: a minute of compile
    v_ref = jax.tree.map(lambda t: t.astype(jnp.float64), v_ref)
    return x, y, alphas, v_ref


def net(impl):
    return DartsSupernet(C, LAYERS, 10, impl=impl)


def variables(impl):
    """The reference's initial variables in `impl`'s layout."""
    return CONVERT[impl](setup()[3])


@functools.cache
def grad_fn(impl):
    """(loss, (logits, new stats)), (d params, d alphas) for one implementation.

    The fast paths are jitted (that is what is tested); the per-edge reference runs eagerly, op by
    op: at this size that takes seconds, its compile more than a minute.
    """
    fn = jax.value_and_grad(functools.partial(loss_fn, net(impl)), argnums=(0, 2), has_aux=True)
    return fn if impl == "reference" else jax.jit(fn, compiler_options=FAST_COMPILE)


@functools.cache
def results(impl):
    x, y, alphas, _ = setup()
    v = variables(impl)
    return grad_fn(impl)(v["params"], v["batch_stats"], alphas, x, y)


def assert_trees_close(a, b, rtol, atol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=rtol, atol=atol)


@pytest.mark.parametrize("impl", FAST)
def test_fast_equals_reference_in_training_mode(impl):
    (loss_r, (logits_r, stats_r)), (gp_r, ga_r) = results("reference")
    (loss_f, (logits_f, stats_f)), (gp_f, ga_f) = results(impl)
    np.testing.assert_allclose(logits_f, logits_r, rtol=1e-10, atol=1e-12)
    assert_trees_close(ga_f, ga_r, rtol=1e-8, atol=1e-12)
    assert_trees_close(gp_f, CONVERT[impl]({"params": gp_r})["params"], rtol=1e-8, atol=1e-12)
    assert_trees_close(stats_f, CONVERT[impl]({"s": stats_r})["s"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", FAST)
def test_fast_equals_reference_in_eval_mode(impl):
    x, _, alphas, v_ref = setup()
    # Non-trivial running statistics, converted like any other variable.
    (_, (_, stats_r)), _ = results("reference")
    v_ref = {"params": v_ref["params"], "batch_stats": stats_r}
    out_r = net("reference").apply(v_ref, x, alphas, train=False)  # eager, like the reference's gradient
    out_f = jax.jit(lambda v: net(impl).apply(v, x, alphas, train=False), compiler_options=FAST_COMPILE)(
        CONVERT[impl](v_ref))
    np.testing.assert_allclose(out_f, out_r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", FAST)
def test_layouts_have_the_shapes_their_networks_initialise(impl):
    """The converted variables have exactly the tree and shapes the fast network creates itself
    (so a converted checkpoint loads), and the same number of parameters."""
    x, _, alphas, v_ref = setup()
    own = jax.eval_shape(lambda: net(impl).init(jax.random.key(0), x, alphas, train=False))
    converted = variables(impl)
    assert jax.tree.structure(own) == jax.tree.structure(converted)
    assert [a.shape for a in jax.tree.leaves(own)] == [a.shape for a in jax.tree.leaves(converted)]
    count = lambda t: sum(leaf.size for leaf in jax.tree.leaves(t))  # noqa: E731
    assert count(v_ref["params"]) == count(converted["params"])


def test_alpha_gradient_is_finite_and_nonzero_on_every_edge():
    _, (_, g_alpha) = results(FAST[0])
    for kind in ("normal", "reduce"):
        g = np.asarray(g_alpha[kind])
        assert np.all(np.isfinite(g))
        assert np.all(np.abs(g).sum(axis=1) > 0), f"{kind}: an edge gets no gradient"


def test_alpha_gradient_matches_finite_differences():
    x, y, alphas, _ = setup()
    v_fast = variables(FAST[0])
    f = lambda a: grad_fn(FAST[0])(v_fast["params"], v_fast["batch_stats"], a, x, y)[0][0]  # noqa: E731
    _, (_, g) = results(FAST[0])
    direction = jax.tree.map(lambda t: jax.random.normal(jax.random.key(7), t.shape, t.dtype), alphas)
    eps = 1e-5
    shift = lambda s: jax.tree.map(lambda a, d: a + s * eps * d, alphas, direction)  # noqa: E731
    fd = (f(shift(1.0)) - f(shift(-1.0))) / (2 * eps)
    analytic = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(direction)))
    np.testing.assert_allclose(analytic, fd, rtol=1e-6)


def test_hessian_vector_product_by_forward_over_reverse():
    """jvp-of-grad (what the second-order estimators use) works through the fast path's edge group.

    A strided group with its BNs, pools, FactorizedReduce and α mixing; the whole network's
    second-order compile is too slow for the suite (measured in the benchmark instead).
    """
    x = jax.random.normal(jax.random.key(0), (4, 6, 6, 1, 4), jnp.float64)
    w = jax.nn.softmax(jax.random.normal(jax.random.key(1), (2, 8), jnp.float64))
    group = EdgeGroup(4, 2, 2)
    v = jax.tree.map(lambda t: t.astype(jnp.float64), group.init(jax.random.key(2), x, w, False))
    stats = v["batch_stats"]

    def loss(p):
        out, _ = group.apply({"params": p, "batch_stats": stats}, x, w, True, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(out))

    params = v["params"]
    grad_w = jax.jit(jax.grad(loss))
    d = jax.tree.map(lambda t: jax.random.normal(jax.random.key(3), t.shape, t.dtype), params)
    hvp = jax.jit(lambda p, d: jax.jvp(grad_w, (p,), (d,))[1])(params, d)
    eps = 1e-6
    fd = jax.tree.map(lambda a, b: (a - b) / (2 * eps),
                      grad_w(jax.tree.map(lambda p, t: p + eps * t, params, d)),
                      grad_w(jax.tree.map(lambda p, t: p - eps * t, params, d)))
    assert_trees_close(hvp, fd, rtol=1e-5, atol=1e-7)


def test_hessian_vector_product_through_the_scanned_cell():
    """jvp-of-grad through a scanned reduction cell (both scans, the state buffer, the strided
    edges' FactorizedReduce) w.r.t. weights and α, against central differences of the gradient."""
    s = jax.random.normal(jax.random.key(0), (2, 6, 6, 3 * C), jnp.float64)
    w0 = jax.nn.softmax(jax.random.normal(jax.random.key(1), (14, 8), jnp.float64), -1)
    cell = SearchCellScanned(C, True, False)
    v = jax.jit(lambda: cell.init(jax.random.key(2), s, s, w0, True), compiler_options=FAST_COMPILE)()
    v = jax.tree.map(lambda t: t.astype(jnp.float64), v)

    def loss(pw):
        p, w = pw
        out, _ = cell.apply({"params": p, "batch_stats": v["batch_stats"]}, s, 0.5 * s, w, True,
                            mutable=["batch_stats"])
        return jnp.sum(jnp.sin(out))

    primal = (v["params"], w0)
    grad = jax.grad(loss)
    d = jax.tree.map(lambda t: jax.random.normal(jax.random.key(3), t.shape, t.dtype), primal)
    hvp = jax.jit(lambda p, d: jax.jvp(grad, (p,), (d,))[1], compiler_options=FAST_COMPILE)(primal, d)
    grad = jax.jit(grad, compiler_options=FAST_COMPILE)
    eps = 1e-6
    fd = jax.tree.map(lambda a, b: (a - b) / (2 * eps),
                      grad(jax.tree.map(lambda p, t: p + eps * t, primal, d)),
                      grad(jax.tree.map(lambda p, t: p - eps * t, primal, d)))
    assert_trees_close(hvp, fd, rtol=1e-5, atol=1e-7)


def test_unknown_impl_is_named():
    x, _, alphas, *_ = setup()
    with pytest.raises(ValueError, match="unknown supernet impl 'fastest'; valid: scanned, grouped, reference"):
        DartsSupernet(C, LAYERS, impl="fastest").init(jax.random.key(0), x, alphas, train=False)


def test_remat_changes_memory_not_results():
    """A rematerialised cell (`DartsSupernet(remat=True)`) gives the same output, gradients and BN
    statistics as the stored one (float64). One normal cell keeps the extra compile small."""
    x, y, alphas, *_ = setup()
    s = jax.random.normal(jax.random.key(3), (BATCH, SIZE, SIZE, 4 * C), jnp.float64)
    w = jax.nn.softmax(alphas["normal"], axis=-1)
    cells = [search_cell_class(FAST[0], remat)(C, False, False, None) for remat in (False, True)]
    v = jax.jit(lambda: cells[0].init(jax.random.key(0), s, s, w, True), compiler_options=FAST_COMPILE)()
    v = jax.tree.map(lambda t: t.astype(jnp.float64), v)

    def loss(cell, params, s0, w):
        out, upd = cell.apply({"params": params, "batch_stats": v["batch_stats"]}, s0, s, w, True,
                              mutable=["batch_stats"])
        return jnp.sum(jnp.sin(out)), upd["batch_stats"]

    (l0, st0), g0 = jax.jit(jax.value_and_grad(functools.partial(loss, cells[0]), (0, 1, 2), has_aux=True),
                            compiler_options=FAST_COMPILE)(v["params"], s, w)
    (l1, st1), g1 = jax.jit(jax.value_and_grad(functools.partial(loss, cells[1]), (0, 1, 2), has_aux=True),
                            compiler_options=FAST_COMPILE)(v["params"], s, w)
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    assert_trees_close(g1, g0, rtol=1e-10, atol=1e-12)
    assert_trees_close(st1, st0, rtol=1e-10, atol=1e-12)


def test_supernet_remat_flag_rematerialises():
    """The flag reaches the cells: the traced backward pass recomputes them (a `remat`/`checkpoint`
    primitive appears in the jaxpr), without compiling anything."""
    x, y, alphas, *_ = setup()
    net = DartsSupernet(C, 2, 10, remat=True)
    v = jax.eval_shape(lambda: net.init(jax.random.key(0), x, alphas, train=False))
    grad = jax.grad(lambda p, stats: loss_fn(net, p, stats, alphas, x, y)[0])
    jaxpr = jax.make_jaxpr(grad)(v["params"], v["batch_stats"])
    assert "checkpoint" in str(jaxpr) or "remat" in str(jaxpr)
