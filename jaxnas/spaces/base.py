"""The SearchSpace interface every strategy programs against, and the registry of spaces (each
space class lives with its functions: `spaces.darts`, `spaces.nb201`, `spaces.chain`).

A space is data plus pure functions: `init_alphas(rng)` gives α (a pytree separate from the
weights), `supernet(num_classes)` a flax module applied as
`apply({'params': w, 'batch_stats': s}, x, alphas, train)`, `derive(alphas)` the discrete
architecture, and `network(arch, num_classes)` the discrete network built from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import flax.linen as nn
import jax
import numpy as np

from jaxnas.spaces.chain import ChainSpace
from jaxnas.spaces.darts import DartsSpace
from jaxnas.spaces.darts_rnn import DartsRnnSpace
from jaxnas.spaces.decisions import Decision
from jaxnas.spaces.nb201 import NB201Space


class SearchSpace(Protocol):
    name: str
    counting_options: dict  # options under which its supernet's parameters and multiply-adds are counted

    # Options of `get_space` (class methods, `spaces.options.SpaceOptions`): a size given as channels
    # and layers (each space names its depth its own way), and what a search config sets.
    @classmethod
    def sized(cls, channels: int | None = None, layers: int | None = None) -> dict: ...

    @classmethod
    def config_options(cls, config: Any) -> dict: ...

    def init_alphas(self, rng: jax.Array) -> dict: ...

    def supernet(self, num_classes: int, axis_name: str | None = None) -> nn.Module: ...

    def derive(self, alphas: Any) -> Any: ...

    def network(self, arch: Any, num_classes: int, axis_name: str | None = None) -> nn.Module: ...

    def op_names(self) -> dict[str, tuple[str, ...]]: ...

    def arch_to_dict(self, arch: Any) -> dict: ...

    def arch_from_dict(self, d: dict) -> Any: ...  # the inverse of arch_to_dict (a genotype.json's content)

    def edge_names(self) -> dict[str, tuple[str, ...]]: ...  # what each row of each α entry connects

    # What sampling strategies (ENAS, random search, PNAS) use: the space as a sequence of
    # decisions, their one-hot path (α-shaped, for `mixing='path'`) and their architecture.
    def decisions(self) -> tuple[Decision, ...]: ...

    def path(self, values: jax.Array) -> dict: ...

    def arch_from_decisions(self, values: Any) -> Any: ...

    def decisions_of(self, arch: Any) -> Any: ...

    # What a space knows about a derived architecture without training it (NB201: the benchmark's
    # test accuracy), logged every epoch, and named reference values drawn beside it.
    def arch_metrics(self, arch: Any) -> dict[str, float]: ...

    def arch_metric_references(self) -> dict[str, dict[str, float]]: ...

    # Whether initialising the supernet is worth compiling (stacked layouts) rather than running eagerly.
    compiled_init: bool

    # Resource-aware search (`jaxnas.spaces.cost`): a cost per (α entry, row, op) for images of
    # `image_shape` under `metric` (params, madds or a latency table), and a derived architecture's cost.
    def cost_tables(self, image_shape: tuple[int, ...], metric: str) -> dict[str, np.ndarray]: ...

    def arch_cost(self, arch: Any, costs: dict[str, np.ndarray]) -> float: ...

    def plot(self, arch: Any, path: str, title: str = "") -> None: ...  # draw a derived architecture

    # The discrete network whose parameters `jaxnas.compare` reports for a derived architecture, as
    # (module, extra apply args), given the training config; None where the space has none to report.
    def params_network(self, arch: Any, num_classes: int, train_config: Any) -> tuple[nn.Module, tuple] | None: ...

    # The command a user runs next on a finished search's workdir (the closing line of a search).
    def follow_up(self, workdir: str) -> str: ...


SPACES = {"darts": DartsSpace, "nb201": NB201Space, "chain": ChainSpace, "darts_rnn": DartsRnnSpace}


def get_space(name: str, **options: Any) -> SearchSpace:
    """Build a space by name; unknown names and options raise an error listing the valid ones."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; valid spaces: {', '.join(SPACES)}")
    cls = SPACES[name]
    fields = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
    bad = [k for k in options if k not in fields]
    if bad:
        raise ValueError(f"unknown option(s) {bad} for space {name!r}; valid options: {', '.join(fields)}")
    return cls(**options)


def arch_metric_names(space: SearchSpace) -> list[str]:
    """The names of the metrics a space logs of a derived cell (none for most spaces), in order."""
    return list(dict.fromkeys(k for reference in space.arch_metric_references().values() for k in reference))
