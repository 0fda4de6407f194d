import pytest
import torch
from torch_geometric.data import Batch, Data

from graphlab.datasets import TaskSpec
from graphlab.models import GNN, DataModel, available_models, build_model
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)


def _edge_graph(seed: int) -> Data:
    return random_graph(6 + seed % 4, in_channels=8, edge_dim=3, seed=seed)


def _int32_edge_index(b: Batch) -> Batch:
    b.edge_index = b.edge_index.int()
    return b


def _narrow_edge_attr(b: Batch) -> Batch:
    b.edge_attr = b.edge_attr[:, :2]
    return b


def _graph_forward(m, b):
    return m(b.x, b.edge_index, batch=b.batch, num_graphs=b.num_graphs)


def _edge_forward(m, b):
    return m(b.x, b.edge_index, b.edge_attr, b.batch, num_graphs=b.num_graphs)


_BAD = {**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS, **INDEX_MUTATIONS,
        "edge_index_int32": _int32_edge_index}
CASES = [
    LayerCase(name="gin-graph",
              make_module=lambda: GNN(8, 16, 3, num_layers=3, conv="gin", readout="mean"),
              forward=_graph_forward, levels=("graph",), bad_inputs=_BAD),
    # PyG's LayerNorm normalises per graph (mode="graph") and so receives the batch vector
    LayerCase(name="gine-sum-residual-layer-norm",
              make_module=lambda: GNN(8, 8, 2, num_layers=2, conv="gine", readout="sum",
                                      edge_dim=3, residual=True, norm="layer_norm", act="gelu"),
              forward=_edge_forward, levels=("graph",), make_graph=_edge_graph,
              grad_inputs=("x", "edge_attr"),
              bad_inputs={**_BAD, "edge_attr_wrong_width": _narrow_edge_attr}),
    LayerCase(name="sage-node",
              make_module=lambda: GNN(8, 16, 4, num_layers=2, conv="sage", readout=None,
                                      norm=None),
              forward=lambda m, b: m(b.x, b.edge_index), levels=("node",), fullgraph=True,
              bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS}),
    LayerCase(name="gcn-node",
              make_module=lambda: GNN(8, 16, 4, num_layers=2, conv="gcn", readout=None),
              forward=lambda m, b: m(b.x, b.edge_index), levels=("node",),
              bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS},
              skip={"recompiles": "PyG's own GCNConv: add_remaining_self_loops uses nonzero (a "
                                  "data-dependent shape) and re-specialises per batch size; "
                                  "GNN itself compiles fullgraph (sage-node)"}),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_gnn_conforms(case, check):
    CHECKS[check](case)


def _molecule(seed: int) -> Data:
    gen = torch.Generator().manual_seed(seed)
    n = 5 + seed
    edge_index = torch.tensor([[i for i in range(n - 1)] + [i + 1 for i in range(n - 1)],
                               [i + 1 for i in range(n - 1)] + [i for i in range(n - 1)]])
    return Data(x=torch.randint(0, 2, (n, 9), generator=gen), edge_index=edge_index,
                edge_attr=torch.randint(0, 2, (edge_index.size(1), 3), generator=gen),
                num_nodes=n)


def test_ogb_reference_gin_on_molecules():
    spec = TaskSpec("graph", 9, 1, "bce", "rocauc", edge_dim=3, molecular=True)
    wrapped = build_model("gin", spec).eval()
    model = wrapped.model
    assert model.num_layers == 5 and model.hidden_channels == 300 and model.dropout == 0.5
    assert model.bond_encoders is not None and len(model.bond_encoders) == 5
    batch = Batch.from_data_list([_molecule(0), _molecule(1)])
    out = wrapped(batch)
    assert out.shape == (2, 1) and torch.isfinite(out).all()
    torch.testing.assert_close(model(batch.x, batch.edge_index, batch.edge_attr, batch.batch), out)
    # molecules are batch-composition invariant too
    alone = wrapped(Batch.from_data_list([_molecule(1)]))
    assert torch.allclose(out[1:], alone, atol=1e-5)
    with pytest.raises(ValueError, match="integer OGB atom features"):
        wrapped(Batch.from_data_list([Data(x=torch.randn(3, 9), edge_index=torch.empty(2, 0).long(),
                                         edge_attr=torch.empty(0, 3).long())]))


def test_registry():
    assert {"gin", "gcn", "sage"} <= set(available_models())
    with pytest.raises(ValueError, match="unknown model 'nope'; known models:.*gin"):
        build_model("nope", TaskSpec("graph", 3, 2, "ce", "acc"))
    node_model = build_model("gin", TaskSpec("node", 3, 2, "ce", "acc"), hidden_channels=8)
    assert isinstance(node_model, DataModel) and node_model.model.readout is None
    with pytest.raises(ValueError, match="unknown conv"):
        GNN(3, 4, 2, conv="nope")


def test_int32_edge_index_is_a_clear_value_error():
    """Issue 18: GNN-gin crashed with "expected scalar type Long but found Int"."""
    g = random_graph(6, in_channels=8, seed=0)
    model = GNN(8, 8, 2, num_layers=2, conv="gin").eval()
    with pytest.raises(ValueError, match="int64"):
        model(g.x, g.edge_index.int())


def test_act_norm_readout_resolve_through_pyg():
    from torch_geometric.nn import BatchNorm, GraphNorm
    from torch_geometric.nn.aggr import MaxAggregation

    model = GNN(8, 8, 2, num_layers=2, act="leaky_relu", act_kwargs={"negative_slope": 0.2},
                norm="graph_norm", readout="max")
    assert isinstance(model.act, torch.nn.LeakyReLU) and model.act.negative_slope == 0.2
    assert all(isinstance(n, GraphNorm) for n in model.norms)
    assert isinstance(model.readout, MaxAggregation)
    assert all(isinstance(n, BatchNorm) for n in GNN(8, 8, 2, num_layers=2).norms)
    assert all(isinstance(n, torch.nn.Identity) for n in GNN(8, 8, 2, 2, norm=None).norms)
    with pytest.raises(ValueError, match="readout"):
        GNN(8, 8, 2, readout=3)


def test_forward_data_equals_tensor_forward_and_counts_empty_graphs():
    torch.manual_seed(0)
    model = GNN(8, 8, 2, num_layers=2).eval()
    graphs = [random_graph(5, in_channels=8, seed=0), random_graph(0, in_channels=8, seed=1)]
    batch = Batch.from_data_list(graphs)
    out = model.forward_data(batch)
    assert out.shape == (2, 2)  # the trailing empty graph has a row
    torch.testing.assert_close(out, model(batch.x, batch.edge_index, batch=batch.batch,
                                          num_graphs=2))
    torch.testing.assert_close(model.forward_data(graphs[0]), out[:1])
