"""An architecture as a sequence of discrete decisions, the form sampling strategies draw, and the
one-hot path they make (the NB201 and chain supernets' `mixing='path'`, its cost).

ENAS's controller emits one decision at a time and random search draws each uniformly; both
need the same description of a space: per decision, which controller head makes it (`kind`:
'input' or 'op'), how many values are valid, and which earlier decision it may not repeat (a
DARTS node's second input differs from its first). `path(decisions)` of a space turns the values
into one-hot α-shaped arrays that the supernet's `mixing='path'` runs (only the chosen ops).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Decision:
    kind: str  # the controller head that makes it: "input" or "op"
    choices: int  # valid values are 0 .. choices-1
    exclude: int | None = None  # an earlier decision whose value this one may not take


def widths(decisions: Sequence[Decision]) -> dict[str, int]:
    """The output width of each head: the most choices any decision of that kind has."""
    out: dict[str, int] = {}
    for d in decisions:
        out[d.kind] = max(out.get(d.kind, 0), d.choices)
    return out


def valid_mask(decision: Decision, width: int, values: Sequence[jax.Array]) -> jax.Array:
    """(width,) bool: the values `decision` may take, given the values decided before it."""
    ids = jnp.arange(width)
    mask = ids < decision.choices
    if decision.exclude is not None:
        mask = mask & (ids != values[decision.exclude])
    return mask


def sample_uniform(decisions: Sequence[Decision], key: jax.Array) -> jax.Array:
    """One architecture drawn uniformly: every decision uniform over its valid values. (D,) int32."""
    w = widths(decisions)
    values: list[jax.Array] = []
    for d, k in zip(decisions, jax.random.split(key, len(decisions))):
        mask = valid_mask(d, w[d.kind], values)
        values.append(jax.random.categorical(k, jnp.where(mask, 0.0, -jnp.inf)).astype(jnp.int32))
    return jnp.stack(values)


def check_values(decisions: Sequence[Decision], values) -> None:
    """Raise a ValueError naming the first decision whose value is out of range."""
    if len(values) != len(decisions):
        raise ValueError(f"malformed decisions: {len(values)} values for {len(decisions)} decisions")
    for i, (d, v) in enumerate(zip(decisions, values)):
        v = int(v)
        if not 0 <= v < d.choices or (d.exclude is not None and v == int(values[d.exclude])):
            raise ValueError(f"malformed decisions: decision {i} ({d.kind}) is {v}; valid values 0..{d.choices - 1}"
                             + (f" except decision {d.exclude}'s" if d.exclude is not None else ""))


def arch_path_cost(space, arch, costs) -> float:
    """The cost of a derived architecture as the cost of its one-hot path."""
    from jaxnas.spaces import cost

    path = {k: np.asarray(v, np.float64) for k, v in space.path(space.decisions_of(arch)).items()}
    return float(cost.path_cost(path, costs))
