"""The bilevel search step: an α update from a hypergradient estimator, then a weight update.

The step is written for one device's shard of the batch; `jaxnas.parallel.data_parallel` wraps
it once. Gradients are averaged across devices where they are taken (inside the estimators too),
and BN statistics are synchronised through the network's `axis_name`, so N devices compute what
one device computes on the global batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxnas.parallel import cross_device_mean
from jaxnas.search import hypergrad
from jaxnas.search.state import SearchOptimizers, SearchState
from jaxnas.tasks.image import ImageClassification, classification_loss


def all_finite(*trees) -> jax.Array:
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf)) for t in trees for leaf in jax.tree.leaves(t)]))


supernet_loss = classification_loss  # the image task's loss (the sampling strategies' own steps use it)


def init_state(net: nn.Module, alphas: Any, sample_x: jax.Array | tuple, rng: jax.Array, weight_opt, alpha_opt,
               net_alphas: Any = None, carry: Any = None) -> SearchState:
    """The first state; `net_alphas` (default `alphas`) is what the supernet is initialised with
    when the strategy's α is not the supernet's input (ENAS's controller). `sample_x` is the
    supernet's input, or the tuple of its inputs before α (a language model's tokens and hidden
    state); `carry` what the task carries from step to step."""
    init_rng, rng = jax.random.split(rng)
    inputs = sample_x if isinstance(sample_x, tuple) else (sample_x,)
    variables = net.init(init_rng, *inputs, alphas if net_alphas is None else net_alphas, train=False)
    params = variables["params"]
    return SearchState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        alphas=alphas,
        weight_opt_state=weight_opt.init(params),
        alpha_opt_state=alpha_opt.init(alphas),
        rng=rng,
        nonfinite_steps=jnp.zeros((), jnp.int32),
        carry=carry,
    )


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """What a search step adds to the estimator and the optimizers.

    `alpha_penalty(α)`, a term of the α objective that does not depend on the weights (e.g.
    λ·E_α[cost]), adds its exact gradient to the estimator's. `forward_options(state) -> (α-step
    kwargs, weight-step kwargs)` gives the supernet's per-step inputs (a strategy's rngs and
    temperature). For the first `alpha_warmup_steps` steps α and its optimizer state stay as they
    are (the hypergradient is still computed and logged). With `axis_name`, gradients are averaged
    across the devices of that axis. `task` supplies the loss, what is carried from step to step
    (it is attached to the batches) and the step metrics.
    """

    axis_name: str | None = None
    alpha_penalty: Callable | None = None
    forward_options: Callable | None = None
    alpha_warmup_steps: int = 0
    task: Any = ImageClassification()  # loss, carried state and step metrics (`jaxnas.tasks`)


def make_search_step(net: nn.Module, estimate: Callable[..., hypergrad.Estimate], optimizers: SearchOptimizers,
                     options: StepOptions = StepOptions()) -> Callable:
    """step(state, train_batches, val_batch) -> (state, metrics): an α step on `estimate`'s
    hypergradient (e.g. `hypergrad.get_estimator("unrolled", steps=1)`; it steps through
    `optimizers.inner` and gets `xi` = the current weight learning rate), then a weight step.

    `train_batches` is a tuple of (x, y) batches: the first trains the weights; `unrolled(k)`
    unrolls through the first k.
    """
    schedule, inner, weight_opt, alpha_opt = (optimizers.schedule, optimizers.inner, optimizers.weight,
                                              optimizers.alpha)
    axis_name, alpha_penalty = options.axis_name, options.alpha_penalty
    forward_options, alpha_warmup_steps, task = options.forward_options, options.alpha_warmup_steps, options.task

    def mean(x):
        return cross_device_mean(x, axis_name)

    def step(state: SearchState, train_batches: Sequence, val_batch) -> tuple[SearchState, dict]:
        alpha_forward, weight_forward, train_batches, val_batch = step_inputs(task, state, train_batches, val_batch,
                                                                              forward_options, axis_name)
        loss_fn = alpha_step_loss(task, net, state.batch_stats, alpha_forward)  # L_val, L_train of the α step
        lr = schedule(state.step - state.nonfinite_steps)  # the number of weight updates made so far
        d_alpha, est = estimate(
            loss_fn, state.params, state.alphas, inner, state.inner_opt_state, tuple(train_batches), val_batch,
            xi=lr, axis_name=axis_name,
        )
        if alpha_penalty is not None:
            d_alpha = jax.tree.map(jnp.add, d_alpha, jax.grad(alpha_penalty)(state.alphas))
        a_updates, alpha_opt_state = alpha_opt.update(d_alpha, state.alpha_opt_state, state.alphas)
        alphas = optax.apply_updates(state.alphas, a_updates)
        if alpha_warmup_steps:
            frozen = state.step < alpha_warmup_steps
            alphas, alpha_opt_state = jax.tree.map(lambda o, n: jnp.where(frozen, o, n),
                                                   (state.alphas, state.alpha_opt_state), (alphas, alpha_opt_state))

        batch = train_batches[0]
        weight_loss = task.loss(net, state.batch_stats, **weight_forward)
        (loss, (outputs, batch_stats)), g = jax.value_and_grad(weight_loss, has_aux=True)(state.params, alphas, batch)
        loss, g = mean(loss), mean(g)
        w_updates, weight_opt_state = weight_opt.update(g, state.weight_opt_state, state.params)
        w_updates = scale_updates(task, batch, w_updates)
        params = optax.apply_updates(state.params, w_updates)
        carry = task.carry_after(state.carry, outputs, lambda: loss_fn(state.params, state.alphas, val_batch)[1][0],
                                 axis_name)

        ok = jnp.isfinite(loss) & jnp.isfinite(est["val_loss"]) & all_finite(d_alpha, g)
        new = state.replace(
            params=params, batch_stats=batch_stats, alphas=alphas,
            weight_opt_state=weight_opt_state, alpha_opt_state=alpha_opt_state, carry=carry,
        )
        # A non-finite step changes nothing but the counters; the caller decides when to stop.
        new = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
        new = new.replace(step=state.step + 1, nonfinite_steps=state.nonfinite_steps + (~ok).astype(jnp.int32))
        metrics = {
            "train_loss": loss,
            **task.metrics(outputs, batch, mean),
            "val_loss": est["val_loss"],
            "hypergrad_norm": est["hypergrad_norm"],
            "lr": lr,
            "finite": ok,
        }
        return new, metrics

    return step


def step_inputs(task: Any, state: SearchState, train_batches: Sequence, val_batch: Any,
                forward_options: Callable | None = None, axis_name: str | None = None) -> tuple[dict, dict, tuple, Any]:
    """(α-step apply options, weight-step apply options, train batches, val batch) of the step from
    `state`: the strategy's per-step inputs with the task's rngs added (one key for every pass of
    the α step, another for the weight step) and the batches with the task's carried state
    attached. One function, so the hypergradient study evaluates its estimators on exactly the
    losses the search step differentiates (same batches, hidden state and dropout masks)."""
    alpha_forward, weight_forward = forward_options(state) if forward_options is not None else ({}, {})
    alpha_forward, weight_forward = _with_task_rngs(task, state, alpha_forward, weight_forward)
    train_batches = tuple(task.attach(state.carry, b, axis_name) for b in train_batches)
    val_batch = task.attach(state.carry, val_batch, axis_name, stream="val")
    return alpha_forward, weight_forward, train_batches, val_batch


def alpha_step_loss(task: Any, net: nn.Module, batch_stats: Any, alpha_forward: dict) -> Callable:
    """L_val and L_train of the α step (what the estimators differentiate): the task's loss without
    its weight-step regulariser (a language model's TAR), with the α step's apply options."""
    return task.loss(net, batch_stats, regularised=False, **alpha_forward)


def with_task_rngs(task, forward: dict, key: jax.Array) -> dict:
    """`forward` (supernet apply options) with the task's own random streams from `key` added to
    its rngs (a language model's dropout; images add none, and `forward` comes back as it was)."""
    extra = task.rngs(key)
    return {**forward, "rngs": {**(forward.get("rngs") or {}), **extra}} if extra else forward


def scale_updates(task, batch, updates):
    """The weight updates scaled as the task says for `batch` (a language model's shorter window: a
    smaller step), or unchanged."""
    scale = task.update_scale(batch)
    return updates if scale is None else jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)


def _with_task_rngs(task, state: SearchState, alpha_forward: dict, weight_forward: dict) -> tuple[dict, dict]:
    """One key for every pass of the α step, another for the weight step."""
    alpha_key, weight_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
    return with_task_rngs(task, alpha_forward, alpha_key), with_task_rngs(task, weight_forward, weight_key)
