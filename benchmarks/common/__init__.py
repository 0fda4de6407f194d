"""The harness shared by the benchmark scripts: registry, results files, measurement, figures.

Not part of the installed library: it runs from a checkout (``python -m benchmarks``).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from .registry import Task, TaskResult, TaskSkipped, discover, load_dataset, register, registry
from .results import (
    RESULTS_DIR,
    execute,
    format_table,
    print_row,
    record_task,
    write_index,
    write_task_files,
)

__all__ = ["Task", "TaskResult", "TaskSkipped", "register", "registry", "discover",
           "load_dataset", "RESULTS_DIR", "execute", "format_table", "print_row", "record_task",
           "write_index", "write_task_files", "run_script"]


def run_script(task_name: str, argv: list[str] | None, out: Path, quick: bool,
               run: Callable[[], TaskResult | list[dict]]) -> int:
    """The end of a script's ``main``: run ``run()`` as task ``task_name`` into ``out``, write
    ``out/<task>.json`` / ``.md``, print the table and the status. Returns the exit code (1 when
    the task failed)."""
    task = registry().get(task_name) or discover()[task_name]
    module = task.module
    args = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", module, *args])
    record = execute(task, quick, Path(out), command, run=run)
    print(record["extra"].get("markdown") or format_table(record["runs"]))
    summary = record["summary"]
    if summary["paper"] or summary["ours"]:
        print(f"\npaper: {summary['paper'] or '-'}\nours:  {summary['ours'] or '-'}")
    print(f"\n{task_name}: {summary['status']} ({record['timings']['seconds']} s); "
          f"results: {Path(out) / (task_name + '.json')}")
    return 1 if summary["status"].startswith("FAILED") else 0
