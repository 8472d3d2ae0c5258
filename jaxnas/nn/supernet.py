"""The DARTS search network (supernet): every edge a softmax(α)-weighted sum of all primitives.

`DartsSupernet(...).apply({'params': w, 'batch_stats': s}, x, alphas, train)` is a pure function of
the weights, α, BN statistics and the batch. Three implementations share one interface and the
same parameters (in different layouts, converted by `*_variables_from_reference`):

- `impl='reference'`: the literal DARTS structure, one mixed op per edge and one module per op.
  Easy to read, and the ground truth the fast paths are tested against.
- `impl='scanned'` (default): each cell's edges run as a `lax.scan` over one edge's fused ops
  (`jaxnas.nn.scanned`), so XLA compiles one edge per cell and stride instead of fourteen:
  the shortest compile, and the fastest step measured on XLA:CPU.
- `impl='grouped'`: the edges that leave one state are computed together (their convolutions
  become one depthwise/batched-matmul op over the stacked edges), unrolled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn.gdas import SearchCellGDAS, argmax_hard, gumbel_hard
from jaxnas.nn.grouped import EdgeGroup
from jaxnas.nn.network import dense, reduction_layers
from jaxnas.nn.ops import BatchNorm, conv, darts_op
from jaxnas.nn.partial import edge_weights, partial_output
from jaxnas.nn.scanned import SearchCellScanned, scan_groups
from jaxnas.nn.search_cell import SearchCell
from jaxnas.vocabulary.darts import PRIMITIVES, STEPS, edge_inputs

Array = jax.Array
IMPLEMENTATIONS = ("scanned", "grouped", "reference")
MIXINGS = ("softmax", "gumbel", "path")  # DARTS / PC-DARTS, GDAS, a given one-hot path (ENAS, random search)
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


def _edge_output(y, h, e, k, stride, edge_weights):
    """PC-DARTS's partial join and β̃ weight of one edge (both the identity for DARTS)."""
    y = partial_output(y, h, k, stride)
    return y if edge_weights is None else edge_weights[e].astype(y.dtype) * y


class SearchCellReference(SearchCell):
    """One mixed op per edge, node by node: the literal DARTS cell."""

    def mix_edges(self, s0: Array, s1: Array, weights: Array, train: bool, edge_weights: Array | None) -> Array:
        states = [s0, s1]
        k, e = self.partial_channels, 0
        for _ in range(STEPS):
            node = 0.0
            for j, h in enumerate(list(states)):
                stride = 2 if self.reduction and j < 2 else 1
                mixed = MixedOp(self.C // k, stride, self.axis_name, name=f"edge{e}")
                y = mixed(h[..., : self.C // k], weights[e], train)
                node = node + _edge_output(y, h, e, k, stride, edge_weights)
                e += 1
            states.append(node)
        return jnp.concatenate(states[2:], axis=-1)


class SearchCellGrouped(SearchCell):
    """The search cell with the edges leaving each state computed as one stacked group.

    Group 0 holds the 8 edges leaving the two cell inputs; group g ≥ 1 the edges leaving
    intermediate node g-1, which is complete by then.
    """

    def mix_edges(self, s0: Array, s1: Array, weights: Array, train: bool, edge_weights: Array | None) -> Array:
        edges = edge_inputs(STEPS)
        k = self.partial_channels
        nodes: list[Any] = [0.0] * STEPS
        sources = jnp.stack([s0, s1], axis=3)  # (N, H, W, 2, C)
        for g, members in enumerate(source_groups(STEPS)):
            stride = 2 if self.reduction and g == 0 else 1
            out = EdgeGroup(self.C // k, len(members), stride, self.axis_name, name=f"group{g}")(
                sources[..., : self.C // k], weights[jnp.array(members)], train
            )
            for slot, e in enumerate(members):
                node, j = edges[e]
                h = sources[:, :, :, j if g == 0 else 0]
                nodes[node] = nodes[node] + _edge_output(out[:, :, :, slot, :], h, e, k, stride, edge_weights)
            if g < STEPS - 1:
                sources = nodes[g][:, :, :, None, :]  # the next group leaves node g
        return jnp.concatenate(nodes, axis=-1)


def search_cell_class(impl: str, remat: bool = False, mixing: str = "softmax") -> type[nn.Module]:
    """The search cell of one implementation; with `remat` its activations are recomputed in the
    backward pass instead of stored (memory for compute: what lets second-order estimators fit at
    the paper config). GDAS's sampled cell (`mixing='gumbel'`) has one layout only."""
    if mixing in ("gumbel", "path"):
        cell_cls = SearchCellGDAS
    else:
        cell_cls = {"grouped": SearchCellGrouped, "reference": SearchCellReference, "scanned": SearchCellScanned}[impl]
    return nn.remat(cell_cls, static_argnums=(4,)) if remat else cell_cls  # args: (self, s0, s1, w, train, ...)


class DartsSupernet(nn.Module):
    """The DARTS search network: 3C stem, `layers` search cells, global pool, linear classifier.

    `mixing='softmax'` is DARTS (and PC-DARTS with `partial_channels` > 1 and
    `edge_normalization`, which reads α's `normal_edges`/`reduce_edges` entries);
    `mixing='gumbel'` is GDAS: in training each edge runs one op drawn from the Gumbel-softmax of α
    at temperature `tau` (rng stream `'gumbel'`), in evaluation each edge's strongest op; its
    parameters have the reference layout, and `impl='grouped'` builds its ops for `lax.switch`
    branches on XLA:CPU: shifted-slice depthwise and matmul pointwise convs, each branch
    rematerialised (`impl='reference'`: XLA's convolutions, stored activations; same numbers).
    `mixing='path'` runs GDAS's cell on a given path: α is one-hot per edge (`none` on the edges a
    sampled cell does not use), as ENAS and random search draw it.

    `last_bn` ends the cells in BN + ReLU before the global pool, as the GDAS authors' search
    network does (`lastact` in AutoDL-Projects' `NASNetworkGDAS`; DARTS's has none). Default (None):
    on for GDAS (`mixing='gumbel'`), off otherwise. A network whose path changes every step needs
    it: without it the classifier reads features whose scale changes with the drawn path, and the
    loss of uniformly drawn paths rises above ln 10 (the authors' network without it does the same).
    """

    C: int = 16
    layers: int = 8
    num_classes: int = 10
    stem_multiplier: int = 3
    impl: str = "scanned"
    axis_name: str | None = None
    remat: bool = False  # recompute each cell's activations in the backward pass instead of storing them
    mixing: str = "softmax"
    partial_channels: int = 1
    edge_normalization: bool = False
    last_bn: bool | None = None  # BN + ReLU before the global pool; None: for `mixing='gumbel'` (GDAS) only

    def _cell_weights(self, alphas: Mapping[str, Array], train: bool, tau, dtype) -> dict[str, Any]:
        if self.mixing == "path":  # α is the one-hot path itself
            return {k: argmax_hard(alphas[k].astype(dtype)) for k in ("normal", "reduce")}
        if self.mixing == "gumbel":
            # Evaluation, or training-mode BN without a draw (no 'gumbel' rng: search-val scoring of
            # the derived path with batch statistics, `Strategy.eval_train_mode`): each edge's strongest op.
            if not train or not self.has_rng("gumbel"):
                return {k: argmax_hard(alphas[k]) for k in ("normal", "reduce")}
            keys = jax.random.split(self.make_rng("gumbel"))
            return {k: gumbel_hard(alphas[k], key, tau) for k, key in zip(("normal", "reduce"), keys)}
        return {k: jax.nn.softmax(alphas[k], axis=-1).astype(dtype) for k in ("normal", "reduce")}

    @nn.compact
    def __call__(self, x: Array, alphas: Mapping[str, Array], train: bool, tau: Array | float = 1.0) -> Array:
        if self.impl not in IMPLEMENTATIONS:
            raise ValueError(f"unknown supernet impl {self.impl!r}; valid: {', '.join(IMPLEMENTATIONS)}")
        if self.mixing not in MIXINGS:
            raise ValueError(f"unknown mixing {self.mixing!r}; valid: {', '.join(MIXINGS)}")
        cell_cls = search_cell_class(self.impl, self.remat, self.mixing)
        weights = self._cell_weights(alphas, train, tau, x.dtype)
        edge_w = {k: None for k in ("normal", "reduce")}
        if self.edge_normalization:
            edge_w = {k: edge_weights(alphas[f"{k}_edges"]) for k in ("normal", "reduce")}
        if self.mixing != "softmax":  # impl picks GDAS's depthwise convs: shifted slices or XLA's
            cell_options = {"fast": self.impl != "reference"}
        else:
            cell_options = {"partial_channels": self.partial_channels}
        s = conv(self.stem_multiplier * self.C, 3, padding=1, name="stem_conv")(x)
        s0 = s1 = BatchNorm(axis_name=self.axis_name, name="stem_bn")(s, train)
        reductions = reduction_layers(self.layers)
        C, reduction_prev = self.C, False
        for i in range(self.layers):
            reduction = i in reductions
            kind = "reduce" if reduction else "normal"
            C = C * 2 if reduction else C
            cell = cell_cls(C, reduction, reduction_prev, self.axis_name, name=f"cell{i}", **cell_options)
            args = (s0, s1, weights[kind], train) + ((edge_w[kind],) if self.edge_normalization else ())
            s0, s1 = s1, cell(*args)
            reduction_prev = reduction
        if (self.mixing == "gumbel") if self.last_bn is None else self.last_bn:
            s1 = nn.relu(BatchNorm(axis_name=self.axis_name, name="last_bn")(s1, train))
        out = jnp.mean(s1, axis=(1, 2))
        return dense(self.num_classes, s1.shape[-1], "classifier")(out)


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _edge_group_variables(cell: Mapping[str, Any], members: list[int]) -> dict[str, Any]:
    """The `EdgeGroup` layout of edges `members` of a per-edge cell tree: stacked on a leading
    edge axis, and the statistics of ops that share one BN call stacked on an op axis."""
    group = {k: dict(v) for k, v in _stack([cell[f"edge{e}"] for e in members]).items()}
    for merged, parts in MERGED_BATCH_NORMS.items():
        if all(op in group and (bn is None or bn in group[op]) for op, bn in parts):
            group[merged] = _stack([group.pop(op) if bn is None else group[op].pop(bn) for op, bn in parts])
    return {k: v for k, v in group.items() if v != {}}


def _convert_cells(variables: Mapping[str, Any], convert_cell) -> dict[str, Any]:
    """Replace every per-edge cell tree (`edge{e}` keys) in `variables` by `convert_cell(tree)`."""

    def convert(tree):
        if not isinstance(tree, Mapping):
            return tree
        if "edge0" in tree:
            return {**{k: v for k, v in tree.items() if not k.startswith("edge")}, **convert_cell(tree)}
        return {k: convert(v) for k, v in tree.items()}

    return {k: convert(v) for k, v in variables.items()}


def grouped_variables_from_reference(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Convert reference-layout variables (`edge{e}` per edge) to the grouped layout (stacked).

    Works for any collection (params, batch_stats) and for gradients, since it only stacks.
    """
    groups = source_groups(STEPS)
    return _convert_cells(variables, lambda cell: {f"group{g}": _edge_group_variables(cell, members)
                                                   for g, members in enumerate(groups)})


def scanned_variables_from_reference(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Convert reference-layout variables to the scanned layout: per scan, each edge as a
    one-edge `EdgeGroup`, stacked over the scan's edges. A reduction cell is recognised by its
    strided skip connection (a FactorizedReduce, which has variables in every collection)."""

    def cell(tree):
        groups = scan_groups("skip_connect" in tree["edge0"])
        return {name: {"ops": _stack([_edge_group_variables(tree, [e]) for e in members])}
                for name, members in groups.items()}

    return _convert_cells(variables, cell)
