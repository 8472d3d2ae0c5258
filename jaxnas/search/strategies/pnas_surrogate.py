"""PNAS's progressive search (Liu et al., 2018) over DARTS cells, one block (node) at a time.

A cell of b blocks is a tuple of blocks (in1, op1, in2, op2): node i sums op1(state in1) and
op2(state in2), with in1 < in2 drawn from the cell inputs and earlier nodes, ops from
`darts.SAMPLED_OPS`. Stage 1 evaluates every one-block cell; stage b expands each of the `beam`
best cells by every possible next block, ranks the expansions with a surrogate (an ensemble of
small MLPs fit with optax on every cell evaluated so far), evaluates only the top `beam`, and refits.
The surrogate reads a cell as the mean of its blocks' one-hot codes, so what it learns from cells
of b blocks carries over to cells of b + 1 (as PNAS's predictors share weights across blocks).
`evaluate(cells) -> scores` is pluggable.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.spaces.darts import SAMPLED_OPS
from jaxnas.vocabulary.darts import STEPS

Block = tuple[int, int, int, int]  # (in1, op1, in2, op2), in1 < in2
Cell = tuple[Block, ...]
MAX_INPUTS = STEPS + 1  # states a block of the last node may read


def blocks_at(node: int, num_ops: int = len(SAMPLED_OPS)) -> list[Block]:
    """Every block node `node` (0-based) may have: two distinct inputs among its node + 2 states, two ops."""
    return [(i, a, j, b) for i, j in itertools.combinations(range(node + 2), 2)
            for a in range(num_ops) for b in range(num_ops)]


def expansions(cell: Cell) -> list[Cell]:
    return [cell + (block,) for block in blocks_at(len(cell))]


def encode(cells: Sequence[Cell], num_ops: int = len(SAMPLED_OPS)) -> np.ndarray:
    """(N, features): per cell the mean over its blocks of one-hot(in1) ‖ one-hot(op1) ‖ one-hot(in2) ‖ one-hot(op2)."""
    width = 2 * (MAX_INPUTS + num_ops)
    out = np.zeros((len(cells), width), np.float32)
    offsets = (0, MAX_INPUTS, MAX_INPUTS + num_ops, 2 * MAX_INPUTS + num_ops)
    for n, cell in enumerate(cells):
        for block in cell:
            for off, v in zip(offsets, block):
                out[n, off + v] += 1.0 / len(cell)
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan when either side is constant."""
    def ranks(x):
        x = np.asarray(x, np.float64)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclasses.dataclass(frozen=True)
class MLPEnsemble:
    """`members` one-hidden-layer MLPs with a linear skip (so additive effects of blocks' parts are
    fit exactly), each from its own initialisation, trained full-batch with Adam on the squared
    error plus `l2`·‖input weights‖²; the prediction is their mean. The L2 term
    drives the weights of features no evaluated cell had (an input a new block is the first to
    read) to zero, so they add no random offsets to the ranking."""

    members: int = 5
    hidden: int = 64
    steps: int = 300
    lr: float = 1e-2
    l2: float = 1e-3

    def fit_predict(self, key: jax.Array, x: np.ndarray, y: np.ndarray, queries: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float32)
        mu, sigma = float(y.mean()), float(y.std()) + 1e-8  # fit standardised scores
        params = _fit(key, jnp.asarray(x), jnp.asarray((y - mu) / sigma), self.members, self.hidden, self.steps,
                      self.lr, self.l2)
        return np.asarray(jnp.mean(jax.vmap(_mlp, in_axes=(0, None))(params, jnp.asarray(queries)), 0)) * sigma + mu


def _mlp(p, x):
    return (jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"])[..., 0] + x @ p["linear"] + p["b2"]


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _fit(key, x, y, members, hidden, steps, lr, l2):
    def init(k):
        k1, k2 = jax.random.split(k)
        d = x.shape[1]
        return {"w1": jax.random.normal(k1, (d, hidden)) / jnp.sqrt(d), "b1": jnp.zeros(hidden),
                "w2": jax.random.normal(k2, (hidden, 1)) / jnp.sqrt(hidden), "linear": jnp.zeros(d),
                "b2": jnp.zeros(())}

    opt = optax.adam(lr)

    def loss(p):
        return jnp.mean((_mlp(p, x) - y) ** 2) + l2 * (jnp.sum(p["w1"] ** 2) + jnp.sum(p["linear"] ** 2))

    def train(p):
        def body(carry, _):
            p, s = carry
            g = jax.grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (p, opt.init(p)), None, length=steps)[0][0]

    return jax.vmap(train)(jax.vmap(init)(jax.random.split(key, members)))


@dataclasses.dataclass
class Stage:
    blocks: int
    candidates: int  # cells of this size considered (all of them in stage 1, else the expansions)
    evaluated: int
    spearman: float  # surrogate prediction vs true score over the evaluated cells (nan in stage 1)
    best_score: float


def progressive_search(evaluate: Callable[[list[Cell]], np.ndarray], key: jax.Array, beam: int = 8,
                       blocks: int = STEPS, surrogate: MLPEnsemble | None = None) -> tuple[Cell, float, list[Stage]]:
    """PNAS: returns (the best evaluated cell of `blocks` blocks, its score, one record per stage)."""
    surrogate = surrogate or MLPEnsemble()
    cells: list[Cell] = [(b,) for b in blocks_at(0)]
    scores = np.asarray(evaluate(cells), np.float64)
    seen_cells, seen_scores = list(cells), list(scores)
    stages = [Stage(1, len(cells), len(cells), float("nan"), float(scores.max()))]
    for b in range(2, blocks + 1):
        top = [cells[i] for i in np.argsort(-scores, kind="stable")[:beam]]
        candidates = [c for cell in top for c in expansions(cell)]
        predicted = surrogate.fit_predict(jax.random.fold_in(key, b), encode(seen_cells), np.asarray(seen_scores),
                                          encode(candidates))
        chosen = np.argsort(-predicted, kind="stable")[:beam]
        cells = [candidates[i] for i in chosen]
        scores = np.asarray(evaluate(cells), np.float64)
        seen_cells += cells
        seen_scores += list(scores)
        stages.append(Stage(b, len(candidates), len(cells), spearman(predicted[chosen], scores), float(scores.max())))
    best = int(np.argmax(scores))
    return cells[best], float(scores[best]), stages


def cell_decisions(cell: Cell) -> np.ndarray:
    """The DARTS-space decision values of a full cell used as both the normal and the reduction cell."""
    one = [v for block in cell for v in block]
    return np.asarray(one + one, np.int32)


def cell_path(cell: Cell) -> dict[str, np.ndarray]:
    """One-hot (edges, ops) of a cell of any size, for both cell types: the nodes a partial cell
    does not have yet carry `none` on every edge (they add zeros to the cell's output)."""
    index = np.zeros(sum(i + 2 for i in range(STEPS)), np.int32)
    offset = 0
    for node in range(STEPS):
        if node < len(cell):
            i, a, j, b = cell[node]
            index[offset + i], index[offset + j] = a + 1, b + 1
        offset += node + 2
    onehot = np.eye(len(SAMPLED_OPS) + 1, dtype=np.float32)[index]
    return {"normal": onehot, "reduce": onehot}
