"""Image classification: what the image search spaces learn (DARTS, NAS-Bench-201, chain).

Batches are `(x, y)` (images NHWC, integer labels); the loss is the mean cross-entropy; nothing is
carried from step to step; search-val is scored by accuracy. The search-train and search-val
streams are the two parts of the data set's train split (`train_portion`), as in DARTS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxnas.data.pipeline import (
    Batcher,
    DataError,
    channel_stats,
    check_dataset,
    eval_batches,
    image_shape_and_classes,
    load_split,
)
from jaxnas.parallel import DATA_AXIS, cross_device_mean, data_parallel_sum, host_batch


@dataclasses.dataclass(frozen=True)
class SearchData:
    """The search's two data streams: search-train (weights) and search-val (α)."""

    train: Batcher
    val: Batcher
    val_set: Any
    steps_per_epoch: int
    num_classes: int
    image_shape: tuple
    mean: np.ndarray
    std: np.ndarray
    eval_batch_size: int = 256
    process_index: int = 0
    process_count: int = 1

    def eval_batches(self) -> Iterator[tuple]:
        """Search-val in order, in padded global batches: this process's (x, y, mask) slices."""
        return eval_batches(self.val_set, self.eval_batch_size, self.mean, self.std, self.process_index,
                            self.process_count)


def search_data(config: ml_collections.ConfigDict, pid: int = 0, pcount: int = 1) -> SearchData:
    """The train split, its first `train_portion` for the weights and the rest (search-val) for α."""
    full = load_split(config.dataset, "train", config.data_dir)
    n_train = int(len(full) * config.train_portion)
    search_train, search_val = full.take(0, n_train), full.take(n_train)
    mean, std = channel_stats(full.images)
    batcher = dict(batch_size=config.batch_size, seed=config.seed, mean=mean, std=std,
                   crop_padding=config.crop_padding, flip=config.flip, process_index=pid, process_count=pcount)
    train_data = Batcher(search_train, stream=0, **batcher)
    val_data = Batcher(search_val, stream=1, **batcher)
    spe = min(train_data.steps_per_epoch, val_data.steps_per_epoch)
    if spe < 1:
        raise DataError(f"batch_size {config.batch_size} is larger than the search-train/val splits "
                        f"({len(search_train)}/{len(search_val)} examples)")
    return SearchData(train_data, val_data, search_val, spe, full.num_classes, full.images.shape[1:], mean, std,
                      config.eval_batch_size, pid, pcount)


def classification_loss(net, batch_stats: Any, rngs: dict | None = None, **forward: Any) -> Callable:
    """loss_fn(w, α, (x, y)) -> (mean cross-entropy, (logits, new BN statistics)), in train mode.

    `rngs` and `forward` (e.g. GDAS's temperature) go to every pass of the supernet unchanged.
    """

    def loss_fn(w, a, batch):
        x, y = batch
        logits, upd = net.apply({"params": w, "batch_stats": batch_stats}, x, a, train=True, mutable=["batch_stats"],
                                rngs=rngs, **forward)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (logits, upd["batch_stats"])

    return loss_fn


@dataclasses.dataclass(frozen=True)
class ImageClassification:
    name: str = "image_classification"
    step_metrics: tuple[str, ...] = ("train_acc",)
    eval_metrics: tuple[str, ...] = ("val_loss", "val_acc")
    # The search-val metric that ranks runs: (record key, what tables call it, whether higher is better)
    ranking: tuple[str, str, bool] = ("val_acc", "search-val acc", True)

    def search_data(self, config, pid: int = 0, pcount: int = 1) -> SearchData:
        return search_data(config, pid, pcount)

    def check_data(self, config) -> None:
        check_dataset(config.dataset, config.data_dir)

    def random_batches(self, config, n: int, key: jax.Array) -> tuple[tuple, int, list]:
        """(image shape, classes, `n` random batches of the config's data set's shape): what a
        benchmark of the step needs, from the data set's metadata only."""
        shape, num_classes = image_shape_and_classes(config.dataset, config.data_dir)
        batches = [(jax.random.normal(k, (config.batch_size, *shape), jnp.float32),
                    jnp.arange(config.batch_size) % num_classes) for k in jax.random.split(key, n)]
        return tuple(shape), num_classes, batches

    def sample_inputs(self, config, image_shape) -> tuple:
        return (jnp.zeros((2, *image_shape), jnp.float32),)

    def init_carry(self, config) -> Any:
        return None  # nothing is carried from one batch to the next

    def loss(self, net, batch_stats, rngs: dict | None = None, regularised: bool = True, **forward) -> Callable:
        return classification_loss(net, batch_stats, rngs, **forward)  # no regulariser to leave out

    def rngs(self, key: jax.Array) -> dict:
        return {}

    def attach(self, carry: Any, batch: Any, axis_name=None, stream: str = "train") -> Any:
        return batch

    def carry_after(self, carry: Any, outputs: Any, val_pass: Callable, axis_name=None) -> Any:
        return carry  # (val_pass, the α step's valid forward, is not needed: nothing is traced for it)

    def update_scale(self, batch: Any) -> None:
        return None

    def score(self, net, variables: dict, path: Any, batch: Any, train_mode: bool) -> tuple[jax.Array, jax.Array]:
        """(correct, count) of one architecture (`path`) on a masked batch (x, y, mask): summed over
        the batch, the caller sums over devices; the score is their ratio, accuracy."""
        x, y, mask = batch[:3]
        logits = net.apply(variables, x, path, train=train_mode, mutable=["batch_stats"])[0]
        return jnp.sum((jnp.argmax(logits, -1) == y) * mask), mask.sum()

    def reward(self, net, variables: dict, path: Any, batch: Any, axis_name=None) -> jax.Array:
        """ENAS's reward of a sampled architecture on a search-val batch: accuracy (BN on the batch)."""
        x, y = batch[:2]
        logits = net.apply(variables, x, path, train=True, mutable=["batch_stats"])[0]
        return cross_device_mean(jnp.mean(jnp.argmax(logits, -1) == y), axis_name)

    def score_batch(self, data: SearchData) -> tuple:
        """The batch sampled architectures are scored on: the first of search-val."""
        return next(iter(data.eval_batches()))

    def metrics(self, outputs: Any, batch: Any, mean: Callable) -> dict:
        return {"train_acc": mean(jnp.mean(jnp.argmax(outputs, -1) == batch[1]))}

    def epoch_metrics(self, means: dict) -> dict:
        return {"train_loss": means["train_loss"], "train_acc": means["train_acc"]}

    def evaluator(self, net, mesh, train_mode: bool) -> Callable:
        """evaluate(state, α, data) -> {"val_loss", "val_acc"} of the supernet on all of search-val."""

        def eval_totals(state_and_alphas, x, y, mask):
            state, alphas = state_and_alphas
            variables = {"params": state.params, "batch_stats": state.batch_stats}
            logits = net.apply(variables, x, alphas, train=train_mode, mutable=["batch_stats"])[0]
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
            return jax.lax.psum(jnp.stack([(ce * mask).sum(), (correct * mask).sum(), mask.sum()]), DATA_AXIS)

        totals_fn = data_parallel_sum(eval_totals, mesh)

        def evaluate(state, alphas, data: SearchData) -> dict:
            totals = np.zeros(3)
            for batch in data.eval_batches():
                totals += np.asarray(jax.device_get(totals_fn((state, alphas), *host_batch(batch, mesh))), np.float64)
            return {"val_loss": totals[0] / totals[2], "val_acc": totals[1] / totals[2]}

        return evaluate

    def throughput(self, config) -> tuple[int, str]:
        return config.batch_size, "images"

    def headline(self, record: dict) -> str:
        return f"search-val acc {record['val_acc']:.4f}"

    def progress(self, record: dict) -> str:
        return (f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f} | search-val acc "
                f"{record['val_acc']:.4f}")
