"""benchmarks/fidelity_report.py turns study results into docs tables: checked on a hand-made study.csv."""

import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_report_tabulates_each_batch_by_point_and_compares_batches_on_shared_points(tmp_path):
    folder = tmp_path / "results" / "toy"
    folder.mkdir(parents=True)
    rows = []
    for step in (0, 50, 100):
        for batch in (8, 32) if step != 50 else (8,):  # batch 32 lacks the 50 % point
            for est, value in (("first_order", 0.5), ("darts_fd", 0.9)):
                v = value + step / 1000 + batch / 10000  # distinct per point and batch
                rows += [(step, batch, est, "cosine", v), (step, batch, est, "mixed_cosine", v - 0.5),
                         (step, batch, est, "rel_l2", 1 - v), (step, batch, est, "seconds", 0.1)]
            rows += [(step, batch, "mixed_exact", "norm", 1.0), (step, batch, "mixed_fd_eps0.01", "cosine", 0.3),
                     (step, batch, "mixed_fd_eps0.01", "rel_l2", 2.0), (step, batch, "mixed_fd_eps0.01", "norm", 8.0)]
    with open(folder / "study.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["step", "batch_size", "estimator", "metric", "value"])
        out.writerows(rows)
    meta = {"title": "Toy", "setting": "a hand-made table", "date": "today", "machine": "here", "versions": "v",
            "commit": "c", "command": "none", "total_steps": 100, "reference": "unrolled_k1"}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "findings.md").write_text("The finite difference is poor here.")
    out_md = tmp_path / "fidelity.md"
    env = {**os.environ, "JAXNAS_RESULTS": str(tmp_path / "results"), "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "fidelity_report.py"), f"--out={out_md}"],
                   env=env, check=True, capture_output=True, text=True)
    text = out_md.read_text()
    assert "## Toy" in text and "The finite difference is poor here." in text
    # darts_fd: 0.9 + step/1000 + batch/10000, one value per point and batch size
    batch8 = text.split("### `cosine` by training progress, batch 8")[1].split("###")[0]
    assert "| darts_fd | 0.901 | 0.951 | 1 |" in batch8
    batch32 = text.split("### `cosine` by training progress, batch 32")[1].split("###")[0]
    assert "| darts_fd | 0.903 | – | 1 |" in batch32
    # Batch sizes compared on steps 0 and 100 only: batch 8 has 0.9008 and 1.0008 (median 0.9508,
    # quartiles 0.9258 and 0.9758); with step 50 (0.9508) its median would stay but its quartiles move.
    by_batch = text.split("### `cosine` by batch size (over the points every batch size has: 0 %, 100 %)")[1]
    assert "| darts_fd | 0.951 [0.926, 0.976] | 0.953 [0.928, 0.978] |" in by_batch.split("###")[0]
    assert "| 0.01 | 0.3 [0.3, 0.3] | 2 [2, 2] | 8 [8, 8] |" in text  # the ε table
    assert (tmp_path / "results").exists() and "![ε convergence]" in text


def test_the_init_section_sets_the_measurement_beside_the_issue_figures(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    record = {"setting": "toy setting", "date": "today", "device_kind": "cpu", "jax": "0", "commit": "c",
              "command": "python benchmarks/mixed_term_init.py", "exact_norm": 2.0,
              "darts_fd_vs_unrolled_k1_cosine": 0.5,
              "finite_difference": [{"eps_scale": 0.01, "norm": 16.0, "cosine": 0.25, "rel_l2": 7.0},
                                    {"eps_scale": 0.1, "norm": 3.0, "cosine": 0.75, "rel_l2": 1.5}]}
    (results / "mixed_term_init.json").write_text(json.dumps(record))
    out_md = tmp_path / "fidelity.md"
    env = {**os.environ, "JAXNAS_RESULTS": str(results), "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "fidelity_report.py"), f"--out={out_md}"],
                   env=env, check=True, capture_output=True, text=True)
    text = out_md.read_text()
    assert "Exact ‖M‖ = 2 (the issue: 1.1087" in text and "`unrolled_k1`: 0.500 (the issue: 0.66)" in text
    assert "| 0.01 | 16 | 8 | 0.250 | 7 | 8.1 / cos 0.34 |" in text  # ‖M_fd‖/‖M‖ = 16 / 2
    assert "| 0.1 | 3 | 1.5 | 0.750 | 1.5 | – |" in text


def test_docs_fidelity_is_what_the_report_makes_of_the_committed_results(tmp_path):
    """docs/fidelity.md is generated, not edited: rerunning the committed script on the committed
    result files gives the committed page."""
    out_md = tmp_path / "fidelity.md"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("JAXNAS_RESULTS", None)
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "fidelity_report.py"), f"--out={out_md}"],
                   env=env, check=True, capture_output=True, text=True)
    with open(os.path.join(ROOT, "docs", "fidelity.md")) as f:
        committed = f.read()
    assert "## The DARTS supernet on the digits (offline)" in committed
    assert out_md.read_text() == committed
    assert sorted(p.name for p in (tmp_path / "fidelity").iterdir()) == sorted(os.listdir(os.path.join(ROOT, "docs",
                                                                                                        "fidelity")))
