"""NAS-Bench-201's ground truth: the test accuracy of every cell of the space, so a search's derived
cell can be scored at no cost (and DARTS's collapse toward the all-skip cell watched per epoch).

`nb201_test_accuracy.csv.gz` holds, for all 15,625 cells, the test accuracy (%) after the
benchmark's 200-epoch training on CIFAR-10, CIFAR-100 and ImageNet16-120, averaged over its seeds,
as NATS-Bench's API returns it (`get_more_info(index, dataset, hp=200, is_random=False)
['test-accuracy']`, topology search space `tss`), rounded to 4 decimals. Cite both when reporting
results against it:

- X. Dong, Y. Yang. NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search.
  ICLR 2020.
- X. Dong, L. Liu, K. Musial, B. Gabrys. NATS-Bench: Benchmarking NAS Algorithms for Architecture
  Topology and Size. IEEE TPAMI 2021.

    from jaxnas.benchmarks import nb201
    nb201.accuracies("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    # {'cifar10': 94.3733, 'cifar100': 73.22, 'imagenet16_120': 46.7111}
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from importlib import resources

from jaxnas.vocabulary.nb201 import OPS, NB201Arch

TABLE = "nb201_test_accuracy.csv.gz"
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16_120")
# The best cell on CIFAR-10 (benchmark index 6111, 94.3733 %; index 13714 ties) and the all-skip cell
# (index 1835, 54.2967 %): the 54.30 % that first- and second-order DARTS collapse to in the NAS-Bench-201 paper.
BEST_CIFAR10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


@functools.cache
def table() -> dict[str, tuple[int, dict[str, float]]]:
    """arch string -> (benchmark index, {data set: test accuracy %}), read once from the package data."""
    raw = resources.files(__package__).joinpath(TABLE).read_bytes()
    rows = csv.DictReader(io.StringIO(gzip.decompress(raw).decode()))
    return {r["arch"]: (int(r["index"]), {d: float(r[d]) for d in DATASETS}) for r in rows}


def canonical(arch: str | NB201Arch) -> str:
    """The benchmark's string for `arch`; a one-line ValueError naming what is wrong otherwise."""
    if isinstance(arch, NB201Arch):
        return arch.to_string()
    try:
        return NB201Arch.from_string(arch).to_string()
    except ValueError as e:
        message = str(e)
        if "valid ops" not in message:
            message += f"; valid ops: {', '.join(OPS)}"
        raise ValueError(message) from None


def index(arch: str | NB201Arch) -> int:
    """The benchmark's index of `arch` (as in NAS-Bench-201's and NATS-Bench's APIs)."""
    return table()[canonical(arch)][0]


def accuracies(arch: str | NB201Arch) -> dict[str, float]:
    """{cifar10, cifar100, imagenet16_120: 200-epoch test accuracy in %} of `arch` (a string or an `NB201Arch`)."""
    return dict(table()[canonical(arch)][1])


def best(dataset: str) -> tuple[str, float]:
    """(arch string, test accuracy %) of the best cell on `dataset` (the first by index on a tie)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown NAS-Bench-201 data set {dataset!r}; valid: {', '.join(DATASETS)}")
    arch, (_, accs) = max(table().items(), key=lambda item: (item[1][1][dataset], -item[1][0]))
    return arch, accs[dataset]
