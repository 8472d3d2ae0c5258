"""Mixed precision for any network: compute in a low-precision dtype, keep state in float32.

On TPUs and recent GPUs bfloat16 halves activation memory and runs matmuls and convolutions at the
fast rate; the optimizer should still see float32 parameters, and BN statistics should still
accumulate in float32. On XLA:CPU bfloat16 is emulated and slower: the default stays float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def cast_floating(tree: Any, dtype: Any) -> Any:
    """Every floating-point leaf of `tree` cast to `dtype` (integers and keys unchanged)."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


@dataclasses.dataclass(frozen=True)
class ComputeDtype:
    """`net` with `init`/`apply` as before, but each `apply` runs in `dtype`: parameters and the
    input are cast on the way in (so gradients come back in float32 through the cast), outputs
    (logits, updated BN statistics) come back in float32."""

    net: nn.Module
    dtype: Any = jnp.bfloat16

    def init(self, *args: Any, **kwargs: Any) -> Any:
        return self.net.init(*args, **kwargs)

    def apply(self, variables: Any, x: jax.Array, *args: Any, **kwargs: Any) -> Any:
        variables = {**variables, "params": cast_floating(variables["params"], self.dtype)}
        out = self.net.apply(variables, x.astype(self.dtype), *args, **kwargs)
        return cast_floating(out, jnp.float32)
