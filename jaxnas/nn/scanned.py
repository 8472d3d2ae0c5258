"""The DARTS search cell with its edges run as a `lax.scan`: XLA compiles one edge, not fourteen.

XLA:CPU's compile time grows with the number of kernels it emits (about 16 ms of LLVM time per
kernel here), and an unrolled supernet emits each edge's ops, their gradients and their optimizer
updates once per edge. Scanning over the edges of a cell gives XLA one traced body per cell and
stride, with the per-edge parameters stacked on a leading axis, so the kernel count no longer
grows with the number of edges. Each edge's ops are rematerialised (all but the matmuls), which
made the steps faster and smaller as well (see `RematEdge`).

The body is `EdgeGroup` on one edge (`k=1`): the same fused ops as the grouped layout (one
ReLU, ops of equal shape share one BatchNorm call and one batched pointwise matmul). A normal
cell is one scan over its 14 edges in DARTS order, reading and writing a buffer of the six cell
states; a reduction cell is two scans, the 8 strided edges that leave the cell inputs and then
the 6 that leave intermediate nodes. Each node sums its incoming edges in DARTS order, and a node
is read only after its last incoming edge was added.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn.grouped import EdgeGroup
from jaxnas.nn.partial import partial_output
from jaxnas.nn.search_cell import SearchCell
from jaxnas.vocabulary.darts import STEPS, edge_inputs

Array = jax.Array


def scan_groups(reduction: bool, steps: int = STEPS) -> dict[str, list[int]]:
    """The edges of each scan of a cell, by parameter name, in the order they run."""
    edges = edge_inputs(steps)
    if not reduction:
        return {"edges": list(range(len(edges)))}
    return {"input_edges": [e for e, (_, j) in enumerate(edges) if j < 2],
            "node_edges": [e for e, (_, j) in enumerate(edges) if j >= 2]}


# The edge's ops keep only their matmul outputs for the backward pass and recompute the rest
# (ReLUs, depthwise sums, BatchNorms): a scan stores every residual of its body in stacked loop
# buffers, which cost more memory traffic than recomputing these memory-bound ops. Measured at C=8,
# 5 cells, batch 32: first-order step 3.66 -> 3.45 s, its memory 2.1 GB -> 0.6 GB, compile
# 46 -> 33 s (recomputing everything: 3.62 s, 0.18 GB; see docs/performance.md).
RematEdge = nn.remat(EdgeGroup, static_argnums=(3,), policy=jax.checkpoint_policies.dots_saveable)


class ScanStep(nn.Module):
    """One edge of the scan: read its source state, run the mixed op, add to its target node.

    The carry is the buffer of states the edges read and write; `inputs` (broadcast) are the
    cell inputs a reduction cell's strided edges read instead.
    """

    C: int
    stride: int
    train: bool
    axis_name: str | None = None
    partial_channels: int = 1
    read_inputs: bool = False

    @nn.compact
    def __call__(self, states: Array, xs: tuple[Array, ...], inputs: Array) -> tuple[Array, None]:
        weights, source, target, edge_weight = xs
        x = (inputs if self.read_inputs else states)[source]
        c = self.C // self.partial_channels
        y = RematEdge(c, 1, self.stride, self.axis_name, name="ops")(x[:, :, :, None, :c], weights[None], self.train)
        y = partial_output(y[:, :, :, 0], x, self.partial_channels, self.stride) * edge_weight.astype(y.dtype)
        return states.at[target].add(y), None


def _scan(name: str, length: int, **step: Any) -> nn.Module:
    scanned = nn.scan(ScanStep, variable_axes={"params": 0, "batch_stats": 0}, split_rngs={"params": True},
                      in_axes=(0, nn.broadcast), length=length)
    return scanned(name=name, **step)


class SearchCellScanned(SearchCell):
    """The search cell as one or two scans over its edges."""

    def mix_edges(self, s0: Array, s1: Array, weights: Array, train: bool, edge_weights: Array | None) -> Array:
        edges = edge_inputs(STEPS)
        if edge_weights is None:
            edge_weights = jnp.ones((len(edges),), weights.dtype)
        step = dict(C=self.C, train=train, axis_name=self.axis_name, partial_channels=self.partial_channels)

        def xs(group, source_offset, target_offset):
            g = jnp.array(group)
            return (weights[g], jnp.array([edges[e][1] - source_offset for e in group]),
                    jnp.array([edges[e][0] + target_offset for e in group]), edge_weights[g])

        if not self.reduction:  # one buffer of all six states: inputs, then the four nodes
            group = scan_groups(False)["edges"]
            states = jnp.concatenate([jnp.stack([s0, s1]), jnp.zeros((STEPS,) + s0.shape, s0.dtype)])
            states, _ = _scan("edges", len(group), stride=1, **step)(states, xs(group, 0, 2), states[:0])
            return jnp.concatenate(list(states[2:]), axis=-1)
        groups = scan_groups(True)
        n, h, w, c = s0.shape
        nodes = jnp.zeros((STEPS, n, (h - 1) // 2 + 1, (w - 1) // 2 + 1, c), s0.dtype)
        nodes, _ = _scan("input_edges", len(groups["input_edges"]), stride=2, read_inputs=True, **step)(
            nodes, xs(groups["input_edges"], 0, 0), jnp.stack([s0, s1]))
        nodes, _ = _scan("node_edges", len(groups["node_edges"]), stride=1, **step)(
            nodes, xs(groups["node_edges"], 2, 0), nodes[:0])
        return jnp.concatenate(list(nodes), axis=-1)
