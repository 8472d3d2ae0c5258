"""Hypergradient estimators against independent computations, in float64."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas.nn.chain import ChainNetwork
from jaxnas.search import hypergrad
from jaxnas.search.hypergrad import tree_dot

LR, MOMENTUM, WD = 0.1, 0.9, 3e-4


def inner_optimizer():
    # DARTS's weight optimizer without clipping: weight decay added to the gradient, SGD momentum.
    return optax.chain(optax.add_decayed_weights(WD), optax.sgd(LR, momentum=MOMENTUM))


@functools.cache
def tiny_problem():
    """A tiny supernet with BN (one mixed layer), float64, and a momentum state that is not zero."""
    net = ChainNetwork(C=3, layers=1, num_classes=3, ops=("conv_3x3", "identity", "avg_pool_3x3"))
    keys = jax.random.split(jax.random.key(0), 5)
    batches = [
        (jax.random.normal(k, (6, 4, 4, 3), jnp.float64), jnp.arange(6) % 3) for k in keys[:4]
    ]
    alphas = {"layers": jax.random.normal(keys[4], (1, 3), jnp.float64)}
    v = net.init(jax.random.key(1), batches[0][0], alphas, False)
    w = jax.tree.map(lambda t: t.astype(jnp.float64), v["params"])
    stats = jax.tree.map(lambda t: t.astype(jnp.float64), v["batch_stats"])

    def loss_fn(w, a, batch):
        x, y = batch
        logits, _ = net.apply({"params": w, "batch_stats": stats}, x, a, True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), None

    opt = inner_optimizer()
    state = opt.init(w)
    # One real step first, so the momentum buffer is non-zero when the estimators run.
    g = jax.grad(lambda p: loss_fn(p, alphas, batches[3])[0])(w)
    _, state = opt.update(g, state, w)
    return loss_fn, w, alphas, opt, state, batches[:2], batches[2]


def val_after_k_steps(alphas, k):
    """L_val(w_k(α), α) by explicit optax steps (the quantity unrolled(k) differentiates)."""
    loss_fn, w, _, opt, state, train, val = tiny_problem()
    for batch in train[:k]:
        g = jax.grad(lambda p, b=batch: loss_fn(p, alphas, b)[0])(w)
        updates, state = opt.update(g, state, w)
        w = optax.apply_updates(w, updates)
    return loss_fn(w, alphas, val)[0]


def directional_fd(f, alphas, direction, eps=1e-5):
    shift = lambda s: jax.tree.map(lambda a, d: a + s * eps * d, alphas, direction)  # noqa: E731
    return (f(shift(1.0)) - f(shift(-1.0))) / (2 * eps)


def run(estimator, **hp):
    loss_fn, w, alphas, opt, state, train, val = tiny_problem()
    return hypergrad.get_estimator(estimator, **hp)(loss_fn, w, alphas, opt, state, train, val)


def cosine(a, b):
    return float(tree_dot(a, b) / jnp.sqrt(tree_dot(a, a) * tree_dot(b, b)))


def test_first_order_is_the_plain_alpha_gradient():
    loss_fn, w, alphas, *_, val = tiny_problem()
    d_alpha, aux = run("first_order")
    expected = jax.grad(lambda a: loss_fn(w, a, val)[0])(alphas)
    np.testing.assert_allclose(d_alpha["layers"], expected["layers"], rtol=1e-12)
    assert float(aux["hypergrad_norm"]) > 0


@pytest.mark.parametrize("k", [1, 2])
def test_unrolled_matches_finite_differences_through_the_optimizer(k):
    _, _, alphas, *_ = tiny_problem()
    d_alpha, _ = run("unrolled", steps=k)
    for seed in range(3):
        direction = {"layers": jax.random.normal(jax.random.key(10 + seed), (1, 3), jnp.float64)}
        fd = directional_fd(jax.jit(functools.partial(val_after_k_steps, k=k)), alphas, direction)
        np.testing.assert_allclose(float(tree_dot(d_alpha, direction)), float(fd), rtol=1e-6, atol=1e-10)


def test_unrolled_is_not_first_order():
    # The implicit term must be there: a "second order" that equals first order is a known bug.
    d1, _ = run("unrolled", steps=1)
    d0, _ = run("first_order")
    assert float(jnp.abs(d1["layers"] - d0["layers"]).max()) > 1e-6


def test_darts_fd_agrees_with_unrolled_one_step():
    loss_fn, *_ = tiny_problem()
    d_fd, aux = run("darts_fd", xi=LR)
    d_exact, _ = run("unrolled", steps=1)
    assert cosine(d_fd, d_exact) >= 0.999
    # Same scale too: the `(p - n) / 2 * eps` precedence bug is off by a factor 4ε².
    np.testing.assert_allclose(d_fd["layers"], d_exact["layers"], rtol=1e-3, atol=1e-7)
    assert float(aux["eps"]) > 0


def test_unknown_estimator_is_named():
    with pytest.raises(ValueError, match="unknown estimator 'second_order'; valid estimators: first_order, darts_fd"):
        hypergrad.get_estimator("second_order")


def quadratic_problem(n=6, m=3, seed=0):
    """L_train = ½wᵀAw − wᵀBα (A SPD), L_val = ½‖w − c‖² + ½λ‖α‖²: w*(α) = A⁻¹Bα in closed form."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, n))
    A = q @ q.T / n + np.eye(n)
    B = rng.normal(size=(n, m))
    c = rng.normal(size=n)
    lam = 0.1
    alpha = rng.normal(size=m)

    def loss_fn(w, a, batch):
        if batch == "train":
            return 0.5 * w @ A @ w - w @ B @ a, None
        return 0.5 * jnp.sum((w - c) ** 2) + 0.5 * lam * jnp.sum(a**2), None

    w_star = np.linalg.solve(A, B @ alpha)
    exact = B.T @ np.linalg.solve(A, w_star - c) + lam * alpha
    return loss_fn, jnp.asarray(w_star), jnp.asarray(alpha), exact, np.linalg.eigvalsh(A).max()


@pytest.mark.parametrize("method", ["neumann", "cg"])
def test_implicit_converges_to_the_closed_form(method):
    loss_fn, w, alpha, exact, top_eig = quadratic_problem()
    opt = optax.sgd(0.1)
    errors = []
    for k in (1, 5, 50, 400):
        hp = dict(method=method, iterations=k, step_size=1.0 / top_eig)
        d, _ = hypergrad.implicit(loss_fn, w, alpha, opt, opt.init(w), ["train"], "val", **hp)
        errors.append(float(np.linalg.norm(np.asarray(d) - exact) / np.linalg.norm(exact)))
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-6 and errors[0] > 10 * errors[-1], errors
