"""GDAS's sampled search cell (Dong & Yang, 2019): one op per edge, drawn by a Gumbel-softmax.

Per forward pass each edge of a cell type draws one op from the Gumbel-softmax of its α at
temperature τ; all cells of that type and every example of the batch share the draw. Only the
drawn op is *computed* (`nn.switch`, a `lax.switch` over the primitives), so a step costs about
what the sampled network costs. The straight-through one-hot `h = onehot - sg(p) + p` carries
the gradient to α: the drawn op's output is multiplied by its `h`, and the other entries of `h`
(zero in value) are added as scalars, as the GDAS code does. The parameters have the reference
supernet's layout (`edge{e}/<op name>`), so a GDAS supernet and a DARTS one share weights.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn import switch
from jaxnas.nn.ops import BatchNorm, darts_op, preprocess
from jaxnas.nn.switch import run_one
from jaxnas.vocabulary.darts import PRIMITIVES, STEPS, edge_inputs

Array = jax.Array


def gumbel_hard(alpha: Array, key: jax.Array, tau: Array | float) -> tuple[Array, Array]:
    """Straight-through Gumbel-softmax draw per row of α: (hard one-hot h, drawn index).

    h equals the one-hot of the index in value; its gradient is that of softmax((log p + g)/τ).
    """
    logits = (jax.nn.log_softmax(alpha, axis=-1) + jax.random.gumbel(key, alpha.shape, alpha.dtype)) / tau
    probs = jax.nn.softmax(logits, axis=-1)
    index = jnp.argmax(probs, axis=-1)
    hard = jax.nn.one_hot(index, alpha.shape[-1], dtype=alpha.dtype)
    return hard - jax.lax.stop_gradient(probs) + probs, index


def argmax_hard(alpha: Array) -> tuple[Array, Array]:
    """The noise-free choice (each edge's strongest op), used in evaluation."""
    index = jnp.argmax(alpha, axis=-1)
    return jax.nn.one_hot(index, alpha.shape[-1], dtype=alpha.dtype), index


class GumbelEdge(nn.Module):
    """One GDAS edge: runs only op `index`, scaled by h[index]; h's other entries are added."""

    C: int
    stride: int
    axis_name: str | None = None
    # The switch-branch formulation (`darts_op(fast=True)`, branches rematerialised): faster steps,
    # slower compiles on XLA:CPU than XLA's own convolutions.
    fast: bool = True

    @nn.compact
    def __call__(self, x: Array, hard: Array, index: Array, train: bool) -> Array:
        def branch(name):
            def run(module, x):
                op = darts_op(name, self.C, self.stride, affine=False, axis_name=self.axis_name, fast=self.fast)
                y = op(x, train)
                if "pool" in name:
                    y = BatchNorm(affine=False, axis_name=self.axis_name, name=f"{name}_bn")(y, train)
                return y.astype(x.dtype)  # the switch needs one output type from every op

            return run

        y = run_one(self, index, [branch(name) for name in PRIMITIVES], x, remat=self.fast)
        return y * hard[index] + (jnp.sum(hard) - hard[index]).astype(y.dtype)


class SearchCellGDAS(nn.Module):
    """The DARTS search cell with one sampled op per edge; `weights` = (h, index) per edge.

    With `scan_edges` (the default) the edges run as two `lax.scan`s over a traced edge index
    (see `_scanned`), so XLA compiles each edge's 8 switch branches once per cell instead of once
    per edge; the unrolled loop is the readable reference, and initialisation always uses it.
    """

    C: int
    reduction: bool
    reduction_prev: bool
    axis_name: str | None = None
    fast: bool = True
    scan_edges: bool = True

    @nn.compact
    def __call__(self, s0: Array, s1: Array, weights: tuple[Array, Array], train: bool) -> Array:
        hard, index = weights
        states = list(preprocess(self.C, self.reduction_prev, self.axis_name, s0, s1, train))
        if self.scan_edges and not self.is_initializing():
            return self._scanned(states, hard, index, train)
        e = 0
        for _ in range(STEPS):
            node = 0.0
            for j, h in enumerate(list(states)):
                stride = 2 if self.reduction and j < 2 else 1
                node = node + GumbelEdge(self.C, stride, self.axis_name, self.fast, name=f"edge{e}")(
                    h, hard[e], index[e], train)
                e += 1
            states.append(node)
        return jnp.concatenate(states[2:], axis=-1)

    def _scanned(self, inputs: list[Array], hard: Array, index: Array, train: bool) -> Array:
        """The same cell as two scans over edges (`scan_edges`), on the unrolled layout's variables.

        The 8 edges leaving the cell inputs come first (they are independent, and only they are
        strided in a reduction cell), then the 6 leaving intermediate nodes in DARTS order, which
        reads each node only after all its incoming edges were added. Each node sums its edges
        in the unrolled loop's order, so the results are the same to the last bit.
        """
        edges = edge_inputs(STEPS)
        variables = self.variables

        def scan(group, stride, read, nodes):
            return switch.scan_edges(
                self, GumbelEdge(self.C, stride, self.axis_name, self.fast, parent=None),
                switch.EdgeOrder(group, [edges[e][1] for e in group], [edges[e][0] for e in group]),
                switch.EdgeVariables(lambda col, e: variables[col][f"edge{e}"],
                                     lambda e, stats: self.put_variable("batch_stats", f"edge{e}", stats)),
                read, nodes, (hard[jnp.array(group)], index[jnp.array(group)]), train)

        cell_inputs = jnp.stack(inputs)
        stride = 2 if self.reduction else 1
        n, h, w, c = inputs[0].shape
        nodes = jnp.zeros((STEPS, n, (h - 1) // stride + 1, (w - 1) // stride + 1, c), inputs[0].dtype)
        nodes = scan([e for e, (_, j) in enumerate(edges) if j < 2], stride, lambda _, j: cell_inputs[j], nodes)
        nodes = scan([e for e, (_, j) in enumerate(edges) if j >= 2], 1, lambda nodes, j: nodes[j - 2], nodes)
        return jnp.concatenate(list(nodes), axis=-1)
