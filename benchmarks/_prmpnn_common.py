"""Shared helpers of the PR-MPNN benchmarks: result files and small training loops."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

MACHINE = "2-core CPU, torch 2.13 CPU"


def load_dataset(name: str, tag: str):
    """``graphlab.datasets.get_dataset(name)``, or ``None`` (with a message) when its mirror is
    missing: a benchmark skips what it cannot load instead of crashing."""
    from graphlab.datasets import get_dataset

    os.environ.setdefault("GRAPHLAB_DATA_DIR", "/work/shared/data")
    try:
        return get_dataset(name)
    except Exception as exc:  # noqa: BLE001 - a missing mirror means "skip", not "crash"
        print(f"[{tag}] {name} unavailable, skipped: {exc}")
        return None


def write_results(out: Path, name: str, rows: list[dict], command: str, notes: str = "",
                  extra: dict | None = None) -> None:
    """``<out>/<name>.json`` (rows plus ``extra``, e.g. learning curves) and a markdown table
    ``<out>/<name>.md``."""
    out.mkdir(parents=True, exist_ok=True)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = {"command": command, "date": date, "machine": MACHINE, "torch": torch.__version__,
            "python": platform.python_version(), "notes": notes}
    payload = {"meta": meta, "rows": rows, **(extra or {})}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = [f"# {name}", "", f"- command: `{command}`", f"- date: {date}",
             f"- machine: {MACHINE}", ""]
    if notes:
        lines += [notes, ""]
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
