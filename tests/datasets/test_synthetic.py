"""Generated tasks: tree_or_cycle."""

import pytest
import torch
from torch_geometric.utils import coalesce, is_undirected, to_networkx

from graphlab.datasets import tree_or_cycle


def test_tree_or_cycle_structure():
    import networkx as nx

    graphs = tree_or_cycle(num_graphs=40, seed=5)
    assert [int(g.y) for g in graphs] == [i % 2 for i in range(40)]
    for g in graphs:
        n, label = g.num_nodes, int(g.y)
        assert 8 <= n < 20 and g.x.shape == (n, 1) and torch.equal(g.x, torch.ones(n, 1))
        assert g.y.shape == (1,) and g.edge_index.dtype == torch.long
        assert is_undirected(g.edge_index)
        # no duplicate or self-loop edge: the extra edge really closes a cycle
        assert coalesce(g.edge_index).size(1) == g.edge_index.size(1) == 2 * (n - 1 + label)
        assert bool((g.edge_index[0] != g.edge_index[1]).all())
        nxg = to_networkx(g, to_undirected=True)
        assert nx.is_connected(nxg)
        assert len(nx.cycle_basis(nxg)) == label


def test_tree_or_cycle_is_seeded():
    a, b, c = tree_or_cycle(6, seed=1), tree_or_cycle(6, seed=1), tree_or_cycle(6, seed=2)
    assert all(torch.equal(x.edge_index, y.edge_index) for x, y in zip(a, b))
    assert any(x.num_nodes != y.num_nodes or not torch.equal(x.edge_index, y.edge_index)
               for x, y in zip(a, c))
    sizes = {g.num_nodes for g in tree_or_cycle(30, seed=0, min_nodes=3, max_nodes=5)}
    assert sizes <= {3, 4} and len(sizes) == 2


@pytest.mark.parametrize("kwargs,match", [({"num_graphs": 0}, "num_graphs"),
                                          ({"min_nodes": 2}, "min_nodes"),
                                          ({"min_nodes": 9, "max_nodes": 9}, "max_nodes")])
def test_tree_or_cycle_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tree_or_cycle(**kwargs)
