"""Resource-aware search: a cost per (α entry, edge or layer, op), so the expected cost of the
architecture under softmax(α) is a differentiable function of α. Tables exist for every space:
the DARTS cells (per cell kind), the NB201 cell and the chain's layers.

The α objective becomes L_val + λ·E_α[cost], with E_α[cost] = Σ_kind Σ_edge Σ_op softmax(α)·cost.
A cost is what that op adds to the *discrete* network (affine BN, as trained), summed over the
search network's cells of that kind: its parameters, its multiply-adds for one image (counted by
`jaxnas.counting`, the code `python -m jaxnas.describe` reports with), or a user's per-op latency
table (a JSON object op name -> cost, e.g. milliseconds measured on the target device).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.counting import count_params, multiply_adds
from jaxnas.nn.network import reduction_layers
from jaxnas.nn.ops import darts_op
from jaxnas.vocabulary import darts, nb201

METRICS = ("params", "madds")  # or the path of a latency table (.json)


# The ops as each space's discrete network builds them (affine BN): build(name, C, stride) -> module.
def _darts_op(name: str, C: int, stride: int):
    return darts_op(name, C, stride, affine=True)


def _nb201_op(name: str, C: int, stride: int):
    from jaxnas.nn.nb201 import nb201_op

    return nb201_op(name, C, True, None, "op")


def _chain_op(name: str, C: int, stride: int):
    from jaxnas.nn.chain import chain_op

    return chain_op(name, C, True, None, "op")


@functools.cache
def _op_cost(build, name: str, C: int, stride: int, spatial: tuple[int, int], metric: str) -> float:
    """Parameters or multiply-adds of the op `build(name, C, stride)` on an input of C channels."""
    op = build(name, C, stride)
    shape = (*spatial, C)
    if metric == "params":
        variables = jax.eval_shape(lambda: op.init(jax.random.key(0), jnp.zeros((1, *shape)), False))
        return float(count_params(variables.get("params", {})))
    return float(sum(multiply_adds(op, shape, False).values()))


def read_latency_table(path: str, ops: tuple[str, ...]) -> dict[str, float]:
    """A JSON object giving a cost for every op of the space; one-line errors otherwise."""
    if not os.path.isfile(path):
        raise ValueError(f"cost metric {path!r} is neither one of {', '.join(METRICS)} nor an existing JSON file")
    try:
        with open(path) as f:
            table = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"latency table {path!r} is not valid JSON: {e}") from None
    if not isinstance(table, dict):
        raise ValueError(f"latency table {path!r} must be a JSON object op -> cost; ops: {', '.join(ops)}")
    missing, unknown = [o for o in ops if o not in table], [o for o in table if o not in ops]
    if missing or unknown:
        raise ValueError(f"latency table {path!r}: missing ops {missing}, unknown ops {unknown}; ops: {', '.join(ops)}")
    bad = [o for o in ops if not isinstance(table[o], (int, float)) or table[o] < 0]
    if bad:
        raise ValueError(f"latency table {path!r}: costs must be non-negative numbers; bad: {', '.join(bad)}")
    return {o: float(table[o]) for o in ops}


def darts_costs(channels: int, layers: int, image_hw: tuple[int, int], metric: str) -> dict[str, np.ndarray]:
    """Cost of every (edge, op) of the normal and reduction cells, summed over the search network's
    cells of each kind (the cells' channels and resolutions are the supernet's)."""
    ops = darts.PRIMITIVES
    table = read_latency_table(metric, ops) if metric not in METRICS else None
    costs = {k: np.zeros((darts.NUM_EDGES, len(ops))) for k in ("normal", "reduce")}
    reductions = reduction_layers(layers)
    C, hw = channels, tuple(image_hw)
    for i in range(layers):
        reduction = i in reductions
        C = 2 * C if reduction else C
        kind = "reduce" if reduction else "normal"
        for e, (_, j) in enumerate(darts.edge_inputs()):
            stride = 2 if reduction and j < 2 else 1
            for o, name in enumerate(ops):
                costs[kind][e, o] += table[name] if table else _op_cost(_darts_op, name, C, stride, hw, metric)
        hw = tuple((s + 1) // 2 for s in hw) if reduction else hw
    return costs


def nb201_costs(channels: int, cells_per_stage: int, image_hw: tuple[int, int], metric: str) -> dict[str, np.ndarray]:
    """Cost of every (edge, op) of the NB201 cell, summed over the network's cells (three stages of
    `cells_per_stage` cells at C, 2C, 4C channels and full, half, quarter resolution)."""

    table = read_latency_table(metric, nb201.OPS) if metric not in METRICS else None
    costs = np.zeros((len(nb201.EDGES), len(nb201.OPS)))
    hw = tuple(image_hw)
    for stage in range(3):
        C = channels * 2**stage
        for o, name in enumerate(nb201.OPS):
            per_cell = table[name] if table else _op_cost(_nb201_op, name, C, 1, hw, metric)
            costs[:, o] += cells_per_stage * per_cell
        hw = tuple((s + 1) // 2 for s in hw)
    return {"cell": costs}


def chain_costs(channels: int, layers: int, ops: tuple[str, ...], image_hw: tuple[int, int],
                metric: str) -> dict[str, np.ndarray]:
    """Cost of every (layer, op) of the chain network (every layer at C channels, full resolution)."""
    table = read_latency_table(metric, ops) if metric not in METRICS else None
    row = [table[name] if table else _op_cost(_chain_op, name, channels, 1, tuple(image_hw), metric) for name in ops]
    return {"layers": np.tile(np.asarray(row, np.float64), (layers, 1))}


def expected_cost(alphas: Mapping[str, Any], costs: Mapping[str, Any]) -> jax.Array:
    """E_α[cost] = Σ softmax(α)·cost over kinds and edges; differentiable in α."""
    return sum(jnp.sum(jax.nn.softmax(alphas[k], axis=-1) * jnp.asarray(costs[k], alphas[k].dtype)) for k in costs)


def derived_cost(genotype: darts.Genotype, costs: Mapping[str, np.ndarray]) -> float:
    """The cost of the derived cell pair under the same table (what λ trades against accuracy)."""
    edge_of = {pair: e for e, pair in enumerate(darts.edge_inputs())}
    total = 0.0
    for kind, pairs in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        for k, (op, j) in enumerate(pairs):
            total += float(costs[kind][edge_of[(k // 2, j)], darts.PRIMITIVES.index(op)])
    return total


def space_costs(space: Any, image_shape: tuple[int, ...], metric: str) -> dict[str, np.ndarray]:
    """The cost tables of a search space, for images of `image_shape` (`SearchSpace.cost_tables`)."""
    return space.cost_tables(image_shape, metric)


def path_cost(path: Mapping[str, Any], costs: Mapping[str, Any]) -> jax.Array:
    """The cost of a one-hot path (one op per edge or layer) under the same tables."""
    return sum(jnp.sum(path[k] * jnp.asarray(costs[k], path[k].dtype)) for k in costs)


def arch_cost(space: Any, arch: Any, costs: Mapping[str, np.ndarray]) -> float:
    """The cost of a derived architecture of `space` (what λ trades against accuracy;
    `SearchSpace.arch_cost`)."""
    return space.arch_cost(arch, costs)
