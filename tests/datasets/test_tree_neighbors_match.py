"""The Trees-NeighborsMatch generator."""

import pytest
import torch
from torch_geometric.utils import to_networkx

from graphlab.datasets import TreeNeighborsMatch
from graphlab.datasets.tree_neighbors_match import binary_tree


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_tree_shape(depth):
    import networkx as nx

    edge_index, leaves = binary_tree(depth)
    n = 2 ** (depth + 1) - 1
    assert edge_index.shape == (2, n - 1) and leaves.numel() == 2 ** depth
    g = to_networkx(_data(edge_index, n))
    assert nx.is_arborescence(g.reverse())  # edges point to the root: reversed, a rooted tree
    lengths = nx.shortest_path_length(g, target=0)
    assert all(lengths[int(leaf)] == depth for leaf in leaves)


def _data(edge_index, n):
    from torch_geometric.data import Data

    return Data(edge_index=edge_index, num_nodes=n)


def test_labels_are_the_value_of_the_matching_leaf():
    ds = TreeNeighborsMatch(depth=3, num_permutations=5, seed=1)
    assert len(ds) == 5 * 8
    _, leaves = binary_tree(3)
    for data in ds:
        key = int(data.x[0, 0])
        leaf_keys = data.x[leaves, 0]
        match = leaves[leaf_keys == key]
        assert match.numel() == 1
        assert int(data.y) == int(data.x[match, 1]) - 1
        assert sorted(data.x[leaves, 1].tolist()) == list(range(1, 9))
        assert data.root_mask.sum() == 1 and bool(data.root_mask[0])
        # internal nodes are empty; every node has a self-loop
        internal = torch.ones(15, dtype=torch.bool)
        internal[leaves] = False
        internal[0] = False
        assert (data.x[internal] == 0).all()
        loops = data.edge_index[0] == data.edge_index[1]
        assert loops.sum() == 15


def test_seeded_and_balanced():
    a, b = TreeNeighborsMatch(2, 20, seed=3), TreeNeighborsMatch(2, 20, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, TreeNeighborsMatch(2, 20, seed=4).x)
    # every query key appears once per permutation, so classes are close to balanced
    counts = torch.bincount(a.y, minlength=4)
    assert counts.sum() == 80 and counts.min() > 0


def test_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        binary_tree(0)


def test_root_candidates_are_all_non_edges_at_the_root():
    # PR-MPNN's candidate pairs (u < v) on a tree: the root is node 0, so the pairs that touch
    # it are those with u == 0: every node but the root and its two children
    from torch_geometric.loader import DataLoader

    from graphlab.rewiring import EdgeCandidates

    data = next(iter(DataLoader([EdgeCandidates(None, "all")(TreeNeighborsMatch(3, 1, seed=0)[0])],
                                batch_size=1)))
    root = data.cand_index[:, data.cand_index[0] == 0]
    assert bool(data.root_mask[0]) and int(data.root_mask.sum()) == 1
    assert bool((data.cand_index[0] < data.cand_index[1]).all())
    assert root.shape == (2, 12)
    assert sorted(root[1].tolist()) == [2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14]
