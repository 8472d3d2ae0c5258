"""NAS-Bench-201 networks: the search supernet and the discrete network of an arch.

Both share the benchmark's skeleton: a 3×3 stem, three stages of N cells at C, 2C and 4C joined
by residual reduction blocks, BN–ReLU, global pooling and a linear classifier. As in the
benchmark code, cell convs carry a bias exactly when their BN has no affine parameters.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn.network import dense
from jaxnas.nn.ops import BatchNorm, Identity, Pool, ReLUConvBN, Zero, conv, torch_default_init
from jaxnas.nn.switch import run_one
from jaxnas.spaces.nb201 import EDGES, NODES, OPS, NB201Arch

Array = jax.Array


class ReLUConvBiasBN(nn.Module):
    """ReLU → conv (bias iff BN is not affine, as in the benchmark) → BN."""

    features: int
    kernel: int
    affine: bool
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        if self.affine:
            return ReLUConvBN(self.features, self.kernel, 1, self.kernel // 2, affine=True,
                              axis_name=self.axis_name, name="op")(x, train)
        x = nn.relu(x)
        p = self.kernel // 2
        x = nn.Conv(self.features, (self.kernel,) * 2, padding=[(p, p)] * 2, use_bias=True,
                    kernel_init=torch_default_init, name="conv")(x)
        return BatchNorm(False, axis_name=self.axis_name, name="bn")(x, train)


def nb201_op(name: str, C: int, affine: bool, axis_name: str | None, module_name: str) -> nn.Module:
    if name == "none":
        return Zero(name=module_name)
    if name == "skip_connect":
        return Identity(name=module_name)
    if name == "nor_conv_1x1":
        return ReLUConvBiasBN(C, 1, affine, axis_name, name=module_name)
    if name == "nor_conv_3x3":
        return ReLUConvBiasBN(C, 3, affine, axis_name, name=module_name)
    if name == "avg_pool_3x3":
        return Pool("avg", 1, name=module_name)
    raise ValueError(f"unknown NB201 op {name!r}; valid ops: {', '.join(OPS)}")


class NB201Cell(nn.Module):
    """A cell; with `arch` a discrete cell, without it a search cell mixing all ops by `weights`
    (`path`: `weights` are one-hot and only each edge's chosen op runs)."""

    C: int
    arch: NB201Arch | None = None
    axis_name: str | None = None
    path: bool = False

    @nn.compact
    def __call__(self, x: Array, weights: Array | None, train: bool) -> Array:
        nodes = [x]
        for i in range(1, NODES):
            total = 0.0
            for e, (node, j) in enumerate(EDGES):
                if node != i:
                    continue
                if self.arch is not None:
                    op = self.arch.ops[e]
                    total = total + nb201_op(op, self.C, True, self.axis_name, f"edge{e}_{op}")(nodes[j], train)
                elif self.path:
                    branches = [self._search_op(op, e, train) for op in OPS]
                    total = total + run_one(self, jnp.argmax(weights[e]), branches, nodes[j])
                else:
                    for o, op in enumerate(OPS):
                        y = nb201_op(op, self.C, False, self.axis_name, f"edge{e}_{op}")(nodes[j], train)
                        total = total + weights[e, o] * y
            nodes.append(total)
        return nodes[-1]

    def _search_op(self, op: str, e: int, train: bool):
        def run(module, x):
            return nb201_op(op, self.C, False, self.axis_name, f"edge{e}_{op}")(x, train).astype(x.dtype)

        return run


class ResNetBasicBlock(nn.Module):
    """The benchmark's reduction block: two ReLU-conv-BN plus an avg-pool + 1×1 conv shortcut."""

    features: int
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        an = self.axis_name
        y = ReLUConvBN(self.features, 3, 2, 1, axis_name=an, name="conv_a")(x, train)
        y = ReLUConvBN(self.features, 3, 1, 1, axis_name=an, name="conv_b")(y, train)
        shortcut = nn.avg_pool(x, (2, 2), strides=(2, 2))
        shortcut = conv(self.features, 1, name="downsample")(shortcut)
        return shortcut + y


class NB201Network(nn.Module):
    """`apply(variables, x, alphas, train)` for the supernet (arch=None); `alphas` ignored otherwise.
    `mixing='path'`: `alphas` are one-hot and each edge runs only its chosen op."""

    C: int = 16
    N: int = 5
    num_classes: int = 10
    arch: NB201Arch | None = None
    axis_name: str | None = None
    mixing: str = "softmax"

    @nn.compact
    def __call__(self, x: Array, alphas=None, train: bool = False) -> Array:
        weights = None
        if self.arch is None:
            weights = alphas["cell"] if self.mixing == "path" else jax.nn.softmax(alphas["cell"], axis=-1)
            weights = weights.astype(x.dtype)
        x = conv(self.C, 3, padding=1, name="stem_conv")(x)
        x = BatchNorm(axis_name=self.axis_name, name="stem_bn")(x, train)
        C, index = self.C, 0
        for stage in range(3):
            if stage > 0:
                C *= 2
                x = ResNetBasicBlock(C, self.axis_name, name=f"reduce{stage}")(x, train)
            for _ in range(self.N):
                cell = NB201Cell(C, self.arch, self.axis_name, self.mixing == "path", name=f"cell{index}")
                x = cell(x, weights, train)
                index += 1
        x = nn.relu(BatchNorm(axis_name=self.axis_name, name="last_bn")(x, train))
        return dense(self.num_classes, x.shape[-1], "classifier")(jnp.mean(x, axis=(1, 2)))
