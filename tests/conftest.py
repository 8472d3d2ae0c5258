import os

import pytest

# Several tests compare float32 fast paths with float64 references; x64 must be on before use.
os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# XLA compiles make up most of the suite's time on a CPU, and the tests' networks are tiny: LLVM's
# cheapest optimisation level cut the suite's CPU time by about 14 % (measured on two test files)
# and changes no result a test checks. Subprocesses get the same flags (`helpers.subprocess_env`).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):  # unless set by hand
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

# The slowest tests first: xdist hands out tests in collection order, and a long test collected
# last keeps one worker busy after the other has finished (longest-first scheduling).
SLOW_FIRST = ("test_supernet_estimators.py", "test_supernet.py", "test_search_run.py", "test_study.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1]
        return SLOW_FIRST.index(module) if module in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a module is kept


def _shared_root(tmp_path_factory):
    """A folder all xdist workers of this test run share (pytest's per-run temp folder)."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session", autouse=True)
def xla_cache(tmp_path_factory) -> str:
    """One persistent compilation cache for the whole run: in-process tests and the jaxnas
    subprocesses (`--config.compilation_cache`) load what another worker already compiled,
    eager ops included (`enable_compilation_cache` caches every compile)."""
    from jaxnas.compilation import enable_compilation_cache

    path = str(_shared_root(tmp_path_factory) / "xla-cache")
    enable_compilation_cache(path)
    return path
