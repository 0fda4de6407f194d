from __future__ import annotations

import warnings

import pytest
import torch
from torch_geometric.data import Batch, Data, InMemoryDataset
from torch_geometric.loader import DataLoader

from graphlab.testing import random_graph
from graphlab.transforms import AddPaths
from graphlab.transforms.add_paths import PathData, get_paths, parse_path_key, path_keys
from graphlab.utils.paths import enumerate_paths


@pytest.mark.parametrize("kind", ["shortest", "all_shortest", "all_simple"])
def test_attributes_match_function_form(kind):
    g = random_graph(9, edge_dim=3, seed=1)
    out = AddPaths(3, kind=kind)(g.clone())
    assert isinstance(out, PathData)
    ref = enumerate_paths(g.edge_index, 9, 3, kind=kind, distance_encoding=True,
                          node_key=None if kind != "shortest" else
                          __import__("graphlab.utils.paths", fromlist=["x"]).feature_node_keys(g.x))
    for length in range(1, 4):
        index, edge, dist = get_paths(out, length)
        assert index.shape[1] == length + 1 and edge.shape[1] == length
        assert torch.equal(index, ref.nodes[length - 1])
        assert torch.equal(edge, ref.edges[length - 1])
        assert torch.equal(dist, ref.dists[length - 1])
    assert torch.equal(out.x, g.x) and torch.equal(out.edge_attr, g.edge_attr)


def test_without_distance_encoding():
    out = AddPaths(2, distance_encoding=False)(random_graph(6, seed=0))
    assert "path_dist_1" not in out and "path_index_2" in out
    assert get_paths(out, 2)[2] is None
    with pytest.raises(ValueError, match="AddPaths"):
        get_paths(out, 3)


@pytest.mark.parametrize("kind", ["shortest", "all_shortest", "all_simple"])
def test_batching_offsets(kind):
    t = AddPaths(3, kind=kind)
    graphs = [t(random_graph(5 + k, edge_dim=2, seed=k)) for k in range(4)]
    graphs.insert(2, t(Data(x=torch.randn(0, 8), edge_index=torch.empty(2, 0, dtype=torch.long),
                            edge_attr=torch.randn(0, 2), num_nodes=0)))
    batch = next(iter(DataLoader(graphs, batch_size=len(graphs))))
    whole = t(Data(x=batch.x, edge_index=batch.edge_index, edge_attr=batch.edge_attr,
                   num_nodes=batch.num_nodes))
    node_off, edge_off = 0, 0
    for length in range(1, 4):
        parts = {"index": [], "edge": [], "dist": []}
        node_off = edge_off = 0
        for g in graphs:
            index, edge, dist = get_paths(g, length)
            parts["index"].append(index + node_off)
            parts["edge"].append(edge + edge_off)
            parts["dist"].append(dist)
            node_off += g.num_nodes
            edge_off += g.edge_index.size(1)
        index, edge, dist = get_paths(batch, length)
        assert torch.equal(index, torch.cat(parts["index"]))
        assert torch.equal(edge, torch.cat(parts["edge"]))
        assert torch.equal(dist, torch.cat(parts["dist"]))
        # transforming the batched graph gives the same path set (enumeration is per component)
        w_index, w_edge, _ = get_paths(whole, length)
        assert sorted(map(tuple, w_edge.tolist())) == sorted(map(tuple, edge.tolist()))
        assert sorted(map(tuple, w_index.tolist())) == sorted(map(tuple, index.tolist()))
    # enumerating a collated batch of raw graphs gives the same tensors
    raw = Batch.from_data_list([Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr,
                                     num_nodes=g.num_nodes) for g in graphs])
    on_batch = t(raw)
    assert isinstance(on_batch, Batch) and on_batch.num_graphs == len(graphs)
    for length in range(1, 4):
        assert sorted(map(tuple, on_batch[f"path_edge_{length}"].tolist())) == \
            sorted(map(tuple, batch[f"path_edge_{length}"].tolist()))
    # the batch round-trips: slicing gives the per-graph tensors back
    for k, g in enumerate(graphs):
        assert torch.equal(batch.get_example(k).path_index_3, g.path_index_3)


def test_batching_is_explicit_not_by_name():
    assert parse_path_key("path_index_3") == ("index", 3)
    assert parse_path_key("path_edge_12") == ("edge", 12)
    assert parse_path_key("path_dist_1") == ("dist", 1)
    for other in ("my_path_index_3", "path_index_", "path_index_0", "path_indices_2", "index"):
        assert parse_path_key(other) is None
    assert path_keys(2) == ("path_index_2", "path_edge_2", "path_dist_2")
    # an unrelated attribute that merely contains "path" keeps PyG's default batching
    g1 = AddPaths(1)(random_graph(4, seed=0))
    g2 = AddPaths(1)(random_graph(5, seed=1))
    for g in (g1, g2):
        g.pathway_score = torch.ones(1, 3)
    b = Batch.from_data_list([g1, g2])
    assert b.pathway_score.shape == (2, 3)
    assert g1.__inc__("path_dist_1", g1.path_dist_1) == 0
    assert g1.__inc__("path_edge_1", g1.path_edge_1) == g1.edge_index.size(1)
    assert g1.__cat_dim__("path_index_1", g1.path_index_1) == 0


def test_max_paths_per_node_warns():
    g = random_graph(8, num_edges=40, seed=0)
    with pytest.warns(UserWarning, match="max_paths_per_node"):
        out = AddPaths(3, max_paths_per_node=2)(g)
    assert int(torch.bincount(out.path_index_3[:, -1]).max()) <= 2


def test_invalid_arguments_and_repr():
    with pytest.raises(ValueError, match="kind"):
        AddPaths(3, kind="walks")
    with pytest.raises(ValueError, match="max_length"):
        AddPaths(0)
    assert repr(AddPaths(2, kind="shortest")).startswith("AddPaths(max_length=2, kind='shortest'")
    bad = random_graph(5, seed=0)
    bad.edge_index = bad.edge_index.clone()
    bad.edge_index[0, 0] = 17
    with pytest.raises(ValueError, match="edge_index"):
        AddPaths(2)(bad)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda ei: torch.cat([ei, ei[:1]]), r"shape \[2, E\], got \[3, "),
    (lambda ei: ei.t().contiguous(), r"shape \[2, E\], got \[\d+, 2\]"),
    (lambda ei: ei.float(), "int64"),
    (lambda ei: ei.int(), "int32"),
])
def test_malformed_edge_index_is_a_value_error(mutate, match):
    """Issue 18: transforms validate edge_index instead of repairing or misreading it."""
    g = random_graph(7, seed=0)
    with pytest.raises(ValueError, match=match):
        AddPaths(2)(Data(x=g.x, edge_index=mutate(g.edge_index)))


def test_high_degree_node_fails_fast_with_a_clear_error():
    """Issue 18: AddPaths on a node of degree 5,000 ran out of memory after minutes."""
    leaves = torch.arange(1, 5001)
    ei = torch.cat([torch.stack([leaves, 0 * leaves]), torch.stack([0 * leaves, leaves])], 1)
    star = Data(x=torch.randn(5001, 2), edge_index=ei)
    with pytest.raises(ValueError, match=r"node 0 \(in-degree 5000\)"):
        AddPaths(3)(star)
    small = Data(x=torch.randn(31, 2), edge_index=ei[:, (ei < 31).all(0)])
    with pytest.raises(ValueError, match="max_paths=500"):
        AddPaths(2, max_paths=500)(small.clone())
    out = AddPaths(2, distance_encoding=False, max_paths=None)(small)
    assert out.path_index_2.size(0) == 30 * 29
    with pytest.raises(ValueError, match="max_paths"):
        AddPaths(2, max_paths=0)
    assert "max_paths=None" in repr(AddPaths(2, max_paths=None))


class _PathGraphs(InMemoryDataset):
    """A small generated dataset, processed once with a pre_transform, as a user would."""

    def __init__(self, root: str, pre_transform=None) -> None:
        super().__init__(root, pre_transform=pre_transform)
        self.load(self.processed_paths[0], data_cls=PathData)

    @property
    def processed_file_names(self) -> list[str]:
        return ["data.pt"]

    def process(self) -> None:
        graphs = [random_graph(n, seed=n) for n in (5, 7, 6)]
        self.save([self.pre_transform(g) for g in graphs], self.processed_paths[0])


def test_pre_transformed_dataset_reloads_with_the_safe_loader(tmp_path):
    """Issue 17: a dataset built with pre_transform=AddPaths warned 'Weights only load failed
    ... add_safe_globals([PathData])' on every load (and PyG then unpickled it in full)."""
    first = _PathGraphs(str(tmp_path), pre_transform=AddPaths(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")    # any warning fails the test
        again = _PathGraphs(str(tmp_path), pre_transform=AddPaths(2))
        raw = torch.load(again.processed_paths[0], weights_only=True)
    assert raw[2] is PathData
    assert isinstance(again[1], PathData)
    for length in (1, 2):
        assert torch.equal(get_paths(again[1], length)[0], get_paths(first[1], length)[0])
    batch = Batch.from_data_list([again[0], again[1]])
    assert int(batch.path_index_1.max()) < batch.num_nodes


def _dataset_graphs() -> list[Data]:
    """Undirected and directed (multi-)graphs, self-loops, isolated nodes, edgeless graphs."""
    graphs = [random_graph(3 + i % 7, in_channels=3, seed=i) for i in range(9)]
    gen = torch.Generator().manual_seed(5)
    for n in (1, 4, 6):
        ei = torch.randint(0, n, (2, 3 * n), generator=gen)
        graphs.append(Data(x=torch.randn(n, 3, generator=gen), edge_index=ei))
    graphs.insert(4, Data(x=torch.randn(5, 3), edge_index=torch.empty(2, 0, dtype=torch.long)))
    graphs.insert(7, Data(x=torch.zeros(0, 3), edge_index=torch.empty(2, 0, dtype=torch.long)))
    return graphs


def _assert_same_data(a: Data, b: Data) -> None:
    assert type(a) is type(b) and sorted(a.keys()) == sorted(b.keys())
    for key in a.keys():
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize(("kind", "distance_encoding"), [
    ("all_simple", True), ("all_simple", False), ("all_shortest", True), ("shortest", True)])
@pytest.mark.parametrize("chunk_size", [1, 4, 100])
def test_apply_to_dataset_equals_the_per_graph_transform(kind, distance_encoding, chunk_size):
    """The chunked pre-transform enumerates many graphs in one batched call and splits the
    result: every graph gets the tensors (values and order) of the per-graph transform."""
    graphs = _dataset_graphs()
    transform = AddPaths(4, kind=kind, distance_encoding=distance_encoding)
    chunked = transform.apply_to_dataset(graphs, chunk_size=chunk_size)
    assert len(chunked) == len(graphs)
    for got, g in zip(chunked, graphs):
        _assert_same_data(got, transform(g.clone()))
        assert got.path_index_4.untyped_storage().nbytes() == got.path_index_4.nbytes


def test_apply_to_dataset_batches_like_the_per_graph_transform():
    graphs = _dataset_graphs()
    transform = AddPaths(3)
    a = next(iter(DataLoader(transform.apply_to_dataset(graphs, chunk_size=5), batch_size=32)))
    b = next(iter(DataLoader([transform(g.clone()) for g in graphs], batch_size=32)))
    _assert_same_data(a, b)


def test_apply_to_dataset_halves_a_chunk_over_the_path_cap():
    """A chunk whose growth step exceeds max_paths is split until it fits; a single graph over
    the cap raises as the per-graph transform does."""
    graphs = [random_graph(12, seed=i) for i in range(6)]
    per_graph = [AddPaths(3, max_paths=None)(g.clone()) for g in graphs]
    rows = max(int(g.path_index_2.size(0) + g.path_index_3.size(0)) for g in per_graph)
    capped = AddPaths(3, max_paths=4 * rows)
    for got, ref in zip(capped.apply_to_dataset(graphs, chunk_size=6), per_graph):
        _assert_same_data(got, ref)
    with pytest.raises(ValueError, match="max_paths=3"):
        AddPaths(3, max_paths=3).apply_to_dataset(graphs, chunk_size=6)


def test_apply_to_dataset_shortest_with_and_without_features():
    """SP's tie-break is seeded by the node features: graphs without features (or a mix) get
    what the per-graph transform gives them."""
    graphs = _dataset_graphs()
    bare = [Data(edge_index=g.edge_index, num_nodes=g.num_nodes) for g in graphs]
    transform = AddPaths(3, kind="shortest")
    for group in (bare, bare[:5] + graphs[5:]):
        for got, g in zip(transform.apply_to_dataset(group, chunk_size=8), group):
            _assert_same_data(got, transform(g.clone()))


def test_apply_to_dataset_rejects_bad_input():
    graphs = _dataset_graphs()
    with pytest.raises(ValueError, match="chunk_size"):
        AddPaths(2).apply_to_dataset(graphs, chunk_size=0)
    broken = graphs[:3] + [Data(x=torch.randn(3, 3), edge_index=torch.tensor([[0, 1], [1, 3]]))]
    with pytest.raises(ValueError, match=r"graphs\[3\]\.edge_index holds node ids outside"):
        AddPaths(2).apply_to_dataset(broken)
    with pytest.raises(ValueError, match="int64"):
        AddPaths(2).apply_to_dataset([Data(x=torch.randn(2, 1),
                                           edge_index=torch.tensor([[0], [1]]).int())])
