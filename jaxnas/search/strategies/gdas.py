"""GDAS (Dong & Yang, 2019): one op per edge, drawn from the Gumbel-softmax of α each pass.

The temperature falls linearly per epoch from `strategy.tau_max` to `strategy.tau_min` (10 → 0.1 in the
paper). Each step draws two samples: one for the α step's passes (shared by every loss evaluation
of the estimator, so finite differences and unrolled steps see one architecture) and one for the
weight step. Keys are `fold_in(state.rng, step)`, so a resumed run draws what an uninterrupted one
draws, and every device draws the same architecture.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxnas.search.strategies.base import Strategy


def tau_schedule(tau_max: float, tau_min: float, epochs: int, steps_per_epoch: int):
    """τ(step): linear in the epoch from tau_max (first epoch) to tau_min (last epoch)."""

    def tau(step):
        epoch = jnp.minimum(step // steps_per_epoch, epochs - 1)
        return tau_max - (tau_max - tau_min) * epoch / max(epochs - 1, 1)

    return tau


@dataclasses.dataclass(frozen=True)
class GdasStrategy(Strategy):
    def check_options(self, config):
        tau_max, tau_min = config.strategy.tau_max, config.strategy.tau_min
        if not 0 < tau_min <= tau_max:
            return f"need 0 < strategy.tau_min <= strategy.tau_max, got {tau_min} and {tau_max}"
        return None

    def space_options(self, config):
        return {"mixing": "gumbel"}

    def forward_options(self, config, steps_per_epoch):
        tau = tau_schedule(config.strategy.tau_max, config.strategy.tau_min, config.epochs, steps_per_epoch)

        def options(state):
            alpha_key, weight_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
            t = tau(state.step)
            return {"rngs": {"gumbel": alpha_key}, "tau": t}, {"rngs": {"gumbel": weight_key}, "tau": t}

        return options


# Search-val scores the derived (argmax) path with batch statistics (`eval_train_mode`), as for the
# sampling strategies: BN's running statistics average over every path drawn so far, and the
# authors' code never evaluates with them during the search (its reported search accuracy is of the
# Gumbel draws, in training mode).
GDAS = GdasStrategy("gdas", spaces=("darts", "nb201"), studiable=False, eval_train_mode=True,
                    options=(("tau_max", 10.0), ("tau_min", 0.1)))  # its loss is a random draw per pass
