"""The DARTS search network (supernet): every edge a softmax(α)-weighted sum of all primitives.

`DartsSupernet(...).apply({'params': w, 'batch_stats': s}, x, alphas, train)` is a pure function of
the weights, α, BN statistics and the batch. Two implementations share one interface:

- `impl='reference'`: the literal DARTS structure, one mixed op per edge and one module per op.
  Easy to read, and the ground truth the fast path is tested against.
- `impl='grouped'` (default): the edges that leave one state are computed together (their
  convolutions become one depthwise/batched-matmul op over the stacked edges), so XLA sees about a
  quarter of the ops. Same parameters, stacked per group; `grouped_variables_from_reference`
  converts between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn.grouped import EdgeGroup
from jaxnas.nn.network import dense, reduction_layers
from jaxnas.nn.ops import BatchNorm, FactorizedReduce, ReLUConvBN, conv, darts_op
from jaxnas.spaces.darts import PRIMITIVES, STEPS, edge_inputs

Array = jax.Array
IMPLEMENTATIONS = ("grouped", "reference")
# Grouped-layout BN name -> the reference (op, BN) it stacks, in stacking order.
MERGED_BATCH_NORMS = {
    "conv_bn_a": [("sep_conv_3x3", "bn1"), ("sep_conv_5x5", "bn1"), ("dil_conv_3x3", "bn"), ("dil_conv_5x5", "bn")],
    "conv_bn_b": [("sep_conv_3x3", "bn2"), ("sep_conv_5x5", "bn2")],
    "pool_bn": [("max_pool_3x3_bn", None), ("avg_pool_3x3_bn", None)],
}


def source_groups(steps: int = STEPS) -> list[list[int]]:
    """Edge indices grouped by the state they leave; the two cell inputs form one group.

    Within a group edges are ordered by input state, then by target node.
    """
    edges = edge_inputs(steps)
    by_source = [[e for e, (_, j) in enumerate(edges) if j == src] for src in range(steps + 1)]
    return [by_source[0] + by_source[1]] + by_source[2:]


class MixedOp(nn.Module):
    """One search edge: Σ_o softmax(α)_o · o(x) over all primitives (pools followed by a BN)."""

    C: int
    stride: int
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, weights: Array, train: bool) -> Array:
        total = 0.0
        for k, name in enumerate(PRIMITIVES):
            y = darts_op(name, self.C, self.stride, affine=False, axis_name=self.axis_name)(x, train)
            if "pool" in name:
                y = BatchNorm(affine=False, axis_name=self.axis_name, name=f"{name}_bn")(y, train)
            total = total + weights[k] * y
        return total


def _preprocess(C: int, reduction_prev: bool, axis_name, s0, s1, train):
    if reduction_prev:
        s0 = FactorizedReduce(C, affine=False, axis_name=axis_name, name="preprocess0")(s0, train)
    else:
        s0 = ReLUConvBN(C, 1, affine=False, axis_name=axis_name, name="preprocess0")(s0, train)
    s1 = ReLUConvBN(C, 1, affine=False, axis_name=axis_name, name="preprocess1")(s1, train)
    return s0, s1


class SearchCellReference(nn.Module):
    C: int
    reduction: bool
    reduction_prev: bool
    axis_name: str | None = None

    @nn.compact
    def __call__(self, s0: Array, s1: Array, weights: Array, train: bool) -> Array:
        states = list(_preprocess(self.C, self.reduction_prev, self.axis_name, s0, s1, train))
        e = 0
        for _ in range(STEPS):
            node = 0.0
            for j, h in enumerate(list(states)):
                stride = 2 if self.reduction and j < 2 else 1
                mixed = MixedOp(self.C, stride, self.axis_name, name=f"edge{e}")
                node = node + mixed(h, weights[e], train)
                e += 1
            states.append(node)
        return jnp.concatenate(states[2:], axis=-1)


class SearchCellGrouped(nn.Module):
    """The search cell with the edges leaving each state computed as one stacked group.

    Group 0 holds the 8 edges leaving the two cell inputs; group g ≥ 1 the edges leaving
    intermediate node g-1, which is complete by then.
    """

    C: int
    reduction: bool
    reduction_prev: bool
    axis_name: str | None = None

    @nn.compact
    def __call__(self, s0: Array, s1: Array, weights: Array, train: bool) -> Array:
        s0, s1 = _preprocess(self.C, self.reduction_prev, self.axis_name, s0, s1, train)
        edges = edge_inputs(STEPS)
        nodes: list[Any] = [0.0] * STEPS
        sources = jnp.stack([s0, s1], axis=3)  # (N, H, W, 2, C)
        for g, members in enumerate(source_groups(STEPS)):
            stride = 2 if self.reduction and g == 0 else 1
            out = EdgeGroup(self.C, len(members), stride, self.axis_name, name=f"group{g}")(
                sources, weights[jnp.array(members)], train
            )
            for slot, e in enumerate(members):
                node = edges[e][0]
                nodes[node] = nodes[node] + out[:, :, :, slot, :]
            if g < STEPS - 1:
                sources = nodes[g][:, :, :, None, :]  # the next group leaves node g
        return jnp.concatenate(nodes, axis=-1)


def search_cell_class(impl: str, remat: bool = False) -> type[nn.Module]:
    """The search cell of one implementation; with `remat` its activations are recomputed in the
    backward pass instead of stored (memory for compute: what lets second-order estimators fit at
    the paper config)."""
    cell_cls = SearchCellGrouped if impl == "grouped" else SearchCellReference
    return nn.remat(cell_cls, static_argnums=(4,)) if remat else cell_cls  # args: (self, s0, s1, w, train)


class DartsSupernet(nn.Module):
    """The DARTS search network: 3C stem, `layers` search cells, global pool, linear classifier."""

    C: int = 16
    layers: int = 8
    num_classes: int = 10
    stem_multiplier: int = 3
    impl: str = "grouped"
    axis_name: str | None = None
    remat: bool = False  # recompute each cell's activations in the backward pass instead of storing them

    @nn.compact
    def __call__(self, x: Array, alphas: Mapping[str, Array], train: bool) -> Array:
        if self.impl not in IMPLEMENTATIONS:
            raise ValueError(f"unknown supernet impl {self.impl!r}; valid: {', '.join(IMPLEMENTATIONS)}")
        cell_cls = search_cell_class(self.impl, self.remat)
        w_normal = jax.nn.softmax(alphas["normal"], axis=-1).astype(x.dtype)
        w_reduce = jax.nn.softmax(alphas["reduce"], axis=-1).astype(x.dtype)
        s = conv(self.stem_multiplier * self.C, 3, padding=1, name="stem_conv")(x)
        s0 = s1 = BatchNorm(axis_name=self.axis_name, name="stem_bn")(s, train)
        reductions = reduction_layers(self.layers)
        C, reduction_prev = self.C, False
        for i in range(self.layers):
            reduction = i in reductions
            C = C * 2 if reduction else C
            cell = cell_cls(C, reduction, reduction_prev, self.axis_name, name=f"cell{i}")
            s0, s1 = s1, cell(s0, s1, w_reduce if reduction else w_normal, train)
            reduction_prev = reduction
        out = jnp.mean(s1, axis=(1, 2))
        return dense(self.num_classes, s1.shape[-1], "classifier")(out)


def grouped_variables_from_reference(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Convert reference-layout variables (`edge{e}` per edge) to the grouped layout (stacked).

    Works for any collection (params, batch_stats) and for gradients, since it only stacks.
    """
    groups = source_groups(STEPS)

    def stack(trees):
        return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)

    def merge_bns(group):
        # The grouped cell runs ops of equal shape through one BN: stack their statistics.
        for merged, parts in MERGED_BATCH_NORMS.items():
            if all(op in group and (bn is None or bn in group[op]) for op, bn in parts):
                group[merged] = stack([group.pop(op) if bn is None else group[op].pop(bn) for op, bn in parts])
        return {k: v for k, v in group.items() if v != {}}

    def convert(tree):
        if not isinstance(tree, Mapping):
            return tree
        if "edge0" in tree:
            out = {k: v for k, v in tree.items() if not k.startswith("edge")}
            for g, members in enumerate(groups):
                group = stack([tree[f"edge{e}"] for e in members])
                out[f"group{g}"] = merge_bns({k: dict(v) for k, v in group.items()})
            return out
        return {k: convert(v) for k, v in tree.items()}

    return {k: convert(v) for k, v in variables.items()}
