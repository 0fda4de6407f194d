"""Candidate non-edges chosen with tensor ops."""

import itertools

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_networkx

from graphlab.rewiring import EdgeCandidates, edge_candidates
from graphlab.testing.graphs import random_graph


def _pairs(cand: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(u), int(v)) for u, v in cand.t()}


def test_all_heuristic_returns_every_non_edge():
    g = random_graph(9, seed=3)
    cand = edge_candidates(g.edge_index, g.num_nodes)
    edges = {(min(u, v), max(u, v)) for u, v in g.edge_index.t().tolist()}
    expected = {(u, v) for u, v in itertools.combinations(range(9), 2)} - edges
    assert _pairs(cand) == expected


def test_distance_heuristic_picks_the_farthest_pairs():
    path = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]])
    path = torch.cat([path, path.flip(0)], dim=1)
    data = EdgeCandidates(num_candidates=3, heuristic="distance")(Data(edge_index=path,
                                                                          num_nodes=8))
    # node 7 is isolated: its 7 pairs are unreachable (farthest); ties broken by node order
    assert _pairs(data.cand_index) == {(0, 7), (1, 7), (2, 7)}
    cand = edge_candidates(path, 7, num_candidates=3, heuristic="distance")
    assert _pairs(cand) == {(0, 6), (0, 5), (1, 6)}


def test_reachable_distance_ranks_unreachable_pairs_last():
    path = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]])
    path = torch.cat([path, path.flip(0)], dim=1)
    # node 7 is isolated: "distance" spends the cap on its tied pairs, this one on the path
    cand = edge_candidates(path, 8, num_candidates=3, heuristic="reachable_distance")
    assert _pairs(cand) == {(0, 6), (0, 5), (1, 6)}
    # once the reachable pairs run out, unreachable ones follow
    cand = edge_candidates(path, 8, num_candidates=16, heuristic="reachable_distance")
    assert len(_pairs(cand)) == 16 and (0, 7) in _pairs(cand)
    assert _pairs(cand) - {(u, 7) for u in range(7)} == _pairs(
        edge_candidates(path, 7, heuristic="all"))


def test_component_distance_offers_every_component_its_farthest_pairs():
    # a 7-node path (diameter 6) and a 3-node path (diameter 2), plus an isolated node 10
    long = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]])
    short = torch.tensor([[7, 8], [8, 9]])
    ei = torch.cat([long, short], dim=1)
    ei = torch.cat([ei, ei.flip(0)], dim=1)
    # "reachable_distance" spends the whole cap on the long path ...
    assert _pairs(edge_candidates(ei, 11, num_candidates=2, heuristic="reachable_distance")) \
        == {(0, 6), (0, 5)}
    # ... "component_distance" ranks by distance minus the component's diameter: both
    # diameter pairs score 0, then the long path's pairs at distance 5 (score -1)
    cand = edge_candidates(ei, 11, num_candidates=2, heuristic="component_distance")
    assert _pairs(cand) == {(0, 6), (7, 9)}
    cand = edge_candidates(ei, 11, num_candidates=4, heuristic="component_distance")
    assert _pairs(cand) == {(0, 6), (7, 9), (0, 5), (1, 6)}
    # unreachable pairs come last, after every reachable non-adjacent pair (15 + 1 of them)
    cand = _pairs(edge_candidates(ei, 11, num_candidates=17, heuristic="component_distance"))
    reachable = {(u, v) for u, v in cand if v != 10 and not (u < 7 <= v)}
    assert len(reachable) == 16 and len(cand - reachable) == 1
    # uncapped it is the same set as "all"; the transform agrees with the function
    assert _pairs(edge_candidates(ei, 11, heuristic="component_distance")) == _pairs(
        edge_candidates(ei, 11, heuristic="all"))
    data = EdgeCandidates(2, "component_distance")(Data(edge_index=ei, num_nodes=11))
    assert _pairs(data.cand_index) == {(0, 6), (7, 9)}


def test_distances_match_networkx():
    from graphlab.rewiring.candidates import _hop_distances  # noqa: PLC2701 - unit test of the BFS

    g = random_graph(12, num_edges=14, seed=5)
    local = torch.arange(12)
    dist = _hop_distances(local, torch.zeros(12, dtype=torch.long), g.edge_index, 1, 12)[0]
    lengths = dict(nx.all_pairs_shortest_path_length(to_networkx(g, to_undirected=True)))
    for u, v in itertools.product(range(12), repeat=2):
        expected = lengths[u].get(v, float("inf"))
        assert dist[u, v].item() == expected


@pytest.mark.parametrize("heuristic", ["distance", "reachable_distance", "component_distance"])
def test_batched_candidates_equal_per_graph_candidates(heuristic):
    graphs = [random_graph(n, seed=n) for n in (5, 9, 7)]
    transform = EdgeCandidates(num_candidates=6, heuristic=heuristic)
    batch = Batch.from_data_list([transform(g.clone()) for g in graphs])
    cand = edge_candidates(batch.edge_index, batch.num_nodes, batch.batch, 6, heuristic)
    assert torch.equal(cand, batch.cand_index)
    counts = torch.bincount(batch.batch[cand[0]], minlength=3)
    assert counts.tolist() == [min(6, 5 * 4 // 2 - graphs[0].edge_index.size(1) // 2), 6, 6]


def test_capped_all_is_seeded():
    g = random_graph(10, seed=1)
    a = EdgeCandidates(5, "all", seed=3)(g.clone()).cand_index
    b = EdgeCandidates(5, "all", seed=3)(g.clone()).cand_index
    assert torch.equal(a, b) and a.size(1) == 5
    assert (a[0] < a[1]).all()


def test_empty_and_bad_inputs():
    assert edge_candidates(torch.empty(2, 0, dtype=torch.long), 0).shape == (2, 0)
    single = edge_candidates(torch.empty(2, 0, dtype=torch.long), 1)
    assert single.shape == (2, 0)
    with pytest.raises(ValueError, match="heuristic"):
        EdgeCandidates(3, heuristic="curvature")
    with pytest.raises(ValueError, match="range"):
        edge_candidates(torch.tensor([[0], [5]]), 3)


def _interleave(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """A node order that interleaves the graphs but keeps each graph's own node order:
    ``perm[new] = old``; also returns ``inv[old] = new``."""
    local = torch.arange(batch.num_nodes) - batch.ptr[batch.batch]
    perm = torch.argsort(local * batch.num_graphs + batch.batch)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    return perm, inv


@pytest.mark.parametrize("heuristic", ["all", "distance", "reachable_distance",
                                       "component_distance"])
def test_unsorted_batch_gives_the_same_candidates(heuristic):
    """Issue 18: an unsorted batch vector raised an IndexError."""
    batch = Batch.from_data_list([random_graph(n, seed=n) for n in (5, 8, 6)])
    perm, inv = _interleave(batch)
    assert not bool((batch.batch[perm][1:] >= batch.batch[perm][:-1]).all())
    for cap in (None, 4):
        ref = edge_candidates(batch.edge_index, batch.num_nodes, batch.batch, cap, heuristic,
                              generator=torch.Generator().manual_seed(0))
        out = edge_candidates(inv[batch.edge_index], batch.num_nodes, batch.batch[perm], cap,
                              heuristic, generator=torch.Generator().manual_seed(0))
        assert (out[0] < out[1]).all()
        assert _pairs(perm[out]) == _pairs(ref)
