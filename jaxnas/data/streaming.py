"""Large data sets with images of any size (ImageNet): read batch by batch from the TFDS data
source, never held in memory, and resized on the host to one square size.

Training uses the Inception-style random-resized crop (area 8–100 %, aspect ratio 3/4–4/3) and a
horizontal flip; evaluation resizes the shorter side to `resize` and takes the central square.
Batches are a pure function of (seed, epoch, step) as in `jaxnas.data.pipeline.Batcher`, each
process reading only its own rows; decoding and resizing run on a thread pool.
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from jaxnas.data.pipeline import (
    DataError,
    EpochBatches,
    epoch_permutation,
    normalize,
    prepared_builder,
    process_slice,
    wrap_step,
)

# The usual ImageNet statistics (0..1 scale), as the DARTS code and torchvision use them.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
_POOL = ThreadPoolExecutor(max_workers=8)


def random_resized_crop_box(rng: np.random.Generator, height: int, width: int, scale=(0.08, 1.0),
                            ratio=(3 / 4, 4 / 3), attempts: int = 10) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop covering `scale` of the area with aspect ratio in `ratio`;
    after `attempts` misses, the largest central crop within the ratio range."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a uint8 HxWxC image to `size` = (h, w)."""
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def train_transform(image: np.ndarray, rng: np.random.Generator, size: int, flip: bool) -> np.ndarray:
    top, left, h, w = random_resized_crop_box(rng, *image.shape[:2])
    out = _resize(np.ascontiguousarray(image[top:top + h, left:left + w]), (size, size))
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return out


def eval_transform(image: np.ndarray, size: int, resize: int) -> np.ndarray:
    """Resize the shorter side to `resize`, then the central `size` x `size` square."""
    h, w = image.shape[:2]
    s = resize / min(h, w)
    nh, nw = max(size, int(round(h * s))), max(size, int(round(w * s)))
    out = _resize(image, (nh, nw))
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[top:top + size, left:left + size]


def _rgb(image) -> np.ndarray:
    image = np.asarray(image, np.uint8)
    return np.repeat(image, 3, axis=-1) if image.ndim == 3 and image.shape[-1] == 1 else image


@dataclasses.dataclass(frozen=True)
class StreamingSplit:
    """One split as a random-access TFDS data source (nothing read until a batch asks for it)."""

    source: object
    num_classes: int

    def __len__(self) -> int:
        return len(self.source)

    def read(self, indices) -> list[dict]:
        return list(_POOL.map(lambda i: self.source[int(i)], indices))


def open_split(name: str, split: str, data_dir: str | None = None) -> StreamingSplit:
    builder = prepared_builder(name, data_dir)
    try:
        source = builder.as_data_source(split=split)
    except Exception as e:  # an unknown split name, most often
        raise DataError(f"cannot read split {split!r} of {name!r}: {str(e).splitlines()[0][:200]}") from e
    return StreamingSplit(source, int(builder.info.features["label"].num_classes))


@dataclasses.dataclass(frozen=True)
class StreamingBatcher(EpochBatches):
    """Global training batches of a streaming split; `batch(epoch, step)` is deterministic."""

    data: StreamingSplit
    batch_size: int
    seed: int
    image_size: int
    flip: bool = True
    process_index: int = 0
    process_count: int = 1

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, step = wrap_step(epoch, step, self.steps_per_epoch)
        idx = process_slice(epoch_permutation(len(self.data), self.seed, epoch), step, self.batch_size,
                            self.process_index, self.process_count)
        local = len(idx)
        # One generator per example, from (seed, epoch, global position): any host count, same batch.
        seeds = [[self.seed, epoch, step * self.batch_size + self.process_index * local + k, 2] for k in range(local)]
        examples = self.data.read(idx)
        images = list(_POOL.map(
            lambda a: train_transform(_rgb(a[0]["image"]), np.random.default_rng(a[1]), self.image_size, self.flip),
            zip(examples, seeds)))
        x = normalize(np.stack(images), IMAGENET_MEAN, IMAGENET_STD)
        return x, np.asarray([ex["label"] for ex in examples], np.int32)


def streaming_eval_batches(data: StreamingSplit, batch_size: int, image_size: int, resize: int,
                           process_index: int = 0, process_count: int = 1):
    """The whole split in order, padded to full global batches: yields (images, labels, mask)."""
    local = batch_size // process_count
    n = len(data)
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)[process_index * local:(process_index + 1) * local]
        mask = (idx < n).astype(np.float32)
        examples = data.read(np.minimum(idx, n - 1))
        images = list(_POOL.map(lambda ex: eval_transform(_rgb(ex["image"]), image_size, resize), examples))
        yield (normalize(np.stack(images), IMAGENET_MEAN, IMAGENET_STD),
               np.asarray([ex["label"] for ex in examples], np.int32), mask)
