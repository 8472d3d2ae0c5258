"""The Colab notebooks run top to bottom on the CPU in their tiny offline setting (JAXNAS_SMOKE=1),
and are stored without outputs."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = ("search_tpu.ipynb", "train_genotype.ipynb", "hypergradient_study.ipynb", "search_ptb.ipynb")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_end_to_end(name, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNAS_SMOKE", "1")
    monkeypatch.setenv("JAXNAS_WORKDIR", str(tmp_path / "workdir"))
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)  # the kernel runs as a user's would,
    monkeypatch.delenv("XLA_FLAGS", raising=False)  # at XLA's optimisation level (it runs steps, not compiles)
    nb = nbformat.read(os.path.join(ROOT, "colab", name), as_version=4)
    assert nb.cells[0].cell_type == "markdown" and "Runtime" in nb.cells[0].source and "How long" in \
        nb.cells[0].source.replace("**How long**", "How long")
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "strip the outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
