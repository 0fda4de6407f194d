"""Registry of benchmark tasks run by ``graphlab bench``.

A benchmark module in the top-level ``benchmarks`` package registers its tasks with
:func:`register`; ``graphlab bench`` imports every module in that package (so adding a file is
enough) and runs the selected tasks. A task takes ``quick`` (minutes on 2 cores) and an output
folder and returns rows (dicts) that the CLI prints as one table::

    @register("egnn-nbody", "EGNN vs GNN vs Linear on the charged N-body system")
    def nbody(quick: bool, out: Path) -> list[dict]:
        ...
        return [{"model": "EGNN", "metric": "MSE", "ours": 0.0071, "paper": 0.0071}]
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BenchTask", "register", "registry", "discover"]

BenchFn = Callable[[bool, Path], list[dict]]


@dataclass(frozen=True)
class BenchTask:
    name: str
    description: str
    fn: BenchFn
    in_quick_suite: bool = True  # run by a bare ``graphlab bench --quick``


_REGISTRY: dict[str, BenchTask] = {}


def register(name: str, description: str, in_quick_suite: bool = True) -> Callable[[BenchFn], BenchFn]:
    def deco(fn: BenchFn) -> BenchFn:
        _REGISTRY[name] = BenchTask(name, description, fn, in_quick_suite)
        return fn

    return deco


def discover() -> dict[str, BenchTask]:
    """Import every module of the ``benchmarks`` package so their tasks register."""
    import benchmarks

    for info in pkgutil.iter_modules(benchmarks.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"benchmarks.{info.name}")
    return dict(_REGISTRY)


def registry() -> dict[str, BenchTask]:
    return dict(_REGISTRY)
