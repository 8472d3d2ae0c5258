"""NAS-Bench-201's ground truth inside jaxnas: the shipped table against the published figures, the
arch strings against the space's own arch object, `describe`, and the per-epoch benchmark accuracy
of a tiny NB201 search's derived cell (metrics.jsonl, TensorBoard, plot)."""

import csv
import gzip
import json
import os
import subprocess
import sys
from importlib import resources

import pytest
from helpers import read_scalars, subprocess_env

from jaxnas.benchmarks import nb201 as benchmark
from jaxnas.describe import main as describe_main
from jaxnas.spaces.nb201 import all_archs
from jaxnas.vocabulary.nb201 import NB201Arch


def _rows() -> list[dict]:
    """The shipped CSV read directly (not through the module under test)."""
    with resources.files("jaxnas.benchmarks").joinpath("nb201_test_accuracy.csv.gz").open("rb") as f:
        return list(csv.DictReader(gzip.open(f, "rt")))


def test_published_figures():
    """NAS-Bench-201 (Dong & Yang, ICLR 2020) / NATS-Bench (Dong et al., TPAMI 2021): 15,625 cells;
    best test accuracy 94.3733 (CIFAR-10), 73.5133 (CIFAR-100), 47.3111 (ImageNet16-120); the
    all-skip cell, DARTS's collapse, 54.2967 on CIFAR-10."""
    rows = _rows()
    assert len(rows) == len({r["arch"] for r in rows}) == 15625
    assert [int(r["index"]) for r in rows] == list(range(15625))
    assert benchmark.accuracies(benchmark.BEST_CIFAR10)["cifar10"] == 94.3733
    assert benchmark.accuracies(benchmark.ALL_SKIP)["cifar10"] == 54.2967
    assert benchmark.index(benchmark.BEST_CIFAR10) == 6111 and benchmark.index(benchmark.ALL_SKIP) == 1835
    assert benchmark.ALL_SKIP == NB201Arch(("skip_connect",) * 6).to_string()
    for dataset, published in (("cifar10", 94.3733), ("cifar100", 73.5133), ("imagenet16_120", 47.3111)):
        assert max(float(r[dataset]) for r in rows) == published
        arch, acc = benchmark.best(dataset)
        assert acc == published and benchmark.accuracies(arch)[dataset] == published


def test_every_string_round_trips_through_the_arch_object():
    rows = _rows()
    assert {r["arch"] for r in rows} == {a.to_string() for a in all_archs()}
    for r in rows:
        arch = NB201Arch.from_string(r["arch"])
        assert arch.to_string() == r["arch"]
        assert benchmark.accuracies(arch) == {d: float(r[d]) for d in benchmark.DATASETS}
        assert benchmark.index(arch) == int(r["index"])


@pytest.mark.parametrize("text, message", [
    ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", r"unknown NB201 op 'conv_7x7'; valid ops: none, "),
    ("|none~0|+|none~0|", r"expected 3 '\+'-separated nodes.*; valid ops: none, skip_connect, nor_conv_1x1, "),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", r"entry 'none~1' should be `op~0`.*; valid ops: "),
])
def test_a_string_outside_the_space_is_a_one_line_error(text, message):
    with pytest.raises(ValueError, match=message) as e:
        benchmark.accuracies(text)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 data set 'cifar1O'; valid: cifar10, "):
        benchmark.best("cifar1O")


def test_describe_prints_the_benchmark_accuracies(capsys):
    assert describe_main([benchmark.ALL_SKIP]) == 0
    out = capsys.readouterr().out
    assert "NAS-Bench-201 test accuracy (200 epochs): cifar10 54.30 %, cifar100 15.61 %, imagenet16_120 16.32 %" in out
    assert describe_main([benchmark.BEST_CIFAR10, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["benchmark_test_acc"] == {
        "cifar10": 94.3733, "cifar100": 73.22, "imagenet16_120": 46.7111}


def test_an_nb201_search_logs_its_derived_cells_benchmark_accuracy(tmp_path, xla_cache):
    """Every epoch of a tiny NB201 search logs the table's accuracies of the cell it wrote to
    genotypes/, in metrics.jsonl and TensorBoard, and plots them (arch_metrics.png)."""
    workdir = tmp_path / "nb201"
    flags = ["--config.space=nb201", "--config.channels=4", "--config.layers=1", "--config.batch_size=32",
             "--config.train_portion=0.25", "--config.epochs=2", "--config.checkpoint_every_steps=0"]
    r = subprocess.run([sys.executable, "-m", "jaxnas.search", f"--workdir={workdir}",
                        f"--config.data_dir={tmp_path / 'tfds'}", f"--config.compilation_cache={xla_cache}", *flags],
                       env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    table = {row["arch"]: row for row in _rows()}
    with open(workdir / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [m["epoch"] for m in records] == [1, 2]
    scalars = {(tag, step): value for tag, step, value in read_scalars(str(workdir / "tensorboard"))}
    for m in records:
        with open(workdir / "genotypes" / f"epoch_{m['epoch']:03d}.json") as f:
            row = table[json.load(f)["nb201"]]
        for dataset in ("cifar10", "cifar100", "imagenet16_120"):
            assert m[f"benchmark_acc_{dataset}"] == float(row[dataset])
            assert scalars[(f"benchmark_acc_{dataset}", m["step"])] == pytest.approx(float(row[dataset]), rel=1e-6)
    with open(workdir / "arch_metrics.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(workdir / "arch_metrics.png") > 10_000
