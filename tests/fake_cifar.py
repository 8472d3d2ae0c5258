"""Small CIFAR archives in the official python-pickle format (cifar-10-python.tar.gz layout)."""

import io
import os
import pickle
import tarfile

import numpy as np


def write_fake_cifar10(path: str, per_batch: int = 40, test: int = 60, seed: int = 0):
    """Five train batches of `per_batch` images and a test batch, each image's planes stored as
    R, G, B rows like the real files; returns {split: (images NHWC, labels)} as a reader should see them."""
    rng = np.random.default_rng(seed)
    expected, members = {"train": ([], []), "test": ([], [])}, {}
    for name, n, split in [*((f"data_batch_{i}", per_batch, "train") for i in range(1, 6)),
                           ("test_batch", test, "test")]:
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        data = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # R plane, G plane, B plane
        members[name] = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        expected[split][0].append(images)
        expected[split][1].append(np.asarray(labels))
    members["batches.meta"] = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}
    _write_tar(path, "cifar-10-batches-py", members)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in expected.items()}


def write_fake_cifar100(path: str, train: int = 120, test: int = 40, seed: int = 1):
    """cifar-100-python.tar.gz's layout: one `train` and one `test` pickle with fine and coarse labels."""
    rng = np.random.default_rng(seed)
    expected, members = {}, {}
    for split, n in (("train", train), ("test", test)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        members[split] = {b"filenames": [b"x.png"] * n, b"batch_label": split.encode(), b"fine_labels": fine,
                          b"coarse_labels": [y // 5 for y in fine],
                          b"data": images.transpose(0, 3, 1, 2).reshape(n, -1)}
        expected[split] = (images, np.asarray(fine))
    members["meta"] = {b"fine_label_names": [b"f"] * 100, b"coarse_label_names": [b"c"] * 20}
    _write_tar(path, "cifar-100-python", members)
    return expected


def _write_tar(path: str, folder: str, members: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            blob = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
