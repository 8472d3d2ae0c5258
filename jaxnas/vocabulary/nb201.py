"""The NAS-Bench-201 cell's vocabulary: its ops, its edges and architectures as arch strings.

Plain data at the bottom of the library, shared by the NB201 networks (`jaxnas.nn.nb201`), the
space (`jaxnas.spaces.nb201`) and the benchmark's table (`jaxnas.benchmarks.nb201`). A cell has 4
nodes and 6 edges, ordered node by node (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), and an architecture
is written as in the benchmark, one `|op~input|` group per node:
`|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|`.
"""

from __future__ import annotations

import dataclasses

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
