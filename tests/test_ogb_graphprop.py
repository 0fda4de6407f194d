"""The OGB benchmark script: model selection by name, resumable seeds, config guard, summary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from benchmarks.ogb_graphprop import MODELS, model_kwargs, run_suite
from graphlab.testing.tiny_bundle import tiny_regression_bundle as tiny_bundle


def test_every_family_is_selectable_by_name():
    from graphlab.models import available_models

    assert set(MODELS) <= set(available_models())
    assert model_kwargs("gin", 32, 2) == {"hidden_channels": 32, "num_layers": 2}
    assert model_kwargs("pathnn-ap", 32, 2) == {"hidden_channels": 32, "max_length": 2}
    assert model_kwargs("sheaf-graph", 30, 2) == {"hidden_channels": 10, "num_layers": 2}
    assert model_kwargs("gin", None, None) == {}  # the paper's defaults


def test_resumable_suite(tmp_path: Path):
    load = lambda name: tiny_bundle()  # noqa: E731
    kw = dict(epochs=1, hidden=8, layers=1, batch_size=16, progress=False, load=load)
    rows = run_suite(["tiny"], ["gin", "egnn"], tmp_path, seeds=2, **kw)
    gin = rows[0]
    assert gin["model"] == "gin" and gin["seeds"] == 2 and gin["params"] > 0
    assert gin["s/epoch"] >= 0 and "±" in gin["ours (test)"]
    if importlib.util.find_spec("rdkit") is None:  # EGNN on conformers skips cleanly
        assert "rdkit is not installed" in rows[1]["note"]

    # more seeds: the finished ones are read back, only the new one trains
    first = tmp_path / "tiny" / "gin" / "run_0" / "result.json"
    stamp = first.stat().st_mtime_ns
    rows = run_suite(["tiny"], ["gin"], tmp_path, seeds=3, **kw)
    assert rows[0]["seeds"] == 3 and first.stat().st_mtime_ns == stamp
    results = json.loads((tmp_path / "tiny" / "gin" / "results.json").read_text())
    assert [s["run"] for s in results["seeds"]] == [0, 1, 2]

    # other hyperparameters in the same folder are refused, not silently mixed
    rows = run_suite(["tiny"], ["gin"], tmp_path, seeds=3, **{**kw, "hidden": 16})
    assert "another configuration" in rows[0]["note"]

    # the summary merges the commands' rows and is complete JSON
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {(r["dataset"], r["model"]) for r in summary["rows"]} == {("tiny", "gin"),
                                                                    ("tiny", "egnn")}
    assert "| tiny" in (tmp_path / "summary.md").read_text()
    assert not list(tmp_path.rglob("*.tmp"))
