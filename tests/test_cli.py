"""Tests for the ``graphlab`` command line: fast help, version, one-line user errors, train."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphlab
from graphlab.cli import format_table, main


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphlab", *args], capture_output=True,
                          text=True, timeout=300, **kw)


def test_format_table():
    table = format_table([{"a": 1, "b": 0.123456}, {"a": 22, "c": "x"}])
    lines = table.splitlines()
    assert lines[0].split("|")[1:4] == [" a  ", " b      ", " c "]
    assert "0.1235" in table and len(lines) == 4


def test_help_imports_no_torch():
    """Regression (issue 16): `graphlab --help` took ~5 s importing torch, PyG and metanets."""
    code = ("import sys\n"
            "from graphlab.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['zoo', '--help']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0, argv\n"
            "heavy = [m for m in ('torch', 'torch_geometric', 'numpy', 'graphlab.metanets')\n"
            "         if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--overwrite" in proc.stdout and "--epochs" in proc.stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"graphlab {graphlab.__version__}"
    assert graphlab.__version__ and graphlab.__version__ != "0+unknown"


def test_bench_verb_is_gone(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--list"])
    assert info.value.code == 2
    assert "invalid choice: 'bench'" in capsys.readouterr().err


def test_datasets_command_lists_sizes_and_locations(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "ogbg-molhiv" in out and "41,127 graphs" in out and "SR25" in out


@pytest.mark.parametrize("argv,match", [
    (["--dataset", "NOPE", "--model", "gin"], "unknown dataset 'NOPE'"),
    (["--dataset", "MUTAG", "--model", "nope"], "unknown model 'nope'"),
    (["--dataset", "MUTAG", "--model", "gin", "--epochs", "0"], "epochs must be a positive"),
    (["--dataset", "MUTAG", "--model", "gin", "--epochs", "-1"], "epochs must be a positive"),
    (["--dataset", "MUTAG", "--model", "gin", "--seeds", "0"], "seeds must be a positive"),
    (["--dataset", "MUTAG", "--model", "gin", "--lr", "-1"], "lr must be a positive"),
    (["--dataset", "MUTAG", "--model", "gin", "--batch-size", "0"], "batch_size must be"),
])
def test_user_errors_are_one_line_and_exit_2(argv, match, capsys, tmp_path):
    """Regression (issue 18): an unknown dataset printed a 19-line traceback; --epochs 0/-1 and
    --seeds 0 exited 0 with `nan ± nan`."""
    assert main(["train", *argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "o").exists()  # nothing written for a rejected command


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_user_error(capsys, tmp_path):
    """Regression (issue 18): `--device cuda` on a CPU build raised an AssertionError traceback."""
    assert main(["train", "--dataset", "MUTAG", "--model", "gin", "--device", "cuda",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "Traceback" not in err


def test_offline_dataset_is_a_user_error(tmp_path):
    """Regression (issue 18): offline printed 3 chained tracebacks."""
    env = {"PATH": "/usr/bin:/bin", "GRAPHLAB_CACHE": str(tmp_path / "cache"),
           "HOME": str(tmp_path)}
    proc = _run("train", "--dataset", "EXP", "--model", "gin", "--epochs", "1", "--out",
                str(tmp_path / "o"), "--no-progress", env=env)
    assert proc.returncode == 2, proc.stderr
    assert "EXP cannot be downloaded in a safe format" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
    debug = _run("--debug", "train", "--dataset", "EXP", "--model", "gin", "--epochs", "1",
                 "--out", str(tmp_path / "o"), "--no-progress", env=env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_unwritable_out_is_a_user_error(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", "--dataset", "MUTAG", "--model", "gin", "--epochs", "1",
                 "--out", str(blocker / "sub"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot use" in err and str(blocker / "sub") in err and "Traceback" not in err


def test_internal_errors_keep_their_traceback(monkeypatch, capsys, tmp_path):
    import graphlab.train

    def boom(*args, **kwargs):
        raise IndexError("a bug")

    monkeypatch.setattr(graphlab.train, "train", boom)
    assert main(["train", "--dataset", "MUTAG", "--model", "gin", "--epochs", "1",
                 "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "IndexError: a bug" in err and "bug in graphlab" in err
    with pytest.raises(IndexError):
        main(["--debug", "train", "--dataset", "MUTAG", "--model", "gin", "--out",
              str(tmp_path / "o")])


@pytest.mark.real_data
def test_train_command_on_mutag(data_mirror, tmp_path, capsys):
    out = tmp_path / "mutag"
    argv = ["train", "--dataset", "mutag", "--model", "gin", "--epochs", "2", "--seeds", "2",
            "--hidden-channels", "16", "--num-layers", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "MUTAG / gin: test acc" in printed and "10-fold" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"] == "MUTAG" and res["metric"] == "acc"
    assert res["summary"]["num_runs"] == 2
    assert [s["split"] for s in res["runs"]] == [0, 1]
    assert 0.0 <= res["summary"]["test_mean"] <= 1.0
    # the same folder with another model: refused, naming the keys, until --overwrite
    other = ["train", "--dataset", "mutag", "--model", "gcn", "--epochs", "1", "--lr", "0.1",
             "--out", str(out), "--no-progress"]
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "model: 'gin' -> 'gcn'" in err and "--overwrite" in err
    assert main([*other, "--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())["model"] == "gcn"


@pytest.mark.real_data
def test_train_command_on_ogb_uses_the_official_evaluator(data_mirror, tmp_path):
    out = tmp_path / "bace"
    assert main(["train", "--dataset", "ogbg-molbace", "--model", "gin", "--epochs", "1",
                 "--hidden-channels", "16", "--num-layers", "2", "--out", str(out),
                 "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["metric"] == "rocauc" and 0.0 < res["summary"]["test_mean"] < 1.0


def test_default_out_folder(tmp_path, monkeypatch, capsys):
    """Without --out the run goes to runs/DATASET-MODEL under the working directory."""
    from graphlab.datasets import tree_or_cycle
    from graphlab.datasets.catalog import DatasetBundle, TaskSpec
    from graphlab.utils.metrics import accuracy

    graphs = tree_or_cycle(num_graphs=40, seed=0)
    split = {"train": torch.arange(30), "valid": torch.arange(30, 35),
             "test": torch.arange(35, 40)}
    bundle = DatasetBundle("MUTAG", graphs, [split], TaskSpec("graph", 1, 2, "ce", "acc"),
                           "toy", "generated", accuracy)
    monkeypatch.setattr("graphlab.train.get_dataset", lambda *a, **k: bundle)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "MUTAG", "--model", "gin", "--epochs", "1",
                 "--hidden-channels", "8", "--num-layers", "1", "--no-progress"]) == 0
    assert (Path("runs") / "MUTAG-gin" / "results.json").exists()
    assert "runs/MUTAG-gin/results.json" in capsys.readouterr().out
