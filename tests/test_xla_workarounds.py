"""The XLA workaround flags: added once, never over a flag the user set."""

import os
import subprocess
import sys

import numpy as np

from jaxnas.xla_workarounds import WORKAROUND_FLAGS, with_workarounds


def test_flags_are_added_to_what_is_set():
    flags = with_workarounds("--xla_force_host_platform_device_count=4")
    assert flags.split() == ["--xla_force_host_platform_device_count=4",
                             *(f"--{k}={v}" for k, v in WORKAROUND_FLAGS.items())]
    assert with_workarounds(flags) == flags  # idempotent


def test_a_flag_the_user_set_wins():
    assert with_workarounds("--xla_gpu_enable_triton_gemm=true").split()[0] == "--xla_gpu_enable_triton_gemm=true"
    assert "--xla_gpu_enable_triton_gemm=false" not in with_workarounds("--xla_gpu_enable_triton_gemm=true")
    assert with_workarounds("") == " ".join(f"--{k}={v}" for k, v in WORKAROUND_FLAGS.items())


def test_importing_jaxnas_applies_them_before_jax_starts():
    code = ("import os, jaxnas, jax; jax.numpy.ones(2).block_until_ready(); "
            "print(os.environ['XLA_FLAGS'])")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["--xla_force_host_platform_device_count=2",
                           *(f"--{k}={v}" for k, v in WORKAROUND_FLAGS.items())]


# Three gradient evaluations one after the other, each through a `lax.scan`, as a second-order
# search step takes them: the pattern whose memory XLA:CPU's default scheduler adds up.
THREE_GRADIENTS = """
import jaxnas, jax, jax.numpy as jnp, numpy as np, sys
def loss(w, x):
    h, _ = jax.lax.scan(lambda h, wi: (jnp.tanh(h @ wi), None), x, w)
    return jnp.sum(h ** 2)
def f(w, x):
    for _ in range(3):
        w = w - 0.1 * jax.grad(loss)(w, x)
    return w
w = jax.random.normal(jax.random.key(0), (16, 64, 64)) / 8
x = jax.random.normal(jax.random.key(1), (256, 64))
c = jax.jit(f).lower(w, x).compile()
np.save(sys.argv[1], np.asarray(c(w, x)))
print(c.memory_analysis().temp_size_in_bytes)
"""


def test_the_scheduler_flag_gives_the_same_numbers_in_less_memory(tmp_path):
    temp, outs = {}, {}
    for name, flags in (("jaxnas", ""), ("xla_default", "--xla_cpu_enable_concurrency_optimized_scheduler=true")):
        env = {**os.environ, "XLA_FLAGS": flags}
        out = subprocess.run([sys.executable, "-c", THREE_GRADIENTS, str(tmp_path / name)], env=env,
                             capture_output=True, text=True, check=True).stdout
        temp[name], outs[name] = int(out.split()[-1]), np.load(tmp_path / f"{name}.npy")
    np.testing.assert_array_equal(outs["jaxnas"], outs["xla_default"])  # a schedule only orders the work
    assert temp["jaxnas"] < 0.7 * temp["xla_default"], temp
