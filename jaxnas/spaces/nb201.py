"""The NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 ops per edge, architectures as arch strings.

An architecture is written as in the benchmark, one `|op~input|` group per node:
`|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|`.
Edges are ordered node by node (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), which is also the row
order of α (shape (6, 5)).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.decisions import Decision

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NODES = 4
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(1, NODES) for j in range(i))  # (node, input)


@dataclasses.dataclass(frozen=True)
class NB201Arch:
    """One op per edge, in `EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != len(EDGES):
            raise ValueError(f"malformed NB201 arch: {len(self.ops)} ops given; a cell has {len(EDGES)} edges")
        for op in self.ops:
            if op not in OPS:
                raise ValueError(f"unknown NB201 op {op!r}; valid ops: {', '.join(OPS)}")

    def to_string(self) -> str:
        nodes, e = [], 0
        for i in range(1, NODES):
            nodes.append("|" + "|".join(f"{self.ops[e + j]}~{j}" for j in range(i)) + "|")
            e += i
        return "+".join(nodes)

    @classmethod
    def from_string(cls, text: str) -> NB201Arch:
        nodes = text.strip().split("+")
        if len(nodes) != NODES - 1:
            raise ValueError(
                f"malformed NB201 arch string {text!r}: expected {NODES - 1} '+'-separated nodes "
                "like |nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|...~0|...~1|...~2|"
            )
        ops = []
        for i, node in enumerate(nodes, start=1):
            parts = [p for p in node.strip("|").split("|")]
            if not (node.startswith("|") and node.endswith("|")) or len(parts) != i:
                raise ValueError(f"malformed NB201 arch string {text!r}: node {i} must list {i} `|op~input|` entries")
            for j, part in enumerate(parts):
                op, sep, src = part.partition("~")
                if sep != "~" or src != str(j):
                    raise ValueError(f"malformed NB201 arch string {text!r}: entry {part!r} should be `op~{j}`")
                ops.append(op)
        return cls(tuple(ops))


def all_archs() -> Iterator[NB201Arch]:
    """All 5^6 = 15,625 cells of the benchmark."""
    for ops in itertools.product(OPS, repeat=len(EDGES)):
        yield NB201Arch(ops)


def init_alphas(rng: jax.Array) -> dict:
    return {"cell": 1e-3 * jax.random.normal(rng, (len(EDGES), len(OPS)))}


def derive(alphas) -> NB201Arch:
    """Per edge the op of largest α (`none` included, as the benchmark's DARTS code does)."""
    a = np.asarray(alphas["cell"])
    return NB201Arch(tuple(OPS[int(i)] for i in a.argmax(axis=-1)))


def decisions() -> tuple[Decision, ...]:
    """One op per edge, `none` included (as in the benchmark)."""
    return tuple(Decision("op", len(OPS)) for _ in EDGES)


def decisions_to_path(values: jax.Array) -> dict[str, jax.Array]:
    return {"cell": jax.nn.one_hot(jnp.asarray(values), len(OPS))}


def decisions_to_arch(values) -> NB201Arch:
    return NB201Arch(tuple(OPS[int(i)] for i in np.asarray(values)))
