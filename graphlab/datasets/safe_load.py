"""Weights-only loading of dataset files: nothing in a dataset cache is ever unpickled.

PyG's ``fs.torch_load`` retries a refused safe load with ``weights_only=False``, PyG's
``Dataset._process`` reads ``pre_transform.pt``/``pre_filter.pt`` with ``weights_only=False``,
``ogb`` calls ``torch.load`` itself and PyG's CSL loader calls ``pickle.load`` on its raw file.
Rather than override each loader, :func:`safe_torch_loads` closes all of these paths for the
duration of a dataset load: ``torch.load`` and ``torch_geometric.io.fs.torch_load`` become a loader
that always uses ``weights_only=True`` (allow-listing PyG's storage classes and the ``Data``
subclasses registered in :mod:`graphlab.utils.safe_globals`) and never retries, and the CSL
loader's ``pickle`` is an unpickler restricted to numpy arrays and scipy COO matrices. The patch
is process-global while it is active, so loading datasets from several threads at once is not
supported. :class:`SafeInMemoryDataset` is the base of graphlab's own datasets, whose
construction runs inside the guard.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator

import torch
from torch_geometric.data import InMemoryDataset

from graphlab.runfolder import CorruptFileError

__all__ = ["safe_torch_loads", "UnsafeFileError", "SafeInMemoryDataset"]


class UnsafeFileError(CorruptFileError):
    """A dataset file cannot be read with a safe (weights-only) load: tampered, foreign or
    truncated. ``path`` is the file."""

    def __init__(self, message: str, path: str | None) -> None:
        super().__init__(message)
        self.path = path


def _safe_globals() -> list:
    # PyG registers Data, HeteroData, ... itself; the storages and attribute classes that
    # InMemoryDataset and ogb pickle inside a Data object are not registered. graphlab's own
    # Data subclasses (e.g. PathData from a pre_transform) come from their one registry.
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import EdgeStorage, GlobalStorage, NodeStorage

    from graphlab.utils.safe_globals import graphlab_safe_globals

    return [DataEdgeAttr, DataTensorAttr, GlobalStorage, NodeStorage, EdgeStorage,
            *graphlab_safe_globals()]


def _name_of(f: object) -> str | None:
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    name = getattr(f, "name", None) or getattr(f, "path", None)
    return str(name) if name is not None else None


#: the only classes CSL's raw pickle holds (scipy sparse matrices of numpy arrays)
_CSL_PICKLE_GLOBALS = {
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("scipy.sparse.coo", "coo_matrix"),
    ("scipy.sparse._coo", "coo_matrix"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and scipy COO matrices only (PyG reads CSL's raw file with
    ``pickle.load``); any other global, such as a planted ``timeit.timeit``, is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CSL_PICKLE_GLOBALS:
            path = getattr(self, "path", None)
            raise UnsafeFileError(f"{path} refers to {module}.{name}, which graphlab does not "
                                  "unpickle", path)
        return super().find_class(module, name)


class _RestrictedPickleModule:
    """Stands in for the ``pickle`` module inside PyG's CSL loader."""

    @staticmethod
    def load(file, **kwargs):
        unpickler = _RestrictedUnpickler(file, **kwargs)
        unpickler.path = _name_of(file)
        return unpickler.load()


@contextlib.contextmanager
def safe_torch_loads() -> Iterator[None]:
    """Within the block, every ``torch.load`` and PyG ``fs.torch_load`` is ``weights_only=True``.

    A caller's ``weights_only=False`` is overridden and nothing is retried unsafely. A file that
    the safe load refuses or cannot parse raises :class:`UnsafeFileError` naming it. See the
    module docstring for why this is a patch rather than an override per loader.
    """
    import fsspec
    import torch_geometric.datasets.gnn_benchmark_dataset as pyg_gnnbench
    import torch_geometric.io.fs as pyg_fs

    real_load, real_fs_load, real_pickle = torch.load, pyg_fs.torch_load, pyg_gnnbench.pickle

    def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None,
             **kwargs):
        del pickle_module, weights_only  # a custom unpickler or weights_only=False: refused
        name = _name_of(f)
        try:
            return real_load(f, map_location=map_location, weights_only=True, mmap=mmap,
                             **kwargs)
        except pickle.UnpicklingError:
            raise UnsafeFileError(
                f"{name} holds objects that a safe (weights-only) load refuses; graphlab never "
                "unpickles dataset files", name) from None
        except (EOFError, RuntimeError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            raise UnsafeFileError(f"{name} is truncated or not a torch file ({first})",
                                  name) from None

    def fs_load(path, map_location=None):
        with fsspec.open(path, "rb") as fh:
            try:
                return load(fh, map_location)
            except UnsafeFileError as exc:
                raise UnsafeFileError(str(exc).replace(str(exc.path), str(path)),
                                      str(path)) from None

    torch.load, pyg_fs.torch_load = load, fs_load
    pyg_gnnbench.pickle = _RestrictedPickleModule
    # Registered for the process, not in a ``safe_globals`` context: leaving that context resets
    # the allowlist to its state on entry, dropping any class registered meanwhile (a graphlab
    # Data subclass whose module was first imported while the dataset was being processed).
    torch.serialization.add_safe_globals(_safe_globals())
    try:
        yield
    finally:
        torch.load, pyg_fs.torch_load = real_load, real_fs_load
        pyg_gnnbench.pickle = real_pickle


class SafeInMemoryDataset(InMemoryDataset):
    """An :class:`~torch_geometric.data.InMemoryDataset` stored in one ``processed/data.pt`` and
    built and loaded inside :func:`safe_torch_loads`.

    A processed file that a safe load refuses raises :class:`UnsafeFileError`
    (:func:`~graphlab.datasets.get_dataset` re-processes from the raw files instead).
    """

    def __init__(self, root: str, transform: Callable | None = None,
                 pre_transform: Callable | None = None, force_reload: bool = False) -> None:
        with safe_torch_loads():
            super().__init__(root, transform, pre_transform, force_reload=force_reload)
            self.load(self.processed_paths[0])

    @property
    def processed_file_names(self) -> list[str]:
        return ["data.pt"]
