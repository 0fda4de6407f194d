"""The OGB suite of the benchmark harness, run as a user runs it (``python -m
benchmarks.ogb_graphprop`` from the checkout): resumable seeds, the configuration guard and a
results record that says what it read back. The library pieces it uses are tested where they
live (conformers: ``tests/datasets/test_conformers.py``; the training loop: ``tests/test_train.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _suite(out: Path, mirror: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "benchmarks.ogb_graphprop", "--datasets", "ogbg-molfreesolv",
           "--epochs", "1", "--layers", "1", "--batch-size", "128", "--no-progress",
           "--out", str(out), *args]
    env = {**os.environ, "GRAPHLAB_DATA_DIR": str(mirror), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert (proc.returncode == 0) == ok, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def _rows(out: Path) -> dict[tuple[str, str], dict]:
    record = json.loads((out / "ogb.json").read_text())
    assert record["schema"] == "graphlab.results/1" and record["task"] == "ogb"
    return {(r["dataset"], r["model"]): r for r in record["runs"]}


@pytest.mark.real_data
@pytest.mark.slow
def test_suite_resumes_seeds_and_guards_its_configuration(tmp_path: Path, data_mirror: Path):
    out = tmp_path / "ogb"
    _suite(out, data_mirror, "--models", "gin", "gcn", "--seeds", "1", "--hidden", "8")
    rows = _rows(out)
    assert set(rows) == {("ogbg-molfreesolv", "gin"), ("ogbg-molfreesolv", "gcn")}
    assert not any(r["resumed"] for r in rows.values())
    assert all(r["seeds"] == 1 and r["params"] > 0 and "±" in r["ours"]
               for r in rows.values())
    first = out / "ogbg-molfreesolv" / "gin" / "run_0" / "result.json"
    stamp = first.stat().st_mtime_ns

    # one more seed: the finished seed is read back, only the new one trains
    _suite(out, data_mirror, "--models", "gin", "--seeds", "2", "--hidden", "8")
    assert first.stat().st_mtime_ns == stamp
    assert _rows(out)[("ogbg-molfreesolv", "gin")]["seeds"] == 2
    results = json.loads((out / "ogbg-molfreesolv" / "gin" / "results.json").read_text())
    assert [s["run"] for s in results["runs"]] == [0, 1]

    # the same command again computes nothing and says so: numbers read back are never "ok" alone
    proc = _suite(out, data_mirror, "--models", "gin", "--seeds", "2", "--hidden", "8")
    assert _rows(out)[("ogbg-molfreesolv", "gin")]["resumed"]
    assert "resumed" in proc.stdout and first.stat().st_mtime_ns == stamp

    # other hyperparameters in the same folder are refused (an error), not silently mixed
    proc = _suite(out, data_mirror, "--models", "gin", "--seeds", "2", "--hidden", "16", ok=False)
    assert "another configuration" in proc.stdout + proc.stderr
    assert first.stat().st_mtime_ns == stamp
    assert not list(out.rglob("*.tmp"))
