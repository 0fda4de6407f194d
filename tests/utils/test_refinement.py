"""path_colour_refinement_per_graph: the per-graph, memory-light PathNN refinement."""

import pytest
import torch
from torch_geometric.data import Data

from graphlab.utils.paths import multiset_ids, path_colour_refinement
from graphlab.utils.refinement import path_colour_refinement_per_graph


def _undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    ei = torch.tensor(pairs).t()
    return torch.cat([ei, ei.flip(0)], dim=1)


HEXAGON = _undirected([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)])
TWO_TRIANGLES = _undirected([(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)])


def _random_graph(seed: int, max_nodes: int = 7, max_edges: int = 10) -> Data:
    """Random undirected multigraph with self-loops, parallel edges and isolated nodes."""
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, max_nodes + 1, (1,), generator=gen))
    m = int(torch.randint(0, max_edges + 1, (1,), generator=gen))
    ei = torch.randint(0, max(1, n - 2) if seed % 2 else n, (2, m), generator=gen)
    return Data(edge_index=torch.cat([ei, ei.flip(0)], dim=1), num_nodes=n)


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.unique(torch.stack([a, b], 1), dim=0).size(0) == a.unique().numel() \
        == b.unique().numel()


def test_matches_the_batched_refinement():
    graphs = [Data(edge_index=HEXAGON, num_nodes=6), Data(edge_index=TWO_TRIANGLES, num_nodes=6),
              Data(edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=2)]
    graphs += [_random_graph(seed) for seed in range(6)]
    sizes = [g.num_nodes for g in graphs]
    offsets = torch.tensor([0] + sizes).cumsum(0)
    ei = torch.cat([g.edge_index + o for g, o in zip(graphs, offsets)], dim=1)
    ours = path_colour_refinement_per_graph(graphs, 3)
    ref = path_colour_refinement(ei, int(offsets[-1]), 3)
    assert len(ours) == len(ref) == 3
    for a, b in zip(ours, ref):  # the same partition of the nodes after every layer
        assert a.shape == (int(offsets[-1]),) and a.dtype == torch.long
        assert _same_partition(a, b)
        assert int(a.min()) == 0 and a.unique().numel() == int(a.max()) + 1  # dense ids


def test_separates_what_paths_separate():
    # a hexagon and two triangles: 1-WL-equivalent, separated by 2-edge simple paths' distances
    graphs = [Data(edge_index=HEXAGON, num_nodes=6), Data(edge_index=TWO_TRIANGLES, num_nodes=6)]
    batch = torch.arange(2).repeat_interleave(6)
    first, second = path_colour_refinement_per_graph(graphs, 2)
    ids = [multiset_ids(batch, c, 2) for c in (first, second)]
    assert ids[0][0] == ids[0][1] and ids[1][0] != ids[1][1]


def test_edge_cases_and_bad_inputs():
    assert [c.tolist() for c in path_colour_refinement_per_graph([], 2)] == [[], []]
    lonely = [Data(edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=3)]
    assert [c.tolist() for c in path_colour_refinement_per_graph(lonely, 2)] == [[0, 0, 0]] * 2
    with pytest.raises(ValueError, match="max_length"):
        path_colour_refinement_per_graph(lonely, 0)
    # stars with 1..40 leaves: ~40 colours after one layer; 6-edge codes would need 63 bits
    stars = [Data(edge_index=_undirected([(0, leaf) for leaf in range(1, k + 1)]), num_nodes=k + 1)
             for k in range(1, 41)]
    assert len(path_colour_refinement_per_graph(stars, 5)) == 5
    with pytest.raises(ValueError, match="62"):
        path_colour_refinement_per_graph(stars, 6)
