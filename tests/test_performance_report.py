"""benchmarks/performance_report.py: docs/performance.md's measured tables from hand-made results."""

import importlib.util
import json
import os

ROOT = os.path.join(os.path.dirname(__file__), "..")


def load():
    spec = importlib.util.spec_from_file_location("performance_report",
                                                  os.path.join(ROOT, "benchmarks", "performance_report.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ENV = {"date": "2026-12-01T05:00:00+00:00", "platform": "gpu", "device_kind": "NVIDIA H200", "device_count": 1,
       "jax": "0.11.2", "jaxlib": "0.11.2", "flax": "0.12.10", "python": "3.12.3", "commit": "abcdef0123",
       "dirty": False, "argv": ["--profile"]}
ROWS = [
    # the compile-only pass, then the timed pass (whose compile is a cache load)
    {"case": "paper first_order", "phase": "compile", "compile_seconds": 96.4, "hlo_instructions": 51234,
     "hlo_fusions": 2780, "flops_per_step": 2.0e12, "step_memory_mb": 3770.0, "peak_flops_per_device": 67e12},
    {"case": "paper first_order", "phase": "time", "compile_seconds": 3.1, "first_step_seconds": 4.0,
     "step_seconds": 0.5, "images_per_second": 128.0, "flops_per_step": 2.0e12, "peak_flops_per_device": 67e12,
     "step_memory_mb": 3770.0, "hlo_instructions": 51234, "hlo_fusions": 2780, "wall_seconds": 20.0,
     "profile": {"kernels_per_step": 4100.0, "top_kinds": [{"kind": "convolution", "share": 0.41, "per_step": 900}]}},
    {"case": "paper darts_fd", "phase": "compile", "error": "killed"},
    {"case": "paper gdas", "phase": "time", "error": "RuntimeError: out of memory"},
]


def test_report_tables_peak_share_and_generated_block(tmp_path):
    report = load()
    results = tmp_path / "results"
    results.mkdir()
    with open(results / "2026-12-01_nvidia-h200.jsonl", "w") as f:
        f.write(json.dumps({"environment": ENV}) + "\n")
        for r in ROWS:
            f.write(json.dumps(r) + "\n")
    env, rows = report.read_results(str(results / "2026-12-01_nvidia-h200.jsonl"))
    assert env["device_kind"] == "NVIDIA H200" and list(rows) == ["paper first_order", "paper gdas", "paper darts_fd"]
    first = rows["paper first_order"]
    assert first["compile_seconds"] == 96.4 and first["compile_pass"]  # the compile pass's, not the cache load
    # 2 TFLOP a step in 0.5 s = 4 TFLOP/s, of the 67 TFLOP/s float32 peak: 5.97 %
    assert abs(report.percent_of_peak(first) - 100 * 4 / 67) < 1e-9
    cells = report.table_row(first)
    assert cells[1] == "96.4ᶜ" and cells[2] == "4.0" and cells[3] == "0.5" and cells[5] == "4 (6.0 %)"
    assert cells[7] == "51,234 / 2,780" and cells[8] == "4,100; convolution 41 %"
    assert "not measured: killed" in report.table_row(rows["paper darts_fd"])[1]
    assert "out of memory" in report.table_row(rows["paper gdas"])[1]

    doc = tmp_path / "performance.md"
    doc.write_text("# log\n\nintro\n\n## Summary\n\nhand-written\n")
    report.main.__globals__["DOC"] = str(doc)
    import sys

    argv, sys.argv = sys.argv, ["performance_report.py", f"--results={results}", f"--doc={doc}"]
    try:
        report.main()
        first_pass = doc.read_text()
        report.main()  # rewrites its block only
    finally:
        sys.argv = argv
    text = doc.read_text()
    assert text == first_pass and text.count(report.START) == 1 and text.count(report.END) == 1
    assert text.index("intro") < text.index(report.START) < text.index(report.END) < text.index("## Summary")
    assert "hand-written" in text and "#### 2026-12-01_nvidia-h200.jsonl" in text
    assert "1 × NVIDIA H200 (gpu)" in text and "commit abcdef0" in text
    assert "| paper first_order | 96.4ᶜ |" in text
    assert (tmp_path / report.PLOT).exists() == ("![" in text)
