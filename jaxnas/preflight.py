"""What a run prints before it reads data or compiles: where it runs (devices, their kind, the
versions that matter when a result has to be reproduced) and, when a setting does not suit the
hardware, one line saying what to change. Cheap and side-effect free, so every CLI calls it."""

from __future__ import annotations

import dataclasses
from importlib import metadata

import jax
from absl import logging


@dataclasses.dataclass(frozen=True)
class Hardware:
    """The facts preflight reads from jax, as plain data (so tests can state them)."""

    platform: str  # "cpu", "gpu", "tpu"
    kind: str  # e.g. "TPU v5 lite", "NVIDIA H100 80GB HBM3", "cpu"
    local_devices: int
    devices: int
    processes: int
    compute_capability: str = ""  # CUDA GPUs: "8.0" and up compute bfloat16 natively

    @classmethod
    def current(cls) -> Hardware:
        device = jax.local_devices()[0]
        return cls(platform=device.platform, kind=device.device_kind, local_devices=jax.local_device_count(),
                   devices=jax.device_count(), processes=jax.process_count(),
                   compute_capability=str(getattr(device, "compute_capability", "") or ""))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(hw: Hardware) -> str:
    """One line: devices, kind, processes and versions."""
    versions = " ".join(f"{p} {_version(p)}" for p in ("jaxnas", "jax", "jaxlib", "flax", "optax"))
    return (f"{hw.devices} device(s) ({hw.local_devices} local, {hw.processes} process(es)): {hw.platform} "
            f"{hw.kind}; {versions}")


def advice(hw: Hardware, compute_dtype: str) -> list[str]:
    """One line per setting that does not suit `hw`, each naming the flag to change (a batch that
    does not split over the devices is an error of the config's own checks)."""
    lines = []
    if compute_dtype == "bfloat16" and hw.platform == "cpu":
        lines.append("bfloat16 is emulated on a CPU and slower than float32: use --config.compute_dtype=float32")
    if compute_dtype == "bfloat16" and hw.platform == "gpu" and hw.compute_capability:
        if float(hw.compute_capability) < 8.0:
            lines.append(f"this GPU (compute capability {hw.compute_capability}) has no native bfloat16: use "
                         f"--config.compute_dtype=float32")
    if compute_dtype == "float32" and hw.platform == "tpu":
        lines.append("a TPU computes bfloat16 natively: --config.compute_dtype=bfloat16 halves activation memory "
                     "(not with estimator darts_fd, whose finite difference needs float32)")
    return lines


def preflight(compute_dtype: str | None, hw: Hardware | None = None) -> list[str]:
    """The description line, then any advice lines (none for `compute_dtype=None`)."""
    hw = hw or Hardware.current()
    return [describe(hw), *(advice(hw, compute_dtype) if compute_dtype else [])]


def log_preflight(compute_dtype: str | None) -> None:
    """Log preflight's lines (advice as warnings) on process 0."""
    if jax.process_index() == 0:
        first, *rest = preflight(compute_dtype)
        logging.info("%s", first)
        for line in rest:
            logging.warning("%s", line)

