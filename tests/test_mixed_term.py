"""The second-order term of the hypergradient alone: the exact jvp against the full mixed Hessian
block (materialised, tiny problem), and DARTS's central difference converging to it on a smooth loss
(float64) as ε shrinks."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.study import mixed


def _smooth_problem():
    rng = np.random.default_rng(0)
    w = {"a": jnp.asarray(rng.normal(size=(5, 4))), "b": jnp.asarray(rng.normal(size=(4,)))}
    alphas = {"e": jnp.asarray(rng.normal(size=(3, 4)))}
    x, y = jnp.asarray(rng.normal(size=(6, 5))), jnp.asarray(rng.normal(size=(6, 4)))

    def loss_fn(w, a, batch):
        xb, yb = batch
        h = jnp.tanh(xb @ w["a"] + w["b"])
        mix = jax.nn.softmax(a["e"], axis=-1).sum(0)  # α scales each hidden unit
        return jnp.mean((h * mix - yb) ** 2), None

    return loss_fn, w, alphas, (x, y), (x[::-1], y[::-1])


def test_the_exact_term_is_the_mixed_hessian_block_times_v():
    with jax.enable_x64(True):
        loss_fn, w, alphas, train, val = _smooth_problem()
        v = jax.tree.map(lambda p: jnp.linspace(-1.0, 1.0, p.size).reshape(p.shape), w)
        got = mixed.mixed_term_exact(loss_fn, w, alphas, v, train)
        flat_w, unravel_w = jax.flatten_util.ravel_pytree(w)
        flat_a, unravel_a = jax.flatten_util.ravel_pytree(alphas)
        loss = lambda fw, fa: loss_fn(unravel_w(fw), unravel_a(fa), train)[0]  # noqa: E731
        block = jax.jacfwd(jax.grad(loss, argnums=1), argnums=0)(flat_w, flat_a)  # ∂²L/∂α∂w, (|α|, |w|)
        np.testing.assert_allclose(jax.flatten_util.ravel_pytree(got)[0], block @ jax.flatten_util.ravel_pytree(v)[0],
                                   rtol=1e-10, atol=1e-12)


def test_the_difference_quotient_converges_on_a_smooth_loss():
    with jax.enable_x64(True):
        loss_fn, w, alphas, train, val = _smooth_problem()
        opt = optax.sgd(0.1, momentum=0.9)
        exact, fds = mixed.mixed_terms(loss_fn, w, alphas, opt, opt.init(w), train, val, (1e-1, 1e-2, 1e-3, 1e-4))
        e = jax.flatten_util.ravel_pytree(exact)[0]
        errors = [float(jnp.linalg.norm(jax.flatten_util.ravel_pytree(fd)[0] - e) / jnp.linalg.norm(e)) for fd in fds]
        assert all(b < a / 50 for a, b in zip(errors, errors[1:])), errors  # central difference: O(ε²)
        assert errors[-1] < 1e-7, errors  # 2e-8 at ε scale 1e-4: the O(ε²) error, not a jump
