"""DARTS-PT (Wang et al., "Rethinking Architecture Selection in Differentiable NAS", ICLR 2021):
train the supernet as DARTS does, then choose the architecture by perturbation, not by α's argmax.

α's magnitudes need not say how much an op contributes to the supernet; that is how DARTS ends up
with cells of skip connections. DARTS-PT asks the trained supernet instead: for each edge (in a
seeded random order) it removes each op in turn (its α set to -inf, so softmax gives it no weight)
and keeps the op whose removal hurts search-val accuracy most; that edge then keeps only that op
for the following decisions. Where cells choose their inputs (DARTS: two per node), each edge's
importance is the accuracy lost when it is zeroed (its row set to the `none` op), and the space's
own derivation keeps the most important edges. The paper also fine-tunes the supernet between
decisions; here the decisions are made on the trained supernet as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxnas.search.strategies.base import Strategy

MASKED = -1e9  # a logit whose softmax weight is exactly 0 in float32
# score(state, stacked α variants) -> (N,) search-val accuracies (the run's DeriveContext.score)
Score = Callable[[Any, dict], np.ndarray]


def _stack(variants: list[dict]) -> dict:
    return {k: np.stack([v[k] for v in variants]) for k in variants[0]}


def without_op(alphas: dict, key: str, edge: int, op: int) -> dict:
    """α with `op` removed from `edge` of `alphas[key]`."""
    out = {k: np.array(v, np.float32) for k, v in alphas.items()}
    out[key][edge, op] = MASKED
    return out


def only_op(alphas: dict, key: str, edge: int, op: int, logit: float = 0.0) -> dict:
    """α with `edge` of `alphas[key]` reduced to `op` (weight 1)."""
    out = {k: np.array(v, np.float32) for k, v in alphas.items()}
    out[key][edge] = MASKED
    out[key][edge, op] = logit
    return out


def select_ops(score: Score, state: Any, alphas: dict, op_names: dict[str, tuple[str, ...]],
               order: list[tuple[str, int]]) -> tuple[dict, dict[tuple[str, int], int]]:
    """Decide every edge in `order` by perturbation; returns (α with each decided edge reduced to
    its op, {(key, edge): op index}). `none` is never chosen where it is an op: removing it cannot hurt."""
    current = {k: np.array(v, np.float32) for k, v in alphas.items()}
    chosen = {}
    for key, edge in order:
        ops = [o for o, name in enumerate(op_names[key]) if name != "none"]
        accuracy = np.asarray(score(state, _stack([without_op(current, key, edge, o) for o in ops])))
        op = ops[int(np.argmin(accuracy))]  # the op whose removal costs the most accuracy
        chosen[(key, edge)] = op
        current = only_op(current, key, edge, op)
    return current, chosen


def edge_importance(score: Score, state: Any, alphas: dict, op_names: dict[str, tuple[str, ...]],
                    edges: list[tuple[str, int]]) -> dict[tuple[str, int], float]:
    """Search-val accuracy lost when each edge is zeroed (reduced to `none`); edges of a key
    without a `none` op are not measured."""
    measured = [(k, e) for k, e in edges if "none" in op_names[k]]
    if not measured:
        return {}
    base = float(np.asarray(score(state, _stack([alphas])))[0])
    zeroed = [only_op(alphas, k, e, op_names[k].index("none")) for k, e in measured]
    accuracy = np.asarray(score(state, _stack(zeroed)))
    return {edge: base - float(a) for edge, a in zip(measured, accuracy)}


def selection_logits(decided: dict, chosen: dict[tuple[str, int], int], importance: dict,
                     op_names: dict[str, tuple[str, ...]]) -> dict:
    """α for the space's own derivation: each edge's chosen op, and where the key has a `none` op,
    a weight against it that grows with the edge's importance (softmax weight σ(10 + 5·drop), all
    above one half), so a derivation that keeps the strongest edges per node keeps the most important."""
    out = {k: np.array(v, np.float32) for k, v in decided.items()}
    for (key, edge), op in chosen.items():
        out[key][edge] = MASKED
        out[key][edge, op] = 10.0 + 5.0 * float(np.clip(importance.get((key, edge), 0.0), -1, 1))
        if "none" in op_names[key]:
            out[key][edge, op_names[key].index("none")] = 0.0
    return out


def perturbation_arch(space: Any, score: Score, state: Any, alphas: dict, rng: np.random.Generator) -> tuple[Any, dict]:
    """DARTS-PT's architecture for `space` from the trained supernet `state`: (arch, log info)."""
    op_names = space.op_names()
    alphas = {k: np.asarray(jax.device_get(v)) for k, v in alphas.items() if k in op_names}
    edges = [(k, e) for k in op_names for e in range(alphas[k].shape[0])]
    order = [edges[i] for i in rng.permutation(len(edges))]
    decided, chosen = select_ops(score, state, alphas, op_names, order)
    importance = edge_importance(score, state, decided, op_names, edges)
    arch = space.derive(selection_logits(decided, chosen, importance, op_names))
    info = {"pt_changed_ops": sum(int(np.argmax(np.where(np.array(op_names[k]) == "none", -np.inf, alphas[k][e]))
                                      != o) for (k, e), o in chosen.items())}
    return arch, info


@dataclasses.dataclass(frozen=True)
class DartsPtStrategy(Strategy):
    """DARTS's supernet and bilevel step; the architecture by perturbation (`perturbation_arch`)."""

    def derive(self, config, space, state, context, epoch: int) -> tuple[Any, dict]:
        rng = np.random.default_rng([config.seed, 7, epoch])
        return perturbation_arch(space, context.score, state, state.alphas, rng)


DARTS_PT = DartsPtStrategy("darts_pt", spaces=("darts", "nb201"), needs_derive_context=True)
