"""`python -m jaxnas.compare`: several strategies on one search config, one table."""

import json
import subprocess
import sys

import pytest
from helpers import subprocess_env

from jaxnas.compare import config as config_lib
from jaxnas.search.config import ConfigError

CHAIN = ["--config.search.space=chain", "--config.search.channels=4", "--config.search.layers=2",
         "--config.search.epochs=1", "--config.search.batch_size=32", "--config.search.train_portion=0.25",
         "--config.search.derive_samples=4", "--config.search.plots=False"]


def _compare(tmp_path, *flags):
    env = subprocess_env()
    cmd = [sys.executable, "-m", "jaxnas.compare", f"--workdir={tmp_path / 'cmp'}",
           f"--config.search.data_dir={tmp_path / 'tfds'}", f"--config.search.compilation_cache={tmp_path / 'xla'}",
           *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_compare_runs_each_strategy_with_the_same_budget_and_writes_one_table(tmp_path):
    r = _compare(tmp_path, *CHAIN, "--config.strategies=darts,random_ws,enas",
                 "--config.search.estimator=darts_fd")  # the sampling strategies fall back to their own step
    assert r.returncode == 0, r.stderr[-3000:]
    with open(tmp_path / "cmp" / "comparison.json") as f:
        rows = json.load(f)
    assert [row["strategy"] for row in rows] == ["darts", "random_ws", "enas"]
    for row in rows:
        with open(tmp_path / "cmp" / row["strategy"] / "config.json") as f:
            search = json.load(f)
        assert search["seed"] == 0 and search["epochs"] == 1 and search["strategy"] == row["strategy"]
        assert search["estimator"] == ("darts_fd" if row["strategy"] == "darts" else "first_order")
        assert 0 <= row["search_val_acc"] <= 1 and row["search_seconds"] > 0 and len(row["genotype"]["chain"]) == 2
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| enas |" in table and "| random_ws |" in table


@pytest.mark.parametrize("changes, message", [
    ({"strategies": "darts,nas"}, "unknown strategy 'nas' in strategies; valid strategies: darts, gdas"),
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
