"""The persistent XLA compilation cache: a rerun (a resumed search, the same config again, a test
suite that builds one step several times) loads its compiled steps instead of compiling them."""

from __future__ import annotations

import os

import jax

# For code that runs once (initialisation) or in tests: XLA's cheapest optimisation level compiles
# about twice as fast and runs slower, which only matters for the search and training steps.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def enable_compilation_cache(directory: str) -> None:
    """Cache every compiled computation under `directory` ("" leaves the cache off)."""
    if not directory:
        return
    directory = os.path.abspath(os.path.expanduser(directory))
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
