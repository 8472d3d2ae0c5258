"""Checks shared by the search-space tests."""

import jax
import jax.numpy as jnp
import numpy as np
import optax


def assert_alpha_gradient_reaches_every_row(net, variables, x, alphas, key: str) -> None:
    """The training loss's gradient w.r.t. `alphas[key]` is finite and non-zero in every row."""

    def loss(a):
        logits, _ = net.apply(variables, x, a, True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(x.shape[0])).mean()

    g = np.asarray(jax.jit(jax.grad(loss))(alphas)[key])
    assert np.all(np.isfinite(g)) and np.all(np.abs(g).sum(1) > 0)
