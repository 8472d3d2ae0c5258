"""`python -m jaxnas.compare`: several strategies on one search config, one table."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import subprocess_env

from jaxnas.compare import config as config_lib
from jaxnas.compare import loop
from jaxnas.search.config import ConfigError

CHAIN = ["--config.search.space=chain", "--config.search.channels=4", "--config.search.layers=2",
         "--config.search.epochs=1", "--config.search.batch_size=32", "--config.search.train_portion=0.25",
         "--config.strategy_options.random_ws.derive_samples=4", "--config.strategy_options.enas.derive_samples=4",
         "--config.search.plots=False"]


def _compare(tmp_path, *flags):
    env = subprocess_env()
    cmd = [sys.executable, "-m", "jaxnas.compare", f"--workdir={tmp_path / 'cmp'}",
           f"--config.search.data_dir={tmp_path / 'tfds'}", f"--config.search.compilation_cache={tmp_path / 'xla'}",
           *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_compare_runs_each_strategy_with_the_same_budget_and_writes_one_table(tmp_path):
    r = _compare(tmp_path, *CHAIN, "--config.strategies=darts,random_ws,enas",
                 "--config.search.estimator.name=darts_fd")  # the sampling strategies fall back to their own step
    assert r.returncode == 0, r.stderr[-3000:]
    with open(tmp_path / "cmp" / "comparison.json") as f:
        rows = json.load(f)
    assert [row["strategy"] for row in rows] == ["darts", "random_ws", "enas"]
    for row in rows:
        with open(tmp_path / "cmp" / row["strategy"] / "config.json") as f:
            search = json.load(f)
        assert search["seed"] == 0 and search["epochs"] == 1 and search["strategy"]["name"] == row["strategy"]
        assert search["estimator"]["name"] == ("darts_fd" if row["strategy"] == "darts" else "first_order")
        assert search["strategy"].get("derive_samples", 4) == 4
        mean, std = row["search_val_acc"]
        assert 0 <= mean <= 1 and std == 0 and row["seeds"] == 1 and row["search_seconds"][0] > 0
        assert len(row["genotypes"]) == 1 and len(row["genotypes"][0]["chain"]) == 2
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| enas |" in table and "| random_ws |" in table
    last = r.stdout.strip().splitlines()[-3:]  # the closing block
    assert re.match(r"comparison done: 3 strategies; best search-val acc: (darts|random_ws|enas) \(0\.\d{4}\)$",
                    last[0])
    assert last[1].startswith(f"outputs in {tmp_path / 'cmp'}: comparison.md") and last[2].startswith("next: ")


def test_seeds_are_reported_as_mean_and_std():
    per_seed = [{"search_val_acc": 0.5, "benchmark_acc_cifar10": 90.0, "params": None, "genotype": {"g": 1}},
                {"search_val_acc": 0.7, "benchmark_acc_cifar10": 94.0, "params": None, "genotype": {"g": 2}}]
    row = loop.aggregate("darts", per_seed)
    assert row["strategy"] == "darts" and row["seeds"] == 2 and row["params"] is None
    assert row["search_val_acc"] == pytest.approx((0.6, 0.1)) and row["benchmark_acc_cifar10"] == pytest.approx((92, 2))
    assert row["genotypes"] == [{"g": 1}, {"g": 2}]


def test_nb201_comparison_reports_the_benchmark_accuracy_per_seed(tmp_path):
    from jaxnas.benchmarks import nb201

    flags = ["--config.search.space=nb201", "--config.search.channels=4", "--config.search.layers=1",
             "--config.search.epochs=1", "--config.search.batch_size=32", "--config.search.train_portion=0.25",
             "--config.strategy_options.random_ws.derive_samples=4", "--config.search.plots=False",
             "--config.strategies=random_ws",
             "--config.seeds=0,1"]
    r = _compare(tmp_path, *flags)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(tmp_path / "cmp" / "comparison.json") as f:
        (row,) = json.load(f)
    accs = [nb201.accuracies(g["nb201"])["cifar10"] for g in row["genotypes"]]  # each seed's derived cell
    assert row["seeds"] == 2 and row["benchmark_acc_cifar10"] == pytest.approx([np.mean(accs), np.std(accs)])
    for seed in (0, 1):
        with open(tmp_path / "cmp" / "random_ws" / f"seed{seed}" / "config.json") as f:
            assert json.load(f)["seed"] == seed
    assert "NB201 cifar10 %" in (tmp_path / "cmp" / "comparison.md").read_text()


@pytest.mark.parametrize("changes, message", [
    ({"seeds": "0,x"}, "seeds must be comma-separated whole numbers"),
    ({"strategies": "darts,nas"}, "unknown strategy 'nas' in strategies; valid strategies: darts, darts_pt, gdas"),
    ({"strategies": "pnas", "search.space": "chain"}, "strategy 'pnas' works in space.s. darts"),
    ({"train_epochs": 2, "search.space": "nb201"}, "train_epochs > 0 needs space 'darts'"),
])
def test_bad_comparisons_are_named(changes, message):
    config = config_lib.get_config()
    for key, value in changes.items():
        target, _, leaf = key.rpartition(".")
        (config[target] if target else config)[leaf] = value
    with pytest.raises(ConfigError, match=message):
        config_lib.validate(config)
