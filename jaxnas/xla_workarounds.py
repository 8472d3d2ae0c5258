"""XLA flags that keep known compiler bugs and costly defaults out of jaxnas's steps.

XLA must read them before it creates its first backend, so `jaxnas/__init__.py` applies them on
import; a flag the user already set in `XLA_FLAGS` (either value) is left as it is.

- `--xla_gpu_enable_triton_gemm=false`: jax 0.11.2's GPU compiler aborts the process on the DARTS
  supernet's search step (``triton_tiling_propagation.cc: Check failed: subdim_size_accumulator ==
  dim_size``, openxla/xla#47381; seen on an H100, 2026-11-27) while fusing a matmul's operand into a
  Triton GEMM. With Triton GEMMs off, XLA uses cuBLAS for those matmuls and the step compiles and
  runs. The flag is a no-op on CPU and TPU.
- `--xla_cpu_enable_concurrency_optimized_scheduler=false`: XLA:CPU's default scheduler favours
  running independent operations side by side over memory. In a step that takes several gradients
  through `lax.scan`s (every search step: two in first order, five in `darts_fd`) it schedules the
  copies of every scan's zero-initialised residual stacks at the start, so each gradient's
  residuals get memory of their own and the step's memory is their sum. XLA's memory-minimising
  scheduler reuses it: at the DARTS paper config the `darts_fd` step needs 2.5 GB instead of 9.4 GB,
  for steps 4-10 % slower (the README's "Step memory"). Set the flag to true to get XLA's default.
  It must be a process flag: as a per-compile option XLA:CPU ignores it. A no-op on GPU and TPU.
"""

from __future__ import annotations

import os

WORKAROUND_FLAGS = {"xla_gpu_enable_triton_gemm": "false", "xla_cpu_enable_concurrency_optimized_scheduler": "false"}


def with_workarounds(xla_flags: str) -> str:
    """`xla_flags` plus each workaround flag it does not set already."""
    present = {f.lstrip("-").split("=", 1)[0] for f in xla_flags.split()}
    added = [f"--{name}={value}" for name, value in WORKAROUND_FLAGS.items() if name not in present]
    return " ".join([xla_flags.strip(), *added]).strip()


def apply_xla_workarounds() -> None:
    """Add the workaround flags to this process's `XLA_FLAGS` (and so to its subprocesses')."""
    os.environ["XLA_FLAGS"] = with_workarounds(os.environ.get("XLA_FLAGS", ""))
