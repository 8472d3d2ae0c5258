"""Search strategies: how the supernet mixes ops and what a step draws, on one shared engine.

Every strategy runs through the same loop, step, estimators, checkpoints and outputs; it only
adds options to the search space (`space_options`) and per-step inputs of the supernet
(`forward_options`). `--config.strategy=<name>` picks one.
"""

from __future__ import annotations

from jaxnas.search.strategies.base import Strategy
from jaxnas.search.strategies.darts import DARTS
from jaxnas.search.strategies.gdas import GDAS
from jaxnas.search.strategies.pcdarts import PCDARTS

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (DARTS, GDAS, PCDARTS)}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
