"""Small random graphs for property tests (seeded, no global RNG state)."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

__all__ = ["random_graph", "permute_graph", "adjacency_forms", "toy_hetero_graph", "HETERO_METADATA"]


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


def adjacency_forms(edge_index: torch.Tensor, size: tuple[int, int],
                    value: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``edge_index`` in the other forms a PyG layer must accept, keyed by a readable name.

    ``size`` is ``(num_src, num_dst)``. Returns an ``EdgeIndex`` and the transposed adjacency
    ``adj_t[dst, src]`` as CSR, CSC and COO (coalesced), built directly from the flipped index,
    plus ``"csr_via_t"``: ``to_torch_csc_tensor(edge_index).t()`` as PyG's own tests build it
    (only without multi-dimensional values, which torch cannot transpose in compressed form).
    Edges inside the sparse forms are sorted, so per-edge values must travel inside the tensor.
    """
    from torch_geometric import EdgeIndex
    from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor, to_torch_csr_tensor

    size_t = (size[1], size[0])
    flipped = edge_index.flip(0)
    forms: dict[str, torch.Tensor] = {
        "EdgeIndex": EdgeIndex(edge_index, sparse_size=size),
        "csr": to_torch_csr_tensor(flipped, value, size=size_t),
        "csc": to_torch_csc_tensor(flipped, value, size=size_t),
        "coo": to_torch_coo_tensor(flipped, value, size=size_t).coalesce(),
    }
    if value is None or value.dim() == 1:
        forms["csr_via_t"] = to_torch_csc_tensor(edge_index, value, size=size).t()
    return forms


#: node and edge types of :func:`toy_hetero_graph` (``to_hetero``'s ``metadata``)
HETERO_METADATA: tuple[list[str], list[tuple[str, str, str]]] = (
    ["paper", "author"],
    [("paper", "cites", "paper"), ("author", "writes", "paper"), ("paper", "rev_writes", "author")],
)


def toy_hetero_graph(channels: int, seed: int = 0, pos_dim: int | None = None
                     ) -> tuple[dict[str, torch.Tensor], dict[tuple[str, str, str], torch.Tensor],
                                dict[str, torch.Tensor]]:
    """``(x_dict, edge_index_dict, pos_dict)`` of a 6-paper / 4-author graph typed by
    :data:`HETERO_METADATA`, for ``to_hetero`` tests (``pos_dict`` is empty without ``pos_dim``)."""
    gen = torch.Generator().manual_seed(seed)
    x_dict = {"paper": torch.randn(6, channels, generator=gen),
              "author": torch.randn(4, channels, generator=gen)}
    pos_dict = {} if pos_dim is None else {k: torch.randn(v.size(0), pos_dim, generator=gen)
                                            for k, v in x_dict.items()}
    cites = torch.tensor([[0, 1, 2, 3, 4, 5, 1], [1, 2, 3, 4, 5, 0, 3]])
    writes = torch.tensor([[0, 1, 2, 3, 3], [0, 1, 2, 4, 5]])
    edge_index_dict = {
        ("paper", "cites", "paper"): cites,
        ("author", "writes", "paper"): writes,
        ("paper", "rev_writes", "author"): writes.flip(0),
    }
    return x_dict, edge_index_dict, pos_dict
