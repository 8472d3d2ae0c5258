"""Run one of several sub-networks, chosen by a traced index, computing only that one.

`nn.switch` (a `lax.switch`) needs every branch's variables to exist already, so at
initialisation all branches run and the chosen output is picked by value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def run_one(module: nn.Module, index: jax.Array, branches: Sequence[Callable], *args) -> jax.Array:
    """branches[index](module, *args); each branch builds its submodules under `module` by name."""
    if module.is_initializing():
        return jnp.stack([branch(module, *args) for branch in branches])[index]
    return nn.switch(index, list(branches), module, *args)
