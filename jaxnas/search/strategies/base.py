"""The interface a search strategy implements (see `jaxnas.search.strategies`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import ml_collections

# forward_options(state) -> (apply kwargs of the α step's passes, apply kwargs of the weight step's)
ForwardOptions = Callable[[Any], tuple[dict, dict]]


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A strategy's hooks; the defaults are plain DARTS's (nothing added)."""

    name: str
    spaces: tuple[str, ...] = ("darts", "nb201", "chain")  # the search spaces it works in
    sampled: bool = False  # True: one drawn architecture per pass (`strategies.sampled`)
    step_metrics: tuple[str, ...] = ()  # per-step metrics it adds to the epoch records

    def check(self, config: ml_collections.ConfigDict) -> str | None:
        """The first problem with `config` for this strategy, as one line, or None."""
        if config.space not in self.spaces:
            return f"strategy {self.name!r} works in space(s) {', '.join(self.spaces)}, not {config.space!r}"
        return None

    def space_options(self, config: ml_collections.ConfigDict) -> dict[str, Any]:
        """Options this strategy adds to `get_space(config.space, ...)`."""
        return {}

    def forward_options(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> ForwardOptions | None:
        """Per-step supernet inputs beyond (w, α, x), or None when there are none."""
        return None

    def init_alphas(self, config: ml_collections.ConfigDict, space: Any, rng: Any) -> Any:
        """The architecture parameters the state starts with."""
        return space.init_alphas(rng)

    def make_step(self, config, space, net, schedule, axis_name, image_shape):
        """(step, weight optimizer, α optimizer) of a strategy with its own step; None: the bilevel step."""
        return None
