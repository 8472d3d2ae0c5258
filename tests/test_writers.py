"""MetricsWriter: strict JSON for non-finite metrics, TensorBoard rewritten from metrics.jsonl on
resume, a last line torn by a kill."""

import json
import math

from helpers import read_scalars

from jaxnas.writers import MetricsWriter, json_safe


def test_non_finite_values_are_null_in_json_and_nan_in_tensorboard(tmp_path):
    w = MetricsWriter(str(tmp_path))
    w.write({"epoch": 1, "step": 5, "loss": float("nan"), "acc": float("inf"), "ok": 0.5, "cell": {"a": [1.0]}}, 5)
    w.close()
    line = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(line, parse_constant=lambda c: 1 / 0) == {"epoch": 1, "step": 5, "loss": None, "acc": None,
                                                                "ok": 0.5, "cell": {"a": [1.0]}}
    scalars = {tag: v for tag, _, v in read_scalars(str(tmp_path / "tensorboard"))}
    assert scalars.keys() == {"step", "loss", "acc", "ok"} and math.isnan(scalars["loss"]) and scalars["ok"] == 0.5
    assert json_safe([1.0, (float("-inf"),)]) == [1.0, [None]]


def test_resume_keeps_earlier_epochs_once_and_drops_a_torn_line(tmp_path):
    w = MetricsWriter(str(tmp_path))
    for e in (1, 2, 3):
        w.write({"epoch": e, "step": 10 * e, "loss": 1.0 / e}, 10 * e)
    w.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "step": 40, "lo')  # killed while writing epoch 4
    w = MetricsWriter(str(tmp_path))
    w.keep_epochs_before(3)  # the run resumes from a checkpoint in epoch 3
    w.write({"epoch": 3, "step": 30, "loss": 0.25}, 30)
    w.close()
    assert [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        {"epoch": 1, "step": 10, "loss": 1.0}, {"epoch": 2, "step": 20, "loss": 0.5},
        {"epoch": 3, "step": 30, "loss": 0.25}]
    assert sorted((t, s, v) for t, s, v in read_scalars(str(tmp_path / "tensorboard")) if t == "loss") == [
        ("loss", 10, 1.0), ("loss", 20, 0.5), ("loss", 30, 0.25)]
