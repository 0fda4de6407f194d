"""Small generated graph-classification tasks that need no data files."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

__all__ = ["tree_or_cycle"]


def tree_or_cycle(num_graphs: int = 400, seed: int = 0, min_nodes: int = 8,
                  max_nodes: int = 20) -> list[Data]:
    r"""Random trees (label 0) and random trees plus one cycle-closing edge (label 1).

    Graph :math:`i` has label :math:`i \bmod 2`, so the two classes alternate and are balanced.
    Each tree has :math:`n` nodes, :math:`n` uniform in ``[min_nodes, max_nodes)``; node
    :math:`v > 0` hangs below a uniformly random earlier node. A graph of class 1 gains one edge
    between two distinct nodes that are not already adjacent, which closes exactly one cycle.
    Node features are constant, so a model must read the structure: a 1-WL-bounded GNN
    separates the classes through degree statistics (class 1 has one more edge). Edges are
    stored in both directions.

    Args:
        num_graphs (int): how many graphs.
        seed (int): seed of the generator (the same seed gives the same graphs).
        min_nodes (int): the smallest tree size (at least 3, so a non-edge always exists).
        max_nodes (int): one more than the largest tree size.

    Returns:
        list of :class:`~torch_geometric.data.Data` with ``x`` :math:`(n, 1)` ones,
        ``edge_index`` :math:`(2, 2(n - 1 + y))` and ``y`` :math:`(1,)` in ``{0, 1}``.
    """
    if num_graphs < 1:
        raise ValueError(f"num_graphs must be at least 1, got {num_graphs}")
    if not 3 <= min_nodes < max_nodes:
        raise ValueError(f"need 3 <= min_nodes < max_nodes, got min_nodes={min_nodes}, "
                         f"max_nodes={max_nodes}")
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for i in range(num_graphs):
        n = int(torch.randint(min_nodes, max_nodes, (1,), generator=gen))
        parent = (torch.rand(n - 1, generator=gen) * torch.arange(1, n)).long()
        src, dst = torch.arange(1, n), parent
        label = i % 2
        if label:
            a, b = torch.randperm(n, generator=gen)[:2]
            # redraw a pair that is already a tree edge: the graph must really gain a cycle
            while bool(((src == a) & (dst == b)).any() | ((src == b) & (dst == a)).any()):
                a, b = torch.randperm(n, generator=gen)[:2]
            src, dst = torch.cat([src, a.view(1)]), torch.cat([dst, b.view(1)])
        edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
        graphs.append(Data(x=torch.ones(n, 1), edge_index=edge_index, y=torch.tensor([label]),
                           num_nodes=n))
    return graphs
