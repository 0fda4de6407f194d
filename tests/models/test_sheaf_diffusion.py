"""SheafDiffusion: registry factories, pre-transform, equivariance and a tiny learning check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch

from graphlab.datasets.spec import TaskSpec
from graphlab.models import SheafDiffusion, build_model
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
    permute_graph,
    random_graph,
)

SPEC = TaskSpec("node", in_channels=8, out_channels=3, loss="ce", metric="acc")
NAMES = ["sheaf-diag", "sheaf-orth", "sheaf-general", "sheaf-conn"]


def _prepared(model, g):
    return model.transform(g.clone())


@pytest.mark.parametrize("name", NAMES)
def test_registry_builds_a_node_classifier(name):
    torch.manual_seed(0)
    model = build_model(name, SPEC, hidden_channels=4, stalk_dim=2, num_layers=2).eval()
    g = random_graph(12, in_channels=8, undirected=False, self_loops=True, seed=0)
    data = _prepared(model, g)
    # the pre-transform symmetrises and drops self-loops (and adds maps for sheaf-conn)
    assert not bool((data.edge_index[0] == data.edge_index[1]).any())
    assert ("sheaf_maps" in data) == (name == "sheaf-conn")
    out = model(data)
    assert out.shape == (12, 3) and bool(torch.isfinite(out).all())
    maps = data.sheaf_maps if name == "sheaf-conn" else None
    torch.testing.assert_close(model.model(data.x, data.edge_index, maps), out)
    # permutation equivariance of the whole model, transform included
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    out_p = model(_prepared(model, permute_graph(g, perm)))
    torch.testing.assert_close(out_p, out[perm], atol=1e-5, rtol=1e-4)
    # batching two graphs equals running them separately
    other = random_graph(7, in_channels=8, seed=5)
    batch = Batch.from_data_list([data, _prepared(model, other)])
    torch.testing.assert_close(model(batch)[:12], out, atol=1e-5, rtol=1e-4)


def test_connection_model_needs_maps_and_rejects_graph_tasks():
    model = SheafDiffusion(8, 20, 3, maps="connection", stalk_dim=2)
    g = random_graph(6, in_channels=8, seed=0)
    with pytest.raises(ValueError, match="sheaf_maps"):
        model.forward_data(g)
    with pytest.raises(ValueError, match=r"sheaf_maps must have shape \[.*, 2, 2, 2\]"):
        model(g.x, g.edge_index, torch.zeros(g.edge_index.size(1), 2, 3, 3))
    with pytest.raises(ValueError, match="only for maps='connection'"):
        SheafDiffusion(8, 4, 3)(g.x, g.edge_index, torch.zeros(g.edge_index.size(1), 2, 3, 3))
    with pytest.raises(ValueError, match="node classifier"):
        build_model("sheaf-diag", TaskSpec("graph", 8, 2, "ce", "acc"))
    with pytest.raises(ValueError, match="readout"):
        build_model("sheaf-diag", SPEC, readout="mean")
    with pytest.raises(ValueError, match="maps must be"):
        SheafDiffusion(8, 20, 3, maps="dense")
    with pytest.raises(ValueError, match="channels"):
        SheafDiffusion(8, 20, 3).forward_data(random_graph(6, in_channels=5, seed=0))
    assert "maps='connection'" in repr(model)


@pytest.mark.parametrize("maps", ["diag", "orthogonal", "general", "connection"])
def test_fits_a_heterophilic_toy_task(maps):
    """Two communities whose edges all cross: labels follow the community; a few Adam steps
    bring the training loss well down (the model learns; the gradients flow through maps)."""
    torch.manual_seed(0)
    n = 40
    y = torch.arange(n) % 2
    src = torch.randint(0, n, (200,), generator=torch.Generator().manual_seed(0))
    dst = (src + 1 + 2 * torch.randint(0, n // 2, (200,),
                                       generator=torch.Generator().manual_seed(1))) % n
    g = random_graph(n, in_channels=8, seed=0)
    g.edge_index = torch.stack([src, dst])
    g.x = g.x + 1.5 * F.one_hot(y, 8).float()
    g.y = y
    model = SheafDiffusion(8, 4, 2, stalk_dim=2, maps=maps, dropout=0.1)
    data = model.transform(g)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model.forward_data(data), data.y)
        loss.backward()
        assert all(p.grad is None or bool(torch.isfinite(p.grad).all())
                   for p in model.parameters())
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


# --------------------------------------------------------------------------- conformance
def _int32_edge_index(b):
    b.edge_index = b.edge_index.int()
    return b


_BAD = {**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS, "edge_index_int32": _int32_edge_index}


def _case(maps: str, **kw) -> LayerCase:
    def make() -> SheafDiffusion:
        return SheafDiffusion(8, 4, 3, stalk_dim=2, maps=maps, num_points=4, **kw)

    connection = maps == "connection"
    return LayerCase(
        name=f"sheaf-diffusion-{maps}" + ("-layer-norm" if kw else ""), make_module=make,
        forward=(lambda m, b: m(b.x, b.edge_index, b.sheaf_maps)) if connection
        else (lambda m, b: m(b.x, b.edge_index)),
        transform=make().transform, edge_attrs=("sheaf_maps",) if connection else (),
        bad_inputs=_BAD,
        skip={"isolated_nodes": "ConnectionSheaf tops neighbourhoods up with the nearest nodes "
              "in feature space, so added nodes rightly change other nodes' maps"}
        if connection else {})


CASES = [_case("diag"), _case("orthogonal"), _case("general"), _case("connection"),
         _case("diag", norm="layer_norm", norm_kwargs={"mode": "node"}, act="gelu")]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


@pytest.mark.parametrize("maps", ["diag", "connection"])
def test_transform_rejects_malformed_edge_index(maps):
    """Issue 18: the pre-transform "repaired" a [3, E] edge_index (ToUndirected) and read an
    [E, 2] one as a different graph; both are ValueErrors naming the shape now."""
    model = SheafDiffusion(8, 4, 3, stalk_dim=2, maps=maps, num_points=4)
    g = random_graph(6, in_channels=8, seed=0)
    three = g.clone()
    three.edge_index = torch.cat([g.edge_index, g.edge_index[:1]], dim=0)
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        model.transform(three)
    transposed = g.clone()
    transposed.edge_index = g.edge_index.t().contiguous()
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        model.transform(transposed)
    int32 = g.clone()
    int32.edge_index = g.edge_index.int()
    with pytest.raises(ValueError, match="int64"):
        model.transform(int32)


def test_int32_edge_index_is_a_clear_value_error_for_the_connection_model():
    """Issue 18: SheafDiffusion-conn crashed with "expected scalar type Long but found Int"."""
    model = SheafDiffusion(8, 4, 3, stalk_dim=2, maps="connection", num_points=4)
    data = model.transform(random_graph(6, in_channels=8, seed=0))
    with pytest.raises(ValueError, match="int64"):
        model(data.x, data.edge_index.int(), data.sheaf_maps)


def test_connection_model_uses_the_scalar_normaliser_with_equal_results():
    """ConnectionSheaf maps are [I, O] with O orthogonal, so the model's convs take D_v = deg(v) I
    without an eigen-decomposition: float64 values and gradients equal the general normaliser."""
    torch.manual_seed(0)
    fast = SheafDiffusion(8, 4, 3, maps="connection", stalk_dim=2).double()
    assert all(conv.given_orthogonal for conv in fast.convs)
    slow = SheafDiffusion(8, 4, 3, maps="connection", stalk_dim=2, given_orthogonal=False).double()
    slow.load_state_dict(fast.state_dict())
    g = random_graph(10, in_channels=8, seed=2)
    data = fast.transform(g.clone())
    x, maps = data.x.double(), data.sheaf_maps.double()
    outs = [model(x, data.edge_index, maps) for model in (fast, slow)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for p_fast, p_slow in zip(torch.autograd.grad(outs[0].square().sum(), list(fast.parameters())),
                              torch.autograd.grad(outs[1].square().sum(), list(slow.parameters())),
                              strict=True):
        torch.testing.assert_close(p_fast, p_slow, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="given_orthogonal"):
        SheafDiffusion(8, 4, 3, maps="diag", given_orthogonal=True)
