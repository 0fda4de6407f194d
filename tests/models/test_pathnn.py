from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from graphlab.datasets.spec import TaskSpec
from graphlab.models import PathNN, build_model
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
    permute_graph,
    random_graph,
)
from graphlab.transforms import AddPaths


def _graph(seed: int) -> Data:
    return random_graph(6 + seed % 4, in_channels=8, edge_dim=3, seed=seed)


def _case(kind: str, readout: str) -> LayerCase:
    def make() -> PathNN:
        return PathNN(8, 16, 3, max_length=3, kind=kind, edge_dim=3, readout=readout)

    return LayerCase(name=f"pathnn_{kind}_{readout}", make_module=make, forward=lambda m, b: m(b),
                     levels=("graph",), make_graph=_graph,
                     transform=AddPaths(3, kind=kind, distance_encoding=kind == "all_simple"),
                     grad_inputs=("x", "edge_attr"),
                     bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS})


CASES = [_case("shortest", "sum"), _case("all_shortest", "mean"), _case("all_simple", "sum")]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


@pytest.mark.parametrize("kind", ["shortest", "all_shortest", "all_simple"])
def test_permutation_invariance_many_graphs(kind):
    torch.manual_seed(0)
    model = PathNN(8, 16, 2, max_length=3, kind=kind, edge_dim=3).eval()
    for seed in range(6):
        g = random_graph(9, num_edges=20, edge_dim=3, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(9, generator=gen)
        eperm = torch.randperm(g.edge_index.size(1), generator=gen)
        gp = permute_graph(g, perm, eperm)
        with torch.no_grad():
            a, b = model(model.transform(g)), model(model.transform(gp))
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_batch_composition_with_dataloader():
    torch.manual_seed(0)
    model = PathNN(8, 16, 2, max_length=3, readout="mean").eval()
    graphs = [model.transform(random_graph(4 + k, seed=k)) for k in range(7)]
    with torch.no_grad():
        alone = torch.cat([model(g) for g in graphs])
        for batch_size in (2, 7):
            out = torch.cat([model(b) for b in DataLoader(graphs, batch_size=batch_size)])
            torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


def test_separates_1wl_equivalent_graphs():
    # C6 vs two disjoint triangles: 1-WL equivalent (2-regular); paths of length 3 differ
    c6 = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
    tri = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3]])
    torch.manual_seed(0)
    for kind in ("all_shortest", "all_simple"):
        model = PathNN(1, 16, 4, max_length=3, kind=kind).eval()
        outs = []
        for ei in (c6, tri):
            g = Data(x=torch.ones(6, 1), edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=6)
            with torch.no_grad():
                outs.append(model(model.transform(g)))
        assert (outs[0] - outs[1]).norm() > 1e-3


def test_training_step_and_missing_paths():
    torch.manual_seed(0)
    model = PathNN(8, 16, 1, max_length=2, dropout=0.5)
    graphs = [model.transform(random_graph(6, seed=k)) for k in range(4)]
    batch = next(iter(DataLoader(graphs, batch_size=4)))
    loss = model(batch).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    with pytest.raises(ValueError, match="AddPaths"):
        model(random_graph(6, seed=0))
    with pytest.raises(ValueError, match="readout"):
        PathNN(8, 16, 1, max_length=2, readout="median")


def test_registry_and_molecular_inputs():
    spec = TaskSpec("graph", 9, 1, "bce", "rocauc", edge_dim=3, molecular=True)
    for name, kind in (("pathnn-sp", "shortest"), ("pathnn-sp+", "all_shortest"),
                       ("pathnn-ap", "all_simple")):
        model = build_model(name, spec, hidden_channels=16).eval()
        assert isinstance(model, PathNN) and model.kind == kind and model.max_length == 2
        assert model.readout == "mean" and isinstance(model.transform, AddPaths)
        assert model.transform.kind == kind
        gen = torch.Generator().manual_seed(0)
        g = random_graph(7, seed=1)
        g.x = torch.randint(0, 2, (7, 9), generator=gen)
        g.edge_attr = torch.randint(0, 2, (g.edge_index.size(1), 3), generator=gen)
        out = model(model.transform(g))
        assert out.shape == (1, 1) and bool(torch.isfinite(out).all())
    tu = TaskSpec("graph", 3, 2, "ce", "acc")
    assert build_model("pathnn-ap", tu, max_length=3).readout == "sum"
    with pytest.raises(ValueError, match="graph-level"):
        build_model("pathnn-ap", TaskSpec("node", 3, 2, "ce", "acc"))


def test_embed_and_synthetic_configuration():
    # the paper's isomorphism-test model: no batch norm, phi = ReLU, graph embedding compared
    torch.manual_seed(0)
    model = PathNN(8, 16, 3, max_length=2, mlp_layers=0, norm=False, l2_norm=True).eval()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    batch = next(iter(DataLoader([model.transform(random_graph(5 + k, seed=k)) for k in range(3)],
                                 batch_size=3)))
    with torch.no_grad():
        emb = model.embed(batch)
        assert emb.shape == (3, 16) and bool((emb >= 0).all())  # sum of ReLU outputs
        torch.testing.assert_close(model(batch), model.head(emb))


def test_readout_norm():
    torch.manual_seed(0)
    plain = PathNN(8, 16, 3, max_length=2, mlp_layers=0, norm=False)
    model = PathNN(8, 16, 3, max_length=2, mlp_layers=0, norm=False, readout_norm=True)
    assert plain.readout_norm is None
    # the head keeps its parameter names; only readout_norm.* is added
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("readout_norm.") for k in extra)
    graphs = [model.transform(random_graph(5 + k, seed=k)) for k in range(6)]
    batch = next(iter(DataLoader(graphs, batch_size=6)))
    model.train()
    out = model(batch)
    # training mode: the head sees the batch-standardised embeddings
    emb = model.embed(batch)
    std = (emb - emb.mean(0)) / torch.sqrt(emb.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(out, model.head(std * model.readout_norm.weight
                                               + model.readout_norm.bias))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model.head(model.readout_norm(model.embed(batch))))
    model.reset_parameters()
    assert int(model.readout_norm.num_batches_tracked) == 0
