"""Data: the offline digits TFDS builder, the CIFAR-10 path under tfds.testing.mock_data, batching
determinism, per-host slices, augmentation on known images, and evaluation padding."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers import subprocess_env
from sklearn.datasets import load_digits

from jaxnas.data import digits
from jaxnas.data.pipeline import (
    Batcher,
    DataError,
    ImageSet,
    augment,
    channel_stats,
    check_dataset,
    eval_batches,
    load_split,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def test_digits_builder_holds_every_sklearn_digit_once(data_dir):
    train = load_split("digits", "train", data_dir)
    test = load_split("digits", "test", data_dir)
    assert (len(train), len(test)) == (1438, 359)
    assert train.images.shape[1:] == (8, 8, 1) and train.images.dtype == np.uint8 and train.num_classes == 10
    ref = load_digits()
    ref_images = np.clip(np.round(ref.images * 255 / 16), 0, 255).astype(np.uint8)
    # Every stored example is a scikit-learn digit with its own label, and train+test is all of them.
    key = {img.tobytes(): [] for img in ref_images}
    for img, label in zip(ref_images, ref.target):
        key[img.tobytes()].append(label)
    stored = np.concatenate([train.images[..., 0], test.images[..., 0]])
    labels = np.concatenate([train.labels, test.labels])
    assert all(int(y) in key[img.tobytes()] for img, y in zip(stored, labels))
    assert len(stored) == len(ref_images) and sorted(labels.tolist()) == sorted(ref.target.tolist())
    assert set(digits.split_indices()["train"]).isdisjoint(digits.split_indices()["test"])


def test_cifar10_path_through_mock_data():
    with tfds.testing.mock_data(num_examples=24):
        data = load_split("cifar10", "train")
    assert data.images.shape == (24, 32, 32, 3) and data.images.dtype == np.uint8 and data.num_classes == 10
    mean, std = channel_stats(data.images)
    b = Batcher(data, batch_size=8, seed=0, mean=mean, std=std, crop_padding=4, flip=True)
    x, y = b.batch(0, 1)
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32 and y.shape == (8,)


def test_unknown_and_unsuitable_data_sets_name_the_choices():
    with pytest.raises(DataError, match="unknown data set 'cifar1O'.*close matches: .*cifar10"):
        check_dataset("cifar1O")
    with pytest.raises(DataError, match="not an image classification set"):
        check_dataset("imdb_reviews")


def _toy(n=20, h=4, w=5):
    images = (np.arange(n * h * w * 2) % 251).astype(np.uint8).reshape(n, h, w, 2)
    return ImageSet(images, np.arange(n, dtype=np.int32) % 3, 3)


def test_batches_are_a_function_of_seed_epoch_and_step():
    data = _toy()

    def mk(**kw):
        return Batcher(data, batch_size=4, seed=7, mean=np.zeros(2, np.float32), std=np.ones(2, np.float32),
                       crop_padding=1, flip=True, **kw)

    a, b = mk(), mk()
    np.testing.assert_array_equal(a.batch(2, 3)[0], b.batch(2, 3)[0])
    assert not np.array_equal(a.batch(0, 0)[0], a.batch(1, 0)[0])  # a new order every epoch
    # One epoch visits distinct examples; step past the epoch wraps into the next one.
    seen = np.concatenate([a.batch(0, s)[1] for s in range(a.steps_per_epoch)])
    assert a.steps_per_epoch == 5 and len(seen) == 20
    np.testing.assert_array_equal(a.batch(0, 5)[0], a.batch(1, 0)[0])
    # Two processes hold the two halves of the same global batch.
    p0, p1 = mk(process_index=0, process_count=2), mk(process_index=1, process_count=2)
    for part in (0, 1):  # labels and augmented images: the same global batch on 1 or 2 processes
        halves = np.concatenate([p.batch(3, 2)[part] for p in (p0, p1)])
        np.testing.assert_array_equal(halves, a.batch(3, 2)[part])
    assert p0.batch(3, 2)[0].shape == (2, 4, 5, 2) and p1.batch(3, 2)[0].shape == (2, 4, 5, 2)


def test_random_crop_and_flip_on_a_known_image():
    img = np.arange(1, 17, dtype=np.uint8).reshape(1, 4, 4, 1)
    rng = np.random.default_rng(0)
    crops = augment(np.repeat(img, 200, 0), rng, crop_padding=1, flip=False)
    padded = np.pad(img[0, :, :, 0], 1)
    windows = {padded[dy:dy + 4, dx:dx + 4].tobytes() for dy in range(3) for dx in range(3)}
    got = {c[:, :, 0].tobytes() for c in crops}
    assert got == windows  # every one of the 9 shifted windows, and nothing else
    flips = augment(np.repeat(img, 200, 0), np.random.default_rng(1), crop_padding=0, flip=True)
    kinds = {f[:, :, 0].tobytes() for f in flips}
    assert kinds == {img[0, :, :, 0].tobytes(), img[0, :, ::-1, 0].tobytes()}


def test_eval_batches_count_every_example_once():
    data = _toy(n=11)
    total = {0: 0.0, 1: 0.0}
    for p in range(2):
        for x, y, mask in eval_batches(data, 4, np.zeros(2, np.float32), np.ones(2, np.float32), p, 2):
            assert x.shape[0] == 2
            total[p] += float((mask * (y + 1)).sum())
    assert total[0] + total[1] == float((data.labels + 1).sum())


# Issue 35: quiet preparation, and a failed one leaves nothing behind.
PREPARE = "from jaxnas.data.pipeline import load_split; print(len(load_split('digits', 'train', {!r})))"


@pytest.mark.parametrize("debug", [False, True])
def test_preparing_the_digits_is_one_line_unless_debugging(tmp_path, debug):
    """A first run printed TFDS's "Downloading and preparing dataset Unknown size ...", progress bars
    with escape codes and a "has no dataset_info.json" warning; at debug verbosity TFDS still speaks."""
    code = (f"from absl import logging; logging.set_verbosity('debug' if {debug} else 'info'); "
            + PREPARE.format(str(tmp_path / "tfds")))
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "1438", r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert f"preparing digits in {tmp_path / 'tfds' / 'digits' / '1.0.0'} (once)" in r.stderr
    tfds_noise = ("Downloading and preparing" in out, "\x1b[" in out, "dataset_info.json" in out)
    assert tfds_noise == (debug, debug, debug), out[-2000:]
    assert debug or "\r" not in out


def test_a_failed_preparation_leaves_no_empty_folders(tmp_path, monkeypatch):
    """Offline, `--config.dataset=cifar10` left an empty <data_dir>/cifar10_python/ (and downloads/)."""
    from jaxnas.data import download

    monkeypatch.setattr(download, "host_resolves", lambda url, timeout=5.0: False)  # no network
    (tmp_path / "tfds").mkdir()
    (tmp_path / "tfds" / "mine.txt").write_text("kept")
    with pytest.raises(DataError, match="no network: cannot resolve the host"):
        load_split("cifar10", "train", str(tmp_path / "tfds"))
    assert sorted(os.listdir(tmp_path / "tfds")) == ["mine.txt"]
    with pytest.raises(DataError, match="no network"):
        load_split("cifar10", "train", str(tmp_path / "new" / "tfds"))
    assert not (tmp_path / "new").exists()
