"""The registry of reproduction tasks and what a task returns.

A benchmark script registers the function that runs its canonical configuration::

    @register("egnn-nbody", "EGNN vs GNN vs Linear on the charged N-body system",
              paper="Satorras et al. 2021, Table 2")
    def run(quick: bool, out: Path) -> TaskResult:
        ...
        return TaskResult(rows, paper="EGNN MSE 0.0071", ours=f"EGNN MSE {mse:.4f}")

``python -m benchmarks`` imports every script of the package (adding a file is enough), runs the
selected tasks and prints one table; ``python -m benchmarks.NAME`` runs one script. A task that
cannot run at all (its data is not available) raises :class:`TaskSkipped` with the reason; one
that ran only in part lists what it left out in :attr:`TaskResult.skipped`. Nothing that was not
computed in this run may be reported unless :attr:`TaskResult.resumed` says so.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Task", "TaskResult", "TaskSkipped", "register", "registry", "discover", "load_dataset"]


class TaskSkipped(Exception):
    """The task cannot run here (missing data or optional dependency); the message says why."""


@dataclass
class TaskResult:
    """What one run of a task produced.

    Attributes:
        rows: One dict per measured case (the detailed table; nested values stay in the JSON).
        paper: The paper's headline figure this task reproduces ("" when there is none).
        ours: Our corresponding figure from *this* run.
        notes: Methodology written under the detailed table (budget, timing method, ...).
        skipped: Parts that did not run, each with its reason (the status becomes "partial").
        resumed: Non-empty when some numbers were read back from an earlier run in the output
            folder instead of computed now: says what was resumed.
        figures: PNG files the task saved (into its output folder).
        markdown: Detailed tables in markdown, for tasks whose rows do not fit one flat table
            (they replace the generic table in ``<task>.md`` and on stdout).
        config: The configuration of the run (budgets, widths, seeds).
        extra: Further JSON data (learning curves, per-fold values) kept in the results file.
    """

    rows: list[dict[str, Any]]
    paper: str = ""
    ours: str = ""
    notes: str = ""
    skipped: list[str] = field(default_factory=list)
    resumed: str = ""
    figures: list[Path] = field(default_factory=list)
    markdown: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


TaskFn = Callable[[bool, Path], "TaskResult | list[dict[str, Any]]"]


@dataclass(frozen=True)
class Task:
    """A registered reproduction task.

    Attributes:
        name: The task's name (``python -m benchmarks NAME``; its results file is ``NAME.json``).
        description: What it reproduces, one line.
        fn: ``fn(quick, out) -> TaskResult`` (a bare list of rows is accepted too).
        module: The script that defines it (``python -m <module>``).
        paper: The publication (and table) it reproduces, if any.
        in_quick_suite: Whether a bare ``python -m benchmarks --quick`` runs it.
    """

    name: str
    description: str
    fn: TaskFn
    module: str
    paper: str = ""
    in_quick_suite: bool = True


_REGISTRY: dict[str, Task] = {}


def register(name: str, description: str, *, paper: str = "",
             in_quick_suite: bool = True) -> Callable[[TaskFn], TaskFn]:
    """Decorator that registers ``fn(quick, out)`` as the task ``name``."""

    def deco(fn: TaskFn) -> TaskFn:
        module = fn.__module__
        if module == "__main__":  # ``python -m benchmarks.NAME``: the script's real name
            spec = getattr(sys.modules["__main__"], "__spec__", None)
            module = spec.name if spec is not None else module
        known = _REGISTRY.get(name)
        if known is not None and known.module != module:
            raise ValueError(f"benchmark task {name!r} is registered twice: by {known.module} "
                             f"and by {module}")
        _REGISTRY[name] = Task(name, description, fn, module, paper, in_quick_suite)
        return fn

    return deco


def registry() -> dict[str, Task]:
    """The tasks registered so far (call :func:`discover` first to import every script)."""
    return dict(_REGISTRY)


def discover() -> dict[str, Task]:
    """Import every script of the ``benchmarks`` package so that its tasks register.

    Sub-packages (``benchmarks.common``) and private modules are harness code, not scripts.
    """
    import benchmarks

    for info in pkgutil.iter_modules(benchmarks.__path__):
        if not info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"benchmarks.{info.name}")
    return dict(sorted(_REGISTRY.items()))


def load_dataset(name: str):
    """:func:`graphlab.datasets.get_dataset`, or :class:`TaskSkipped` when the data is not here.

    A dataset that is neither in the cache nor in the ``GRAPHLAB_DATA_DIR`` mirror is downloaded
    if possible; when that fails the task is skipped with the reason. A dataset that *is* present
    but fails to load is an error, not a skip.
    """
    from graphlab.datasets import get_dataset, locate_raw

    if not locate_raw(name).startswith("download"):
        return get_dataset(name)
    try:
        return get_dataset(name)
    except Exception as exc:  # noqa: BLE001 - any failure to fetch missing data means "skip"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaskSkipped(f"{name} is not in the cache or the GRAPHLAB_DATA_DIR mirror and could "
                          f"not be downloaded ({reason[:160]})") from exc
