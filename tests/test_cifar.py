"""CIFAR-10/100 prepared by jaxnas from the official python-pickle archives, with TensorFlow absent:
fake archives in the official format (built here), read back with the right shapes, labels and
TFDS's order; damaged and missing archives are one line; a search and a training run take a step."""

import importlib.util
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from fake_cifar import write_fake_cifar10, write_fake_cifar100
from helpers import subprocess_env
from tensorflow_datasets.core import hashing

from jaxnas.data import cifar, download
from jaxnas.data.pipeline import DataError, image_shape_and_classes, load_split


def test_tensorflow_is_absent():
    # The point of these tests: everything below runs where TensorFlow cannot be imported (Colab TPU).
    assert importlib.util.find_spec("tensorflow") is None


def _tfds_order(n: int, split: str) -> np.ndarray:
    """The order TFDS's own CIFAR builders store a split in: examples keyed by their index in the
    archive, sorted by TFDS's salted key hash (the split name is the salt)."""
    hasher = hashing.Hasher(split)
    return np.asarray(sorted(range(n), key=hasher.hash_key))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_prepared_splits_hold_the_archive_in_tfds_order(name, tmp_path):
    write = write_fake_cifar10 if name == "cifar10" else write_fake_cifar100
    filename = cifar.BUILDERS[name].ARCHIVE.filename
    expected = write(str(tmp_path / "downloads" / "manual" / filename))
    assert image_shape_and_classes(name, str(tmp_path)) == ((32, 32, 3), 10 if name == "cifar10" else 100)
    for split, (images, labels) in expected.items():
        data = load_split(name, split, str(tmp_path))
        order = _tfds_order(len(labels), split)
        assert data.images.shape == images.shape and data.images.dtype == np.uint8
        np.testing.assert_array_equal(data.images, images[order])  # channels last, planes R, G, B
        np.testing.assert_array_equal(data.labels, labels[order])
        assert data.num_classes == (10 if name == "cifar10" else 100)


def test_a_hand_downloaded_archive_in_data_dir_is_found(tmp_path):
    expected = write_fake_cifar10(str(tmp_path / "cifar-10-python.tar.gz"), per_batch=4, test=6)
    assert len(load_split("cifar10", "test", str(tmp_path))) == len(expected["test"][1])


def test_a_damaged_archive_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "downloads" / "manual" / "cifar-10-python.tar.gz"
    write_fake_cifar10(str(path), per_batch=4, test=6)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    with pytest.raises(DataError) as e:
        load_split("cifar10", "train", str(tmp_path))
    assert str(path) in str(e.value) and "delete it" in str(e.value) and "\n" not in str(e.value)


def test_no_network_fails_at_once_and_says_where_to_put_the_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "host_resolves", lambda url: False)
    start = time.monotonic()
    with pytest.raises(DataError) as e:
        load_split("cifar100", "train", str(tmp_path))
    message = str(e.value)
    assert time.monotonic() - start < 30
    assert "no network" in message and cifar.CIFAR100.url in message and "\n" not in message
    assert str(tmp_path / "downloads" / "manual" / "cifar-100-python.tar.gz") in message
    assert not list((tmp_path / "downloads").glob("*.partial"))


TINY_SEARCH = ["--config.dataset=cifar10", "--config.channels=4", "--config.layers=2", "--config.batch_size=16",
               "--config.epochs=1", "--config.train_portion=0.5", "--config.checkpoint_every_steps=0",
               "--config.eval_batch_size=64", "--config.plots=False"]
TINY_TRAIN = ["--config.dataset=cifar10", "--config.channels=4", "--config.layers=2", "--config.batch_size=32",
              "--config.epochs=1", "--config.checkpoint_every_steps=0", "--config.eval_batch_size=64"]


def test_a_search_and_a_training_run_take_steps_on_it(tmp_path, xla_cache):
    write_fake_cifar10(str(tmp_path / "tfds" / "downloads" / "manual" / "cifar-10-python.tar.gz"))
    for module, flags in (("jaxnas.search", TINY_SEARCH), ("jaxnas.train", TINY_TRAIN)):
        workdir = tmp_path / module
        cmd = [sys.executable, "-m", module, f"--workdir={workdir}", f"--config.data_dir={tmp_path / 'tfds'}",
               f"--config.compilation_cache={xla_cache}", *flags]
        r = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        with open(workdir / "metrics.jsonl") as f:
            last = json.loads(f.readlines()[-1])
        assert last["epoch"] == 1 and np.isfinite(last["train_loss"]), last
