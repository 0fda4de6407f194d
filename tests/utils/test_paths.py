from __future__ import annotations

import warnings
from collections import Counter

import networkx as nx
import pytest
import torch
from torch_geometric.data import Data

from graphlab.utils.paths import (
    enumerate_paths,
    lookup_distance,
    multiset_ids,
    path_colour_refinement,
    shortest_path_distances,
    wl_node_keys,
)


def _random_multigraph(seed: int, max_nodes: int = 9, max_edges: int = 22,
                       undirected: bool = False) -> tuple[torch.Tensor, int]:
    """Random (multi-)graph with self-loops, parallel edges, isolated nodes and components."""
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, max_nodes + 1, (1,), generator=gen))
    m = int(torch.randint(0, max_edges + 1, (1,), generator=gen))
    # nodes >= n - 2 stay isolated half of the time
    hi = max(1, n - 2) if seed % 2 else n
    ei = torch.randint(0, hi, (2, m), generator=gen)
    if undirected:
        ei = torch.cat([ei, ei.flip(0)], dim=1)
    return ei, n


def _to_nx(ei: torch.Tensor, n: int) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from(range(n))
    for e, (s, t) in enumerate(ei.t().tolist()):
        g.add_edge(s, t, key=e)
    return g


def _nx_simple(g: nx.MultiDiGraph, n: int, length: int) -> Counter:
    ref: Counter = Counter()
    for s in range(n):
        for t in range(n):
            if s != t:
                for p in nx.all_simple_edge_paths(g, s, t, cutoff=length):
                    if len(p) == length:
                        ref[tuple(k for _, _, k in p)] += 1
    return ref


def _nx_all_shortest(g: nx.MultiDiGraph, n: int, length: int) -> Counter:
    """Node sequences of all shortest paths of ``length`` edges, counted once per edge choice."""
    simple = nx.DiGraph(g)
    ref: Counter = Counter()
    for s, dists in nx.all_pairs_shortest_path_length(simple):
        for t, d in dists.items():
            if d == length and s != t:
                for p in nx.all_shortest_paths(simple, s, t):
                    mult = 1
                    for a, b in zip(p[:-1], p[1:]):
                        mult *= g.number_of_edges(a, b)
                    ref[tuple(p)] += mult
    return ref


@pytest.mark.parametrize("undirected", [False, True])
def test_all_simple_matches_networkx(undirected):
    for seed in range(40):
        ei, n = _random_multigraph(seed, undirected=undirected)
        g = _to_nx(ei, n)
        paths = enumerate_paths(ei, n, 4, kind="all_simple")
        for length in range(1, 5):
            nodes, edges = paths.nodes[length - 1], paths.edges[length - 1]
            assert nodes.shape == (edges.size(0), length + 1)
            # edges and nodes agree: edge i joins node i -> node i + 1
            assert torch.equal(ei[0, edges], nodes[:, :-1])
            assert torch.equal(ei[1, edges], nodes[:, 1:])
            ours = Counter(tuple(r) for r in edges.tolist())
            assert ours == _nx_simple(g, n, length), (seed, length)


@pytest.mark.parametrize("undirected", [False, True])
def test_all_shortest_matches_networkx(undirected):
    for seed in range(40):
        ei, n = _random_multigraph(seed, undirected=undirected)
        g = _to_nx(ei, n)
        paths = enumerate_paths(ei, n, 4, kind="all_shortest")
        for length in range(1, 5):
            ours = Counter(tuple(r) for r in paths.nodes[length - 1].tolist())
            assert ours == _nx_all_shortest(g, n, length), (seed, length)


def test_shortest_picks_one_shortest_path_per_pair():
    for seed in range(30):
        ei, n = _random_multigraph(seed, undirected=seed % 3 == 0)
        g = _to_nx(ei, n)
        paths = enumerate_paths(ei, n, 4, kind="shortest")
        for length in range(1, 5):
            ref = _nx_all_shortest(g, n, length)
            ours = [tuple(r) for r in paths.nodes[length - 1].tolist()]
            assert all(p in ref for p in ours)
            assert sorted((p[0], p[-1]) for p in ours) == sorted({(p[0], p[-1]) for p in ref})


def test_distance_encoding_matches_networkx():
    for seed in range(15):
        ei, n = _random_multigraph(seed)
        simple = nx.DiGraph(_to_nx(ei, n))
        sp = dict(nx.all_pairs_shortest_path_length(simple))
        for kind in ("all_simple", "all_shortest"):
            paths = enumerate_paths(ei, n, 3, kind=kind, distance_encoding=True)
            for nodes, dists in zip(paths.nodes, paths.dists):
                for p, d in zip(nodes.tolist(), dists.tolist()):
                    assert d == [sp[u][p[-1]] for u in p]


def test_sparse_distances_match_networkx():
    ei, n = _random_multigraph(3, max_nodes=12, max_edges=30)
    keys, dist = shortest_path_distances(ei, n, max_distance=3)
    simple = nx.DiGraph(_to_nx(ei, n))
    expected = {(v, u): d for u, row in nx.all_pairs_shortest_path_length(simple, cutoff=3)
                for v, d in row.items()}
    got = {(int(k) // n, int(k) % n): int(d) for k, d in zip(keys, dist)}
    assert got == expected
    query = torch.tensor([0 * n + 0, n * n - 1])
    assert lookup_distance(keys, dist, query)[0] == 0


def test_batched_enumeration_equals_per_graph():
    graphs = [_random_multigraph(s, undirected=True) for s in range(5)]
    offsets, total, eoff = [], 0, 0
    parts = []
    for ei, n in graphs:
        offsets.append((total, eoff))
        parts.append(ei + total)
        total += n
        eoff += ei.size(1)
    big = torch.cat(parts, dim=1)
    for kind in ("all_simple", "all_shortest", "shortest"):
        batched = enumerate_paths(big, total, 3, kind=kind)
        for length in range(1, 4):
            expected: Counter = Counter()
            for (ei, n), (_, off) in zip(graphs, offsets):
                single = enumerate_paths(ei, n, 3, kind=kind)
                for row in (single.edges[length - 1] + off).tolist():
                    expected[tuple(row)] += 1
            got = Counter(tuple(r) for r in batched.edges[length - 1].tolist())
            assert got == expected


def _relabel(ei: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """New node i is old node perm[i]."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    return inv[ei]


def test_shortest_is_canonical_under_relabelling():
    # distinct node features -> distinct WL keys -> the chosen paths map exactly
    for seed in range(20):
        ei, n = _random_multigraph(seed, max_nodes=10, max_edges=25, undirected=True)
        gen = torch.Generator().manual_seed(100 + seed)
        key = torch.randperm(n, generator=gen)
        perm = torch.randperm(n, generator=gen)
        eperm = torch.randperm(ei.size(1), generator=gen)
        a = enumerate_paths(ei, n, 4, kind="shortest", node_key=key)
        b = enumerate_paths(_relabel(ei, perm)[:, eperm], n, 4, kind="shortest",
                            node_key=key[perm])
        for pa, pb in zip(a.nodes, b.nodes):
            mapped = sorted(tuple(r) for r in perm[pb].tolist())
            assert mapped == sorted(tuple(r) for r in pa.tolist())


def test_shortest_key_multiset_invariant_with_automorphic_ties():
    # no node features: ties between WL-equal nodes (e.g. the two routes around a 4-cycle) are
    # broken by enumeration order, but the multiset of WL-key sequences is label-independent
    cycle = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
    ladder = torch.cat([cycle, torch.tensor([[0, 3], [3, 0]])], dim=1)
    for ei in (cycle, ladder, _random_multigraph(7, undirected=True)[0]):
        ei = torch.cat([ei, ei.flip(0)], dim=1)
        n = int(ei.max()) + 1
        for seed in range(5):
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
            ei_p = _relabel(ei, perm)
            wl, wl_p = wl_node_keys(ei, n, num_iterations=5), wl_node_keys(ei_p, n,
                                                                             num_iterations=5)
            assert torch.equal(wl_p, wl[perm])
            a = enumerate_paths(ei, n, 4, kind="shortest")
            b = enumerate_paths(ei_p, n, 4, kind="shortest")
            for pa, pb in zip(a.nodes, b.nodes):
                assert sorted(map(tuple, wl[pa].tolist())) == sorted(map(tuple, wl_p[pb].tolist()))


def test_max_paths_per_node_warns_and_is_deterministic():
    # complete graph K6: 5 * 4 * 3 = 60 paths of length 3 end at every node
    n = 6
    ei = torch.tensor([(i, j) for i in range(n) for j in range(n) if i != j]).t()
    full = enumerate_paths(ei, n, 3)
    assert full.counts() == [30, 120, 360]
    with pytest.warns(UserWarning, match="max_paths_per_node"):
        a = enumerate_paths(ei, n, 3, max_paths_per_node=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = enumerate_paths(ei, n, 3, max_paths_per_node=7)
    for pa, pb, pf in zip(a.nodes, b.nodes, full.nodes):
        assert torch.equal(pa, pb)
        assert int(torch.bincount(pa[:, -1], minlength=n).max()) <= 7
        full_set = {tuple(r) for r in pf.tolist()}
        assert all(tuple(r) in full_set for r in pa.tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation -> no warning
        enumerate_paths(ei, n, 3, max_paths_per_node=60)


def test_empty_and_edgeless_graphs():
    empty = enumerate_paths(torch.empty(2, 0, dtype=torch.long), 0, 3, distance_encoding=True)
    assert empty.counts() == [0, 0, 0]
    assert [tuple(p.shape) for p in empty.nodes] == [(0, 2), (0, 3), (0, 4)]
    loops = enumerate_paths(torch.tensor([[0, 1], [0, 1]]), 3, 2, kind="all_shortest")
    assert loops.counts() == [0, 0]  # self-loops never lie on a path


def test_bad_inputs():
    ei = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="kind"):
        enumerate_paths(ei, 3, 2, kind="random")
    with pytest.raises(ValueError, match="max_length"):
        enumerate_paths(ei, 3, 0)
    with pytest.raises(ValueError, match="edge_index"):
        enumerate_paths(ei, 2, 2)
    with pytest.raises(ValueError, match="edge_index"):
        enumerate_paths(ei.float(), 3, 2)
    with pytest.raises(ValueError, match="max_paths_per_node"):
        enumerate_paths(ei, 3, 2, max_paths_per_node=0)


def _undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    ei = torch.tensor(pairs).t()
    return torch.cat([ei, ei.flip(0)], dim=1)


# 1-WL-equivalent (both 2-regular on 6 nodes), non-isomorphic
HEXAGON = _undirected([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)])
TWO_TRIANGLES = _undirected([(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)])


def _graph_ids(graphs: list[torch.Tensor], sizes: list[int], max_length: int, **kw) -> list[int]:
    """Refine the disjoint union (colours comparable across graphs); ids by colour multiset."""
    offsets = torch.tensor([0] + sizes).cumsum(0)
    ei = torch.cat([g + o for g, o in zip(graphs, offsets)], dim=1)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    colours = path_colour_refinement(ei, int(offsets[-1]), max_length, **kw)[-1]
    return multiset_ids(batch, colours, len(sizes)).tolist()


def test_multiset_ids():
    index = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3, 3])
    value = torch.tensor([5, 7, 7, 5, 5, 7, 7, 7, 7])
    ids = multiset_ids(index, value, 5)
    assert ids[0] == ids[1]  # {5, 7} in either order
    assert len(set(ids.tolist())) == 4  # {5,7}, {5,7,7}, {7,7}, {} (group 4 is empty)
    prefix = torch.tensor([0, 1, 0, 0, 0])
    assert multiset_ids(index, value, 5, prefix=prefix)[0] != multiset_ids(
        index, value, 5, prefix=prefix)[1]


@pytest.mark.parametrize("schedule", ["layers", "fixpoint"])
def test_refinement_separates_hexagon_from_two_triangles(schedule):
    graphs, sizes = [HEXAGON, TWO_TRIANGLES], [6, 6]
    # one edge per path is one round of 1-WL: 2-regular graphs stay equal
    assert len(set(_graph_ids(graphs, sizes, 1, schedule=schedule))) == 1
    # 2-edge paths: u_0 is 2 hops from v on the hexagon, 1 hop on a triangle
    assert len(set(_graph_ids(graphs, sizes, 2, schedule=schedule))) == 2
    # without distances 2-edge paths look alike in both; 3-edge paths exist only in the hexagon
    assert len(set(_graph_ids(graphs, sizes, 2, schedule=schedule,
                              distance_encoding=False))) == 1
    assert len(set(_graph_ids(graphs, sizes, 3, schedule=schedule,
                              distance_encoding=False))) == 2


@pytest.mark.parametrize("schedule", ["layers", "fixpoint"])
def test_refinement_is_invariant_under_relabelling(schedule):
    for seed in range(8):
        ei, n = _random_multigraph(seed, max_nodes=8, max_edges=14, undirected=True)
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=gen)
        colours = torch.randint(0, 2, (n,), generator=gen)
        ei_p = _relabel(ei, perm)[:, torch.randperm(ei.size(1), generator=gen)]
        both = torch.cat([ei, ei_p + n], dim=1)
        refined = path_colour_refinement(both, 2 * n, 3, colours=torch.cat([colours,
                                                                         colours[perm]]),
                                         schedule=schedule)[-1]
        # node perm[i] of the original and node i of the copy get the same colour
        assert torch.equal(refined[n:], refined[:n][perm])


def test_refinement_with_single_edges_is_1wl():
    # fixpoint over 1-edge paths without distances = the stable 1-WL partition
    for seed in range(8):
        ei, n = _random_multigraph(seed, max_nodes=9, max_edges=16, undirected=True)
        ei = ei[:, ei[0] != ei[1]]  # self-loops never lie on a path; 1-WL would count them
        ours = path_colour_refinement(ei, n, 1, schedule="fixpoint", distance_encoding=False)[-1]
        wl = wl_node_keys(ei, n, num_iterations=n + 1)
        # equal partitions: ours is a function of wl's classes and vice versa
        pairs = torch.unique(torch.stack([ours, wl], dim=1), dim=0)
        assert pairs.size(0) == torch.unique(ours).numel() == torch.unique(wl).numel()


def test_refinement_bounds_pathnn():
    """Graphs the refinement does not separate get equal embeddings from an untrained PathNN;
    ones it separates here also get different ones."""
    from torch_geometric.data import Batch

    from graphlab.models import PathNN

    graphs = [Data(x=torch.ones(6, 1), edge_index=g, num_nodes=6)
              for g in (HEXAGON, TWO_TRIANGLES)]
    for length, de, separated in ((1, False, False), (2, False, False), (2, True, True)):
        torch.manual_seed(0)
        model = PathNN(1, 8, 8, num_layers=length, kind="all_simple", distance_encoding=de,
                       mlp_layers=0, norm=None, readout="sum").double().eval()
        batch = Batch.from_data_list([model.transform(g) for g in graphs])
        batch.x = batch.x.double()
        with torch.no_grad():
            emb = model.embed_data(batch)
        refined = _graph_ids([HEXAGON, TWO_TRIANGLES], [6, 6], length, distance_encoding=de)
        assert (refined[0] != refined[1]) == separated
        assert bool((emb[0] - emb[1]).norm() > 1e-6) == separated


def test_refinement_edge_cases_and_bad_inputs():
    isolated = path_colour_refinement(torch.empty(2, 0, dtype=torch.long), 3, 2)
    assert [c.tolist() for c in isolated] == [[0, 0, 0], [0, 0, 0]]
    assert path_colour_refinement(torch.empty(2, 0, dtype=torch.long), 0, 2,
                                  schedule="fixpoint")[-1].numel() == 0
    with pytest.raises(ValueError, match="schedule"):
        path_colour_refinement(HEXAGON, 6, 2, schedule="forever")
    with pytest.raises(ValueError, match="schedule"):
        path_colour_refinement(HEXAGON, 6, 2, schedule=[1, 3])
    # an explicit list of per-layer lengths; "layers" is [1, ..., max_length]
    ei, n = _random_multigraph(3, undirected=True)
    for a, b in zip(path_colour_refinement(ei, n, 3, schedule=[1, 2, 3]),
                    path_colour_refinement(ei, n, 3)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="paths"):
        path_colour_refinement(HEXAGON, 6, 3, paths=enumerate_paths(HEXAGON, 6, 2))


def _star(num_leaves: int) -> torch.Tensor:
    leaves = torch.arange(1, num_leaves + 1)
    centre = torch.zeros_like(leaves)
    return torch.cat([torch.stack([leaves, centre]), torch.stack([centre, leaves])], dim=1)


@pytest.mark.parametrize(("kind", "distance_encoding"), [
    ("all_simple", False), ("all_simple", True), ("all_shortest", False), ("shortest", True)])
def test_star_graph_hits_the_path_cap_before_allocating(kind, distance_encoding):
    """Issue 18: a node of degree 5,000 ran past 60 s and out of memory (~25M paths of 2 edges);
    now the exact row count is read from the degrees before each step and the error names the
    node, its degree and the way out."""
    ei = _star(5000)
    with pytest.raises(ValueError, match=r"25005000 rows, above max_paths=10000000: 25000000 of "
                                         r"them .* node 0 \(in-degree 5000\).*max_paths="):
        enumerate_paths(ei, 5001, 3, kind=kind, distance_encoding=distance_encoding)


def test_path_cap_is_exact_and_can_be_raised_or_disabled():
    ei = _star(40)   # 40 * 40 rows to grow paths of 2 edges (39 * 40 of them are paths)
    with pytest.raises(ValueError, match=r"1640 rows, above max_paths=1000"):
        enumerate_paths(ei, 41, 2, max_paths=1000)
    assert enumerate_paths(ei, 41, 2, max_paths=1640).counts() == [80, 40 * 39]
    assert enumerate_paths(ei, 41, 2, max_paths=None).counts() == [80, 40 * 39]
    with pytest.raises(ValueError, match="max_pairs=100"):
        shortest_path_distances(ei, 41, 2, max_pairs=100)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_paths must be a positive int"):
            enumerate_paths(ei, 41, 2, max_paths=bad)


def _same_paths(a, b) -> None:
    assert len(a.nodes) == len(b.nodes)
    for x, y in zip(a.nodes + a.edges + (a.dists or []), b.nodes + b.edges + (b.dists or [])):
        assert torch.equal(x, y)
    assert (a.dists is None) == (b.dists is None)


@pytest.mark.parametrize("kind", ["all_simple", "all_shortest", "shortest"])
@pytest.mark.parametrize("max_paths_per_node", [None, 2])
def test_small_and_large_graph_layouts_give_identical_paths(monkeypatch, kind,
                                                            max_paths_per_node):
    """Small graphs use dense pair tables and a padded in-neighbour table (few ops per call),
    large ones sorted keys and a CSR; forcing every combination gives identical tensors, order
    included, on directed multigraphs with self-loops and isolated nodes."""
    import graphlab.utils.paths as paths_mod

    layouts = [(1 << 16, 3, 1 << 12), (0, 0, 0), (1 << 16, 0, 0), (0, 3, 1 << 12)]
    for seed in range(8):
        ei, n = _random_multigraph(seed, undirected=seed % 3 == 0)
        results = []
        for dense, factor, slack in layouts:
            monkeypatch.setattr(paths_mod, "_DENSE_PAIRS", dense)
            monkeypatch.setattr(paths_mod, "_PADDED_FACTOR", factor)
            monkeypatch.setattr(paths_mod, "_PADDED_SLACK", slack)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results.append(enumerate_paths(ei, n, 4, kind=kind, distance_encoding=True,
                                               max_paths_per_node=max_paths_per_node))
        for other in results[1:]:
            _same_paths(results[0], other)


def test_simple_path_distances_read_off_the_paths_equal_breadth_first_distances():
    """AP's distance encoding comes from the enumerated paths (a node's shortest route to the
    path's end is itself an enumerated path); it equals the sparse BFS on every path node."""
    for seed in range(10):
        ei, n = _random_multigraph(seed)
        paths = enumerate_paths(ei, n, 3, distance_encoding=True)
        keys, dist = shortest_path_distances(ei, n, 3)
        for p, d in zip(paths.nodes, paths.dists):
            assert torch.equal(d, lookup_distance(keys, dist, p[:, -1:] * n + p))


@pytest.mark.parametrize("kind", ["all_simple", "all_shortest", "shortest"])
def test_small_graph_kernel_equals_the_tensor_growth(monkeypatch, kind):
    """CPU graphs of at most 64 nodes take the NumPy small-graph kernel (bit sets of the path
    nodes, dense distance matrix); it returns the tensor growth's tensors exactly (values,
    order, dtype, contiguity), with and without distances, on directed multigraphs with
    self-loops, isolated nodes, the empty graph and a 64-node graph (the int64 sign bit)."""
    import graphlab.utils.paths as paths_mod

    gen = torch.Generator().manual_seed(7)
    ring = torch.arange(64)
    graphs = [_random_multigraph(seed, undirected=seed % 3 == 0) for seed in range(12)]
    graphs += [(torch.empty(2, 0, dtype=torch.long), 0), (torch.empty(2, 0, dtype=torch.long), 3),
               (torch.stack([ring, ring.roll(-1)]), 64),
               (torch.cat([torch.stack([ring, ring.roll(-1)]), torch.randint(0, 64, (2, 40),
                                                                              generator=gen)], 1), 64)]
    for ei, n in graphs:
        for de in (False, True):
            key = torch.arange(n) % 2
            small = enumerate_paths(ei, n, 4, kind=kind, distance_encoding=de, node_key=key)
            monkeypatch.setattr(paths_mod, "_SMALL_NODES", -1)
            general = enumerate_paths(ei, n, 4, kind=kind, distance_encoding=de, node_key=key)
            monkeypatch.setattr(paths_mod, "_SMALL_NODES", 64)
            _same_paths(small, general)
            for t in small.nodes + small.edges + (small.dists or []):
                assert t.dtype == torch.long and t.is_contiguous()


def test_small_graph_kernel_leaves_the_input_alone_and_checks_it():
    """The kernel reads a NumPy view of ``edge_index`` (no copy) and never writes it; node ids
    out of range are the same one-line ValueError as on the tensor path."""
    ei = torch.tensor([[0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]])
    before = ei.clone()
    paths = enumerate_paths(ei, 3, 3, distance_encoding=True)
    assert torch.equal(ei, before)
    assert paths.counts() == [6, 6, 0]
    paths.nodes[0].add_(1)  # outputs own their memory
    assert torch.equal(ei, before)
    for bad in (torch.tensor([[0, 3], [1, 0]]), torch.tensor([[0, -1], [1, 0]])):
        with pytest.raises(ValueError, match="outside the valid range"):
            enumerate_paths(bad, 3, 2)


def test_small_graph_kernel_defers_to_the_exact_cap():
    """A growth step over ``max_paths`` candidate slots hands the small graph to the tensor
    growth, which counts the exact rows: within the cap it returns the same paths, above it
    it raises PathCapError naming the hub."""
    from graphlab.utils.paths import PathCapError

    leaves = torch.arange(1, 9)
    star = torch.cat([torch.stack([leaves, torch.zeros_like(leaves)]),
                      torch.stack([torch.zeros_like(leaves), leaves])], 1)
    full = enumerate_paths(star, 9, 2)
    assert full.counts() == [16, 56]
    # 16 length-1 paths x 8 slots = 128 candidates, 16 + 56 exact rows: the fallback fits
    _same_paths(enumerate_paths(star, 9, 2, max_paths=100), full)
    with pytest.raises(PathCapError, match="node 0"):
        enumerate_paths(star, 9, 2, max_paths=50)
