"""Search strategies: how the supernet mixes ops and what a step draws, on one shared engine.

Every strategy runs through the same loop, checkpoints and outputs. The gradient strategies
(darts, gdas, pcdarts) share the bilevel step and its estimators; they only add options to the
search space (`space_options`) and per-step inputs of the supernet (`forward_options`). The
sampling strategies (random_ws, enas, pnas; `strategies.sampled`) bring their own step and
derivation. `--config.strategy.name=<name>` picks one; its options are the rest of the
`strategy` block (`Strategy.options`).
"""

from __future__ import annotations

from jaxnas.search.strategies.base import Strategy
from jaxnas.search.strategies.darts import DARTS
from jaxnas.search.strategies.darts_pt import DARTS_PT
from jaxnas.search.strategies.enas import ENAS
from jaxnas.search.strategies.gdas import GDAS
from jaxnas.search.strategies.pcdarts import PCDARTS
from jaxnas.search.strategies.pnas import PNAS
from jaxnas.search.strategies.random_ws import RANDOM_WS
from jaxnas.search.strategies.sampled import make_sampled_step  # noqa: F401  (the run's scratch evaluator)

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (DARTS, DARTS_PT, GDAS, PCDARTS, RANDOM_WS, ENAS, PNAS)}
# name -> {option: default}: what a config's `strategy` block may hold besides its name
STRATEGY_OPTIONS = {name: dict(s.options) for name, s in STRATEGIES.items()}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
