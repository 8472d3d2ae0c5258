"""Run one of several sub-networks, chosen by a traced index, computing only that one.

`nn.switch` (a `lax.switch`) needs every branch's variables to exist already, so at
initialisation all branches run and the chosen output is picked by value. `scan_edges` runs a
cell's switch edges as one `lax.scan`, so XLA compiles the switch once instead of once per edge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def run_one(module: nn.Module, index: jax.Array, branches: Sequence[Callable], *args,
            remat: bool = False) -> jax.Array:
    """branches[index](module, *args); each branch builds its submodules under `module` by name.

    `remat` recomputes the taken branch in the backward pass instead of storing its activations.
    A conditional returns the residuals of every branch (JAX merges them by type and fills the
    ones the taken branch lacks), so with many-op branches storing costs more than recomputing:
    measured 2× faster for GDAS's cells on XLA:CPU.
    """
    if module.is_initializing():
        return jnp.stack([branch(module, *args) for branch in branches])[index]
    return nn.switch(index, [nn.remat(b) for b in branches] if remat else list(branches), module, *args)


def scan_edges(cell: nn.Module, edge: nn.Module, edges: Sequence[int],
               variables_of: Callable[[str, int], Mapping[str, Any]], store_stats: Callable[[int, Any], None],
               read: Callable[[jax.Array, jax.Array], jax.Array], sources: Sequence[int], targets: Sequence[int],
               nodes: jax.Array, edge_args: tuple, train: bool) -> jax.Array:
    """Add `edge`'s output for each edge in `edges`, in order, to `nodes[target]`, in one `lax.scan`.

    `edge` is an unbound module (`parent=None`) run as a pure function of one edge's variables:
    `variables_of(col, e)` gives edge e's variables in `edge`'s layout; they are stacked so that
    the cell keeps its per-edge layout. Step k reads its input with `read(nodes, sources[k])`,
    passes it `edge_args` sliced at k, and adds the result to `nodes[targets[k]]`; edges reading a
    node must come after every edge that writes it. Updated BN statistics go back through
    `store_stats(e, tree)`.
    """
    update = train and cell.is_mutable_collection("batch_stats")
    variables = {col: _stack([variables_of(col, e) for e in edges])
                 for col in ("params", "batch_stats") if cell.variables.get(col)}

    def body(nodes, xs):
        edge_vars, source, target, args = xs
        out = edge.apply(edge_vars, read(nodes, source), *args, train, mutable=["batch_stats"] if update else False)
        y, new = out if update else (out, {})
        return nodes.at[target].add(y), new.get("batch_stats")

    nodes, stats = jax.lax.scan(body, nodes, (variables, jnp.array(sources), jnp.array(targets), edge_args))
    if update:
        for slot, e in enumerate(edges):
            store_stats(e, jax.tree.map(lambda a, s=slot: a[s], stats))
    return nodes


def _stack(trees: list) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
