"""The OGB suite of the benchmark harness, run as a user runs it (``python -m
benchmarks.ogb_graphprop`` from the checkout): resumable seeds, the configuration guard and the
merged summary. The library pieces it uses are tested where they live (conformers:
``tests/datasets/test_conformers.py``; the training loop: ``tests/test_train.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _suite(out: Path, mirror: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "benchmarks.ogb_graphprop", "--datasets", "ogbg-molfreesolv",
           "--epochs", "1", "--layers", "1", "--batch-size", "128", "--no-progress",
           "--out", str(out), *args]
    env = {**os.environ, "GRAPHLAB_DATA_DIR": str(mirror), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.mark.real_data
@pytest.mark.slow
def test_suite_resumes_seeds_and_guards_its_configuration(tmp_path: Path, data_mirror: Path):
    out = tmp_path / "ogb"
    _suite(out, data_mirror, "--models", "gin", "gcn", "--seeds", "1", "--hidden", "8")
    first = out / "ogbg-molfreesolv" / "gin" / "run_0" / "result.json"
    assert first.exists()
    stamp = first.stat().st_mtime_ns

    # one more seed: the finished seed is read back, only the new one trains
    _suite(out, data_mirror, "--models", "gin", "--seeds", "2", "--hidden", "8")
    assert first.stat().st_mtime_ns == stamp
    results = json.loads((out / "ogbg-molfreesolv" / "gin" / "results.json").read_text())
    assert [s["run"] for s in results["seeds"]] == [0, 1]

    # other hyperparameters in the same folder are refused, not silently mixed
    proc = _suite(out, data_mirror, "--models", "gin", "--seeds", "2", "--hidden", "16")
    assert "another configuration" in proc.stdout

    # the summary merges the commands' rows (a rerun replaces its own) and is complete JSON
    summary = json.loads((out / "summary.json").read_text())
    rows = {(r["dataset"], r["model"]): r for r in summary["rows"]}
    assert set(rows) == {("ogbg-molfreesolv", "gin"), ("ogbg-molfreesolv", "gcn")}
    assert rows[("ogbg-molfreesolv", "gcn")]["seeds"] == 1
    assert "| ogbg-molfreesolv" in (out / "summary.md").read_text()
    assert not list(out.rglob("*.tmp"))
