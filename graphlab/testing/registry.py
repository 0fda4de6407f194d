"""Which conformance cases cover which public classes: the discovery behind
``tests/test_public_api.py`` (scikit-learn's ``parametrize_with_checks`` idea: a public class
without a conformance case fails the suite).

The convention, for everyone who adds a public class
------------------------------------------------------
1. **Export it.** Every public class is listed in its package's ``__all__``
   (:data:`PUBLIC_PACKAGES`: ``graphlab.conv``, ``graphlab.aggr``, ``graphlab.transforms``,
   ``graphlab.rewiring``, ``graphlab.models``, ``graphlab.nn``). "Public class" means a class in
   ``__all__`` that subclasses ``torch.nn.Module`` (which includes PyG's ``Aggregation``) or PyG's
   ``BaseTransform``.
2. **Give it a case.** In the test module that mirrors its file (``tests/<package>/test_<file>.py``)
   put :class:`~graphlab.testing.LayerCase` objects in a module-level list whose name ends in
   ``CASES`` (``CASES``, ``FUSED_CASES``, ...) and run them with
   ``@pytest.mark.parametrize("case,check", conformance_params(CASES))``. The walker imports every
   ``tests/**/test_*.py`` module and collects those lists; nothing else needs registering.
3. **What a case covers** (:func:`covered_objects`): the *outermost* public graphlab objects in
   the module that ``case.make_module()`` returns, i.e. the module itself if its class is public,
   else the first public modules found going down its children (so a case built as
   ``SAGEConv(aggr=RecurrentAggregation(8, 8))`` covers ``RecurrentAggregation``, and a ``PRMPNN``
   case covers ``PRMPNN``, not the ``EdgeScorer`` inside it), plus ``case.transform`` when it is
   a public transform (``Compose`` is searched). A transform is therefore covered by a case that
   applies it as ``transform=`` (e.g. ``ConnectionSheaf`` under a ``SheafConv`` case) or whose
   ``make_module`` returns it.
4. **Bad inputs.** At least one case covering each class has a non-empty ``bad_inputs`` (a dict
   of batch mutations that must raise a ``ValueError``, e.g. ``EDGE_INDEX_MUTATIONS``) and does
   not skip the ``bad_inputs`` check: every public class is in issue 18's bad-input matrix.
5. **PyG citizenship**, checked on the covered instance: a one-line PyG-style ``repr``
   (``ClassName(...)``, :func:`check_repr`) and, for a class with parameters, a
   ``reset_parameters()`` that re-initialises every parameter (:func:`check_reset_parameters`
   fills them with NaN, resets, and requires them finite again).

:func:`coverage` returns the whole table (a :class:`Walk`); ``tests/test_public_api.py`` asserts on it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from torch import nn
from torch_geometric.transforms import BaseTransform, Compose

from graphlab.testing.conformance import LayerCase

__all__ = ["PUBLIC_PACKAGES", "public_classes", "collect_cases", "covered_objects", "coverage",
           "Coverage", "Walk", "check_repr", "check_reset_parameters"]

#: the packages whose ``__all__`` must be covered
PUBLIC_PACKAGES: tuple[str, ...] = ("graphlab.conv", "graphlab.aggr", "graphlab.transforms",
                                    "graphlab.rewiring", "graphlab.models", "graphlab.nn")

_PUBLIC_BASES = (nn.Module, BaseTransform)


def public_classes(packages: Sequence[str] = PUBLIC_PACKAGES,
                   strict: bool = True) -> dict[type, str]:
    """``{class: "package.Name"}`` for every public class in the packages' ``__all__``.

    With ``strict`` a package without ``__all__`` or an ``__all__`` entry that does not exist
    (both would hide classes from the walk) is a ``ValueError``; otherwise it is passed over.
    """
    found: dict[type, str] = {}
    for name in packages:
        package = importlib.import_module(name)
        exported = getattr(package, "__all__", None)
        if exported is None:
            if strict:
                raise ValueError(f"{name} has no __all__: list its public names there")
            continue
        for attr in exported:
            if not hasattr(package, attr):
                if strict:
                    raise ValueError(f"{name}.__all__ lists {attr!r}, which {name} does not "
                                     f"define")
                continue
            obj = getattr(package, attr)
            if inspect.isclass(obj) and issubclass(obj, _PUBLIC_BASES):
                found.setdefault(obj, f"{name}.{attr}")
    return found


def _import_test_module(path: Path, root: Path) -> ModuleType:
    # reuse the module pytest already imported (its cases are the ones being run), else import it
    # under a private name so it cannot clash with pytest's basename-style module names
    resolved = path.resolve()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file is not None and Path(file).resolve() == resolved:
            return module
    rel = path.relative_to(root).with_suffix("")
    name = "_graphlab_cases." + ".".join(rel.parts)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def collect_cases(test_root: str | Path,
                  errors: dict[str, str] | None = None) -> dict[str, list[LayerCase]]:
    """``{"tests/pkg/test_x.py::CASES": [LayerCase, ...]}`` from every ``test_*.py`` under
    ``test_root``: each module-level list (or tuple) named ``*CASES`` whose items are
    :class:`LayerCase`.

    A module that fails to import raises, unless ``errors`` is given: then its path maps to the
    error there and the walk goes on (so one broken module does not hide every other result).
    """
    root = Path(test_root)
    found: dict[str, list[LayerCase]] = {}
    for path in sorted(root.rglob("test_*.py")):
        try:
            module = _import_test_module(path, root)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, who fails on it
            if errors is None:
                raise
            errors[str(path)] = f"{type(exc).__name__}: {exc}"
            continue
        for attr, value in vars(module).items():
            if attr.endswith("CASES") and isinstance(value, (list, tuple)) \
                    and value and all(isinstance(c, LayerCase) for c in value):
                found[f"{path.relative_to(root.parent)}::{attr}"] = list(value)
    return found


def _outermost(obj: object, public: set[type]) -> list[object]:
    if type(obj) in public:
        return [obj]
    if isinstance(obj, Compose):
        return [o for t in obj.transforms for o in _outermost(t, public)]
    if isinstance(obj, nn.Module):
        return [o for child in obj.children() for o in _outermost(child, public)]
    return []


def covered_objects(case: LayerCase, public: Iterable[type]) -> list[object]:
    """The public objects ``case`` exercises (see the module docstring, rule 3), built with the
    seed the conformance checks use."""
    public = set(public)
    torch.manual_seed(0)
    objs = _outermost(case.make_module(), public)
    if case.transform is not None:
        objs += _outermost(case.transform, public)
    return objs


def check_repr(obj: object) -> None:
    """A PyG-style repr: one line, ``ClassName(...)``. ``AssertionError`` otherwise."""
    text = repr(obj)
    name = type(obj).__name__
    if not text.startswith(f"{name}(") or not text.endswith(")") or "\n" in text:
        raise AssertionError(f"{name}: repr is not PyG-style (one line 'ClassName(...)'): "
                             f"{text[:200]!r}")


def check_reset_parameters(module: object) -> None:
    """A module with parameters has ``reset_parameters()`` that re-initialises all of them:
    every parameter is filled with NaN, reset, and must be finite afterwards."""
    if not isinstance(module, nn.Module):
        return
    params = list(module.named_parameters())
    if not params:
        return
    name = type(module).__name__
    reset = getattr(module, "reset_parameters", None)
    if not callable(reset):
        raise AssertionError(f"{name} has parameters but no reset_parameters()")
    with torch.no_grad():
        for _, p in params:
            p.fill_(float("nan"))
    torch.manual_seed(0)
    reset()
    stale = [n for n, p in module.named_parameters() if not bool(torch.isfinite(p).all())]
    if stale:
        raise AssertionError(f"{name}.reset_parameters() left parameters uninitialised: "
                             f"{', '.join(stale)}")


@dataclass
class Coverage:
    """What the walk found for one public class."""

    qualname: str
    cases: list[str] = field(default_factory=list)
    bad_input_cases: list[str] = field(default_factory=list)
    instance: object | None = None


@dataclass
class Walk:
    """The result of :func:`coverage`: one :class:`Coverage` per public class, and the test
    modules that could not be imported (their cases are missing from the table)."""

    classes: dict[type, Coverage]
    import_errors: dict[str, str]


def coverage(test_root: str | Path, packages: Sequence[str] = PUBLIC_PACKAGES) -> Walk:
    """Walk the public classes and the test modules: for every class the cases covering it
    (``"file::LIST::name"``) and those that check bad inputs, plus one covered instance for the
    repr / reset checks."""
    public = public_classes(packages, strict=False)
    table = {cls: Coverage(qualname) for cls, qualname in public.items()}
    errors: dict[str, str] = {}
    for where, cases in collect_cases(test_root, errors).items():
        for case in cases:
            label = f"{where}::{case.name}"
            checks_bad = bool(case.bad_inputs) and "bad_inputs" not in case.skip
            for obj in covered_objects(case, public):
                entry = table[type(obj)]
                if label not in entry.cases:
                    entry.cases.append(label)
                    if checks_bad:
                        entry.bad_input_cases.append(label)
                if entry.instance is None:
                    entry.instance = obj
    return Walk(table, errors)
