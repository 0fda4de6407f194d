"""EGNN model: heads, velocity stacking, equivariance of the whole stack, registry factory."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from graphlab.datasets.spec import TaskSpec
from graphlab.models import EGNN, DataModel, EGNNEncoder, build_model
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    LayerCase,
    conformance_params,
)
from graphlab.testing.equivariance import assert_e_n_equivariant
from graphlab.testing.graphs import random_graph


def _graph(n=8, dim=3, seed=0, dtype=torch.float64):
    g = random_graph(n, in_channels=4, edge_dim=2, pos_dim=dim, seed=seed, dtype=dtype)
    g.vel = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)
    return g


def _enlarge_coordinate_updates(model: EGNN | EGNNEncoder) -> None:
    encoder = model.encoder if isinstance(model, EGNN) else model
    for conv in encoder.convs:
        if conv.coord_lin2 is not None:
            nn.init.normal_(conv.coord_lin2.weight, std=0.3)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_stack_is_e_n_equivariant_with_velocities(dim):
    torch.manual_seed(0)
    model = EGNN(4, 16, 3, num_layers=3, edge_dim=2, attention=True).double()
    _enlarge_coordinate_updates(model)
    g = _graph(dim=dim)

    def fn(pos, vectors):
        out = model(g.x, g.edge_index, pos, g.edge_attr, vel=vectors[0])
        _, pos_out = model.encoder(g.x, g.edge_index, pos, g.edge_attr, vel=vectors[0])
        return out, pos_out, []

    assert_e_n_equivariant(fn, g.pos, [g.vel], num_trials=4, seed=dim)


def test_graph_head_is_invariant_and_shapes():
    torch.manual_seed(0)
    model = EGNN(4, 16, 2, num_layers=2, edge_dim=2, readout="sum").double()
    _enlarge_coordinate_updates(model)
    graphs = [_graph(n, seed=s) for n, s in ((5, 0), (7, 1), (3, 2))]
    b = Batch.from_data_list(graphs)
    out = model(b.x, b.edge_index, b.pos, b.edge_attr, batch=b.batch, num_graphs=3)
    assert out.shape == (3, 2)
    torch.testing.assert_close(model.forward_data(b),
                               model(b.x, b.edge_index, b.pos, b.edge_attr, b.batch, vel=b.vel))

    def fn(p, vectors):
        o = model(b.x, b.edge_index, p, b.edge_attr, batch=b.batch, num_graphs=3)
        return o, None, []

    assert_e_n_equivariant(fn, b.pos, [], num_trials=2)


def test_velocity_variant_uses_initial_velocity_in_every_layer():
    torch.manual_seed(0)
    model = EGNNEncoder(4, 8, 8, num_layers=2, edge_dim=2).double()
    g = _graph()
    _, pos_out = model(g.x, g.edge_index, g.pos, g.edge_attr, vel=g.vel)
    h = model.embedding(g.x)
    pos = g.pos
    for conv in model.convs:
        h, pos, _ = conv(h, pos, g.edge_index, g.edge_attr, vel=g.vel)
    torch.testing.assert_close(pos_out, pos)


def test_invariant_mode_keeps_positions():
    model = EGNNEncoder(4, 8, 1, num_layers=2, edge_dim=2, update_pos=False)
    g = _graph(dtype=torch.float32)
    _, pos = model(g.x, g.edge_index, g.pos, g.edge_attr)
    assert torch.equal(pos, g.pos)


def test_trains_on_a_toy_regression():
    # learn the mean distance to the centroid (an invariant graph-level target)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    graphs = []
    for _ in range(16):
        pos = torch.randn(6, 3, generator=gen) * torch.rand(1, generator=gen)
        idx = torch.arange(6)
        ei = torch.stack([idx.repeat_interleave(6), idx.repeat(6)])
        ei = ei[:, ei[0] != ei[1]]
        y = (pos - pos.mean(0)).norm(dim=-1).mean().view(1, 1)
        graphs.append(Data(x=torch.ones(6, 1), pos=pos, edge_index=ei, y=y))
    b = Batch.from_data_list(graphs)
    model = EGNN(1, 16, 1, num_layers=2, readout="mean", update_pos=False)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        out = model(b.x, b.edge_index, b.pos, batch=b.batch, num_graphs=16)
        loss = ((out - b.y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="readout"):
        EGNN(4, 8, 1, 2, readout=1)
    with pytest.raises(ValueError, match="num_layers"):
        EGNN(4, 8, 1, 0)
    model = EGNN(4, 8, 1, 2)
    g = _graph(dtype=torch.float32)
    with pytest.raises(ValueError, match="x must have 4 channels"):
        model(g.x[:, :2], g.edge_index, g.pos)
    with pytest.raises(ValueError, match="pos must have one row per node"):
        model(g.x, g.edge_index, g.pos[:3])
    with pytest.raises(ValueError, match="without edge_dim"):
        model(g.x, g.edge_index, g.pos, g.edge_attr)
    with pytest.raises(ValueError, match="needs edge_attr"):
        EGNN(4, 8, 1, 2, edge_dim=2)(g.x, g.edge_index, g.pos)
    del g.pos
    with pytest.raises(ValueError, match="data.pos"):
        model.forward_data(g)


def test_registry_factory_graph_level():
    spec = TaskSpec(level="graph", in_channels=4, out_channels=3, loss="mse", metric="mae",
                    edge_dim=2)
    model = build_model("egnn", spec, hidden_channels=16, num_layers=2)
    assert isinstance(model, DataModel) and isinstance(model.model, EGNN)
    graphs = [random_graph(n, in_channels=4, edge_dim=2, pos_dim=3, seed=n) for n in (5, 6)]
    b = Batch.from_data_list([model.transform(g) for g in graphs])
    assert model(b).shape == (2, 3)
    for g in graphs:
        del g.pos  # data without coordinates still works: the transform adds zeros
    b = Batch.from_data_list([model.transform(g) for g in graphs])
    assert model(b).shape == (2, 3) and not b.pos.any()


def test_registry_factory_molecular():
    spec = TaskSpec(level="graph", in_channels=9, out_channels=1, loss="bce", metric="rocauc",
                    edge_dim=3, molecular=True)
    model = build_model("egnn", spec, hidden_channels=16, num_layers=2)
    g = Data(x=torch.zeros(4, 9, dtype=torch.long),
             edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
             edge_attr=torch.zeros(3, 3, dtype=torch.long))
    g = model.transform(g)
    assert model(Batch.from_data_list([g, g])).shape == (2, 1)


# --------------------------------------------------------------------------- conformance
def _make_graph(seed):
    g = random_graph(7 + seed % 5, in_channels=4, edge_dim=2, pos_dim=3, seed=seed)
    g.vel = torch.randn(g.num_nodes, 3, generator=torch.Generator().manual_seed(seed))
    return g


def _make_model(cls=EGNN, **kw):
    def make():
        model = cls(4, 8, 2, num_layers=2, edge_dim=2, **kw)
        _enlarge_coordinate_updates(model)
        return model

    return make


def _forward(m, b):
    return m(b.x, b.edge_index, b.pos, b.edge_attr, b.batch, vel=b.vel, num_graphs=b.num_graphs)


def _int32_edge_index(b: Batch) -> Batch:
    b.edge_index = b.edge_index.int()
    return b


_BAD = {**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS, **INDEX_MUTATIONS,
        "edge_index_int32": _int32_edge_index}
CASES = [
    LayerCase(name="egnn-model-graph", make_module=_make_model(readout="sum"), forward=_forward,
              levels=("graph",), make_graph=_make_graph, grad_inputs=("x", "pos", "vel"),
              bad_inputs=_BAD),
    LayerCase(name="egnn-model-node-norm",
              make_module=_make_model(norm="layer_norm", norm_kwargs={"mode": "node"},
                                      dropout=0.1),
              forward=_forward, levels=("node",), make_graph=_make_graph,
              grad_inputs=("x", "pos", "vel"), bad_inputs=_BAD),
    LayerCase(name="egnn-encoder", make_module=_make_model(EGNNEncoder), forward=_forward,
              levels=("node", "node"), make_graph=_make_graph, grad_inputs=("x", "pos", "vel"),
              bad_inputs=_BAD),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_bf16_autocast_model_level():
    """Issue 17: the EGNN model failed under bf16 autocast ("pos and x must have the same
    dtype"); outputs and gradients must be finite."""
    torch.manual_seed(0)
    model = EGNN(4, 8, 2, num_layers=2, edge_dim=2, readout="mean")
    g = _graph(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(g.x, g.edge_index, g.pos, g.edge_attr, vel=g.vel)
    out.float().sum().backward()
    assert out.shape == (1, 2) and torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
