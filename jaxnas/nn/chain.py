"""Chain-structured networks: stem, `layers` layers each one (or a mix) of the chain ops, classifier."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn.network import dense
from jaxnas.nn.ops import BatchNorm, Identity, Pool, ReLUConvBN, SepConv, Zero, conv
from jaxnas.nn.switch import run_one
from jaxnas.vocabulary.chain import DEFAULT_CHAIN_OPS, ChainArch, check_ops

Array = jax.Array


def chain_op(name: str, C: int, affine: bool, axis_name: str | None, module_name: str) -> nn.Module:
    kw = dict(affine=affine, axis_name=axis_name, name=module_name)
    builders = {
        "conv_3x3": lambda: ReLUConvBN(C, 3, 1, 1, **kw),
        "conv_5x5": lambda: ReLUConvBN(C, 5, 1, 2, **kw),
        "sep_conv_3x3": lambda: SepConv(C, 3, 1, 1, **kw),
        "max_pool_3x3": lambda: Pool("max", 1, name=module_name),
        "avg_pool_3x3": lambda: Pool("avg", 1, name=module_name),
        "identity": lambda: Identity(name=module_name),
        "zero": lambda: Zero(name=module_name),
    }
    if name not in builders:
        raise ValueError(f"unknown chain op {name!r}; valid ops: {', '.join(builders)}")
    return builders[name]()


class ChainNetwork(nn.Module):
    """Supernet when `arch` is None (`alphas['layers']` of shape (layers, len(ops))), else discrete.
    `mixing='path'`: `alphas` are one-hot and each layer runs only its chosen op."""

    C: int = 16
    layers: int = 4
    num_classes: int = 10
    ops: tuple[str, ...] = DEFAULT_CHAIN_OPS
    arch: ChainArch | None = None
    axis_name: str | None = None
    mixing: str = "softmax"

    @nn.compact
    def __call__(self, x: Array, alphas=None, train: bool = False) -> Array:
        ops = check_ops(self.ops)
        x = conv(self.C, 3, padding=1, name="stem_conv")(x)
        x = BatchNorm(axis_name=self.axis_name, name="stem_bn")(x, train)
        for i in range(self.layers):
            if self.arch is not None:
                op = self.arch.ops[i]
                x = chain_op(op, self.C, True, self.axis_name, f"layer{i}_{op}")(x, train)
            elif self.mixing == "path":
                branches = [self._search_op(op, i, train) for op in ops]
                x = run_one(self, jnp.argmax(alphas["layers"][i]), branches, x)
            else:
                w = jax.nn.softmax(alphas["layers"][i]).astype(x.dtype)
                x = sum(
                    w[o] * chain_op(op, self.C, False, self.axis_name, f"layer{i}_{op}")(x, train)
                    for o, op in enumerate(ops)
                )
        return dense(self.num_classes, x.shape[-1], "classifier")(jnp.mean(x, axis=(1, 2)))

    def _search_op(self, op: str, i: int, train: bool):
        def run(module, x):
            return chain_op(op, self.C, False, self.axis_name, f"layer{i}_{op}")(x, train).astype(x.dtype)

        return run
