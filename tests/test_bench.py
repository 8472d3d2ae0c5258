"""`python -m jaxnas.bench`: the command docs/performance.md's tables come from runs, takes config overrides
and reports what it measured; bad input is one line. A tiny chain supernet keeps it fast."""

import json
import subprocess
import sys

TINY = ["--config.space=chain", "--config.channels=4", "--config.layers=2", "--config.batch_size=4",
        "--repeats=2", "--warmup=0"]


def bench(*args):
    return subprocess.run([sys.executable, "-m", "jaxnas.bench", *TINY, *args], capture_output=True, text=True)


def test_bench_reports_a_search_step_of_the_overridden_config():
    r = bench("--step=darts_fd", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["config"]["space"], out["config"]["channels"], out["config"]["layers"]) == ("chain", 4, 2)
    assert out["config"]["batch_size"] == 4 and out["config"]["step"] == "darts_fd"
    assert out["config"]["image_shape"] == [8, 8, 1]  # the offline digits
    assert out["compile_seconds"] > 0 and out["step_seconds"] > 0 and out["timed_steps"] == 2
    assert out["init_seconds"] > 0 and out["setup_seconds"] >= 0 and out["step_seconds_min"] <= out["step_seconds"]
    assert out["warmup_steps"] == 1  # the first run after the compile is never timed
    assert abs(out["images_per_second"] - 4 / out["step_seconds"]) < 0.05 * out["images_per_second"]
    assert out["peak_memory_mb"] > 100
    assert 0 < out["step_memory_mb"] < out["peak_memory_mb"]  # the step's buffers, without the compiler
    assert out["hlo_fusions"] > 10  # the kernels XLA generated for the step


def test_bench_bad_input_is_one_line():
    r = bench("--step=third_order")
    assert r.returncode == 2
    assert "error: unknown step 'third_order'; valid steps: weight, first_order, darts_fd" in r.stderr
    r = bench("--config.chanels=4")
    assert r.returncode == 2 and "unknown config key 'chanels'" in r.stderr and "channels" in r.stderr


def test_switch_cells_warm_up_longer_by_default():
    """Supernets whose edges run behind a switch (slow the first time each branch runs) get more
    untimed steps unless `--warmup` is given."""
    from jaxnas.bench import SWITCH_WARMUP_STEPS, WARMUP_STEPS, default_warmup
    from jaxnas.search.config import get_config

    assert SWITCH_WARMUP_STEPS > WARMUP_STEPS
    for strategy, expected in [("darts", WARMUP_STEPS), ("pcdarts", WARMUP_STEPS), ("gdas", SWITCH_WARMUP_STEPS),
                               ("random_ws", SWITCH_WARMUP_STEPS), ("enas", SWITCH_WARMUP_STEPS)]:
        config = get_config()
        config.strategy = strategy
        assert default_warmup(config) == expected, strategy
