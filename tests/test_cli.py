import json

import pytest

from graphlab.bench import discover
from graphlab.cli import format_table, main


def test_format_table():
    table = format_table([{"a": 1, "b": 0.123456}, {"a": 22, "c": "x"}])
    lines = table.splitlines()
    assert lines[0].split("|")[1:4] == [" a  ", " b      ", " c "]
    assert "0.1235" in table and len(lines) == 4


def test_datasets_command_lists_sizes_and_locations(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "ogbg-molhiv" in out and "41,127 graphs" in out and "SR25" in out


def test_bench_lists_registered_tasks(capsys):
    tasks = discover()
    assert "gin-baseline" in tasks
    assert main(["bench", "--list"]) == 0
    assert "gin-baseline" in capsys.readouterr().out


def test_bench_unknown_task(capsys):
    assert main(["bench", "no-such-task"]) == 2
    assert "unknown benchmark task" in capsys.readouterr().err


def test_train_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model"):
        main(["train", "--dataset", "MUTAG", "--model", "nope", "--epochs", "1"])


@pytest.mark.real_data
def test_train_command_on_mutag(data_mirror, tmp_path, capsys):
    out = tmp_path / "mutag"
    code = main(["train", "--dataset", "mutag", "--model", "gin", "--epochs", "2", "--seeds",
                 "2", "--hidden-channels", "16", "--num-layers", "2", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "MUTAG / gin: test acc" in printed and "10-fold" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"] == "MUTAG" and res["metric"] == "acc" and res["num_runs"] == 2
    assert [s["split"] for s in res["seeds"]] == [0, 1]
    assert 0.0 <= res["test_mean"] <= 1.0


@pytest.mark.real_data
def test_train_command_on_ogb_uses_the_official_evaluator(data_mirror, tmp_path, capsys):
    out = tmp_path / "bace"
    assert main(["train", "--dataset", "ogbg-molbace", "--model", "gin", "--epochs", "1",
                 "--hidden-channels", "16", "--num-layers", "2", "--out", str(out),
                 "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["metric"] == "rocauc" and 0.0 < res["test_mean"] < 1.0
