"""Checks shared by the search-space tests, and the environment of the tests' subprocesses."""

import os

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


def subprocess_env(devices: int | None = None, x64: bool = False, **more: str) -> dict[str, str]:
    """The environment for a jaxnas subprocess: float32 as a user runs it (unless `x64`), the
    suite's fast-compile XLA flags, and `devices` simulated CPU devices if given."""
    from conftest import TEST_XLA_FLAGS

    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64" or x64}
    env["XLA_FLAGS"] = TEST_XLA_FLAGS + (f" --xla_force_host_platform_device_count={devices}" if devices else "")
    return {**env, **more}
