"""The shared vocabulary of graphlab's models: PyG's resolvers for ``act`` / ``norm`` /
``readout``, the graph count and the input checks every model runs at its boundary."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.nn.resolver import (
    activation_resolver,
    aggregation_resolver,
    normalization_resolver,
)
from torch_geometric.transforms import BaseTransform

from graphlab.utils.validation import check_batch_vector, check_edge_index, check_node_features

Act = str | Callable[..., Any] | None
Norm = str | Callable[..., Any] | None
Readout = str | Aggregation | None


def resolve_act(act: Act, act_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """``act`` through PyG's ``activation_resolver`` (``None``: identity)."""
    if act is None:
        return nn.Identity()
    return activation_resolver(act, **(act_kwargs or {}))


class NormLayers(nn.ModuleList):
    """One normalization per layer, resolved by PyG's ``normalization_resolver`` (``"batch_norm"``,
    ``"layer_norm"``, ``"graph_norm"``, ...; ``None``: identity); norms that normalise per graph
    (PyG's ``LayerNorm`` in its default ``mode="graph"``, ``GraphNorm``, ``InstanceNorm``) get
    the batch vector, as in PyG's ``BasicGNN``."""

    def __init__(self, norm: Norm, channels: int, count: int,
                 norm_kwargs: dict[str, Any] | None = None) -> None:
        layer = None if norm is None else normalization_resolver(norm, channels,
                                                                 **(norm_kwargs or {}))
        layer = nn.Identity() if layer is None else layer
        super().__init__(copy.deepcopy(layer) for _ in range(count))
        self.takes_batch = "batch" in inspect.signature(layer.forward).parameters

    def apply(self, i: int, x: Tensor, batch: Tensor | None, num_graphs: int) -> Tensor:
        if self.takes_batch:
            return self[i](x, batch, num_graphs)
        return self[i](x)


def resolve_readout(readout: Readout) -> Aggregation | None:
    """``readout`` through PyG's ``aggregation_resolver`` (``"mean"``, ``"sum"``, ``"max"`` or an
    ``Aggregation``; ``None``: node-level outputs)."""
    if readout is None or isinstance(readout, Aggregation):
        return readout
    if isinstance(readout, str):
        try:
            return aggregation_resolver(readout)
        except ValueError as exc:
            raise ValueError(f"readout {readout!r} is not an aggregation: {exc}") from None
    raise ValueError(f"readout must be an aggregation name, an Aggregation or None, got "
                     f"{type(readout).__name__}")


def readout_name(readout: Aggregation | None) -> str:
    return "None" if readout is None else repr(readout)


def check_model_inputs(x: Tensor, edge_index: Tensor, batch: Tensor | None, in_channels: int,
                       molecular: bool = False) -> None:
    """The checks at a model's boundary: ``edge_index`` (shape, int64, range), the batch vector
    and the node features (float of width ``in_channels``; integer categories with
    ``molecular=True``)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    check_edge_index(edge_index, x.size(0))
    check_batch_vector(batch, x.size(0))
    if molecular:
        if x.is_floating_point():
            raise ValueError(f"molecular=True expects integer OGB atom features, got {x.dtype}")
    else:
        check_node_features(x, "x", channels=in_channels)


def num_graphs_of(batch: Tensor | None, num_graphs: int | None) -> int:
    """``num_graphs`` when given (the only way to count trailing empty graphs), else
    ``batch.max() + 1`` (one graph without a batch vector)."""
    if num_graphs is not None:
        return int(num_graphs)
    if batch is None or batch.numel() == 0:
        return 1
    return int(batch.max()) + 1


def batch_or_zeros(batch: Tensor | None, x: Tensor) -> Tensor:
    if batch is None:
        return torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    return batch


def data_num_graphs(data: Any) -> int | None:
    """``data.num_graphs`` for a ``Batch``, ``None`` for a single ``Data`` without ``batch``."""
    if getattr(data, "batch", None) is None:
        return None
    return int(data.num_graphs)


class CheckGraph(BaseTransform):
    """The first step of a model's pre-transform: ``edge_index`` must be a ``[2, E]`` int64
    tensor with ids below ``num_nodes``. Without it PyG's ``ToUndirected`` silently "repairs" a
    ``[3, E]`` edge_index and reads an ``[E, 2]`` one as a different graph."""

    def forward(self, data: Data) -> Data:
        check_edge_index(data.edge_index, data.num_nodes)
        return data
