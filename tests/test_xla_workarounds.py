"""The XLA workaround flags: added once, never over a flag the user set."""

import os
import subprocess
import sys

from jaxnas.xla_workarounds import WORKAROUND_FLAGS, with_workarounds


def test_flags_are_added_to_what_is_set():
    flags = with_workarounds("--xla_force_host_platform_device_count=4")
    assert flags.split() == ["--xla_force_host_platform_device_count=4",
                             *(f"--{k}={v}" for k, v in WORKAROUND_FLAGS.items())]
    assert with_workarounds(flags) == flags  # idempotent


def test_a_flag_the_user_set_wins():
    assert with_workarounds("--xla_gpu_enable_triton_gemm=true") == "--xla_gpu_enable_triton_gemm=true"
    assert with_workarounds("") == " ".join(f"--{k}={v}" for k, v in WORKAROUND_FLAGS.items())


def test_importing_jaxnas_applies_them_before_jax_starts():
    code = ("import os, jaxnas, jax; jax.numpy.ones(2).block_until_ready(); "
            "print(os.environ['XLA_FLAGS'])")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["--xla_force_host_platform_device_count=2", "--xla_gpu_enable_triton_gemm=false"]
