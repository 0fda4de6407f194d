"""Shared helpers of the PR-MPNN benchmarks: result files and small training loops."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from graphlab.bench import load_bundle_or_skip

MACHINE = "2-core CPU, torch 2.13 CPU"


def load_dataset(name: str, tag: str):
    """See :func:`graphlab.bench.load_bundle_or_skip`."""
    return load_bundle_or_skip(name, tag)


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
