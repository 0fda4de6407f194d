"""Input checks for public entry points (the ``sklearn.utils.validation`` idea).

Every message names what was expected and what arrived. These run once at a public boundary;
library internals trust their own tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "check_edge_index",
    "check_node_features",
    "check_same_num_nodes",
    "check_batch_vector",
    "check_index",
    "check_edge_features",
    "check_finite",
    "check_floating",
]


def _shape(t: Tensor) -> str:
    return str(list(t.shape))


def check_edge_index(edge_index: Tensor, num_nodes: int | None = None, name: str = "edge_index") -> None:
    """Check that ``edge_index`` is an integer tensor of shape ``[2, E]`` with ids in range."""
    if not isinstance(edge_index, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(edge_index).__name__}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name} must have shape [2, E], got {_shape(edge_index)}")
    if edge_index.dtype not in (torch.long, torch.int32, torch.int64):
        raise ValueError(f"{name} must have an integer dtype (torch.long), got {edge_index.dtype}")
    if edge_index.numel() == 0 or num_nodes is None:
        return
    lo, hi = int(edge_index.min()), int(edge_index.max())
    if lo < 0 or hi >= num_nodes:
        raise ValueError(
            f"{name} holds node ids in [{lo}, {hi}], outside the valid range [0, {num_nodes - 1}] "
            f"for {num_nodes} nodes"
        )


def check_index(index: Tensor, dim_size: int | None = None, size: int | None = None,
                name: str = "index") -> None:
    """Check a 1-D segment index (aggregation target or batch vector)."""
    if not isinstance(index, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(index).__name__}")
    if index.dim() != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {_shape(index)}")
    if index.dtype not in (torch.long, torch.int32, torch.int64):
        raise ValueError(f"{name} must have an integer dtype (torch.long), got {index.dtype}")
    if size is not None and index.numel() != size:
        raise ValueError(f"{name} must have {size} entries (one per input row), got {index.numel()}")
    if index.numel() and dim_size is not None:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= dim_size:
            raise ValueError(f"{name} holds ids in [{lo}, {hi}], outside [0, {dim_size - 1}]")
    elif index.numel() and int(index.min()) < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {int(index.min())}")


def check_floating(t: Tensor, name: str) -> None:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")


def check_node_features(x: Tensor, name: str = "x", channels: int | None = None,
                        num_nodes: int | None = None, ndim: int = 2) -> None:
    """Check a floating node-feature matrix ``[N, channels]``."""
    check_floating(x, name)
    if x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {_shape(x)}")
    if channels is not None and x.size(-1) != channels:
        raise ValueError(f"{name} must have {channels} channels in its last dimension, "
                         f"got shape {_shape(x)}")
    if num_nodes is not None and x.size(0) != num_nodes:
        raise ValueError(f"{name} must have {num_nodes} rows (one per node), got shape {_shape(x)}")


def check_edge_features(edge_attr: Tensor, num_edges: int, channels: int | None = None,
                        name: str = "edge_attr") -> None:
    """Check per-edge features ``[E]`` or ``[E, channels]``."""
    check_floating(edge_attr, name)
    if edge_attr.size(0) != num_edges:
        raise ValueError(f"{name} must have {num_edges} rows (one per edge), got shape "
                         f"{_shape(edge_attr)}")
    if channels is not None:
        width = 1 if edge_attr.dim() == 1 else edge_attr.size(-1)
        if width != channels:
            raise ValueError(f"{name} must have {channels} channels, got shape {_shape(edge_attr)}")


def check_same_num_nodes(**tensors: Tensor | None) -> int:
    """Check that all given node-level tensors have the same number of rows; return it."""
    sizes = {k: v.size(0) for k, v in tensors.items() if v is not None}
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{k} has {n}" for k, n in sizes.items())
        raise ValueError(f"node-level inputs must have the same number of rows: {detail}")
    return next(iter(sizes.values())) if sizes else 0


def check_batch_vector(batch: Tensor | None, num_nodes: int, name: str = "batch") -> None:
    """Check a graph-membership vector ``[N]`` with values in ``[0, B)``."""
    if batch is None:
        return
    check_index(batch, size=num_nodes, name=name)


def check_finite(t: Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
