"""The chain space's vocabulary: the ops a layer may choose and an architecture (one op per layer).

Plain data at the bottom of the library, shared by the chain networks (`jaxnas.nn.chain`) and the
space (`jaxnas.spaces.chain`).
"""

from __future__ import annotations

import dataclasses

CHAIN_OPS: tuple[str, ...] = (
    "conv_3x3",
    "conv_5x5",
    "sep_conv_3x3",
    "max_pool_3x3",
    "avg_pool_3x3",
    "identity",
    "zero",
)
DEFAULT_CHAIN_OPS: tuple[str, ...] = ("conv_3x3", "conv_5x5", "max_pool_3x3", "identity")


def check_ops(ops: tuple[str, ...]) -> tuple[str, ...]:
    ops = tuple(ops)
    if not ops:
        raise ValueError(f"the chain space needs at least one op; valid ops: {', '.join(CHAIN_OPS)}")
    for op in ops:
        if op not in CHAIN_OPS:
            raise ValueError(f"unknown chain op {op!r}; valid ops: {', '.join(CHAIN_OPS)}")
    return ops


@dataclasses.dataclass(frozen=True)
class ChainArch:
    """One op per layer."""

    ops: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "ops", check_ops(self.ops))
