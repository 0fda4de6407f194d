"""Anchors: the authors' own code (and published packages), run beside ours in speed benchmarks.

The authors' code is never copied into this repository. A user who wants the anchor rows clones
the public repositories into one folder and points the harness at it::

    git clone https://github.com/twitter-research/neural-sheaf-diffusion  ANCHORS/neural-sheaf-diffusion
    git clone https://github.com/gasmichel/PathNNs_expressive             ANCHORS/PathNNs_expressive
    git clone https://github.com/vgsatorras/egnn                          ANCHORS/egnn
    git clone https://github.com/chendiqian/PR-MPNN                       ANCHORS/PR-MPNN
    python -m benchmarks --anchor-dir ANCHORS sheaf-speed     # or GRAPHLAB_ANCHOR_DIR=ANCHORS

Without it (or with a repository missing) a benchmark says which anchor it skipped and still
runs its from-the-equations reference. Published packages (``egnn-pytorch``, ``igraph``) are
imported when installed (the ``anchors`` optional extra) and skipped with the reason otherwise.

**Shims.** The authors' code imports ``torch_scatter`` / ``torch_sparse`` / ``torch_householder``,
which have no wheel for every platform (none on our CPU machine). When the real package is not
importable, :func:`load_anchor_module` registers a minimal stand-in implementing only the calls
the anchors make, with the same semantics, on plain torch ops (``index_add_``, ``torch.sparse``
matmul, :func:`torch.linalg.householder_product`). :func:`shims_used` lists which were used, so
every table says so; with the real packages installed, they are used instead.

**Measuring against an anchor.** :func:`interleaved_times` times several steps in turns, round
after round in one process, so that load on a shared machine hits every contender alike; a
row's figure is the median of the per-round ratios (graphlab / anchor) with their range
(:func:`ratio_summary`), :func:`scaling_exponent` fits time against size on a log-log scale, and
:func:`peak_memory` measures a step's peak memory (a fresh process on the CPU, the allocator's
peak on CUDA). On CUDA, times are CUDA-event times after a synchronisation.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import sys
import types
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .registry import TaskSkipped

__all__ = ["ANCHOR_ENV", "ANCHOR_REPOS", "AnchorMissing", "anchor_dir", "find_anchor",
           "load_anchor_module", "shims_used", "optional_package", "set_anchor_dir",
           "skipped_anchors", "step_time", "interleaved_times", "ratio_summary",
           "scaling_exponent", "peak_memory", "anchor_row"]

ANCHOR_ENV = "GRAPHLAB_ANCHOR_DIR"

#: Folder name -> (public repository, a file that must exist in a checkout).
ANCHOR_REPOS: dict[str, tuple[str, str]] = {
    "neural-sheaf-diffusion": ("twitter-research/neural-sheaf-diffusion",
                               "models/disc_models.py"),
    "PathNNs_expressive": ("gasmichel/PathNNs_expressive", "TUDatasets/utils.py"),
    "egnn": ("vgsatorras/egnn", "models/egnn_clean/egnn_clean.py"),
    "PR-MPNN": ("chendiqian/PR-MPNN", "simple/simple.py"),
}

_SHIMS_USED: set[str] = set()
#: anchor -> why it was skipped in this process (for the notes of a table)
_SKIPPED: dict[str, str] = {}


class AnchorMissing(TaskSkipped):
    """An anchor is not available here; the message says which and how to provide it."""


def set_anchor_dir(path: Path | str | None) -> None:
    """Make ``path`` the anchor folder for this process (what ``--anchor-dir`` does)."""
    if path is not None:
        os.environ[ANCHOR_ENV] = str(Path(path).expanduser().resolve())


def anchor_dir() -> Path | None:
    """The folder holding the anchor checkouts (``--anchor-dir`` / ``$GRAPHLAB_ANCHOR_DIR``)."""
    value = os.environ.get(ANCHOR_ENV)
    return Path(value) if value else None


def _missing(anchor: str, message: str) -> AnchorMissing:
    _SKIPPED[anchor] = message
    return AnchorMissing(message)


def skipped_anchors() -> dict[str, str]:
    """The anchors skipped so far in this process, each with its reason."""
    return dict(_SKIPPED)


def find_anchor(name: str) -> Path:
    """The checkout of anchor ``name`` (a key of :data:`ANCHOR_REPOS`), or :class:`AnchorMissing`."""
    if name not in ANCHOR_REPOS:
        raise ValueError(f"unknown anchor {name!r}; known: {', '.join(ANCHOR_REPOS)}")
    repo, marker = ANCHOR_REPOS[name]
    root = anchor_dir()
    if root is None:
        raise _missing(repo, f"anchor {repo} skipped: no --anchor-dir (or ${ANCHOR_ENV}) given")
    path = root / name
    if not (path / marker).is_file():
        raise _missing(repo, f"anchor {repo} skipped: {path / marker} not found "
                             f"(clone https://github.com/{repo} into {path})")
    return path


def shims_used() -> list[str]:
    """The stand-in modules registered so far (empty when the real packages were used)."""
    return sorted(_SHIMS_USED)


def optional_package(module: str, extra: str = "anchors") -> types.ModuleType:
    """Import a published anchor package, or raise :class:`AnchorMissing` saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _missing(module, f"anchor package {module!r} skipped: not installed ({error}); "
                               f"pip install 'graphlab[{extra}]'") from None


# --------------------------------------------------------------------------- shims
def _scatter_add(src: Tensor, index: Tensor, dim: int = -1, out: Tensor | None = None,
                 dim_size: int | None = None) -> Tensor:
    dim = dim % src.dim()
    if index.dim() == 1 and src.dim() > 1:
        shape = [1] * src.dim()
        shape[dim] = -1
        index = index.view(shape).expand_as(src)
    if out is None:
        size = list(src.shape)
        if dim_size is not None:
            size[dim] = dim_size
        else:  # torch_scatter's rule: an empty index gives an empty output
            size[dim] = int(index.max()) + 1 if index.numel() else 0
        out = src.new_zeros(size)
    return out.scatter_add_(dim, index, src)


def _scatter(src: Tensor, index: Tensor, dim: int = -1, out: Tensor | None = None,
             dim_size: int | None = None, reduce: str = "sum") -> Tensor:
    if reduce not in ("sum", "add", "mean"):
        raise NotImplementedError(f"shim torch_scatter.scatter: reduce={reduce!r}")
    total = _scatter_add(src, index, dim, out, dim_size)
    if reduce == "mean":
        count = _scatter_add(torch.ones_like(src), index, dim, None, total.size(dim % src.dim()))
        total = total / count.clamp(min=1)
    return total


def _coalesce(index: Tensor, value: Tensor, m: int, n: int, op: str = "add"):
    if op not in ("add", "sum"):
        raise NotImplementedError(f"shim torch_sparse.coalesce: op={op!r}")
    sparse = torch.sparse_coo_tensor(index, value, (m, n) + tuple(value.shape[1:])).coalesce()
    return sparse.indices(), sparse.values()


def _transpose(index: Tensor, value: Tensor, m: int, n: int, coalesced: bool = True):
    return _coalesce(index.flip(0), value, n, m)


def _spmm(index: Tensor, value: Tensor, m: int, n: int, matrix: Tensor) -> Tensor:
    row, col = index[0], index[1]
    out = matrix.new_zeros((m,) + tuple(matrix.shape[1:]))
    return out.index_add_(0, row, matrix[col] * value.view(-1, *([1] * (matrix.dim() - 1))))


def _spspmm(index_a: Tensor, value_a: Tensor, index_b: Tensor, value_b: Tensor, m: int, k: int,
            n: int, coalesced: bool = False):
    a = torch.sparse_coo_tensor(index_a, value_a, (m, k)).coalesce()
    b = torch.sparse_coo_tensor(index_b, value_b, (k, n)).coalesce()
    product = torch.sparse.mm(a, b).coalesce()
    return product.indices(), product.values()


def _householder_orgqr(param: Tensor, tau: Tensor | None = None, eps: float = 1e-12) -> Tensor:
    # torch_householder reflects along the full columns of ``param`` (tau = 2 / |v|^2 by default);
    # householder_product reads them as unit lower triangular. The two agree for the unit lower
    # triangular ``param`` that the sheaf models build (tril(-1) + I), the only use of the shim.
    if tau is None:
        tau = 2.0 / (param * param).sum(dim=-2).clamp_min(eps)
    return torch.linalg.householder_product(param, tau)


def _install_shims() -> None:
    stand_ins = {
        "torch_scatter": {"scatter_add": _scatter_add, "scatter": _scatter},
        "torch_sparse": {"coalesce": _coalesce, "transpose": _transpose, "spmm": _spmm,
                         "spspmm": _spspmm},
        "torch_householder": {"torch_householder_orgqr": _householder_orgqr},
    }
    for name, functions in stand_ins.items():
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        module = types.ModuleType(name)
        module.__dict__.update(functions)
        module.__graphlab_shim__ = True  # type: ignore[attr-defined]
        sys.modules[name] = module
        _SHIMS_USED.add(name)


@contextmanager
def _on_path(root: Path):
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))


def load_anchor_module(name: str, module: str, *, subdir: str = "") -> types.ModuleType:
    """Import ``module`` (dotted, e.g. ``"models.disc_models"``) from the checkout of anchor
    ``name``, with ``checkout/subdir`` as its import root and shims for missing compiled packages.

    The anchor's top-level packages (``models``, ``lib``, ``utils``) would collide with each
    other's and with modules already imported, so they are imported fresh and removed from
    :data:`sys.modules` afterwards (the returned module keeps its own references).
    """
    root = find_anchor(name) / subdir
    _install_shims()
    before = set(sys.modules)
    top = module.split(".")[0]
    shadowed = {key: sys.modules.pop(key) for key in list(sys.modules)
                if key == top or key.startswith(top + ".")}
    try:
        with _on_path(root):
            loaded = importlib.import_module(module)
    finally:
        for key in set(sys.modules) - before:
            if not key.startswith(("torch_scatter", "torch_sparse", "torch_householder")):
                origin = getattr(sys.modules[key], "__file__", None) or ""
                if origin.startswith(str(root)):
                    del sys.modules[key]
        sys.modules.update(shadowed)
    return loaded


# --------------------------------------------------------------------------- measurement
def _cuda_time(step: Callable[[], Any], min_run_time: float, device: torch.device) -> float:
    """Median seconds per call from CUDA events, in blocks of calls of at least ~10 ms."""
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    step()
    end.record()
    torch.cuda.synchronize(device)
    per_call = max(start.elapsed_time(end) / 1e3, 1e-6)
    block = max(1, int(0.01 / per_call))
    blocks = max(3, int(min_run_time / (block * per_call)))
    times = []
    for _ in range(blocks):
        start.record()
        for _ in range(block):
            step()
        end.record()
        torch.cuda.synchronize(device)
        times.append(start.elapsed_time(end) / 1e3 / block)
    return statistics.median(times)


def step_time(step: Callable[[], Any], min_run_time: float,
              device: torch.device | str = "cpu", slow_s: float | None = None) -> float:
    """Median seconds of one call of ``step`` (already warmed up).

    CPU: process CPU time (:func:`benchmarks.common.measure.cpu_time`; one thread, so CPU time is
    compute time on a shared machine); with ``slow_s``, a call slower than that is its own
    figure. CUDA: CUDA-event time of blocks of calls, synchronised.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_time(step, min_run_time, device)
    from .measure import cpu_time

    return cpu_time(step, min_run_time, slow_s)


def interleaved_times(steps: dict[str, Callable[[], Any]], rounds: int, min_run_time: float,
                      device: torch.device | str = "cpu",
                      slow_s: float | None = None) -> dict[str, list[float]]:
    """Per-round median seconds of each step, the steps timed in turns within every round.

    Each step is called once first (warm-up: kernels, autograd, allocator). Ratios of the
    per-round figures compare contenders under the same load, which a shared machine changes
    from one minute to the next.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(step_time(step, min_run_time, device, slow_s))
    return times


def ratio_summary(ours: Sequence[float], anchor: Sequence[float]) -> dict[str, float]:
    """Median, minimum and maximum over rounds of ``ours[r] / anchor[r]`` (below 1: faster)."""
    if len(ours) != len(anchor) or not ours:
        raise ValueError(f"need the same non-zero number of rounds, got {len(ours)} and "
                         f"{len(anchor)}")
    ratios = [a / b for a, b in zip(ours, anchor, strict=True)]
    return {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios)}


def scaling_exponent(sizes: Sequence[float], times: Sequence[float]) -> float:
    """Least-squares slope of ``log(time)`` against ``log(size)`` (1.0: linear scaling)."""
    if len(sizes) != len(times) or len(sizes) < 2:
        raise ValueError("need at least two (size, time) pairs")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in times]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("the sizes must not all be equal")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def peak_memory(factory: str, kwargs: dict[str, Any] | None = None,
                device: torch.device | str = "cpu", timeout: float = 600) -> float | None:
    """Peak memory (MB) of one call of the step ``factory(**kwargs)`` builds, after a warm-up.

    CPU: a fresh interpreter (:func:`benchmarks.common.measure.measure_in_subprocess`, peak
    resident-set growth). CUDA: in this process, the allocator's peak over the call minus what
    was allocated before it. ``None`` (with the reason on stderr) when the worker failed.
    """
    device = torch.device(device)
    if device.type == "cuda":
        module, _, name = factory.partition(":")
        step = getattr(importlib.import_module(module), name)(**(kwargs or {}))
        step()
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    from .measure import measure_in_subprocess

    res = measure_in_subprocess(factory, kwargs, warmup=True, timeout=timeout)
    if "error" in res:
        print(f"peak memory of {factory} {kwargs}: {res['error']}", file=sys.stderr)
        return None
    return res["peak_mb"]


def anchor_row(workload: str, anchor: str, ours_s: Sequence[float], anchor_s: Sequence[float],
               ours_mb: float | None = None, anchor_mb: float | None = None,
               **extra: Any) -> dict[str, Any]:
    """One row of the anchors table: median times (ms) over rounds, the per-round ratio's median
    and range, and the memory ratio (``None`` when either figure is missing)."""
    row: dict[str, Any] = {
        "workload": workload, "graphlab_ms": round(1e3 * statistics.median(ours_s), 3),
        "anchor": anchor, "anchor_ms": round(1e3 * statistics.median(anchor_s), 3),
        **{key: round(value, 3) for key, value in ratio_summary(ours_s, anchor_s).items()},
        "memory_ratio": (round(ours_mb / anchor_mb, 3)
                         if ours_mb is not None and anchor_mb is not None and anchor_mb > 0
                         else None),
    }
    if ours_mb is not None:
        row["graphlab_mb"] = round(ours_mb, 2)
    if anchor_mb is not None:
        row["anchor_mb"] = round(anchor_mb, 2)
    return row | extra
