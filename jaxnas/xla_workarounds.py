"""XLA options that keep known compiler bugs and costly defaults out of jaxnas's steps.

They are passed with each compile of a step (`jit`), not through `XLA_FLAGS`: XLA reads `XLA_FLAGS`
once, when its first backend starts, so flags set by a library would be silently ignored in every
notebook or script that touched jax first. An option the user set in `XLA_FLAGS` (either value) is
left to the user. Where the running XLA accepts none of an option's names, jaxnas warns once with
the `XLA_FLAGS` line to set before jax starts.

- GPU, `xla_gpu_enable_triton_gemm=false`: jax 0.11.2's GPU compiler aborts the process on the DARTS
  supernet's search step (``triton_tiling_propagation.cc: Check failed: subdim_size_accumulator ==
  dim_size``, openxla/xla#47381; seen on an H100) while fusing a matmul operand into a Triton GEMM.
  Without Triton GEMMs, XLA uses cuBLAS for those matmuls.
- CPU, the memory-minimising scheduler: XLA:CPU's default schedule favours running independent
  operations side by side; in a step that takes several gradients through `lax.scan`s it gives each
  gradient's scan residuals memory of their own (at the DARTS paper config, `darts_fd` needs 9.4 GB
  instead of 2.5 GB, for steps 4-10 % faster; docs/design.md). XLA renamed the option: jax 0.7
  knows `xla_cpu_enable_concurrency_optimized_scheduler=false`, newer versions
  `xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED`.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

# platform -> workaround -> the spellings of it that XLA versions know, newest first, each as
# (per-compile option name, value, the same as an XLA_FLAGS flag).
WORKAROUNDS: dict[str, dict[str, list[tuple[str, Any, str]]]] = {
    "gpu": {"no Triton GEMM fusion (openxla/xla#47381)": [
        ("xla_gpu_enable_triton_gemm", False, "--xla_gpu_enable_triton_gemm=false")]},
    "cpu": {"the memory-minimising scheduler": [
        ("xla_cpu_scheduler_type", "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
         "--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"),
        ("xla_cpu_enable_concurrency_optimized_scheduler", False,
         "--xla_cpu_enable_concurrency_optimized_scheduler=false")]},
}
PLATFORMS = {"cuda": "gpu", "rocm": "gpu", "gpu": "gpu", "cpu": "cpu"}


def user_flags(xla_flags: str | None = None) -> set[str]:
    """The option names the user set in `XLA_FLAGS`."""
    flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
    return {f.lstrip("-").split("=", 1)[0] for f in flags.split()}


@functools.cache
def _accepted(name: str, value: Any) -> bool:
    """Whether the default backend's XLA knows the option (one tiny compile)."""
    try:
        jax.jit(lambda x: x + 1).lower(np.float32(0)).compile(compiler_options={name: value})
        return True
    except Exception as e:  # XlaRuntimeError: "INVALID_ARGUMENT: No such compile option"
        if "compile option" in str(e) or "INVALID_ARGUMENT" in str(e):
            return False
        raise


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def workaround_options() -> dict[str, Any]:
    """The per-compile options of the workarounds for jax's default backend, in the spelling the
    running XLA knows; none of those the user set in `XLA_FLAGS`."""
    platform = PLATFORMS.get(jax.default_backend(), "other")
    options, set_by_user = {}, user_flags()
    for what, spellings in WORKAROUNDS.get(platform, {}).items():
        if any(name in set_by_user for name, _, _ in spellings):
            continue
        usable = [(name, value) for name, value, _ in spellings if _accepted(name, value)]
        if usable:
            options.update([usable[0]])
        else:
            _warn_once(f"jaxnas could not apply the XLA workaround for {what} with this jax; set "
                       f"XLA_FLAGS='{spellings[-1][2]}' before jax starts (the first line of a notebook or script)")
    return options


def jit(fun: Callable, compiler_options: dict[str, Any] | None = None, **kwargs) -> jax.stages.Wrapped:
    """`jax.jit` with the workarounds as per-compile options (beside any `compiler_options` given)."""
    return jax.jit(fun, compiler_options={**workaround_options(), **(compiler_options or {})}, **kwargs)
