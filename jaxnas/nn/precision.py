"""Mixed precision for any network: compute in a low-precision dtype, keep state in float32; and
the precision of float32 matmuls and convolutions, set explicitly rather than left to the backend.

On TPUs and recent GPUs bfloat16 halves activation memory and runs matmuls and convolutions at the
fast rate; the optimizer should still see float32 parameters, and BN statistics should still
accumulate in float32. On XLA:CPU bfloat16 is emulated and slower: the default stays float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# What a float32 dot or convolution computes in, named as `jax.lax.Precision` names it. Left unset,
# the backend decides: one bfloat16 pass on a TPU, TF32 on an Ampere-or-later GPU (about 3 decimal
# digits), full float32 on a CPU, so the same config computed different numbers on different
# machines. "highest" is float32 everywhere (a TPU then takes 6 bfloat16 passes), "high" is TF32 on a
# GPU and 3 passes on a TPU, "default" is the backend's fast path. For speed, prefer
# compute_dtype="bfloat16", which states the precision it gives up.
MATMUL_PRECISIONS = {"default": "bfloat16", "high": "tensorfloat32", "highest": "float32"}


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


@contextlib.contextmanager
def matmul_precision(name: str) -> Iterator[None]:
    """Every dot and convolution traced inside computes at `name` (a MATMUL_PRECISIONS key): it is
    written into each op's `precision`, and the jit cache keys on it."""
    with jax.default_matmul_precision(MATMUL_PRECISIONS[name]):
        yield


@dataclasses.dataclass(frozen=True)
class MatmulPrecision:
    """`net` whose `init` and `apply` trace at `precision` (a MATMUL_PRECISIONS key); the backward
    pass of each op keeps its forward op's precision."""

    net: Any
    precision: str = "highest"

    def init(self, *args: Any, **kwargs: Any) -> Any:
        with matmul_precision(self.precision):
            return self.net.init(*args, **kwargs)

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        with matmul_precision(self.precision):
            return self.net.apply(*args, **kwargs)
