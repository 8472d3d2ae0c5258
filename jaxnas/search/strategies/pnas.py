"""PNAS (Liu et al., 2018) on a one-shot supernet: progressive cell search ranked by a surrogate.

The supernet's weights train as in random search with weight sharing (one uniformly drawn cell
per step). At each epoch's end `jaxnas.search.strategies.pnas_surrogate.progressive_search` grows a cell one block at
a time (beam `strategy.beam`), evaluating candidates either with the shared weights (`strategy.evaluator
= 'inherited'`, the fast default) or after `strategy.scratch_steps` steps of training from freshly
initialised weights (`'scratch'`). As in PNAS the normal and the reduction cell are the same cell.
The surrogate's rank correlation with the true scores is logged per stage.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxnas.search.strategies import pnas_surrogate as pnas
from jaxnas.search.strategies.sampled import DeriveContext, SampledStrategy, derive_key

EVALUATORS = ("inherited", "scratch")


def _stack(paths: list[dict]) -> dict:
    return {k: np.stack([p[k] for p in paths]) for k in paths[0]}


@dataclasses.dataclass(frozen=True)
class PnasStrategy(SampledStrategy):
    def check_options(self, config):
        if config.strategy.evaluator not in EVALUATORS:
            return f"unknown strategy.evaluator {config.strategy.evaluator!r}; valid: {', '.join(EVALUATORS)}"
        if config.strategy.beam < 1 or config.strategy.scratch_steps < 1:
            return f"strategy.beam and strategy.scratch_steps must be positive, got {config.strategy.beam}, " \
                   f"{config.strategy.scratch_steps}"
        return None

    def derive(self, config, space, state, context: DeriveContext, epoch: int):
        def evaluate(cells):
            paths = [pnas.cell_path(c) for c in cells]
            if config.strategy.evaluator == "inherited":
                return context.score(state, _stack(paths))
            return np.concatenate([context.score(context.train_fresh(p, config.strategy.scratch_steps), _stack([p]))
                                   for p in paths])

        evaluations = []
        cell, score, stages = pnas.progressive_search(lambda cells: evaluations.append(len(cells)) or evaluate(cells),
                                                      derive_key(config, epoch), beam=config.strategy.beam)
        info = {"candidates": sum(evaluations), "candidate_acc_best": score,
                "pnas_spearman": [s.spearman for s in stages[1:]]}
        return space.arch_from_decisions(pnas.cell_decisions(cell)), info


PNAS = PnasStrategy("pnas", spaces=("darts",), options=(
    ("beam", 8),  # cells kept (and evaluated) per stage (PNAS: 256)
    ("evaluator", "inherited"),  # "inherited" (shared weights) or "scratch" (short training)
    ("scratch_steps", 20),  # scratch evaluator: training steps per candidate
))

