"""Models selectable by name in ``graphlab train --model NAME``.

A factory takes the :class:`~graphlab.datasets.spec.TaskSpec` plus keyword hyperparameters and
returns a graphlab model (tensor ``forward(x, edge_index, ...)`` plus ``forward_data(data)``);
:func:`build_model` wraps it in a :class:`DataModel`, whose ``forward(data)`` maps a batched
``Data`` to predictions of shape ``[num_graphs, out_channels]`` (graph tasks) or
``[num_nodes, out_channels]`` (node tasks), which is what a task-agnostic training loop (and
``DistributedDataParallel``, which must go through ``forward``) calls::

    @register_model("sheaf-diag")
    def _sheaf_diag(spec: TaskSpec, **kw) -> nn.Module:
        return SheafDiffusion(spec.in_channels, 20, spec.out_channels, maps="diag", **kw)

``MODEL_MODULES`` lists the modules imported to populate the registry; a new model family adds
its module there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from graphlab.datasets.spec import TaskSpec

__all__ = ["register_model", "build_model", "available_models", "MODEL_MODULES", "DataModel"]

ModelFactory = Callable[..., nn.Module]
_MODELS: dict[str, ModelFactory] = {}

#: modules whose import registers model factories
MODEL_MODULES: list[str] = [
    "graphlab.models.egnn",
    "graphlab.models.gin0",
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


class DataModel(nn.Module):
    r"""A graphlab model called with a (batched) ``Data``: ``forward(data, ...)`` is the wrapped
    model's ``forward_data(data, ...)``.

    Every model in :mod:`graphlab.models` takes tensors (``model(x, edge_index, ...)``, as PyG's
    models do) and offers ``forward_data(data)``; a task-agnostic loop such as ``graphlab train``
    needs the second behind ``forward`` (``DistributedDataParallel`` synchronises gradients only
    through ``forward``), so :func:`build_model` returns this wrapper. The wrapped model is
    :attr:`model` (parameters are under ``model.`` in the ``state_dict``).

    Args:
        model (torch.nn.Module): a module with ``forward_data(data, *args, **kwargs)``.
        transform (callable, optional): the per-graph pre-transform the data needs; defaults
            to ``model.transform`` when the model has one. (default: :obj:`None`)
    """

    def __init__(self, model: nn.Module, transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        if not callable(getattr(model, "forward_data", None)):
            raise ValueError(f"DataModel needs a model with forward_data(data), got "
                             f"{type(model).__name__}")
        self.model = model
        #: pre-transform the training harness applies to every graph once (or ``None``)
        self.transform = transform if transform is not None else getattr(model, "transform",
                                                                          None)

    def reset_parameters(self) -> None:
        self.model.reset_parameters()

    def forward(self, data: Any, *args: Any, **kwargs: Any) -> Tensor:
        return self.model.forward_data(data, *args, **kwargs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.model!r})"


def build_model(name: str, spec: TaskSpec, **kwargs) -> DataModel:
    """Build the model registered as ``name`` (case-insensitive) for ``spec``, wrapped in a
    :class:`DataModel` (``model(data)``; the graphlab model itself is ``.model``)."""
    _load_all()
    key = name.lower()
    if key not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}")
    model = _MODELS[key](spec, **kwargs)
    return model if isinstance(model, DataModel) else DataModel(model)
