"""The examples run as a user runs them (a subprocess, float32) and do what they say."""

import os
import re
import subprocess
import sys

from helpers import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_custom_loop_searches_with_the_unrolled_hypergradient(xla_cache):
    env = subprocess_env(JAX_COMPILATION_CACHE_DIR=xla_cache)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "custom_loop.py"), "30"], env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    losses = [float(m) for m in re.findall(r"train loss ([0-9.]+)", r.stdout)]
    norms = [float(m) for m in re.findall(r"\|dα\| ([0-9.]+)", r.stdout)]
    assert len(losses) == 2 and losses[-1] < losses[0], r.stdout  # steps 0 and 29: the weights learn
    assert all(n > 0 for n in norms), r.stdout  # a hypergradient reached α
    assert "derived cell: Genotype(normal=(" in r.stdout
    with open(os.path.join(ROOT, "examples", "custom_loop.py")) as f:
        assert len(f.read().splitlines()) < 100
