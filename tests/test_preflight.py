"""The preflight lines: where a run runs, and one line per setting that does not suit the hardware."""

import jax

from jaxnas.preflight import Hardware, advice, describe, preflight

TPU = Hardware("tpu", "TPU v5 lite", 1, 1, 1)
V100 = Hardware("gpu", "Tesla V100-SXM2-16GB", 1, 1, 1, "7.0")
H100 = Hardware("gpu", "NVIDIA H100 80GB HBM3", 8, 8, 1, "9.0")
CPU = Hardware("cpu", "cpu", 1, 1, 1)


def test_the_first_line_names_devices_kind_and_versions():
    line = describe(H100)
    assert line.startswith("8 device(s) (8 local, 1 process(es)): gpu NVIDIA H100 80GB HBM3;")
    assert f"jax {jax.__version__}" in line and "flax " in line and "\n" not in line


def test_each_unsuitable_dtype_gets_one_line_naming_the_flag():
    assert advice(CPU, "float32") == [] and advice(H100, "bfloat16") == [] and advice(TPU, "bfloat16") == []
    for hw, dtype, fix in ((CPU, "bfloat16", "float32"), (V100, "bfloat16", "float32"), (TPU, "float32", "bfloat16")):
        (line,) = advice(hw, dtype)
        assert f"--config.compute_dtype={fix}" in line and "\n" not in line


def test_preflight_reads_this_machine():
    lines = preflight("bfloat16")
    assert lines[0].startswith(f"{jax.device_count()} device(s)") and jax.devices()[0].platform in lines[0]
    assert any("--config.compute_dtype=float32" in line for line in lines[1:])  # the tests run on a CPU

