"""Run the registered reproduction tasks and print one table.

    python -m benchmarks --list                  # the registered tasks
    python -m benchmarks --quick                 # every quick task (``make demo``), minutes
    python -m benchmarks --quick egnn-nbody ogb  # some of them
    python -m benchmarks --record egnn-nbody     # full run, written to benchmarks/results/
    python -m benchmarks --index                 # regenerate benchmarks/results/INDEX.md

Each task runs into ``OUT/<task>/`` (default ``OUT``: a fresh ``runs/bench/<UTC time>``, so no
run reads back an earlier one) and writes ``<task>.json`` (a ``graphlab.results/1`` record) and
``<task>.md`` there, with any PNG figures. ``--record`` also writes them to
``benchmarks/results/<task>.{json,md}``, the one canonical file per task, and regenerates
``benchmarks/results/INDEX.md``. The exit status is 1 when a task failed (or could not be
recorded); a task whose data is missing is "skipped" with the reason, never "ok".
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from benchmarks.common import (
    RESULTS_DIR,
    discover,
    execute,
    format_table,
    record_task,
    write_index,
)
from benchmarks.common.anchors import set_anchor_dir


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", help="task names (default: all; with --quick, the "
                                                 "quick suite)")
    parser.add_argument("--quick", action="store_true", help="the minutes-scale configuration")
    parser.add_argument("--list", action="store_true", help="list the registered tasks and exit")
    parser.add_argument("--record", action="store_true",
                        help="write each finished full run to benchmarks/results/ and "
                             "regenerate INDEX.md")
    parser.add_argument("--index", action="store_true",
                        help="regenerate benchmarks/results/INDEX.md and exit")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a fresh runs/bench/<UTC time>)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where --record and --index write (default: benchmarks/results)")
    parser.add_argument("--anchor-dir", type=Path, default=None,
                        help="folder with checkouts of the authors' repositories, for the speed "
                             "tasks' anchor rows (see benchmarks/common/anchors.py)")
    args = parser.parse_args(argv)
    set_anchor_dir(args.anchor_dir)

    if args.record and args.quick:
        parser.error("--record writes the canonical full runs; it cannot be combined with --quick")
    tasks = discover()
    if args.list:
        print(format_table([{"task": t.name, "quick suite": t.in_quick_suite,
                             "script": f"python -m {t.module}", "what it reproduces":
                             t.description} for t in tasks.values()]))
        return 0
    if args.index:
        print(f"wrote {write_index(tasks, args.results_dir)}")
        return 0
    unknown = [n for n in args.tasks if n not in tasks]
    if unknown:
        parser.error(f"unknown task(s): {', '.join(unknown)}; known: {', '.join(tasks)}")
    names = args.tasks or [n for n, t in tasks.items() if t.in_quick_suite or not args.quick]
    out = args.out or Path("runs") / "bench" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())

    summary, failed = [], []
    for name in names:
        task = tasks[name]
        print(f"== {name}: {task.description}", flush=True)
        command = shlex.join(["python", "-m", "benchmarks", *(["--quick"] if args.quick else []),
                              *(["--record"] if args.record else []), name])
        record = execute(task, args.quick, out / name, command)
        status = record["summary"]["status"]
        if args.record and not status.startswith("FAILED"):
            try:
                record_task(record, out / name, args.results_dir)
            except ValueError as exc:
                status += f"; {exc}"
                failed.append(name)
        if status.startswith("FAILED"):
            failed.append(name)
        seconds = record["timings"]["seconds"]
        print(f"   {_shorten(status, 200)} ({seconds:.0f} s)", flush=True)
        # the full texts are in OUT/<task>/<task>.md; the table stays readable in a terminal
        summary.append({"task": name, "what it reproduces": _shorten(task.description, 50),
                        "paper": _shorten(record["summary"]["paper"] or "-", 50),
                        "ours": _shorten(record["summary"]["ours"] or "-", 70),
                        "status": _shorten(status, 70), "seconds": round(seconds, 1)})
    if args.record:
        write_index(tasks, args.results_dir)
    print()
    print(format_table(summary))
    total = sum(r["seconds"] for r in summary)
    print(f"\n{len(summary)} task(s) in {total:.0f} s; results, tables and figures in {out}/")
    if failed:
        print(f"failed: {', '.join(dict.fromkeys(failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
