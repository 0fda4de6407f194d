"""Anchors: the authors' own code (and published packages), run beside ours in speed benchmarks.

The authors' code is never copied into this repository. A user who wants the anchor rows clones
the public repositories into one folder and points the harness at it::

    git clone https://github.com/twitter-research/neural-sheaf-diffusion  ANCHORS/neural-sheaf-diffusion
    git clone https://github.com/gasmichel/PathNNs_expressive             ANCHORS/PathNNs_expressive
    git clone https://github.com/vgsatorras/egnn                          ANCHORS/egnn
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
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from .registry import TaskSkipped

__all__ = ["ANCHOR_ENV", "ANCHOR_REPOS", "AnchorMissing", "anchor_dir", "find_anchor",
           "load_anchor_module", "shims_used", "optional_package", "set_anchor_dir"]

ANCHOR_ENV = "GRAPHLAB_ANCHOR_DIR"

#: Folder name -> (public repository, a file that must exist in a checkout).
ANCHOR_REPOS: dict[str, tuple[str, str]] = {
    "neural-sheaf-diffusion": ("twitter-research/neural-sheaf-diffusion",
                               "models/disc_models.py"),
    "PathNNs_expressive": ("gasmichel/PathNNs_expressive", "TUDatasets/utils.py"),
    "egnn": ("vgsatorras/egnn", "models/egnn_clean/egnn_clean.py"),
}

_SHIMS_USED: set[str] = set()


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


def find_anchor(name: str) -> Path:
    """The checkout of anchor ``name`` (a key of :data:`ANCHOR_REPOS`), or :class:`AnchorMissing`."""
    repo, marker = ANCHOR_REPOS[name]
    root = anchor_dir()
    if root is None:
        raise AnchorMissing(f"anchor {repo} skipped: no --anchor-dir (or ${ANCHOR_ENV}) given")
    path = root / name
    if not (path / marker).is_file():
        raise AnchorMissing(f"anchor {repo} skipped: {path / marker} not found "
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
        raise AnchorMissing(f"anchor package {module!r} skipped: not installed ({error}); "
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
        size[dim] = int(index.max()) + 1 if dim_size is None else dim_size
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
    # torch_householder's orgqr with tau = 2 / |v|^2 (its default) equals householder_product.
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
