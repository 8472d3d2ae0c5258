import json
import os
import subprocess
import sys

from jaxnas.describe import main
from jaxnas.vocabulary.darts import DARTS_V1


def test_acceptance_command_prints_json():
    out = subprocess.run(
        [sys.executable, "-m", "jaxnas.describe", "DARTS_V2", "--dataset", "cifar10", "--channels", "36",
         "--layers", "20", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    info = json.loads(out)
    assert info["params"] == 3349342
    assert info["params_with_aux"] > info["params"]
    assert set(info) == {"params", "params_with_aux", "multiply_adds"}


def test_genotype_file_and_plot(tmp_path, capsys):
    path = tmp_path / "genotype.json"
    path.write_text(DARTS_V1.to_json())
    png = tmp_path / "cells.png"
    assert main([str(tmp_path), "--json", "--plot", str(png)]) == 0  # a workdir resolves to its genotype.json
    assert json.loads(capsys.readouterr().out)["params"] == 3169414
    assert png.stat().st_size > 10_000
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_line_naming_the_choices(capsys):
    assert main(["NOT_A_GENOTYPE"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "DARTS_V2" in err
    assert main(["DARTS_V2", "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown dataset 'mnist'" in err and "cifar10" in err
    assert not os.path.exists("NOT_A_GENOTYPE")


def test_describe_counts_the_recurrent_cells_language_model():
    """Issue 36: DARTS_V2 at the paper's PTB size (850 dims, 10,000 words) and WikiText-2's (700,
    33,278 words), counted from the layer shapes: the embedding (the decoder tied to it), the
    decoder's bias, W0 (2D × 2D) and one D × 2D matrix per node; the search supernet (300 dims)."""
    from jaxnas.describe import describe, main

    def count(vocab, dim, nodes=8):
        return vocab * dim + vocab + (2 * dim) * (2 * dim) + nodes * dim * (2 * dim)

    assert describe("DARTS_V2", dataset="ptb", channels=850)["params"] == count(10_000, 850) == 22_960_000
    assert describe("DARTS_V2", dataset="wikitext2", channels=700)["params"] == count(33_278, 700)
    assert describe("ENAS", dataset="ptb", channels=850)["params"] == count(10_000, 850, nodes=11)
    assert describe(supernet="darts_rnn", dataset="ptb")["params"] == count(10_000, 300) == 4_810_000
    assert main(["DARTS_V2", "--dataset", "ptb", "--supernet", "darts"]) == 2  # one line, exit 2
