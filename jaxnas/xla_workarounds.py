"""XLA flags that keep known compiler bugs out of jaxnas's steps.

XLA must read them before it creates its first backend, so `jaxnas/__init__.py` applies them on
import; a flag the user already set in `XLA_FLAGS` (either value) is left as it is.

- `--xla_gpu_enable_triton_gemm=false`: jax 0.11.2's GPU compiler aborts the process on the DARTS
  supernet's search step (``triton_tiling_propagation.cc: Check failed: subdim_size_accumulator ==
  dim_size``, openxla/xla#47381; seen on an H100, 2026-11-27) while fusing a matmul's operand into a
  Triton GEMM. With Triton GEMMs off, XLA uses cuBLAS for those matmuls and the step compiles and
  runs. The flag is a no-op on CPU and TPU.
"""

from __future__ import annotations

import os

WORKAROUND_FLAGS = {"xla_gpu_enable_triton_gemm": "false"}


def with_workarounds(xla_flags: str) -> str:
    """`xla_flags` plus each workaround flag it does not set already."""
    present = {f.lstrip("-").split("=", 1)[0] for f in xla_flags.split()}
    added = [f"--{name}={value}" for name, value in WORKAROUND_FLAGS.items() if name not in present]
    return " ".join([xla_flags.strip(), *added]).strip()


def apply_xla_workarounds() -> None:
    """Add the workaround flags to this process's `XLA_FLAGS` (and so to its subprocesses')."""
    os.environ["XLA_FLAGS"] = with_workarounds(os.environ.get("XLA_FLAGS", ""))
