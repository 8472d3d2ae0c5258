"""SearchState: everything a search step reads and writes, as one pytree (so it jits, shards and
checkpoints as a unit), and the optimizers that DARTS uses, built from optax transformations."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class SearchState(flax.struct.PyTreeNode):
    step: jax.Array
    params: Any
    batch_stats: Any
    alphas: Any
    weight_opt_state: Any
    alpha_opt_state: Any
    rng: jax.Array
    nonfinite_steps: jax.Array  # how many steps were skipped for a non-finite loss or gradient
    carry: Any = None  # what the task carries from step to step (a language model's hidden states)

    @property
    def inner_opt_state(self) -> Any:
        """The state of the inner optimizer (`weight_optimizer` without its clipping), which the
        second-order estimators step through."""
        return inner_state(self.weight_opt_state)


def cosine_lr(lr: float, lr_min: float, epochs: int, steps_per_epoch: int, per_step: bool = False) -> Callable:
    """DARTS's CosineAnnealingLR(epochs, eta_min), stepped per epoch (or per step if `per_step`)."""

    def schedule(count):
        epoch = count / steps_per_epoch if per_step else jnp.floor(count / steps_per_epoch)
        return lr_min + 0.5 * (lr - lr_min) * (1 + jnp.cos(math.pi * jnp.minimum(epoch, epochs) / epochs))

    return schedule


def inner_optimizer(schedule, momentum: float = 0.9, weight_decay: float = 3e-4) -> optax.GradientTransformation:
    """The weight update that second-order estimators differentiate: weight decay added to the
    gradient, then SGD with momentum (PyTorch's SGD), without clipping — as in DARTS."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(schedule, momentum=momentum))


def weight_optimizer(schedule, momentum: float = 0.9, weight_decay: float = 3e-4, clip_norm: float = 5.0):
    """Gradient-norm clipping, then the inner optimizer (`inner_state` reads its state)."""
    return optax.chain(optax.clip_by_global_norm(clip_norm), inner_optimizer(schedule, momentum, weight_decay))


def alpha_optimizer(lr: float = 3e-4, b1: float = 0.5, b2: float = 0.999, weight_decay: float = 1e-3):
    """Adam with weight decay added to the gradient, as PyTorch's Adam does (not AdamW)."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(lr, b1=b1, b2=b2, eps=1e-8))


def inner_state(weight_opt_state: Any) -> Any:
    """The inner optimizer's part of a `weight_optimizer` state."""
    return weight_opt_state[1]


@dataclasses.dataclass(frozen=True)
class SearchOptimizers:
    """The optimizers of a bilevel search: `weight` steps the weights (clipping included), `inner` is
    the part of it the second-order estimators step through, `alpha` steps α; `schedule` is the
    weight learning rate per step (the estimators' `xi`)."""

    schedule: Callable
    inner: optax.GradientTransformation
    weight: optax.GradientTransformation
    alpha: optax.GradientTransformation


def search_optimizers(config: Any, schedule: Callable) -> SearchOptimizers:
    """DARTS's optimizers with a search config's settings (SGD with momentum and clipping for the
    weights, Adam for α)."""
    return SearchOptimizers(
        schedule=schedule, inner=inner_optimizer(schedule, config.momentum, config.weight_decay),
        weight=weight_optimizer(schedule, config.momentum, config.weight_decay, config.clip_norm),
        alpha=alpha_optimizer(config.alpha_lr, config.alpha_b1, config.alpha_b2, config.alpha_weight_decay))
