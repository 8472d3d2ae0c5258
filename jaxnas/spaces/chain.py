"""The chain-structured space: a sequence of layers, each a softmax(α)-weighted choice of ops."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.decisions import Decision

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


def init_alphas(rng: jax.Array, layers: int, num_ops: int) -> dict:
    return {"layers": 1e-3 * jax.random.normal(rng, (layers, num_ops))}


def derive(alphas, ops: tuple[str, ...]) -> ChainArch:
    a = np.asarray(alphas["layers"])
    return ChainArch(tuple(ops[int(i)] for i in a.argmax(axis=-1)))


def decisions(layers: int, num_ops: int) -> tuple[Decision, ...]:
    return tuple(Decision("op", num_ops) for _ in range(layers))


def decisions_to_path(values: jax.Array, num_ops: int) -> dict[str, jax.Array]:
    return {"layers": jax.nn.one_hot(jnp.asarray(values), num_ops)}


def decisions_to_arch(values, ops: tuple[str, ...]) -> ChainArch:
    return ChainArch(tuple(ops[int(i)] for i in np.asarray(values)))
