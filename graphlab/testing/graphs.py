"""Small random graphs for property tests (seeded, no global RNG state)."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

__all__ = ["random_graph", "permute_graph"]


def random_graph(
    num_nodes: int,
    num_edges: int | None = None,
    in_channels: int = 8,
    edge_dim: int | None = None,
    pos_dim: int | None = None,
    undirected: bool = True,
    self_loops: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """A random graph with node features ``x``, optional ``edge_attr`` and ``pos``.

    ``num_edges`` counts directed edges before symmetrisation (default ``2 * num_nodes``).
    Duplicate edges are removed; with ``undirected`` every edge appears in both directions.
    """
    gen = torch.Generator().manual_seed(seed)
    if num_edges is None:
        num_edges = 2 * num_nodes
    if num_nodes > 1 and num_edges > 0:
        src = torch.randint(0, num_nodes, (num_edges,), generator=gen)
        dst = torch.randint(0, num_nodes, (num_edges,), generator=gen)
        if not self_loops:
            keep = src != dst
            src, dst = src[keep], dst[keep]
        if undirected:
            src, dst = torch.cat([src, dst]), torch.cat([dst, src])
        key = torch.unique(src * num_nodes + dst)
        edge_index = torch.stack([key // num_nodes, key % num_nodes])
    else:
        edge_index = torch.empty(2, 0, dtype=torch.long)
    data = Data(x=torch.randn(num_nodes, in_channels, generator=gen, dtype=dtype),
                edge_index=edge_index, num_nodes=num_nodes)
    if edge_dim is not None:
        data.edge_attr = torch.randn(edge_index.size(1), edge_dim, generator=gen, dtype=dtype)
    if pos_dim is not None:
        data.pos = torch.randn(num_nodes, pos_dim, generator=gen, dtype=dtype)
    return data


def permute_graph(
    data: Data,
    node_perm: torch.Tensor,
    edge_perm: torch.Tensor | None = None,
    node_attrs: tuple[str, ...] = ("x", "pos", "vel"),
    edge_attrs: tuple[str, ...] = ("edge_attr", "edge_weight"),
) -> Data:
    """Relabel nodes so that new node ``i`` is old node ``node_perm[i]``; optionally reorder edges.

    Only the named node-/edge-level attributes are permuted; graph-level attributes are copied.
    """
    n = data.num_nodes
    inv = torch.empty_like(node_perm)
    inv[node_perm] = torch.arange(n)
    out = data.clone()
    out.edge_index = inv[data.edge_index]
    for key in node_attrs:
        if key in data and data[key] is not None:
            out[key] = data[key][node_perm]
    if edge_perm is not None:
        out.edge_index = out.edge_index[:, edge_perm]
        for key in edge_attrs:
            if key in data and data[key] is not None:
                out[key] = data[key][edge_perm]
    return out
