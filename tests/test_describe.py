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
