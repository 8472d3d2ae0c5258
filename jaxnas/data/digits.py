"""scikit-learn's bundled handwritten digits as a TFDS data set, built locally (no download).

1,797 real 8x8 grey-scale digits ship inside scikit-learn, so this is the data set every offline
default uses: it goes through the same TFDS data-source path as CIFAR-10. It is stored as
`array_record` with `Tensor` features, which TFDS can write and read without TensorFlow.
Pixels (0..16 in scikit-learn) are scaled to 0..255 uint8 like any image; a fixed, seeded 80/20
split gives `train` (1,438) and `test` (359).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

NAME = "digits"
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64)


def split_indices() -> dict[str, np.ndarray]:
    n = len(_arrays()[1])
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = int(round(n * TEST_FRACTION))
    return {"train": np.sort(order[n_test:]), "test": np.sort(order[:n_test])}


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits (UCI optdigits test set), 8x8x1, 10 classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "scikit-learn load_digits, seeded 80/20 train/test split."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the data ships with scikit-learn
        return {name: self._generate_examples(idx) for name, idx in split_indices().items()}

    def _generate_examples(self, indices):
        images, labels = _arrays()
        for i in indices:
            yield int(i), {"image": images[i], "label": int(labels[i])}
