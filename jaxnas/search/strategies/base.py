"""The interface a search strategy implements (see `jaxnas.search.strategies`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

# score(state, paths) -> (N,) accuracies on the scoring batch of the N α-shaped entries stacked in
# `paths` (one-hot paths of one architecture each, or any α the supernet takes, e.g. a masked α).
Score = Callable[[Any, dict], np.ndarray]


@dataclasses.dataclass(frozen=True)
class DeriveContext:
    """What the run lends a strategy's derivation (`Strategy.derive`, when `needs_derive_context`):
    scoring with given weights on the first search-val batch (BN as `Strategy.eval_train_mode`),
    and short training of one architecture from freshly initialised weights (for evaluators that
    do not inherit them)."""

    score: Score
    train_fresh: Callable[[dict, int], Any]  # (one-hot path, steps) -> the state after that training


# forward_options(state) -> (apply kwargs of the α step's passes, apply kwargs of the weight step's)
ForwardOptions = Callable[[Any], tuple[dict, dict]]


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A strategy's hooks; the defaults are plain DARTS's (nothing added)."""

    name: str
    spaces: tuple[str, ...] = ("darts", "nb201", "chain")  # the search spaces it works in
    step_metrics: tuple[str, ...] = ()  # per-step metrics it adds to the epoch records
    own_step: bool = False  # True: `make_step` brings its own step (the bilevel step's estimators do not apply)
    # Its options in the config's `strategy` block ({name, **options}), with their defaults.
    options: tuple[tuple[str, Any], ...] = ()
    # The search config keys this strategy does not read, which must keep their defaults: a strategy
    # with its own step ignores the bilevel step's estimator, cost penalty and α warm-up.
    ignored_keys: tuple[str, ...] = ()
    # Whether the hypergradient study can compare estimators on it: not when its loss is a random
    # draw per pass (GDAS, the sampling strategies) or it has no hypergradient.
    studiable: bool = True
    # BN mode when the run evaluates the derived architecture on search-val (and scores candidates):
    # training mode where the running statistics mix every architecture the supernet trained.
    eval_train_mode: bool = False
    needs_derive_context: bool = False  # whether `derive` uses the run's DeriveContext

    def check(self, config: ml_collections.ConfigDict) -> str | None:
        """The first problem with `config` for this strategy, as one line, or None."""
        if config.space not in self.spaces:
            return f"strategy {self.name!r} works in space(s) {', '.join(self.spaces)}, not {config.space!r}"
        return self.check_options(config)

    def check_options(self, config: ml_collections.ConfigDict) -> str | None:
        """The first problem with the values of this strategy's options (`config.strategy`), or None."""
        return None

    def space_options(self, config: ml_collections.ConfigDict) -> dict[str, Any]:
        """Options this strategy adds to `get_space(config.space, ...)`."""
        return {}

    def space_preferences(self, config: ml_collections.ConfigDict) -> dict[str, Any]:
        """Options this strategy gives the spaces that have them (the others are left as they are),
        e.g. ENAS's recurrent cell averaging its loose ends."""
        return {}

    def forward_options(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> ForwardOptions | None:
        """Per-step supernet inputs beyond (w, α, x), or None when there are none."""
        return None

    def init_alphas(self, config: ml_collections.ConfigDict, space: Any, rng: Any) -> Any:
        """The architecture parameters the state starts with."""
        return space.init_alphas(rng)

    def make_step(self, config, space, net, schedule, axis_name, image_shape, task=None):
        """(step, weight optimizer, α optimizer) of a strategy with its own step (learning `task`);
        None: the bilevel step."""
        return None

    def alpha_view(self, config, space, alphas) -> dict[str, np.ndarray]:
        """What the run saves and plots as α (`alphas/*.npz`, the α entropy): α itself by default."""
        return {k: np.asarray(v) for k, v in jax.device_get(alphas).items()}

    def derive(self, config, space, state, context: DeriveContext | None, epoch: int) -> tuple[Any, dict]:
        """The architecture the run reports after `epoch` (the last epoch's is the run's genotype), and
        what to log about how it was chosen. `context` is the run's DeriveContext when
        `needs_derive_context`, else None. Default: the space's derivation from the α view."""
        return space.derive(self.alpha_view(config, space, state.alphas)), {}

    def eval_alphas(self, space, state, arch) -> Any:
        """The α the supernet is evaluated with on search-val after deriving `arch`: the learnt α."""
        return state.alphas
