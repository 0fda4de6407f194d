"""The benchmark harness, run as a user runs it: ``python -m benchmarks`` in a subprocess.

``benchmarks/`` is the repository's harness, not part of the installed package, so these tests
never import it: they run it from the repository root. Every registered quick task runs in its
own fresh output folder (marked ``slow``: minutes in all, but part of ``make test``, so that no
task can rot), and the runner's promises are checked: a task whose data is missing is
"skipped" with the reason, never "ok"; numbers read back from an earlier run are said to be
resumed; ``benchmarks/results/`` holds one record per registered task and an index generated
from them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

#: every registered task (``python -m benchmarks --list``); a new task is added here, and
#: test_registered_tasks_are_listed_here fails until it is
QUICK_TASKS = [
    "aggr-extrapolation", "aggr-second-min", "aggr-speed", "compile-check", "egnn-nbody",
    "egnn-speed",
    "gin-baseline", "inr-classification",
    "metanets-speed", "ogb", "pathnn-csl", "pathnn-exp", "pathnn-real",
    "pathnn-speed", "pathnn-sr25", "prmpnn-expressivity", "prmpnn-speed", "prmpnn-trees",
    "prmpnn-tu", "sheaf-speed", "sheaf-webkb", "speed-anchors", "zoo-health", "zoo-tasks",
]
#: tasks that need the offline data mirror (GRAPHLAB_DATA_DIR); without it they must be skipped
NEEDS_DATA = {"ogb", "pathnn-csl", "pathnn-exp", "pathnn-real", "pathnn-speed", "pathnn-sr25",
              "prmpnn-expressivity", "prmpnn-tu", "sheaf-speed", "sheaf-webkb"}


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 1200
         ) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _record(out: Path, task: str) -> dict:
    return json.loads((out / task / f"{task}.json").read_text())


def _registered() -> list[str]:
    res = _run("--list")
    assert res.returncode == 0, res.stderr
    rows = [line.split("|")[1].strip() for line in res.stdout.splitlines()[2:]
            if line.startswith("|")]
    return rows


def test_registered_tasks_are_listed_here():
    assert sorted(_registered()) == sorted(QUICK_TASKS)


@pytest.mark.slow
@pytest.mark.parametrize("task", QUICK_TASKS)
def test_quick_task_runs_into_a_fresh_folder(task, tmp_path):
    res = _run("--quick", "--out", str(tmp_path), task)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    record = _record(tmp_path, task)
    assert record["schema"] == "graphlab.results/1"
    assert record["task"] == task and record["config"]["quick"] is True
    status = record["summary"]["status"]
    assert "resumed" not in status, status  # a fresh folder has nothing to resume
    if os.environ.get("GRAPHLAB_DATA_DIR") or task not in NEEDS_DATA:
        assert status.startswith(("ok", "partial")), status
        assert record["runs"], "an ok task has rows"
        assert record["summary"]["ours"], "the summary table shows our number"
    else:  # no mirror: skipped, with the reason, never "ok"
        assert status.startswith("skipped: ") and len(status) > len("skipped: ") + 10, status
    assert (tmp_path / task / f"{task}.md").exists()
    for figure in record["extra"]["figures"]:
        assert (tmp_path / task / figure).stat().st_size > 0
    # the suite table is one clean table, not raw Python dicts
    table = [line for line in res.stdout.splitlines() if line.startswith("| " + task)]
    assert len(table) == 1 and "{'" not in res.stdout, res.stdout[-2000:]


def test_missing_data_is_skipped_not_ok(tmp_path):
    """Regression: a task whose data is missing reported "ok, 0 rows" and exit 0."""
    env = {"GRAPHLAB_DATA_DIR": "", "GRAPHLAB_CACHE": str(tmp_path / "empty-cache")}
    res = _run("--quick", "--out", str(tmp_path / "out"), "pathnn-exp", env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    status = _record(tmp_path / "out", "pathnn-exp")["summary"]["status"]
    assert status.startswith("skipped: EXP is not in the cache"), status
    assert "| pathnn-exp" in res.stdout and "skipped" in res.stdout


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("GRAPHLAB_DATA_DIR"), reason="needs the offline mirror")
def test_rerun_into_the_same_folder_says_it_resumed(tmp_path):
    """Regression: the ogb task reported "ok" in 0.2 s by reading old runs back."""
    first = _run("--quick", "--out", str(tmp_path), "ogb")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "resumed" not in _record(tmp_path, "ogb")["summary"]["status"]
    second = _run("--quick", "--out", str(tmp_path), "ogb")
    assert second.returncode == 0, second.stderr[-3000:]
    status = _record(tmp_path, "ogb")["summary"]["status"]
    assert "[resumed: 3 finished run(s) read back from" in status, status


def test_record_refuses_quick_runs(tmp_path):
    res = _run("--quick", "--record", "--results-dir", str(tmp_path), "aggr-second-min")
    assert res.returncode == 2
    assert "cannot be combined with --quick" in res.stderr
    assert not any(tmp_path.iterdir())


def test_unknown_task_is_an_error():
    res = _run("--quick", "no-such-task")
    assert res.returncode == 2 and "unknown task(s): no-such-task" in res.stderr


def test_index_is_generated_from_the_records(tmp_path):
    """INDEX.md is what ``--index`` generates from the recorded files (never hand-edited),
    it has a row for every registered task, and every file in results/ is referenced by it."""
    copy = tmp_path / "results"
    copy.mkdir()
    for path in RESULTS.glob("*.json"):
        (copy / path.name).write_text(path.read_text())
    res = _run("--index", "--results-dir", str(copy))
    assert res.returncode == 0, res.stderr
    assert (copy / "INDEX.md").read_text() == (RESULTS / "INDEX.md").read_text(), \
        "benchmarks/results/INDEX.md is stale: run python -m benchmarks --index"
    index = (RESULTS / "INDEX.md").read_text()
    for task in QUICK_TASKS:
        assert f"| {task} " in index
    for path in RESULTS.iterdir():
        if path.name != "INDEX.md":
            assert f"({path.name})" in index or f"[.md]({path.name})" in index, path.name
            assert path.stem in QUICK_TASKS, f"{path.name} belongs to no registered task"


def test_recorded_files_are_results_records():
    for path in RESULTS.glob("*.json"):
        record = json.loads(path.read_text())
        assert record["schema"] == "graphlab.results/1", path.name
        assert record["task"] == path.stem
        assert record["config"]["quick"] is False, f"{path.name}: quick runs are not recorded"
        assert record["commit"] and record["date"], path.name
        prov = record["extra"].get("provenance")
        if prov:  # carried over: names where its numbers come from
            assert prov["commit"] == record["commit"] and prov["files"], path.name
