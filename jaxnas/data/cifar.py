"""CIFAR-10 and CIFAR-100 prepared by jaxnas itself, without TensorFlow.

TFDS's own CIFAR builders store PNG-encoded `Image` features, and encoding them needs TensorFlow,
which today's Colab TPU runtime does not have (and installing it there can move jax off the TPU).
These builders read the official python-pickle archives (Krizhevsky, 2009) with `tarfile` and
`pickle`, and store `Tensor` features in `array_record`, which TFDS writes and reads with numpy
alone. They yield the same examples under the same keys as TFDS's builders, so the prepared
splits hold the same images in the same order whether or not TensorFlow is installed.

The archive is taken from `<data_dir>/downloads/manual/`, `<data_dir>/downloads/` or `<data_dir>/`
if it is there (for machines without network); otherwise it is downloaded once, after a quick
check that the host resolves, and its MD5 is verified (`jaxnas.data.download`).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import tarfile

import numpy as np
import tensorflow_datasets as tfds

from jaxnas.data.download import by_hand, filename_of, find_or_download
from jaxnas.data.errors import DataError

IMAGE_SHAPE = (32, 32, 3)
CITATION = """@techreport{krizhevsky2009learning,
  author = {Alex Krizhevsky}, title = {Learning Multiple Layers of Features from Tiny Images},
  institution = {University of Toronto}, year = {2009}}"""


@dataclasses.dataclass(frozen=True)
class Archive:
    """Where an official python-pickle archive lives and what it holds."""

    url: str
    md5: str
    folder: str  # the folder inside the tar that holds the pickles
    splits: dict  # split name -> the pickle files of that split, in order
    label_key: bytes  # the key of the (fine) labels in each pickle
    num_classes: int

    @property
    def filename(self) -> str:
        return filename_of(self.url)


CIFAR10 = Archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                  "cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
                  b"labels", 10)
CIFAR100 = Archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                   "cifar-100-python", {"train": ["train"], "test": ["test"]}, b"fine_labels", 100)


def read_split(path: str, archive: Archive, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's uint8 images (N, 32, 32, 3) and int64 labels in the archive's order."""
    images, labels = [], []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in archive.splits[split]:
                member = tar.extractfile(f"{archive.folder}/{name}")
                if member is None:
                    raise KeyError(name)
                batch = pickle.load(member, encoding="bytes")
                data = np.asarray(batch[b"data"], np.uint8)
                images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # stored as planes: R, G, B
                labels.append(np.asarray(batch[archive.label_key], np.int64))
    except (tarfile.TarError, EOFError, OSError, KeyError, ValueError, pickle.UnpicklingError) as e:
        raise DataError(f"{path} is not a readable CIFAR python archive ({type(e).__name__}: {e}); delete it and "
                        f"run again to download it, or {by_hand(archive, os.path.dirname(path))}") from None
    images, labels = np.concatenate(images), np.concatenate(labels)
    if len(images) != len(labels) or labels.min() < 0 or labels.max() >= archive.num_classes:
        raise DataError(f"{path} holds {len(images)} images and {len(labels)} labels in 0..{labels.max()}; expected "
                        f"one label in 0..{archive.num_classes - 1} per image: delete it and download it again")
    return images, labels


class _CifarPython(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """The shared builder; subclasses name their archive."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "From the official python-pickle archive, Tensor features (no TensorFlow needed)."}
    ARCHIVE: Archive = CIFAR10

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=self.ARCHIVE.num_classes),
            }),
            supervised_keys=("image", "label"),
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
            citation=CITATION,
        )

    def _split_generators(self, dl_manager):
        path = find_or_download(self.ARCHIVE, str(dl_manager.download_dir))
        return {split: self._generate_examples(path, split) for split in self.ARCHIVE.splits}

    def _generate_examples(self, path: str, split: str):
        images, labels = read_split(path, self.ARCHIVE, split)
        for i in range(len(labels)):  # TFDS's CIFAR builders key examples by their index, too
            yield i, {"image": images[i], "label": int(labels[i])}


class Cifar10Python(_CifarPython, skip_registration=True):
    """CIFAR-10: 50,000 train and 10,000 test 32x32 colour images in 10 classes."""

    ARCHIVE = CIFAR10


class Cifar100Python(_CifarPython, skip_registration=True):
    """CIFAR-100: 50,000 train and 10,000 test 32x32 colour images in 100 (fine) classes."""

    ARCHIVE = CIFAR100


# The data set names a config uses -> the builder jaxnas prepares them with.
BUILDERS = {"cifar10": Cifar10Python, "cifar100": Cifar100Python}
