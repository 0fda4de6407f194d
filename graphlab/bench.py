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

__all__ = ["BenchTask", "register", "registry", "discover", "load_bundle_or_skip"]

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


def load_bundle_or_skip(name: str, tag: str):
    """``graphlab.datasets.get_dataset(name)``, or ``None`` (with a message) when it cannot be
    loaded, e.g. offline without a mirror: a benchmark skips what it cannot load instead of
    crashing. Without ``GRAPHLAB_DATA_DIR`` the checkout's sibling ``shared/data`` mirror is used
    when it exists."""
    import os

    from graphlab.datasets import get_dataset

    mirror = Path(__file__).resolve().parents[2] / "shared" / "data"
    if "GRAPHLAB_DATA_DIR" not in os.environ and mirror.is_dir():
        os.environ["GRAPHLAB_DATA_DIR"] = str(mirror)
    try:
        return get_dataset(name)
    except Exception as exc:  # noqa: BLE001 - a missing mirror means "skip", not "crash"
        print(f"[{tag}] {name} unavailable, skipped: {exc}")
        return None
