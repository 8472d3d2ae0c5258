"""The XLA workarounds reach jaxnas's steps as per-compile options: also in a process that used jax
before importing jaxnas (where `XLA_FLAGS` set by a library would be ignored), never over an option
the user set, and importing jaxnas changes no process state."""

import glob
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from helpers import subprocess_env

from jaxnas import xla_workarounds

SCHEDULER_NAMES = [name for name, _, _ in next(iter(xla_workarounds.WORKAROUNDS["cpu"].values()))]


def test_importing_jaxnas_leaves_xla_flags_alone():
    code = "import os, jaxnas, jaxnas.search.loop, jaxnas.train.loop; print(repr(os.environ.get('XLA_FLAGS')))"
    env = {**subprocess_env(), "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr("--xla_force_host_platform_device_count=2")


def test_the_cpu_option_is_spelled_as_this_xla_knows_it_and_a_user_flag_wins(monkeypatch):
    options = xla_workarounds.workaround_options()
    assert len(options) == 1 and next(iter(options)) in SCHEDULER_NAMES
    for name in SCHEDULER_NAMES:
        monkeypatch.setenv("XLA_FLAGS", f"--{name}=whatever --xla_backend_optimization_level=0")
        assert xla_workarounds.workaround_options() == {}


# A user's notebook: jax first, then a jaxnas search (the chain space, a few steps); XLA dumps the
# options each step was compiled with (`*.debug_options`: every option that differs from XLA's default).
JAX_FIRST = """
import sys, jax
print(jax.devices())
from jaxnas.search import loop
from jaxnas.search.config import get_config
c = get_config()
c.update(dict(space="chain", channels=4, layers=2, batch_size=16, epochs=1, train_portion=0.2, plots=False,
              checkpoint_every_steps=0, data_dir=sys.argv[2], compilation_cache=""))
loop.run(c, sys.argv[1])
"""


def test_a_step_compiled_after_jax_started_has_the_workaround(tmp_path):
    dump = tmp_path / "dump"
    env = subprocess_env()
    env["XLA_FLAGS"] += f" --xla_dump_to={dump} --xla_dump_hlo_as_text --xla_dump_hlo_module_re=data_parallel"
    r = subprocess.run([sys.executable, "-c", JAX_FIRST, str(tmp_path / "run"), str(tmp_path / "tfds")], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    steps = glob.glob(str(dump / "*data_parallel_*.debug_options"))
    assert steps, sorted(os.listdir(dump))[:20]
    for path in steps:
        with open(path) as f:
            compiled_with = f.read()
        assert any(name in compiled_with for name in SCHEDULER_NAMES), (path, compiled_with)


def _three_gradients(w, x):
    """Three gradient evaluations one after the other, each through a `lax.scan`, as a second-order
    search step takes them: the pattern whose memory XLA:CPU's default scheduler adds up."""

    def loss(w):
        h, _ = jax.lax.scan(lambda h, wi: (jnp.tanh(h @ wi), None), x, w)
        return jnp.sum(h**2)

    for _ in range(3):
        w = w - 0.1 * jax.grad(loss)(w)
    return w


def test_the_scheduler_option_gives_the_same_numbers_in_less_memory():
    w = jax.random.normal(jax.random.key(0), (16, 64, 64), jnp.float32) / 8
    x = jax.random.normal(jax.random.key(1), (256, 64), jnp.float32)
    plain = jax.jit(_three_gradients).lower(w, x).compile()
    fixed = xla_workarounds.jit(_three_gradients).lower(w, x).compile()
    np.testing.assert_array_equal(np.asarray(plain(w, x)), np.asarray(fixed(w, x)))  # a schedule only orders work
    temp = {k: c.memory_analysis().temp_size_in_bytes for k, c in (("plain", plain), ("fixed", fixed))}
    assert temp["fixed"] < 0.7 * temp["plain"], temp
