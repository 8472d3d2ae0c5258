"""NAS-Bench-201 networks: the search supernet and the discrete network of an arch.

Both share the benchmark's skeleton: a 3×3 stem, three stages of N cells at C, 2C and 4C joined
by residual reduction blocks, BN–ReLU, global pooling and a linear classifier. As in the
benchmark code, cell convs carry a bias exactly when their BN has no affine parameters.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn import switch
from jaxnas.nn.gdas import argmax_hard, gumbel_hard
from jaxnas.nn.network import dense
from jaxnas.nn.ops import BatchNorm, Identity, Pool, ReLUConvBN, Zero, conv, torch_default_init
from jaxnas.nn.switch import run_one
from jaxnas.vocabulary.nb201 import EDGES, NODES, OPS, NB201Arch

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


def _hard(weights: Array) -> tuple[Array, Array, Array]:
    """Per edge of a one-hot (or straight-through one-hot) weight row: (op index, its weight, the
    sum of the others). An edge's output is weight·op(x) + others: the op's output in value (1 and
    0), and, for GDAS's straight-through draw, the gradient of every entry of the row."""
    index = jnp.argmax(weights, axis=-1)
    chosen = jnp.take_along_axis(weights, index[..., None], axis=-1)[..., 0]
    return index, chosen, jnp.sum(weights, axis=-1) - chosen


class PathEdge(nn.Module):
    """One search edge that runs only op `index` (`lax.switch`), as weight·op(x) + others
    (`_hard`); parameters named by op."""

    C: int
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, index: Array, weight: Array, others: Array, train: bool) -> Array:
        def branch(op):
            def run(module, x):
                return nb201_op(op, self.C, False, self.axis_name, op)(x, train).astype(x.dtype)

            return run

        return weight * run_one(self, index, [branch(op) for op in OPS], x) + others


class NB201Cell(nn.Module):
    """A cell; with `arch` a discrete cell, without it a search cell mixing all ops by `weights`
    (`path`: `weights` are one-hot, or GDAS's straight-through draw, and only each edge's chosen op
    runs; with `scan_edges` the 6 edges run as one `lax.scan`, so XLA compiles their switch once per
    cell instead of 6 times)."""

    C: int
    arch: NB201Arch | None = None
    axis_name: str | None = None
    path: bool = False
    scan_edges: bool = True

    @nn.compact
    def __call__(self, x: Array, weights: Array | None, train: bool) -> Array:
        if self.path and self.scan_edges and not self.is_initializing():
            return self._scanned(x, weights, train)
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
                    index, weight, others = _hard(weights[e])
                    total = total + (weight * run_one(self, index, branches, nodes[j]) + others)
                else:
                    for o, op in enumerate(OPS):
                        y = nb201_op(op, self.C, False, self.axis_name, f"edge{e}_{op}")(nodes[j], train)
                        total = total + weights[e, o] * y
            nodes.append(total)
        return nodes[-1]

    def _scanned(self, x: Array, weights: Array, train: bool) -> Array:
        """The path cell as one scan over its edges, node by node (each node is read only once
        all its incoming edges were added; same sums in the same order as the unrolled loop),
        on the unrolled layout's variables (`edge{e}_{op}`)."""
        order = [e for i in range(1, NODES) for e, (node, _) in enumerate(EDGES) if node == i]
        variables = self.variables

        def variables_of(col, e):
            tree = variables[col]
            return {op: tree[f"edge{e}_{op}"] for op in OPS if f"edge{e}_{op}" in tree}

        def store_stats(e, stats):
            for op, tree in stats.items():
                self.put_variable("batch_stats", f"edge{e}_{op}", tree)

        nodes = jnp.zeros((NODES, *x.shape), x.dtype).at[0].set(x)
        nodes = switch.scan_edges(
            self, PathEdge(self.C, self.axis_name, parent=None),
            switch.EdgeOrder(order, [EDGES[e][1] for e in order], [EDGES[e][0] for e in order]),
            switch.EdgeVariables(variables_of, store_stats), lambda nodes, j: nodes[j], nodes,
            _hard(weights[jnp.array(order)]), train)
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
    `mixing='path'`: `alphas` are one-hot and each edge runs only its chosen op. `mixing='gumbel'`
    is GDAS (Dong & Yang, 2019): in training each edge runs one op drawn from the Gumbel-softmax of
    α at temperature `tau` (rng stream `'gumbel'`; one draw for every cell and the whole batch), with
    the straight-through gradient; in evaluation each edge's strongest op."""

    C: int = 16
    N: int = 5
    num_classes: int = 10
    arch: NB201Arch | None = None
    axis_name: str | None = None
    mixing: str = "softmax"

    @nn.compact
    def __call__(self, x: Array, alphas=None, train: bool = False, tau: Array | float = 1.0) -> Array:
        weights = None
        if self.arch is None:
            a = alphas["cell"]
            if self.mixing == "path":
                weights = a
            elif self.mixing == "gumbel":
                # no 'gumbel' rng in training mode: the strongest ops, as in evaluation (see DartsSupernet)
                draw = train and self.has_rng("gumbel")
                weights = gumbel_hard(a, self.make_rng("gumbel"), tau)[0] if draw else argmax_hard(a)[0]
            else:
                weights = jax.nn.softmax(a, axis=-1)
            weights = weights.astype(x.dtype)
        x = conv(self.C, 3, padding=1, name="stem_conv")(x)
        x = BatchNorm(axis_name=self.axis_name, name="stem_bn")(x, train)
        C, index = self.C, 0
        for stage in range(3):
            if stage > 0:
                C *= 2
                x = ResNetBasicBlock(C, self.axis_name, name=f"reduce{stage}")(x, train)
            for _ in range(self.N):
                cell = NB201Cell(C, self.arch, self.axis_name, self.mixing in ("path", "gumbel"), name=f"cell{index}")
                x = cell(x, weights, train)
                index += 1
        x = nn.relu(BatchNorm(axis_name=self.axis_name, name="last_bn")(x, train))
        return dense(self.num_classes, x.shape[-1], "classifier")(jnp.mean(x, axis=(1, 2)))
