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


# --- pieces of benchmarks/prmpnn_trees.py (PR-MPNN on Trees-NeighborsMatch) -------------------

def _tree_batch(depth: int, num_graphs: int, root_only: bool = True):
    from torch_geometric.loader import DataLoader

    from benchmarks.prmpnn_trees import root_candidates
    from graphlab.rewiring import EdgeCandidates

    cands = EdgeCandidates(None, "all")
    graphs = [cands(d) for d in TreeNeighborsMatch(depth, 2, seed=0)][:num_graphs]
    if root_only:
        graphs = [root_candidates(g) for g in graphs]
    return next(iter(DataLoader(graphs, batch_size=num_graphs)))


def test_root_candidates_are_all_non_edges_at_the_root():
    data = _tree_batch(3, 1)
    # 15 nodes: every node but the root and its two children
    assert data.cand_index.shape == (2, 12)
    assert (data.cand_index[0] == 0).all()
    assert sorted(data.cand_index[1].tolist()) == [2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14]


class _OracleScorer(torch.nn.Module):
    """Scores 1 for "root <-> the leaf whose key is the root's query", 0 otherwise."""

    def __init__(self, num_leaves: int) -> None:
        super().__init__()
        self.num_leaves = num_leaves

    def forward(self, x, edge_index, edge_attr, add_pairs, delete_pairs):
        key = x[:, :self.num_leaves + 1].argmax(-1)
        has_value = x[:, self.num_leaves + 2:].sum(-1) > 0
        u, v = add_pairs
        match = (key[u] == key[v]) & has_value[v]
        return match.float(), x.new_zeros(delete_pairs.size(1))


@pytest.mark.parametrize("root_only", [True, False])
def test_hit_rate_of_an_oracle_and_of_top1_wrong_scores(root_only):
    from benchmarks.prmpnn_trees import TreeModel, _hit_rate

    data = _tree_batch(2, 8, root_only)
    model = TreeModel(4, "prmpnn", k_add=1, num_samples=1)
    model.rewirer.scorer.scorer = _OracleScorer(4)
    assert _hit_rate(model, [data]) == 1.0
    # the negated oracle never picks the matching leaf
    model.rewirer.scorer.scorer.forward = lambda *a: tuple(-t for t in _OracleScorer(4)(*a))
    assert _hit_rate(model, [data]) == 0.0
    assert _hit_rate(TreeModel(4, "none", 1, 1), [data]) is None


def test_hit_rate_by_query_key():
    from benchmarks.prmpnn_trees import TreeModel, _hit_rate_by_key

    data = _tree_batch(2, 8)                      # 2 permutations x query keys 1..4
    model = TreeModel(4, "prmpnn", k_add=1, num_samples=1)
    oracle = _OracleScorer(4)
    model.rewirer.scorer.scorer = oracle
    assert _hit_rate_by_key(model, [data], 4) == [1.0, 1.0, 1.0, 1.0]

    def only_query_1(x, edge_index, edge_attr, add_pairs, delete_pairs):
        # the oracle where the root's query is key 1, the negated oracle elsewhere
        add, delete = oracle(x, edge_index, edge_attr, add_pairs, delete_pairs)
        return torch.where(x[add_pairs[0], 1].bool(), add, -add), delete

    model.rewirer.scorer.scorer = _OracleScorer(4)
    model.rewirer.scorer.scorer.forward = only_query_1
    assert _hit_rate_by_key(model, [data], 4) == [1.0, 0.0, 0.0, 0.0]
    assert _hit_rate_by_key(TreeModel(4, "none", 1, 1), [data], 4) is None


def test_pair_scorer_field_equality_features():
    from benchmarks.prmpnn_trees import TreeModel, TreePairScorer

    data = _tree_batch(2, 1)                      # query key 1: the leaf with key 1 matches
    feats = TreeModel(4, "prmpnn", 1, 1).features(data)[1]
    scorer = TreePairScorer(4, hidden=8, field_eq=True)
    eq = scorer.pair_features(feats, data.cand_index)[:, -2:]
    u, v = data.cand_index
    assert torch.equal(eq[:, 0], (data.x[u, 0] == data.x[v, 0]).float())
    assert torch.equal(eq[:, 1], (data.x[u, 1] == data.x[v, 1]).float())
    assert eq[:, 0].sum() == 1                    # exactly the matching leaf
    assert scorer.pair_features(feats, data.cand_index).shape == (u.numel(), 3 * 8 + 2)
    assert TreePairScorer(4, hidden=8).pair_features(feats, data.cand_index).shape == (u.numel(), 24)
    assert scorer(feats, None, None, data.cand_index, data.cand_index[:, :0])[0].shape == (u.numel(),)


@pytest.mark.parametrize("mode,scorer", [("marginals", "pair"), ("marginals_mask", "pair"),
                                         ("marginals_mask", "pair_diff")])
def test_marginal_edge_weights(mode, scorer):
    from benchmarks.prmpnn_trees import TreeModel
    from graphlab.rewiring import k_subset_marginals

    torch.manual_seed(0)
    data = _tree_batch(3, 3)
    k, S = 2, 3
    model = TreeModel(8, "prmpnn", k_add=k, num_samples=S, scorer=scorer,
                      edge_weights=mode).train()
    h, feats = model.features(data)
    rew = model.rewirer(feats, data.edge_index, data.batch, None, data.cand_index,
                        data.num_graphs)
    weight = model._marginal_weights(rew, data.num_graphs)
    mu = k_subset_marginals(model.rewirer.scorer.last_add.view(3, -1), k).reshape(-1)
    added = rew.edge_origin < 0
    assert torch.equal(weight[~added], rew.edge_weight[~added])  # original edges untouched
    per_sample = weight[added].view(S, 2, -1)                      # [S, direction, C]
    if mode == "marginals":
        assert torch.allclose(per_sample, mu.expand(S, 2, -1))
    else:
        z = rew.edge_weight[added].view(S, 2, -1).detach()
        assert torch.allclose(per_sample, z * mu)
        assert int((per_sample > 0).sum()) == S * 2 * k * 3        # k per graph, both directions
    weight[added].sum().backward()
    grad = model.rewirer.scorer.scorer.lin.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_tree_model_rejects_unknown_edge_weights():
    from benchmarks.prmpnn_trees import TreeModel

    with pytest.raises(ValueError, match="edge_weights"):
        TreeModel(4, "prmpnn", 1, 1, edge_weights="soft")
    with pytest.raises(ValueError, match="scorer"):
        TreeModel(4, "prmpnn", 1, 1, scorer="gat")
    with pytest.raises(ValueError, match="mode"):
        TreeModel(4, "learned", 1, 1)


def test_root_only_downstream_layer_equals_the_full_layer_at_the_roots():
    from benchmarks.prmpnn_trees import TreeModel

    torch.manual_seed(0)
    data = _tree_batch(3, 4)
    model = TreeModel(8, "prmpnn", k_add=2, num_samples=3).train()
    h, feats = model.features(data)
    rew = model.rewirer(feats, data.edge_index, data.batch, None, data.cand_index,
                        data.num_graphs)
    root = data.root_mask.repeat(3)
    full = model.conv(h[rew.node_index], rew.edge_index, None, rew.edge_weight)[root]
    fast = model._root_conv(h, rew.edge_index, rew.edge_weight, root, rew.node_index)
    assert torch.allclose(fast, full, atol=1e-5)
    plain = model.conv(h, data.edge_index)[data.root_mask]
    assert torch.allclose(model._root_conv(h, data.edge_index, None, data.root_mask), plain,
                          atol=1e-5)
