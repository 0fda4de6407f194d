"""Turning every PyG adjacency form into one ``[2, E]`` index, and pair inputs into sizes.

PyG's ``propagate`` takes ``edge_index`` as a ``[2, E]`` tensor, an ``EdgeIndex``, a
``torch.sparse`` ``adj_t`` (COO/CSR/CSC, transposed: row = target) or a ``SparseTensor``. Our
convs also need the endpoint indices outside ``propagate`` (per-edge maps, coordinate updates),
so they read the adjacency once through :func:`unpack_adj` and then run one code path. The edge
order is the adjacency's storage order, the same order PyG's ``propagate`` and
``to_edge_index`` use, so per-edge inputs given alongside an ``adj_t`` (``edge_attr``, maps) are
read in that order, as in PyG.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_edge_index

from graphlab.utils.validation import check_adj, check_node_features

__all__ = ["unpack_adj", "pair", "adj_sizes", "check_pair_features"]


def unpack_adj(edge_index: object) -> tuple[Tensor, Tensor | None]:
    """``(edge_index [2, E] int64, values)`` for any adjacency form; ``values`` is ``None`` for
    index tensors and the sparse tensor's values (``[E]`` or ``[E, D]``) otherwise."""
    if isinstance(edge_index, Tensor) and edge_index.layout == torch.strided:
        if type(edge_index) is not Tensor and hasattr(edge_index, "as_tensor"):  # EdgeIndex
            edge_index = edge_index.as_tensor()
        return edge_index, None
    if isinstance(edge_index, SparseTensor):
        row, col, value = edge_index.coo()
        return torch.stack([col, row]).long(), value
    indices, values = to_edge_index(edge_index)  # [row, col] of adj_t = [target, source]
    return indices.flip(0), values


def adj_sizes(edge_index: object, size: tuple[int, int] | None,
              n_src: int, n_dst: int) -> tuple[int, int]:
    """``(num_src, num_dst)``: from ``size``, else a sparse ``adj_t``'s shape, else the features."""
    if size is not None:
        if len(size) != 2:
            raise ValueError(f"size must be (num_src_nodes, num_dst_nodes), got {size}")
        s, d = size
        return (n_src if s is None else int(s)), (n_dst if d is None else int(d))
    if isinstance(edge_index, SparseTensor) or (isinstance(edge_index, Tensor)
                                                and edge_index.layout != torch.strided):
        return edge_index.size(1), edge_index.size(0)
    return n_src, n_dst


def pair(x: Tensor | tuple[Tensor, Tensor] | list, name: str = "x") -> tuple[Tensor, Tensor]:
    """``x`` or ``(x_src, x_dst)`` as a pair (the same tensor twice for homogeneous input)."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"{name} as a pair must be (x_src, x_dst), got {len(x)} entries")
        return x[0], x[1]
    return x, x


def check_pair_features(x_src: Tensor, x_dst: Tensor, n_src: int, n_dst: int,
                        channels: tuple[int | None, int | None] = (None, None),
                        name: str = "x") -> None:
    """Shape/dtype checks of the two sides against the adjacency's sizes."""
    if x_src is x_dst:
        check_node_features(x_src, name, channels=channels[0])
    else:
        check_node_features(x_src, f"{name}[0] (source)", channels=channels[0])
        check_node_features(x_dst, f"{name}[1] (target)", channels=channels[1])
        if x_src.dtype != x_dst.dtype:
            raise ValueError(f"{name}[0] and {name}[1] must have the same dtype, got "
                             f"{x_src.dtype} and {x_dst.dtype}")
    if x_src.size(0) != n_src:
        raise ValueError(f"{name} has {x_src.size(0)} source rows but the adjacency has {n_src} "
                         f"source nodes")
    if x_dst.size(0) != n_dst:
        raise ValueError(f"{name} has {x_dst.size(0)} target rows but the adjacency has {n_dst} "
                         f"target nodes")


def validated_adj(edge_index: object, n_src: int, n_dst: int) -> tuple[Tensor, Tensor | None]:
    """:func:`check_adj` then :func:`unpack_adj`."""
    check_adj(edge_index, (n_src, n_dst))
    return unpack_adj(edge_index)
