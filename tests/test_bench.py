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
        config.strategy.name = strategy
        assert default_warmup(config) == expected, strategy


def test_peak_flops_by_device_kind():
    from jaxnas.bench import peak_flops

    assert peak_flops("NVIDIA H100 80GB HBM3", "float32") == 67e12
    assert peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756.5e12
    assert peak_flops("NVIDIA H200", "bfloat16") == 989.5e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "float32") == 19.5e12
    assert peak_flops("TPU v5 lite", "bfloat16") == 197e12 and peak_flops("TPU v5 lite", "float32") is None
    assert peak_flops("TPU v6 lite", "bfloat16") == 918e12
    assert peak_flops("Tesla T4", "bfloat16") is None and peak_flops("Tesla T4") == 8.1e12
    assert peak_flops("cpu") is None


def test_cost_analysis_hlo_size_and_profile_summary_of_a_small_step(tmp_path):
    """XLA's FLOPs (a dict in jax 0.7 and 0.10, a list of dicts before), the optimised HLO's size,
    and a `jax.profiler` trace of three steps summarised (on a CPU: XLA:CPU's thunks)."""
    import jax
    import jax.numpy as jnp

    from jaxnas.bench import hlo_size, profile_summary, step_flops

    x = jnp.ones((64, 64))
    compiled = jax.jit(lambda x: jnp.tanh(x @ x).sum()).lower(x).compile()
    flops = step_flops(compiled)
    assert 2 * 64**3 <= flops < 3 * 64**3  # the matmul's multiply-adds, and a few elementwise ops

    class ListAnalysis:  # the older API
        def cost_analysis(self):
            return [{"flops": 12.0}]

    assert step_flops(ListAnalysis()) == 12.0
    size = hlo_size(compiled)
    assert size["instructions"] >= 3 and size["fusions"] >= 0
    with jax.profiler.trace(str(tmp_path)):
        for i in range(3):
            with jax.profiler.StepTraceAnnotation("step", step_num=i):
                jax.block_until_ready(compiled(x))
    summary = profile_summary(str(tmp_path), 3, size)
    assert summary["source"].startswith("host trace") and summary["steps"] == 3
    assert summary["kernels_per_step"] >= 1
    assert abs(sum(k["share"] for k in summary["top_kinds"]) - 1) < 0.01  # every kind of this small step
    assert profile_summary(str(tmp_path / "none"), 3, {"fusions": 7})["kernels_per_step"] == 7  # no trace


def test_suite_cases_and_results_file_name():
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "suite.py")
    spec = importlib.util.spec_from_file_location("benchmarks_suite", path)
    suite = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks_suite"] = suite  # for its dataclass
    spec.loader.exec_module(suite)
    names = suite.CASE_NAMES
    assert len(names) == len(set(names)) and names[:2] == ["paper first_order", "paper darts_fd"]
    assert {c.name for c in suite.CASES if c.profile} == {"paper first_order", "paper darts_fd"}
    assert any(c.xla_flags == suite.NO_COMMAND_BUFFERS for c in suite.CASES)
    out = suite.default_out(tiny=True, directory="/r")
    assert out.startswith("/r/20") and out.endswith("_cpu-tiny.jsonl")
    assert suite.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    env = suite.environment()
    assert env["device_kind"] == "cpu" and env["jax"] and env["python"] and "commit" in env and "date" in env
