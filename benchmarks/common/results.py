"""Results files of the harness: one ``graphlab.results/1`` record per task run, its markdown
table, the one-line summary of a suite run and the generated ``benchmarks/results/INDEX.md``.

A task run writes ``<out>/<task>.json`` (the record, see :func:`graphlab.runfolder.results_record`)
and ``<out>/<task>.md`` (the same rows as a table, with the command, commit, date and machine).
``python -m benchmarks --record`` writes them into ``benchmarks/results/`` and regenerates the
index from the records found there; the index is never edited by hand.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphlab.runfolder import atomic_write_text, results_record, write_results

from .figures import contact_sheet
from .registry import Task, TaskResult, TaskSkipped

__all__ = ["RESULTS_DIR", "format_table", "print_row", "execute", "write_task_files",
           "record_task", "write_index", "machine_line", "resumed_summary"]

#: where ``--record`` keeps the one canonical file per registered task
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


# --------------------------------------------------------------------------- tables
def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v).replace("|", "/").replace("\n", " ")


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A markdown pipe table of ``rows`` (columns in order of first appearance).

    Nested values (lists, dicts: curves, per-fold lists) are left out of the table: they are
    kept in the JSON record.
    """
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k, v in row.items()
                        if k not in columns and not isinstance(v, (list, dict, tuple))]
    body = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]

    def line(vals: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(list(columns)), sep, *(line(b) for b in body)])


def print_row(row: dict[str, Any]) -> None:
    """One finished case of a long task as a progress line (``key: value; ...``)."""
    print("  " + "; ".join(f"{k}: {_cell(v)}" for k, v in row.items()
                           if not isinstance(v, (list, dict, tuple))), flush=True)


def machine_line(machine: Any) -> str:
    """One line for a record's ``machine`` entry (a dict from the schema, or a legacy string)."""
    if isinstance(machine, dict):
        dev = machine.get("cuda") or "CPU"
        return f"{machine.get('cpu_count')}-core {machine.get('processor', '')} {dev}".strip()
    return str(machine or "")


# --------------------------------------------------------------------------- one task run
def resumed_summary(resumed: str) -> str:
    """:attr:`TaskResult.resumed` for a status line: the counts and folders without the
    parenthesised lists of run names ("90 finished run(s) read back from runs/paper/sheaf-webkb";
    the full text stays in the record's ``extra.resumed``)."""
    return re.sub(r" \([^()]*\)", "", resumed).strip()


def _status(result: TaskResult) -> str:
    if not result.rows:
        return "FAILED: the task returned no rows"
    status = "partial" if result.skipped else "ok"
    if result.skipped:
        status += " (skipped: " + "; ".join(result.skipped) + ")"
    if result.resumed:
        status += f" [resumed: {resumed_summary(result.resumed)}]"
    return status


def execute(task: Task, quick: bool, out: Path, command: str,
            run: Callable[[], TaskResult | list[dict]] | None = None) -> dict[str, Any]:
    """Run ``task`` into the folder ``out`` and write ``out/<task>.json`` and ``.md``.

    ``run`` replaces ``task.fn(quick, out)`` (a script's ``main`` passes its own arguments).
    Returns the record; its ``summary["status"]`` is ``ok``, ``partial (...)``, ``skipped: ...``
    or ``FAILED: ...``. An exception in the task is reported, not raised, so that one failing
    task does not hide the others.
    """
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = TaskResult(rows=[])
    try:
        got = run() if run is not None else task.fn(quick, out)
        result = got if isinstance(got, TaskResult) else TaskResult(rows=list(got))
        status = _status(result)
    except TaskSkipped as exc:
        status = f"skipped: {exc}"
    except Exception as exc:  # noqa: BLE001 - reported in the status and the exit code
        import traceback

        traceback.print_exc()
        status = f"FAILED: {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    record = _record(task, result, status, seconds, quick, command)
    write_task_files(out, record)
    return record


def _record(task: Task, result: TaskResult, status: str, seconds: float, quick: bool,
            command: str) -> dict[str, Any]:
    def joined(key: str) -> str | None:
        vals = sorted({str(r[key]) for r in result.rows if r.get(key) not in (None, "")})
        return ", ".join(vals) if vals else None

    return results_record(
        task=task.name, dataset=joined("dataset"), model=joined("model"),
        metric=joined("metric"),
        config={"quick": quick, "command": command, **result.config},
        runs=result.rows,
        summary={"status": status, "paper": result.paper, "ours": result.ours},
        timings={"seconds": round(seconds, 1)},
        extra={"description": task.description, "reproduces": task.paper,
               "script": f"python -m {task.module}", "notes": result.notes,
               "skipped": result.skipped, "resumed": result.resumed,
               "figures": [Path(f).name for f in result.figures],
               "markdown": result.markdown, **result.extra})


def write_task_files(folder: Path, record: dict[str, Any]) -> tuple[Path, Path]:
    """``folder/<task>.json`` (the record) and ``folder/<task>.md`` (its table)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = record["task"]
    json_path = write_results(folder / f"{name}.json", record)
    md_path = atomic_write_text(folder / f"{name}.md", _markdown(record))
    return json_path, md_path


def _markdown(record: dict[str, Any]) -> str:
    extra, summary, config = record["extra"], record["summary"], record["config"]
    lines = [f"# {record['task']}", "", extra.get("description", ""), ""]
    prov = extra.get("provenance")
    if prov:
        lines += [f"**Carried over, not re-recorded since {prov.get('commit')}**: "
                  f"{prov.get('note', '')}", "", "Commands that produced these rows:", ""]
        lines += [f"- `{c}`" for c in prov.get("commands") or []]
        lines += ["", f"Regenerate with `python -m benchmarks --record {record['task']}`.", ""]
    lines += [f"- command: `{config.get('command', '')}`",
              f"- commit: {record.get('commit')}; date: {record.get('date')}",
              f"- machine: {machine_line(record.get('machine'))}; versions: "
              + ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items()),
              f"- status: {summary.get('status')}"
              + (f"; {record['timings']['seconds']} s" if "seconds" in record["timings"] else "")]
    if extra.get("reproduces"):
        lines.append(f"- reproduces: {extra['reproduces']}")
    if summary.get("paper") or summary.get("ours"):
        lines.append(f"- paper: {summary.get('paper') or '-'}; ours: {summary.get('ours') or '-'}")
    lines += ["", extra.get("markdown") or format_table(record["runs"]), ""]
    if extra.get("notes"):
        lines += [extra["notes"], ""]
    for fig in extra.get("figures") or []:
        lines += [f"![{fig}]({fig})", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- recording
def record_task(record: dict[str, Any], out: Path, results_dir: Path = RESULTS_DIR) -> Path:
    """Copy a finished run's record (and its figures, from ``out``) into ``results_dir``.

    Refuses quick runs and runs that did not finish ("skipped", "FAILED"): the recorded file
    keeps the last full run instead.
    """
    status = record["summary"]["status"]
    if record["config"].get("quick"):
        raise ValueError(f"{record['task']}: quick runs are not recorded (run without --quick)")
    if not status.startswith(("ok", "partial")):
        raise ValueError(f"{record['task']}: not recorded, the run did not finish ({status})")
    import json

    results_dir.mkdir(parents=True, exist_ok=True)
    old = results_dir / f"{record['task']}.json"
    if old.exists():  # figures of the replaced record (older records kept several)
        for fig in json.loads(old.read_text())["extra"].get("figures") or []:
            (results_dir / fig).unlink(missing_ok=True)
    # one figure per task: the run's figures (all still in ``out``) tiled into <task>.png
    drawn = [out / fig for fig in record["extra"].get("figures") or []]
    sheet = contact_sheet(results_dir / f"{record['task']}.png", drawn) if drawn else None
    record["extra"]["figures"] = [sheet.name] if sheet else []
    return write_task_files(results_dir, record)[0]


def write_index(tasks: dict[str, Task], results_dir: Path = RESULTS_DIR) -> Path:
    """Regenerate ``results_dir/INDEX.md`` from the records of the registered ``tasks``."""
    import json

    rows = []
    for name, task in sorted(tasks.items()):
        path = results_dir / f"{name}.json"
        if not path.exists():
            rows.append({"task": name, "what it reproduces": task.description, "file": "-",
                         "command": "-", "commit": "-", "date": "-", "machine": "-",
                         "status": f"not recorded yet (`python -m benchmarks --record {name}`)"})
            continue
        rec = json.loads(path.read_text())
        prov = rec["extra"].get("provenance")
        status = rec["summary"].get("status", "")
        resumed = rec["extra"].get("resumed") or ""
        if resumed:  # records written before statuses were summarised carry the whole list
            status = status.replace(f"[resumed: {resumed}]",
                                    f"[resumed: {resumed_summary(resumed)}]")
        if prov:
            status = (f"carried over, not re-recorded since {prov.get('commit')} "
                      f"(`python -m benchmarks --record {name}`)")
        figures = "".join(f" / [{fig}]({fig})" for fig in rec["extra"].get("figures") or [])
        rows.append({"task": name, "what it reproduces": task.description,
                     "file": f"[{name}.json]({name}.json) / [.md]({name}.md){figures}",
                     "command": f"`{rec['config'].get('command', '')}`",
                     "commit": (rec.get("commit") or "-")[:12], "date": (rec.get("date") or "")[:10],
                     "machine": machine_line(rec.get("machine")), "status": status})
    text = "\n".join([
        "# Recorded results", "",
        "Generated by `python -m benchmarks --index` (and by every `python -m benchmarks --record`);"
        " do not edit by hand. One file per registered task: `<task>.json` is the results record "
        "(schema `graphlab.results/1`: rows, config, commit, date, machine, versions), "
        "`<task>.md` the same as a table. A carried-over file holds the last run of the same "
        "script and command from before the harness recorded files itself: its command, commit "
        "and date are the original ones.", "",
        format_table(rows), ""])
    return atomic_write_text(results_dir / "INDEX.md", text)
