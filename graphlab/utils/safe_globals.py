"""Allowlisting graphlab classes for ``torch.load(..., weights_only=True)``.

A processed PyG dataset stores its ``Data`` class by reference (``InMemoryDataset.save`` pickles
``(data.to_dict(), slices, data.__class__)``). ``torch.load(weights_only=True)`` refuses any
class that is not allowlisted, and PyG's ``fs.torch_load`` then warns and *retries with full
unpickling*, which runs whatever code the file names. PyG allowlists its own classes; every
``Data`` subclass graphlab defines registers itself here, at import of its defining module::

    class PathData(Data):
        ...

    register_safe_globals(PathData)

so a dataset built with, e.g., ``pre_transform=AddPaths(...)`` reloads with the safe loader.
Loaders that want to pass the allowlist explicitly (``torch.serialization.safe_globals(...)``)
read it from :func:`graphlab_safe_globals`.
"""

from __future__ import annotations

import torch

__all__ = ["DEFINING_MODULES", "register_safe_globals", "graphlab_safe_globals"]

_REGISTERED: list[type] = []

#: modules that define (and register) graphlab ``Data`` subclasses; a new one is added here, and
#: ``tests/utils/test_safe_globals.py`` fails for a subclass that is registered nowhere
DEFINING_MODULES = ("graphlab.transforms.add_paths",)


def register_safe_globals(*classes: type) -> None:
    """Allow ``classes`` in ``torch.load(weights_only=True)`` (process-wide; idempotent).

    Only register plain data containers whose unpickling runs no code beyond setting attributes
    (``Data`` subclasses that add batching rules, say), never classes with custom
    ``__reduce__`` / ``__setstate__`` logic.
    """
    for cls in classes:
        if not isinstance(cls, type):
            raise ValueError(f"register_safe_globals takes classes, got {type(cls).__name__}")
    # torch's list, not ours, decides: a ``safe_globals`` context elsewhere may have reset it
    allowed = torch.serialization.get_safe_globals()
    missing = [cls for cls in classes if cls not in allowed]
    if missing:
        torch.serialization.add_safe_globals(missing)
    _REGISTERED.extend(cls for cls in classes if cls not in _REGISTERED)


def graphlab_safe_globals() -> list[type]:
    """Every class graphlab registers, importing the :data:`DEFINING_MODULES` first (so the
    allowlist does not depend on what the process happened to import)."""
    import importlib

    for name in DEFINING_MODULES:
        importlib.import_module(name)
    register_safe_globals(*_REGISTERED)  # re-allow any that a reset allowlist dropped
    return list(_REGISTERED)
