"""Models selectable by name in ``graphlab train --model NAME``.

A factory takes the :class:`~graphlab.datasets.spec.TaskSpec` plus keyword hyperparameters and
returns a module whose ``forward(data)`` maps a batched ``Data`` to predictions of shape
``[num_graphs, out_channels]`` (graph tasks) or ``[num_nodes, out_channels]`` (node tasks)::

    @register_model("sheaf-diag")
    def _sheaf_diag(spec: TaskSpec, **kw) -> nn.Module:
        return SheafDiffusion(spec.in_channels, spec.out_channels, maps="diag", **kw)

``MODEL_MODULES`` lists the modules imported to populate the registry; a new model family adds
its module there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from graphlab.datasets.spec import TaskSpec

__all__ = ["register_model", "build_model", "available_models", "MODEL_MODULES"]

ModelFactory = Callable[..., nn.Module]
_MODELS: dict[str, ModelFactory] = {}

#: modules whose import registers model factories
MODEL_MODULES: list[str] = [
    "graphlab.models.egnn",
    "graphlab.models.gnn",
    "graphlab.models.ogb_variants",
    "graphlab.models.pathnn",
    "graphlab.models.prmpnn",
    "graphlab.models.sheaf_diffusion",
]


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    def deco(fn: ModelFactory) -> ModelFactory:
        _MODELS[name.lower()] = fn
        return fn

    return deco


def _load_all() -> None:
    for mod in MODEL_MODULES:
        importlib.import_module(mod)


def available_models() -> list[str]:
    _load_all()
    return sorted(_MODELS)


def build_model(name: str, spec: TaskSpec, **kwargs) -> nn.Module:
    """Build the model registered as ``name`` (case-insensitive) for ``spec``."""
    _load_all()
    key = name.lower()
    if key not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}")
    return _MODELS[key](spec, **kwargs)
