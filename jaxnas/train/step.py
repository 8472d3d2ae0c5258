"""The training step for a discrete network: SGD with momentum on cross-entropy (+ auxiliary head,
label smoothing), drop path at a rate passed in per call, optional bfloat16 compute.

Written for one device's shard; `jaxnas.parallel.data_parallel` maps it over the mesh, and the
gradients and BN statistics are averaged over the `data` axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxnas.nn.precision import cast_floating
from jaxnas.parallel import cross_device_mean
from jaxnas.search.step import all_finite


class TrainState(flax.struct.PyTreeNode):
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array
    nonfinite_steps: jax.Array


def lr_schedule(lr: float, kind: str, epochs: int, steps_per_epoch: int, decay: float = 0.97) -> Callable:
    """Per-epoch schedules of the DARTS evaluation code: cosine to 0 (CIFAR) or lr·decay^epoch (ImageNet)."""

    def schedule(count):
        epoch = jnp.floor(count / steps_per_epoch)
        if kind == "cosine":
            return 0.5 * lr * (1 + jnp.cos(math.pi * jnp.minimum(epoch, epochs) / epochs))
        return lr * decay**epoch

    return schedule


def optimizer(schedule: Callable, momentum: float, weight_decay: float, clip_norm: float):
    """Clip the gradient norm, add weight decay to the gradient, SGD with momentum (PyTorch's SGD)."""
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.add_decayed_weights(weight_decay),
                       optax.sgd(schedule, momentum=momentum))


def init_state(net: nn.Module, sample_x: jax.Array, rng: jax.Array, opt) -> TrainState:
    init_rng, rng = jax.random.split(rng)
    variables = net.init(init_rng, sample_x, train=False)
    return TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                      batch_stats=variables.get("batch_stats", {}), opt_state=opt.init(variables["params"]), rng=rng,
                      nonfinite_steps=jnp.zeros((), jnp.int32))


def _cross_entropy(logits, labels, num_classes: int, smoothing: float):
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing) if smoothing else \
        jax.nn.one_hot(labels, num_classes)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


def make_train_step(net: nn.Module, opt, num_classes: int, auxiliary_weight: float = 0.0,
                    label_smoothing: float = 0.0, compute_dtype=jnp.float32, axis_name: str | None = None):
    """step(state, (x, y), drop_rate) -> (state, {train_loss, train_acc, finite})."""

    def step(state: TrainState, batch, drop_rate):
        x, y = batch
        rng, drop_rng = jax.random.split(state.rng)
        if axis_name is not None:  # a different drop-path mask on every device
            drop_rng = jax.random.fold_in(drop_rng, jax.lax.axis_index(axis_name))

        def loss_fn(params):
            (logits, aux), upd = net.apply(
                {"params": cast_floating(params, compute_dtype), "batch_stats": state.batch_stats},
                x.astype(compute_dtype), train=True, drop_rate=drop_rate, mutable=["batch_stats"],
                rngs={"dropout": drop_rng})
            loss = _cross_entropy(logits, y, num_classes, label_smoothing)
            if auxiliary_weight and aux is not None:
                loss = loss + auxiliary_weight * _cross_entropy(aux, y, num_classes, label_smoothing)
            return loss, (logits, cast_floating(upd["batch_stats"], jnp.float32))

        (loss, (logits, batch_stats)), g = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        loss, g = cross_device_mean(loss, axis_name), cross_device_mean(g, axis_name)
        updates, opt_state = opt.update(g, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & all_finite(g)
        new = state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state)
        new = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
        new = new.replace(step=state.step + 1, rng=rng, nonfinite_steps=state.nonfinite_steps + (~ok).astype(jnp.int32))
        acc = cross_device_mean(jnp.mean(jnp.argmax(logits, -1) == y), axis_name)
        return new, {"train_loss": loss, "train_acc": acc, "finite": ok}

    return step


def make_eval_totals(net: nn.Module, num_classes: int, compute_dtype=jnp.float32, axis_name: str | None = None):
    """totals(state, x, y, mask) -> [Σ loss, Σ correct, Σ count] over the batch (summed over devices)."""

    def totals(state: TrainState, x, y, mask):
        logits, _ = net.apply({"params": cast_floating(state.params, compute_dtype), "batch_stats": state.batch_stats},
                              x.astype(compute_dtype), train=False)
        logits = logits.astype(jnp.float32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
        out = jnp.stack([(ce * mask).sum(), (correct * mask).sum(), mask.sum()])
        return jax.lax.psum(out, axis_name) if axis_name is not None else out

    return totals
