"""Run one of several sub-networks, chosen by a traced index, computing only that one.

`nn.switch` (a `lax.switch`) needs every branch's variables to exist already, so at
initialisation all branches run and the chosen output is picked by value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def run_one(module: nn.Module, index: jax.Array, branches: Sequence[Callable], *args,
            remat: bool = False) -> jax.Array:
    """branches[index](module, *args); each branch builds its submodules under `module` by name.

    `remat` recomputes the taken branch in the backward pass instead of storing its activations.
    A conditional returns the residuals of every branch (JAX merges them by type and fills the
    ones the taken branch lacks), so with many-op branches storing costs more than recomputing:
    measured 2× faster for GDAS's cells on XLA:CPU.
    """
    if module.is_initializing():
        return jnp.stack([branch(module, *args) for branch in branches])[index]
    return nn.switch(index, [nn.remat(b) for b in branches] if remat else list(branches), module, *args)
