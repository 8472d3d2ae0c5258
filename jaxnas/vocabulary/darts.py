"""The DARTS cell's vocabulary: op names, the edges of a cell, genotypes and the published cells.

Plain data at the bottom of the library: the networks (`jaxnas.nn`) build from it and the DARTS
space (`jaxnas.spaces.darts`) searches over it. A cell has two inputs (the outputs of the two
previous cells) and four intermediate nodes; node i takes one edge from every earlier state, so a
cell has 2+3+4+5 = 14 edges, ordered node by node and, within a node, by input index (the order of
the DARTS code).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

# Every op the DARTS discrete networks know, in the DARTS code's order.
DARTS_OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

# The search space's 8 ops, in DARTS's order: every op the discrete networks know but sep_conv_7x7.
PRIMITIVES: tuple[str, ...] = tuple(op for op in DARTS_OPS if op != "sep_conv_7x7")
STEPS = 4  # intermediate nodes per cell
NUM_EDGES = sum(2 + i for i in range(STEPS))  # 14
# Ops a genotype may name: the search primitives plus ones used by hand-designed cells.
GENOTYPE_OPS: tuple[str, ...] = PRIMITIVES + ("sep_conv_7x7",)


def edge_inputs(steps: int = STEPS) -> list[tuple[int, int]]:
    """(node, input state) for every edge, in DARTS order: node i has inputs 0 .. i+1."""
    return [(i, j) for i in range(steps) for j in range(i + 2)]


@dataclasses.dataclass(frozen=True)
class Genotype:
    """A discrete DARTS cell pair: per node two (op, input state) pairs, plus the concatenated nodes.

    States 0 and 1 are the cell inputs; state i+2 is intermediate node i.
    """

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        for field in ("normal", "reduce"):
            pairs = tuple((str(op), int(j)) for op, j in getattr(self, field))
            object.__setattr__(self, field, pairs)
        for field in ("normal_concat", "reduce_concat"):
            object.__setattr__(self, field, tuple(int(i) for i in getattr(self, field)))
        validate_genotype(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Genotype:
        keys = ("normal", "normal_concat", "reduce", "reduce_concat")
        missing = [k for k in keys if k not in d]
        extra = [k for k in d if k not in keys]
        if missing or extra:
            raise ValueError(
                f"malformed genotype: missing keys {missing}, unknown keys {extra}; "
                f"a genotype has exactly the keys {list(keys)}"
            )
        for k in ("normal", "reduce"):
            for p in d[k]:
                if not isinstance(p, (list, tuple)) or len(p) != 2:
                    raise ValueError(f"malformed genotype: {k} entry {p!r} is not an (op, input) pair")
        return cls(
            normal=tuple(tuple(p) for p in d["normal"]),
            normal_concat=tuple(d["normal_concat"]),
            reduce=tuple(tuple(p) for p in d["reduce"]),
            reduce_concat=tuple(d["reduce_concat"]),
        )

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"malformed genotype JSON: {e}") from None
        if not isinstance(d, dict):
            raise ValueError("malformed genotype JSON: expected an object with keys normal, reduce, ...")
        return cls.from_dict(d)


def validate_genotype(g: Genotype) -> None:
    """Raise a ValueError naming the problem if `g` is not a well-formed cell pair."""
    for kind, pairs, concat in (
        ("normal", g.normal, g.normal_concat),
        ("reduce", g.reduce, g.reduce_concat),
    ):
        if len(pairs) == 0 or len(pairs) % 2:
            raise ValueError(f"malformed genotype: {kind} has {len(pairs)} entries; need two per node")
        steps = len(pairs) // 2
        for n, (op, j) in enumerate(pairs):
            if op not in GENOTYPE_OPS:
                raise ValueError(
                    f"unknown op {op!r} in {kind} cell; valid ops: {', '.join(GENOTYPE_OPS)}"
                )
            node = n // 2
            if not 0 <= j < node + 2:
                raise ValueError(
                    f"malformed genotype: {kind} node {node} takes input {j}; "
                    f"valid inputs are 0..{node + 1}"
                )
        if not concat or any(not 0 <= i < steps + 2 for i in concat):
            raise ValueError(
                f"malformed genotype: {kind}_concat {list(concat)} must name states in 0..{steps + 1}"
            )


DARTS_V1 = Genotype(
    normal=(
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0),
    ),
    reduce_concat=(2, 3, 4, 5),
)

DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)

NAMED_GENOTYPES: dict[str, Genotype] = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS_V2}
