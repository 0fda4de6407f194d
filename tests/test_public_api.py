"""The public API walker: every public class has a conformance case (with bad inputs), a PyG-style
repr and a working ``reset_parameters()``; every public class is exported.

How cases are discovered is documented in :mod:`graphlab.testing.registry`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from torch import nn
from torch_geometric.transforms import BaseTransform

from graphlab.testing.registry import (
    PUBLIC_PACKAGES,
    Walk,
    check_repr,
    check_reset_parameters,
    coverage,
    public_classes,
)

TESTS = Path(__file__).parent
# not strict here, so that a package without __all__ fails one test, not the collection
PUBLIC = public_classes(strict=False)
IDS = [PUBLIC[cls] for cls in PUBLIC]


@pytest.fixture(scope="module")
def walk() -> Walk:
    return coverage(TESTS)


def test_packages_declare_all():
    public_classes(strict=True)  # ValueError names the package or the dangling entry


def test_every_test_module_imports(walk):
    # a module that does not import contributes no cases, which would hide missing coverage
    assert not walk.import_errors, "\n".join(f"{p}: {e}" for p, e in walk.import_errors.items())


@pytest.mark.parametrize("cls", list(PUBLIC), ids=IDS)
def test_has_a_conformance_case(walk, cls):
    entry = walk.classes[cls]
    assert entry.cases, (f"{entry.qualname} has no conformance case: add a LayerCase to a "
                         f"module-level *CASES list in its test module (see "
                         f"graphlab.testing.registry)")


@pytest.mark.parametrize("cls", list(PUBLIC), ids=IDS)
def test_has_a_bad_input_case(walk, cls):
    entry = walk.classes[cls]
    assert entry.bad_input_cases, (f"{entry.qualname}: none of its cases {entry.cases} checks "
                                   f"bad inputs (LayerCase.bad_inputs)")


@pytest.mark.parametrize("cls", list(PUBLIC), ids=IDS)
def test_repr_is_pyg_style(walk, cls):
    entry = walk.classes[cls]
    if entry.instance is None:  # test_has_a_conformance_case fails for it
        pytest.skip(f"{entry.qualname} has no conformance case to build an instance from")
    check_repr(entry.instance)


@pytest.mark.parametrize("cls", list(PUBLIC), ids=IDS)
def test_reset_parameters_reinitialises_everything(walk, cls):
    entry = walk.classes[cls]
    if entry.instance is None:  # test_has_a_conformance_case fails for it
        pytest.skip(f"{entry.qualname} has no conformance case to build an instance from")
    check_reset_parameters(entry.instance)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_public_class_is_exported(package):
    """A module/transform class defined in the package without a leading underscore is in the
    package's ``__all__`` (``VirtualNodeGNN`` and ``SheafGraphModel`` used not to be)."""
    pkg = importlib.import_module(package)
    exported = set(getattr(pkg, "__all__", ()))
    missing = []
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == module.__name__ \
                    and not name.startswith("_") and issubclass(obj, (nn.Module, BaseTransform)) \
                    and name not in exported:
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"public classes missing from {package}.__all__: {missing}"


def test_walker_sees_through_wrappers_and_transforms():
    """Rule 3 of the convention: outermost public modules and ``case.transform`` are covered."""
    from torch_geometric.nn import SAGEConv

    from graphlab.aggr import RecurrentAggregation
    from graphlab.models import PRMPNN
    from graphlab.rewiring import EdgeScorer
    from graphlab.testing import LayerCase
    from graphlab.testing.registry import covered_objects
    from graphlab.transforms import AddPaths

    case = LayerCase(name="sage-recurrent",
                     make_module=lambda: SAGEConv(8, 8, aggr=RecurrentAggregation(8, 8)),
                     transform=AddPaths(2))
    covered = {type(o) for o in covered_objects(case, PUBLIC)}
    assert covered == {RecurrentAggregation, AddPaths}
    prmpnn = LayerCase(name="prmpnn", make_module=lambda: PRMPNN(4, 8, 2, num_layers=1))
    covered = {type(o) for o in covered_objects(prmpnn, PUBLIC)}
    assert PRMPNN in covered and EdgeScorer not in covered


def test_reset_check_catches_a_forgotten_parameter():
    class Forgets(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def reset_parameters(self) -> None:
            self.a.reset_parameters()  # b is forgotten

    with pytest.raises(AssertionError, match="b.weight"):
        check_reset_parameters(Forgets())
    with pytest.raises(AssertionError, match="no reset_parameters"):
        check_reset_parameters(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(AssertionError, match="PyG-style"):
        check_repr(nn.Sequential(nn.Linear(2, 2)))
