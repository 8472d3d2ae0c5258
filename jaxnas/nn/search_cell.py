"""What every DARTS search cell layout shares: its fields, its call signature and its input ops.

The layouts (per-edge reference, grouped, scanned) differ only in how the 14 mixed edges are
computed from the two preprocessed inputs, so each implements `mix_edges`; parameters named
`preprocess0`/`preprocess1` are the same in all of them.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxnas.nn.ops import preprocess

Array = jax.Array


class SearchCell(nn.Module):
    """A DARTS search cell: preprocess both inputs, then mix every edge (`mix_edges`).

    `weights` (14, 8) are the per-edge op weights (softmax of α); with `partial_channels` K > 1
    each op sees C/K channels (PC-DARTS), and `edge_weights` (14,), if given, weigh each node's
    incoming edges (PC-DARTS's β̃).
    """

    C: int
    reduction: bool
    reduction_prev: bool
    axis_name: str | None = None
    partial_channels: int = 1

    @nn.compact
    def __call__(self, s0: Array, s1: Array, weights: Array, train: bool, edge_weights: Array | None = None) -> Array:
        s0, s1 = preprocess(self.C, self.reduction_prev, self.axis_name, s0, s1, train)
        return self.mix_edges(s0, s1, weights, train, edge_weights)

    def mix_edges(self, s0: Array, s1: Array, weights: Array, train: bool, edge_weights: Array | None) -> Array:
        """The cell output (the intermediate nodes concatenated) from the preprocessed inputs."""
        raise NotImplementedError
