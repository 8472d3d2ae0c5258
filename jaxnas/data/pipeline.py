"""TFDS image-classification data for search and training, as host-side numpy batches.

A split is read once through TFDS's random-access data source (`array_record`, no TensorFlow
needed for `Tensor` features) into memory; every batch is then a pure function of
(seed, epoch, step, process): the epoch's permutation comes from the seed, each process takes its
own slice of every global batch, and augmentation draws from a generator seeded by the same
numbers. That is what makes a resumed run replay exactly the batches an uninterrupted one sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import itertools
import logging as std_logging
import os
import shutil
from typing import Any

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from tensorflow_datasets.core.utils import tqdm_utils

from jaxnas.data import cifar
from jaxnas.data import digits as _digits  # noqa: F401  (registers the offline `digits` builder)
from jaxnas.data.errors import DataError
from jaxnas.parallel import barrier

OFFLINE = ("digits",)


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """One split in memory: uint8 images (N, H, W, C) and int32 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, start: int, stop: int | None = None) -> ImageSet:
        return ImageSet(self.images[start:stop], self.labels[start:stop], self.num_classes)


@contextlib.contextmanager
def quiet_tfds():
    """TFDS's banners ("Downloading and preparing dataset Unknown size ..."), progress bars and
    warnings about folders it is about to create, hidden: nothing is downloaded for the offline
    sets, and jaxnas says in one line what it prepares. At a debug verbosity (`--verbosity=1`) TFDS
    speaks as usual."""
    if logging.level_debug():
        yield
        return
    absl_logger = std_logging.getLogger("absl")
    absl_logger.addFilter(_drop_tfds)
    bars = tqdm_utils._active  # noqa: SLF001  (TFDS keeps its progress-bar switch there; restored below)
    tfds.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints its banners (termcolor) to stdout
            yield
    finally:
        tfds.display_progress_bar(bars)
        absl_logger.removeFilter(_drop_tfds)


def _drop_tfds(record: std_logging.LogRecord) -> bool:
    """Keep every log record but TFDS's own below ERROR."""
    return "tensorflow_datasets" not in record.pathname or record.levelno >= std_logging.ERROR


def tfds_builder(name: str, data_dir: str | None):
    """The TFDS builder of `name`: jaxnas's own TensorFlow-free one for CIFAR-10/100, else TFDS's."""
    if name in cifar.BUILDERS:
        with quiet_tfds():
            return cifar.BUILDERS[name](data_dir=data_dir or None, file_format="array_record")
    try:
        with quiet_tfds():
            builder = tfds.builder(name, data_dir=data_dir or None, file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else "see tfds.list_builders()"
        raise DataError(f"unknown data set {name!r}; offline: {', '.join(OFFLINE)}; any TFDS "
                        f"image-classification set by name ({hint})") from None
    keys = builder.info.supervised_keys
    if not keys or keys[0] != "image" or "label" not in builder.info.features:
        raise DataError(f"data set {name!r} is not an image classification set (it needs 'image' and 'label' "
                        f"features); offline: {', '.join(OFFLINE)}")
    return builder


def check_dataset(name: str, data_dir: str | None = None) -> None:
    """Fail fast (no download, no reading) if `name` is not a usable TFDS image-classification set."""
    tfds_builder(name, data_dir)


def image_shape_and_classes(name: str, data_dir: str | None = None) -> tuple[tuple[int, ...], int]:
    """The image shape and number of classes, from TFDS metadata only (nothing is downloaded)."""
    info = tfds_builder(name, data_dir).info
    return tuple(info.features["image"].shape), int(info.features["label"].num_classes)


_barriers = itertools.count()


def prepared_builder(name: str, data_dir: str | None = None, download: bool = True):
    """The TFDS builder of `name`, prepared (downloaded and converted) if it was not yet.

    With several processes, process 0 prepares first (a data_dir shared by all hosts is prepared
    once) while the others wait; hosts with their own disks then prepare their own copy. Every
    process calls this the same number of times, so the barrier names agree.
    """
    builder = tfds_builder(name, data_dir)
    if jax.process_index() == 0 and not _is_prepared(builder):
        _prepare(builder, name, download)
    if jax.process_count() > 1:
        barrier(f"jaxnas_prepare_{name}_{next(_barriers)}")
        builder = tfds_builder(name, data_dir)  # re-read: the metadata now lists the prepared splits
        if not _is_prepared(builder):
            _prepare(builder, name, download)
    return builder


def _is_prepared(builder) -> bool:
    with quiet_tfds():  # it warns about the folder it has not yet made
        return builder.is_prepared()


def load_split(name: str, split: str, data_dir: str | None = None, download: bool = True) -> ImageSet:
    """Read `split` of the TFDS data set `name` into memory (preparing it first if needed)."""
    builder = prepared_builder(name, data_dir, download)
    source = builder.as_data_source(split=split)
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(ex["image"], np.uint8) for ex in examples])
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray([ex["label"] for ex in examples], np.int32)
    return ImageSet(images, labels, int(builder.info.features["label"].num_classes))


def _missing_folders(path: str) -> list[str]:
    """`path` and its ancestors that do not exist yet, outermost first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing[::-1]


def _remove_if_empty(folder: str) -> None:
    """Remove `folder` if it holds folders only (what a failed preparation leaves), else leave it."""
    if os.path.isdir(folder) and not any(files for _, _, files in os.walk(folder)):
        shutil.rmtree(folder)


def _prepare(builder, name: str, download: bool) -> None:
    if not download:
        raise DataError(f"data set {name!r} is not prepared in {builder.data_dir} and downloads are off")
    root = os.path.dirname(os.path.dirname(builder.data_dir))  # <data_dir>/<name>/<version>
    created = _missing_folders(builder.data_dir) + _missing_folders(os.path.join(root, "downloads"))
    logging.info("preparing %s in %s (once)", name, builder.data_dir)
    try:
        with quiet_tfds():
            builder.download_and_prepare()
    except Exception as e:  # network, missing TensorFlow for Image features, disk: say which set failed
        for folder in created:  # a failed preparation leaves no empty folders behind
            _remove_if_empty(folder)
        if isinstance(e, DataError):
            raise
        raise DataError(f"could not prepare data set {name!r} in {builder.data_dir}: "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images, on the 0..1 scale."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-3).astype(np.float32)


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


def augment_params(rng: np.random.Generator, n: int, crop_padding: int, flip: bool):
    """Random crop offsets (dy, dx) in [0, 2·crop_padding] and mirror flags for n images."""
    dy, dx = rng.integers(0, 2 * crop_padding + 1, size=(2, n))
    mirror = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    return dy, dx, mirror


def apply_augment(images: np.ndarray, dy, dx, mirror, crop_padding: int) -> np.ndarray:
    """Crop each zero-padded image at its offset, then mirror the flagged ones horizontally."""
    n, h, w, _ = images.shape
    out = images
    if crop_padding:
        p = crop_padding
        padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
        out = np.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    return np.where(np.asarray(mirror)[:, None, None, None], out[:, :, ::-1], out)


def augment(images: np.ndarray, rng: np.random.Generator, crop_padding: int, flip: bool) -> np.ndarray:
    """Random crop after zero padding by `crop_padding` pixels, and a random horizontal flip."""
    return apply_augment(images, *augment_params(rng, len(images), crop_padding, flip), crop_padding)


def apply_cutout(images: np.ndarray, cy, cx, size: int) -> np.ndarray:
    """Zero a `size`x`size` square centred at (cy, cx) in each image, clipped at the borders
    (DeVries & Taylor 2017, as the DARTS code applies it: after normalisation)."""
    n, h, w = images.shape[:3]
    ys, xs = np.arange(h)[None, :], np.arange(w)[None, :]
    half = size // 2
    rows = (ys >= (np.asarray(cy) - half)[:, None]) & (ys < (np.asarray(cy) + size - half)[:, None])
    cols = (xs >= (np.asarray(cx) - half)[:, None]) & (xs < (np.asarray(cx) + size - half)[:, None])
    hole = rows[:, :, None] & cols[:, None, :]
    return np.where(hole[..., None], 0, images).astype(images.dtype)


def epoch_permutation(n: int, seed: int, epoch: int, stream: int = 0) -> np.ndarray:
    """The order of the examples in `epoch`: a function of (seed, stream, epoch) only."""
    return np.random.default_rng([seed, stream, epoch]).permutation(n)


def wrap_step(epoch: int, step: int, steps_per_epoch: int) -> tuple[int, int]:
    """(epoch, step) with `step` wrapped around the epoch (a step past the end is in the next one)."""
    return epoch + step // steps_per_epoch, step % steps_per_epoch


def process_slice(order: np.ndarray, step: int, batch_size: int, process_index: int,
                  process_count: int) -> np.ndarray:
    """This process's contiguous part of global batch `step` of an epoch in `order`."""
    local = batch_size // process_count
    start = step * batch_size + process_index * local
    return order[start:start + local]


class EpochBatches:
    """What the batchers share: each epoch is `len(data) // batch_size` full global batches."""

    data: Any
    batch_size: int

    @property
    def steps_per_epoch(self) -> int:
        return len(self.data) // self.batch_size


@dataclasses.dataclass(frozen=True)
class Batcher(EpochBatches):
    """Global batches of one split, each process holding its own contiguous slice.

    `batch(epoch, step)` is deterministic, so resuming at (epoch, step) replays the same data.
    `stream` separates independent orders over different splits (search-train vs search-val).
    """

    data: ImageSet
    batch_size: int  # global, over all processes
    seed: int
    mean: np.ndarray
    std: np.ndarray
    stream: int = 0
    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0
    process_index: int = 0
    process_count: int = 1

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """This process's slice of global batch `step` of `epoch` (`step` wraps around the epoch)."""
        epoch, step = wrap_step(epoch, step, self.steps_per_epoch)
        order = epoch_permutation(len(self.data), self.seed, epoch, self.stream)
        idx = process_slice(order, step, self.batch_size, self.process_index, self.process_count)
        local = len(idx)
        images = self.data.images[idx]
        # Random numbers are drawn for the whole global batch, then sliced: the same batch on any
        # number of hosts.
        rng = np.random.default_rng([self.seed, self.stream, epoch, step, 1])
        mine = slice(self.process_index * local, (self.process_index + 1) * local)
        if self.crop_padding or self.flip:
            params = augment_params(rng, self.batch_size, self.crop_padding, self.flip)
            images = apply_augment(images, *(p[mine] for p in params), self.crop_padding)
        x = normalize(images, self.mean, self.std)
        if self.cutout:
            h, w = x.shape[1:3]
            cy, cx = rng.integers(0, h, self.batch_size), rng.integers(0, w, self.batch_size)
            x = apply_cutout(x, cy[mine], cx[mine], self.cutout)
        return x, self.data.labels[idx]


def eval_batches(data: ImageSet, batch_size: int, mean: np.ndarray, std: np.ndarray, process_index: int = 0,
                 process_count: int = 1):
    """The whole split in order, in global batches padded to full size: yields this process's
    (images, labels, mask) slices; `mask` is 0 on padding so sums count every example once."""
    local = batch_size // process_count
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, start + batch_size)[process_index * local:(process_index + 1) * local]
        mask = (idx < len(data)).astype(np.float32)
        idx = np.minimum(idx, len(data) - 1)
        yield normalize(data.images[idx], mean, std), data.labels[idx], mask
