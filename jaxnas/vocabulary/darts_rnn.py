"""DARTS's recurrent cell space: its ops, edges and genotypes (Liu et al., ICLR 2019, section 3 and
appendix A.1.2; the constants as in the authors' `rnn/genotypes.py`).

A cell reads x_t and h_{t-1}, makes node 0 from both, then `steps` nodes; node i (1-based) reads one
earlier node j < i through one activation. In the search every earlier node feeds every node: edge
rows are ordered by node, then predecessor (node 1: j=0; node 2: j=0, 1; ...), 36 rows for 8 nodes.
The cell's output is the mean of the nodes in `concat`.
"""

from __future__ import annotations

import dataclasses

RNN_OPS: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")  # the authors' PRIMITIVES, in order
ACTIVATIONS: tuple[str, ...] = RNN_OPS[1:]  # what an edge of a derived cell applies
STEPS = 8


def num_edges(steps: int = STEPS) -> int:
    return steps * (steps + 1) // 2


def edge_rows(node: int) -> range:
    """The α rows of the edges into node `node` (1-based), one per predecessor 0..node-1."""
    start = (node - 1) * node // 2
    return range(start, start + node)


def edge_names(steps: int = STEPS) -> list[str]:
    return [f"{j}->{i}" for i in range(1, steps + 1) for j in range(i)]


@dataclasses.dataclass(frozen=True)
class RecurrentGenotype:
    """`recurrent[i] = (activation, predecessor)` defines node i+1; the output is the mean of the
    nodes in `concat`."""

    recurrent: tuple[tuple[str, int], ...]
    concat: tuple[int, ...]

    def __post_init__(self):
        recurrent = tuple((str(op), int(j)) for op, j in self.recurrent)
        concat = tuple(int(i) for i in self.concat)
        object.__setattr__(self, "recurrent", recurrent)
        object.__setattr__(self, "concat", concat)
        for i, (op, j) in enumerate(recurrent, start=1):
            if op not in ACTIVATIONS:
                raise ValueError(f"node {i}: unknown activation {op!r}; valid activations: {', '.join(ACTIVATIONS)}")
            if not 0 <= j < i:
                raise ValueError(f"node {i} reads node {j}; a node reads one of the nodes 0..{i - 1}")
        if not concat or not all(1 <= i <= len(recurrent) for i in concat):
            raise ValueError(f"concat {list(concat)} must name nodes among 1..{len(recurrent)}")

    @property
    def steps(self) -> int:
        return len(self.recurrent)

    def to_dict(self) -> dict:
        return {"recurrent": [list(e) for e in self.recurrent], "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, d: dict) -> RecurrentGenotype:
        return cls(tuple(tuple(e) for e in d["recurrent"]), tuple(d["concat"]))


def loose_ends(recurrent) -> tuple[int, ...]:
    """The nodes no other node reads: ENAS's cell output averages them."""
    read = {j for _, j in recurrent}
    return tuple(i for i in range(1, len(recurrent) + 1) if i not in read)


DARTS_V1 = RecurrentGenotype(
    (("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3), ("relu", 4), ("identity", 1), ("relu", 5), ("relu", 1)),
    tuple(range(1, 9)))
DARTS_V2 = RecurrentGenotype(
    (("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2), ("sigmoid", 5), ("tanh", 3), ("relu", 5)),
    tuple(range(1, 9)))
# ENAS's PTB cell written in DARTS's cell family (the DARTS authors' genotypes.py): 11 nodes, the output
# the mean of its loose ends.
ENAS = RecurrentGenotype(
    (("tanh", 0), ("tanh", 1), ("relu", 1), ("tanh", 3), ("tanh", 3), ("relu", 3), ("relu", 4), ("relu", 7),
     ("relu", 8), ("relu", 8), ("relu", 8)),
    (2, 5, 6, 9, 10, 11))
NAMED_RNN_GENOTYPES = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "ENAS": ENAS}
