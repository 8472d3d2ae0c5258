"""What the sampling strategies (random search with weight sharing, ENAS, PNAS) share.

The supernet runs one architecture per pass (`mixing='path'`: only the chosen ops are
computed). Each step draws an architecture, trains the shared weights on it for one batch, and
lets the strategy update its own parameters (ENAS's controller) on the search-val batch. The
genotype is derived by scoring candidate architectures with the shared weights on one batch of
search-val (`score`: accuracy, BN in training mode, since the running statistics mix every
architecture the supernet trained). What the run saves as α (`alphas/*.npz`, the plots, the α
entropy) is the log of how often the strategy's sampler puts each op on each edge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxnas.parallel import cross_device_mean
from jaxnas.search.state import SearchOptimizers, SearchState, search_optimizers
from jaxnas.search.step import all_finite, scale_updates, with_task_rngs
from jaxnas.search.strategies.base import DeriveContext, Score, Strategy
from jaxnas.spaces.decisions import sample_uniform
from jaxnas.tasks.image import ImageClassification

FREQUENCY_SAMPLES = 512  # architectures drawn to estimate the sampler's per-edge op frequencies
_DRAW_MANY: dict = {}


def derive_key(config: ml_collections.ConfigDict, epoch: int) -> jax.Array:
    """The candidates of an epoch's derivation depend only on (seed, epoch): a resumed run draws them again."""
    return jax.random.fold_in(jax.random.key(config.seed + 1), epoch)


def log_frequencies(space, values: jax.Array) -> dict[str, np.ndarray]:
    """log of the mean one-hot path of `values` (N, D): α-shaped logits whose softmax is the
    fraction of draws that put each op on each edge (floored at 1e-6)."""
    freq = jax.tree.map(lambda p: jnp.mean(p, axis=0), jax.vmap(space.path)(jnp.asarray(values)))
    return {k: np.log(np.maximum(np.asarray(v), 1e-6)) for k, v in freq.items()}


def best_of(space, score: Score, state, values: np.ndarray) -> tuple[np.ndarray, dict]:
    """The highest-scoring of the candidate architectures `values` (ties: the first)."""
    acc = np.asarray(score(state, jax.vmap(space.path)(jnp.asarray(values))))
    best = int(np.argmax(acc))
    return np.asarray(values[best]), {"candidates": len(values), "candidate_acc_best": float(acc[best]),
                                      "candidate_acc_mean": float(acc.mean())}


@dataclasses.dataclass(frozen=True)
class SampledStrategy(Strategy):
    """A strategy whose supernet runs one drawn architecture per step; by default drawn uniformly."""

    own_step: bool = True
    options: tuple = (("derive_samples", 64),)  # candidates scored with the shared weights at each epoch's end
    ignored_keys: tuple = ("estimator", "cost_weight", "alpha_warmup_epochs")
    studiable: bool = False
    eval_train_mode: bool = True
    needs_derive_context: bool = True

    def check_options(self, config):
        if config.strategy.get("derive_samples", 1) < 1:
            return f"strategy.derive_samples must be a positive integer, got {config.strategy.derive_samples!r}"
        return None

    def space_options(self, config):
        return {"mixing": "path"}

    def init_alphas(self, config, space, rng):
        """Random search learns no α: uniform logits, kept for the state's shape and never updated."""
        return jax.tree.map(jnp.zeros_like, space.init_alphas(rng))

    def draw(self, config, space) -> Callable[[Any, jax.Array], jax.Array]:
        """draw(α, key) -> (D,) decision values of the architecture a weight step trains."""
        decisions = space.decisions()
        return lambda alphas, key: sample_uniform(decisions, key)

    def alpha_update(self, config, space, net, axis_name, image_shape, optimizer, task=None):
        """update(params, batch_stats, α, α-optimizer state, key, val batch) -> (α, state, metrics),
        stepping `optimizer`, or None when the strategy has no parameters of its own; `task` scores
        an architecture (`Task.reward`)."""
        return None

    def draw_many(self, config, space) -> Callable[[Any, jax.Array], jax.Array]:
        """jit(vmap(draw)) over keys, built once per (strategy, space, config): every epoch end uses it."""
        cache_key = (self, space, config.to_json_best_effort(sort_keys=True))
        if cache_key not in _DRAW_MANY:
            _DRAW_MANY[cache_key] = jax.jit(jax.vmap(self.draw(config, space), in_axes=(None, 0)))
        return _DRAW_MANY[cache_key]

    def alpha_view(self, config, space, alphas) -> dict[str, np.ndarray]:
        values = self.draw_many(config, space)(alphas, jax.random.split(jax.random.key(0), FREQUENCY_SAMPLES))
        return log_frequencies(space, values)

    def derive(self, config, space, state, context: DeriveContext, epoch: int) -> tuple[Any, dict]:
        """The best of `strategy.derive_samples` drawn architectures, scored with the shared weights."""
        keys = jax.random.split(derive_key(config, epoch), config.strategy.derive_samples)
        values = np.asarray(self.draw_many(config, space)(state.alphas, keys))
        best, info = best_of(space, context.score, state, values)
        return space.arch_from_decisions(best), info

    def eval_alphas(self, space, state, arch):
        """The derived architecture's one-hot path: the supernet evaluates that one architecture."""
        return space.path(space.decisions_of(arch))

    def make_step(self, config, space, net, schedule, axis_name, image_shape, task=None):
        draw = self.draw(config, space)
        optimizers = search_optimizers(config, schedule)
        update = self.alpha_update(config, space, net, axis_name, image_shape, optimizers.alpha, task)
        step = make_sampled_step(net, optimizers, lambda alphas, key: space.path(draw(alphas, key)), update, axis_name,
                                 task)
        return step, optimizers.weight, optimizers.alpha


def make_sampled_step(net, optimizers: SearchOptimizers, draw_path, alpha_update, axis_name, task=None) -> Callable:
    """step(state, train_batches, val_batch): a weight step (`optimizers.weight`) on the path
    `draw_path(α, key)`, then the strategy's own update (if any) on the search-val batch; `task`
    (default: image classification) gives the loss, carried state and metrics."""
    schedule, weight_opt = optimizers.schedule, optimizers.weight
    task = task or ImageClassification()

    def mean(x):
        return cross_device_mean(x, axis_name)

    def step(state: SearchState, train_batches, val_batch):
        draw_key, alpha_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
        path = draw_path(state.alphas, draw_key)
        batch = task.attach(state.carry, train_batches[0], axis_name)
        val_batch = task.attach(state.carry, val_batch, axis_name, stream="val")
        loss_fn = task.loss(net, state.batch_stats, **with_task_rngs(task, {}, jax.random.fold_in(draw_key, 1)))
        (loss, (outputs, batch_stats)), g = jax.value_and_grad(loss_fn, has_aux=True)(state.params, path, batch)
        loss, g = mean(loss), mean(g)
        updates, weight_opt_state = weight_opt.update(g, state.weight_opt_state, state.params)
        updates = scale_updates(task, batch, updates)
        params = optax.apply_updates(state.params, updates)
        val_loss, (val_outputs, _) = loss_fn(params, path, val_batch)  # the same architecture, after the step
        val_loss = mean(val_loss)
        carry = task.carry_after(state.carry, outputs, lambda: val_outputs, axis_name)
        alphas, alpha_opt_state, extra = state.alphas, state.alpha_opt_state, {"hypergrad_norm": jnp.zeros(())}
        if alpha_update is not None:
            alphas, alpha_opt_state, extra = alpha_update(params, batch_stats, alphas, alpha_opt_state, alpha_key,
                                                          val_batch)
        ok = jnp.isfinite(loss) & jnp.isfinite(val_loss) & all_finite(g, alphas)
        new = state.replace(params=params, batch_stats=batch_stats, alphas=alphas, weight_opt_state=weight_opt_state,
                            alpha_opt_state=alpha_opt_state, carry=carry)
        new = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
        new = new.replace(step=state.step + 1, nonfinite_steps=state.nonfinite_steps + (~ok).astype(jnp.int32))
        metrics = {"train_loss": loss, **task.metrics(outputs, batch, mean), "val_loss": val_loss,
                   "lr": schedule(state.step - state.nonfinite_steps), "finite": ok, **extra}
        return new, metrics

    return step
