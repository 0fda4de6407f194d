from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn.aggr import MeanAggregation, SumAggregation

from graphlab.datasets.spec import TaskSpec
from graphlab.models import PathNN, build_model, centre_layers
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    LayerCase,
    conformance_params,
    permute_graph,
    random_graph,
)
from graphlab.transforms import AddPaths


def _graph(seed: int) -> Data:
    return random_graph(6 + seed % 4, in_channels=8, edge_dim=3, seed=seed)


def _int32_edge_index(b):
    b.edge_index = b.edge_index.int()
    return b


def _forward(m, b):
    return m(b.x, b.edge_index, m.paths_of(b), b.edge_attr, b.batch, num_graphs=b.num_graphs)


def _case(kind: str, readout: str, path_lengths: list[int] | None = None) -> LayerCase:
    def make() -> PathNN:
        return PathNN(8, 16, 3, num_layers=len(path_lengths or [1, 2, 3]), kind=kind, edge_dim=3,
                      readout=readout, path_lengths=path_lengths)

    schedule = "" if path_lengths is None else "_layers" + "".join(map(str, path_lengths))
    return LayerCase(name=f"pathnn_{kind}_{readout}{schedule}", make_module=make,
                     forward=_forward, levels=("graph",), make_graph=_graph,
                     transform=AddPaths(3, kind=kind, distance_encoding=kind == "all_simple"),
                     grad_inputs=("x", "edge_attr"),
                     # PathConv's nn.LSTM: dynamo does not trace RNNs, one graph break per layer
                     # (PathConv's own compile contract is the conv package's)
                     max_compiles=12,
                     bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS, **INDEX_MUTATIONS,
                                 "edge_index_int32": _int32_edge_index})


CASES = [_case("shortest", "sum"), _case("all_shortest", "mean"), _case("all_simple", "sum"),
         _case("all_simple", "sum", path_lengths=[1, 3, 3, 2])]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


@pytest.mark.parametrize("kind", ["shortest", "all_shortest", "all_simple"])
def test_permutation_invariance_many_graphs(kind):
    torch.manual_seed(0)
    model = PathNN(8, 16, 2, num_layers=3, kind=kind, edge_dim=3, readout="sum").eval()
    for seed in range(6):
        g = random_graph(9, num_edges=20, edge_dim=3, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(9, generator=gen)
        eperm = torch.randperm(g.edge_index.size(1), generator=gen)
        gp = permute_graph(g, perm, eperm)
        with torch.no_grad():
            a = model.forward_data(model.transform(g))
            b = model.forward_data(model.transform(gp))
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_batch_composition_with_dataloader():
    torch.manual_seed(0)
    model = PathNN(8, 16, 2, num_layers=3, readout="mean").eval()
    graphs = [model.transform(random_graph(4 + k, seed=k)) for k in range(7)]
    with torch.no_grad():
        alone = torch.cat([model.forward_data(g) for g in graphs])
        for batch_size in (2, 7):
            out = torch.cat([model.forward_data(b)
                             for b in DataLoader(graphs, batch_size=batch_size)])
            torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


def test_separates_1wl_equivalent_graphs():
    # C6 vs two disjoint triangles: 1-WL equivalent (2-regular); paths of length 3 differ
    c6 = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
    tri = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3]])
    torch.manual_seed(0)
    for kind in ("all_shortest", "all_simple"):
        model = PathNN(1, 16, 4, num_layers=3, kind=kind, readout="sum").eval()
        outs = []
        for ei in (c6, tri):
            g = Data(x=torch.ones(6, 1), edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=6)
            with torch.no_grad():
                outs.append(model.forward_data(model.transform(g)))
        assert (outs[0] - outs[1]).norm() > 1e-3


def test_training_step_and_missing_paths():
    torch.manual_seed(0)
    model = PathNN(8, 16, 1, num_layers=2, dropout=0.5, readout="sum")
    graphs = [model.transform(random_graph(6, seed=k)) for k in range(4)]
    batch = next(iter(DataLoader(graphs, batch_size=4)))
    loss = model.forward_data(batch).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    with pytest.raises(ValueError, match="AddPaths"):
        model.forward_data(random_graph(6, seed=0))
    with pytest.raises(ValueError, match="readout"):
        PathNN(8, 16, 1, num_layers=2, readout="nope")


def test_registry_and_molecular_inputs():
    spec = TaskSpec("graph", 9, 1, "bce", "rocauc", edge_dim=3, molecular=True)
    for name, kind in (("pathnn-sp", "shortest"), ("pathnn-sp+", "all_shortest"),
                       ("pathnn-ap", "all_simple")):
        model = build_model(name, spec, hidden_channels=16).eval()
        assert isinstance(model.model, PathNN) and model.model.kind == kind
        assert model.model.max_length == 2 and isinstance(model.model.readout, MeanAggregation)
        assert isinstance(model.transform, AddPaths)
        assert model.transform.kind == kind
        gen = torch.Generator().manual_seed(0)
        g = random_graph(7, seed=1)
        g.x = torch.randint(0, 2, (7, 9), generator=gen)
        g.edge_attr = torch.randint(0, 2, (g.edge_index.size(1), 3), generator=gen)
        out = model(model.transform(g))
        assert out.shape == (1, 1) and bool(torch.isfinite(out).all())
    tu = TaskSpec("graph", 3, 2, "ce", "acc")
    built = build_model("pathnn-ap", tu, num_layers=3).model
    assert isinstance(built.readout, SumAggregation) and built.max_length == 3
    with pytest.raises(ValueError, match="graph-level"):
        build_model("pathnn-ap", TaskSpec("node", 3, 2, "ce", "acc"))


def test_embed_and_synthetic_configuration():
    # the paper's isomorphism-test model: no batch norm, phi = ReLU, graph embedding compared
    torch.manual_seed(0)
    model = PathNN(8, 16, 3, num_layers=2, mlp_layers=0, norm=None, l2_norm=True,
                   readout="sum").eval()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    batch = next(iter(DataLoader([model.transform(random_graph(5 + k, seed=k)) for k in range(3)],
                                 batch_size=3)))
    with torch.no_grad():
        emb = model.embed_data(batch)
        assert emb.shape == (3, 16) and bool((emb >= 0).all())  # sum of ReLU outputs
        torch.testing.assert_close(model.forward_data(batch), model.head(emb))


def test_readout_norm():
    torch.manual_seed(0)
    plain = PathNN(8, 16, 3, num_layers=2, mlp_layers=0, norm=None, readout="sum")
    model = PathNN(8, 16, 3, num_layers=2, mlp_layers=0, norm=None, readout_norm=True,
                   readout="sum")
    assert plain.readout_norm is None
    # the head keeps its parameter names; only readout_norm.* is added
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("readout_norm.") for k in extra)
    graphs = [model.transform(random_graph(5 + k, seed=k)) for k in range(6)]
    batch = next(iter(DataLoader(graphs, batch_size=6)))
    model.train()
    out = model.forward_data(batch)
    # training mode: the head sees the batch-standardised embeddings
    emb = model.embed_data(batch)
    std = (emb - emb.mean(0)) / torch.sqrt(emb.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(out, model.head(std * model.readout_norm.weight
                                               + model.readout_norm.bias))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_data(batch),
                                   model.head(model.readout_norm(model.embed_data(batch))))
    model.reset_parameters()
    assert int(model.readout_norm.num_batches_tracked) == 0


def test_default_path_lengths_are_one_layer_per_length():
    torch.manual_seed(0)
    default = PathNN(8, 16, 3, num_layers=3, edge_dim=3, readout="sum").eval()
    torch.manual_seed(0)
    explicit = PathNN(8, 16, 3, num_layers=3, edge_dim=3, path_lengths=[1, 2, 3],
                      readout="sum").eval()
    assert default.path_lengths == explicit.path_lengths == (1, 2, 3)
    assert repr(default) == repr(explicit) and "path_lengths" not in repr(default)
    # same parameters (names and values) from the same seed, hence the same outputs
    sd, se = default.state_dict(), explicit.state_dict()
    assert list(sd) == list(se) and all(torch.equal(sd[k], se[k]) for k in sd)
    batch = next(iter(DataLoader([default.transform(_graph(k)) for k in range(4)], batch_size=4)))
    with torch.no_grad():
        torch.testing.assert_close(default.forward_data(batch), explicit.forward_data(batch),
                                   rtol=0, atol=0)
        explicit.load_state_dict(PathNN(8, 16, 3, num_layers=3, edge_dim=3,
                                        readout="sum").state_dict())
        default.load_state_dict(explicit.state_dict())
        torch.testing.assert_close(default.forward_data(batch), explicit.forward_data(batch),
                                   rtol=0, atol=0)


def test_path_length_schedule_with_repeats():
    torch.manual_seed(0)
    model = PathNN(8, 16, 3, num_layers=4, path_lengths=(1, 2, 2, 2), readout="sum").eval()
    assert len(model.convs) == 4 and model.path_lengths == (1, 2, 2, 2)
    assert "path_lengths=[1, 2, 2, 2]" in repr(model)
    # the LSTM and distance embedding stay shared; the transform enumerates up to max_length
    assert all(conv.encoder is model.encoder for conv in model.convs)
    assert model.distance_embedding is not None and model.transform.max_length == 2
    graphs = [model.transform(_graph(k)) for k in range(3)]
    batch = next(iter(DataLoader(graphs, batch_size=3)))
    with torch.no_grad():
        out = model.forward_data(batch)
        assert out.shape == (3, 3) and bool(torch.isfinite(out).all())
        # layer i reads the paths of path_lengths[i] edges: a 3-layer prefix of the schedule
        # with the same weights gives the state after 3 layers
        prefix = PathNN(8, 16, 3, num_layers=3, path_lengths=(1, 2, 2), readout="sum").eval()
        prefix.load_state_dict({k: v for k, v in model.state_dict().items()
                                if not k.startswith("convs.3.")})
        assert not torch.allclose(prefix.forward_data(batch), out)
    # the registry factories forward it
    tu = TaskSpec("graph", 3, 2, "ce", "acc")
    built = build_model("pathnn-ap", tu, num_layers=4, path_lengths=[1, 2, 3, 3]).model
    assert built.max_length == 3 and built.path_lengths == (1, 2, 3, 3) and len(built.convs) == 4


@pytest.mark.parametrize("bad", [[], (), [0, 1], [1, 2, 3], [1, -1], [1.0, 2], [True, 1], "12",
                                 2, {1, 2}])
def test_bad_path_lengths(bad):
    with pytest.raises(ValueError, match="path_lengths"):
        PathNN(8, 16, 3, num_layers=2, path_lengths=bad)
    with pytest.raises(ValueError, match="num_layers"):
        PathNN(8, 16, 3, num_layers=0)


def test_repeated_length_separates_what_the_default_schedule_cannot():
    """A 4-edge path + an edge vs two 2-edge paths: equal degree multisets (1-edge paths per
    node), different neighbour degrees. With one 1-edge layer no PathNN separates them (the exact
    refinement says so); a second 1-edge layer (a second 1-WL round) does. On SR25 the same
    holds for [1, 2, 3, 4] vs [1, 2, 3, 4, 4] (benchmarks/pathnn_expressivity.py)."""
    from graphlab.utils.paths import multiset_ids, path_colour_refinement

    a = torch.tensor([[0, 1, 2, 4], [1, 2, 3, 5]])
    b = torch.tensor([[0, 1, 3, 4], [1, 2, 4, 5]])
    graphs = [Data(x=torch.ones(6, 1), edge_index=torch.cat([e, e.flip(0)], 1), num_nodes=6)
              for e in (a, b)]
    union = torch.cat([graphs[0].edge_index, graphs[1].edge_index + 6], 1)
    owner = torch.arange(12) // 6
    for schedule, separated in ((None, False), ([1, 1], True)):
        colours = path_colour_refinement(union, 12, 1, schedule=schedule or "layers")[-1]
        ids = multiset_ids(owner, colours, 2)
        assert bool(ids[0] != ids[1]) == separated
        for seed in range(3):
            torch.manual_seed(seed)
            model = PathNN(1, 16, 16, num_layers=len(schedule or [1]), mlp_layers=0, norm=None,
                           l2_norm=True,
                           path_lengths=schedule, readout="sum").double().eval()
            batch = next(iter(DataLoader([model.transform(g) for g in graphs], batch_size=2)))
            batch.x = batch.x.double()
            with torch.no_grad():
                emb = model.embed_data(batch)
            assert bool((emb[0] - emb[1]).norm() > 1e-5) == separated


def _centred(path_lengths: list[int], seed: int) -> PathNN:
    # the SR25 synthetic setting: distance encoding, phi = ReLU, batch norms used as centring
    torch.manual_seed(seed)
    return PathNN(1, 16, 16, num_layers=len(path_lengths), path_lengths=path_lengths,
                  mlp_layers=0, norm="batch_norm", readout="sum").double().eval()


def test_centre_layers_respects_the_refinement():
    """centre_layers sets a fixed per-channel bias (the same for every graph): the centred model
    separates the pair that the refinement separates with two layers, leaves the one-layer pair
    (proved equal) at rounding distance, is relabelling invariant and reproduces its calibration
    (the README's SR25 105/105 rests on this function)."""
    a = torch.tensor([[0, 1, 2, 4], [1, 2, 3, 5]])
    b = torch.tensor([[0, 1, 3, 4], [1, 2, 4, 5]])
    graphs = [Data(x=torch.ones(6, 1), edge_index=torch.cat([e, e.flip(0)], 1), num_nodes=6)
              for e in (a, b)]
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    copy = permute_graph(graphs[0], perm)

    def embed(model: PathNN, g: Data) -> torch.Tensor:
        data = model.transform(g)
        data.x = data.x.double()
        with torch.no_grad():
            return model.embed_data(data)

    for seed in range(2):
        two, one = _centred([1, 1], seed), _centred([1], seed)
        centre_layers(two, graphs)
        centre_layers(one, graphs)
        assert float((embed(two, graphs[0]) - embed(two, graphs[1])).norm()) > 1e-5
        assert float((embed(one, graphs[0]) - embed(one, graphs[1])).norm()) < 1e-9
        assert float((embed(two, graphs[0]) - embed(two, copy)).norm()) < 1e-9
    # layer 1's bias is the mean pre-activation over the 12 nodes; the model is fixed now
    var = two.convs[0].norm.module.running_var
    assert torch.allclose(var, torch.full_like(var, 1 - 1e-5))
    before = embed(two, graphs[0])
    centre_layers(two, graphs)
    assert torch.equal(embed(two, graphs[0]), before)


def test_centre_layers_bad_arguments():
    with pytest.raises(ValueError, match="batch_norm"):
        centre_layers(PathNN(1, 8, 8, num_layers=1, norm=None), [random_graph(4, seed=0)])
    with pytest.raises(ValueError, match="at least one graph"):
        centre_layers(PathNN(1, 8, 8, num_layers=1), [])
    with pytest.raises(ValueError, match="edge features"):
        centre_layers(PathNN(1, 8, 8, num_layers=1, edge_dim=2), [random_graph(4, seed=0)])


def test_tensor_forward_equals_forward_data_and_checks_paths():
    torch.manual_seed(0)
    model = PathNN(8, 16, 3, num_layers=2, edge_dim=3).eval()
    batch = next(iter(DataLoader([model.transform(_graph(k)) for k in range(3)], batch_size=3)))
    paths = model.paths_of(batch)
    assert len(paths) == 2 and paths[1][0].size(1) == 3  # 2-edge paths have 3 nodes
    with torch.no_grad():
        out = model(batch.x, batch.edge_index, paths, batch.edge_attr, batch.batch)
        torch.testing.assert_close(out, model.forward_data(batch))
    with pytest.raises(ValueError, match="paths must be a sequence"):
        model(batch.x, batch.edge_index, paths[:1], batch.edge_attr, batch.batch)
    with pytest.raises(ValueError, match="edge_attr"):
        model(batch.x, batch.edge_index, paths, None, batch.batch)
    with pytest.raises(ValueError, match="per graph"):
        PathNN(8, 16, 3, num_layers=2, norm="graph_norm")


def test_norm_names_reach_every_layer_and_max_paths_reaches_the_transform():
    """PathNN hands ``norm`` to each PathConv (node-wise norms, PyG resolver names) and exposes
    the enumeration's memory cap ``max_paths``."""
    from torch_geometric.nn.norm import LayerNorm

    model = PathNN(8, 16, 3, num_layers=2, norm="layer_norm", norm_kwargs={"mode": "node"})
    assert all(isinstance(conv.norm, LayerNorm) for conv in model.convs)
    assert model.convs[0].norm is not model.convs[1].norm
    g = model.transform(random_graph(6, seed=0))
    assert model.forward_data(Batch.from_data_list([g, g])).shape == (2, 3)
    assert PathNN(8, 16, 3, num_layers=2).transform.max_paths == 10_000_000
    capped = PathNN(8, 16, 3, num_layers=2, max_paths=5)
    assert capped.transform.max_paths == 5 and capped.max_paths == 5
    with pytest.raises(ValueError, match="max_paths=5"):
        capped.transform(random_graph(9, seed=1))
    assert PathNN(8, 16, 3, num_layers=2, max_paths=None).transform.max_paths is None
