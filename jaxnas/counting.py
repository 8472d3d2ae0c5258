"""Parameter and multiply-add counts, the way the DARTS papers report them.

Parameters leave out the auxiliary head (the DARTS code's `count_parameters_in_MB`).
Multiply-adds are counted per conv and dense layer for one image, by intercepting the layers'
calls under `jax.eval_shape`, so nothing is computed and any network can be measured:
a conv costs H_out·W_out·K_h·K_w·(C_in/groups)·C_out, a dense layer C_in·C_out. BN, pooling,
additions and activations are not counted, as in the published figures.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

AUX = "auxiliary_head"


def count_params(params: Any, include_auxiliary: bool = False) -> int:
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if not include_auxiliary and any(getattr(k, "key", None) == AUX for k in path):
            continue
        total += int(math.prod(leaf.shape))
    return total


def multiply_adds(model: nn.Module, input_shape: tuple[int, ...], *args: Any, **kwargs: Any) -> dict[str, int]:
    """Multiply-adds per layer (path -> count) for one input of `input_shape` (H, W, C)."""
    counts: dict[str, int] = {}

    def interceptor(next_fun, fargs, fkwargs, context):
        out = next_fun(*fargs, **fkwargs)
        module = context.module
        if context.method_name != "__call__" or not isinstance(module, (nn.Conv, nn.Dense)):
            return out
        kernel = module.variables["params"]["kernel"]
        path = "/".join(module.path)
        if isinstance(module, nn.Conv):
            k_spatial = math.prod(kernel.shape[:-2])
            counts[path] = int(math.prod(out.shape[1:-1]) * k_spatial * kernel.shape[-2] * kernel.shape[-1])
        else:
            counts[path] = int(kernel.shape[0] * kernel.shape[1])
        return out

    x = jnp.zeros((1,) + tuple(input_shape))

    def run():
        with nn.intercept_methods(interceptor):
            return model.init(jax.random.key(0), x, *args, **kwargs)

    jax.eval_shape(run)
    return counts
