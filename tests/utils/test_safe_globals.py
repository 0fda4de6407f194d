"""Every graphlab Data subclass is allowlisted for torch.load(weights_only=True)."""

from __future__ import annotations

import importlib
import io
import pkgutil

import pytest
import torch
from torch_geometric.data.data import BaseData

import graphlab
from graphlab.utils import graphlab_safe_globals, register_safe_globals


def _graphlab_data_classes() -> set[type]:
    """Data subclasses defined anywhere in graphlab (modules with missing extras skipped)."""
    found = set()
    for info in pkgutil.walk_packages(graphlab.__path__, "graphlab."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency (rdkit, ...) is not installed
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseData) \
                    and obj.__module__.startswith("graphlab."):
                found.add(obj)
    return found


def test_every_data_subclass_is_registered():
    classes = _graphlab_data_classes()
    assert classes, "expected at least PathData"
    missing = classes - set(graphlab_safe_globals())
    assert not missing, (f"{sorted(c.__qualname__ for c in missing)} are not registered: call "
                         f"graphlab.utils.register_safe_globals(cls) after the class and add "
                         f"its module to graphlab.utils.safe_globals.DEFINING_MODULES")
    allowed = set(torch.serialization.get_safe_globals())
    assert classes <= allowed


def test_registered_class_round_trips_through_the_safe_loader():
    from graphlab.transforms.add_paths import PathData

    buf = io.BytesIO()
    torch.save({"cls": PathData, "x": torch.ones(2)}, buf)
    buf.seek(0)
    out = torch.load(buf, weights_only=True)
    assert out["cls"] is PathData


def test_register_is_idempotent_and_takes_classes_only():
    before = len(graphlab_safe_globals())
    from graphlab.transforms.add_paths import PathData

    register_safe_globals(PathData)
    assert len(graphlab_safe_globals()) == before
    with pytest.raises(ValueError, match="classes"):
        register_safe_globals("PathData")
