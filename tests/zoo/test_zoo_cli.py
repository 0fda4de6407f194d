"""`graphlab zoo build | predict | analyze`: the commands, the report, a parser without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphlab.zoo import load_zoo


def _no_nan(token: str) -> None:
    raise AssertionError(f"results file holds the non-JSON token {token}")


def test_cli_build_predict_analyze(tmp_path: Path, capsys):
    from graphlab.cli import main
    from graphlab.zoo import PRESETS
    from graphlab.zoo.cli import MODEL_NAMES, PRESET_NAMES
    from graphlab.zoo.tasks import MODELS

    assert sorted(PRESET_NAMES) == sorted(PRESETS) and list(MODEL_NAMES) == list(MODELS)
    z = tmp_path / "z"
    assert main(["zoo", "build", "--preset", "random-nets", "--size", "50", "--out", str(z),
                 "--shard", "0/1", "--no-progress"]) == 0
    assert len(load_zoo(z)) == 50
    assert main(["zoo", "predict", "--zoo", str(z), "--target", "complexity", "--model",
                 "statnn", "--split", "id", "--seeds", "2", "--out", str(tmp_path / "p.json")]) == 0
    assert "tau" in capsys.readouterr().out
    rows = json.loads((tmp_path / "p.json").read_text(), parse_constant=_no_nan)  # strict JSON
    assert rows[0]["model"] == "statnn" and rows[0]["split"] == "id"
    rep = tmp_path / "rep"
    assert main(["zoo", "analyze", "--zoo", str(z), "--out", str(rep), "--seeds", "1",
                 "--models", "statnn"]) == 0
    assert {"embedding.png", "pred_vs_true.png", "summary.md"} <= {p.name for p in rep.iterdir()}
    summary = (rep / "summary.md").read_text()
    assert "| id | statnn |" in summary and "Graph of networks" in summary
    json.loads((rep / "summary.json").read_text(), parse_constant=_no_nan)


def test_zoo_cli_imports_no_torch():
    """Building the `graphlab zoo` parser (hence `graphlab --help`) must not import torch."""
    code = ("import sys, argparse; from graphlab.zoo.cli import add_zoo_parser; "
            "p = argparse.ArgumentParser(); add_zoo_parser(p.add_subparsers()); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_cli_build_refuses_other_config_then_overwrites(tmp_path: Path, capsys):
    from graphlab.cli import main

    z = tmp_path / "z"
    assert main(["zoo", "build", "--preset", "random-nets", "--size", "2", "--out", str(z),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["zoo", "build", "--preset", "random-nets", "--size", "2", "--out", str(z),
                 "--seed", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "seed: 0 -> 4" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert main(["zoo", "build", "--preset", "random-nets", "--size", "2", "--out", str(z),
                 "--seed", "4", "--overwrite", "--no-progress"]) == 0
    assert load_zoo(z).meta["seed"] == 4


def test_analyze_without_matplotlib_says_how_to_install(monkeypatch):
    import graphlab.zoo.analysis as analysis

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails like a missing package
    with pytest.raises(ImportError, match=r"pip install 'graphlab\[plot\]'"):
        analysis.pyplot()


def test_cli_analyze_without_matplotlib_is_one_line(monkeypatch, tmp_path: Path, capsys):
    from graphlab.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["zoo", "analyze", "--zoo", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'graphlab[plot]'" in err and "Traceback" not in err
