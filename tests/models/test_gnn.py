import pytest
import torch
from torch_geometric.data import Batch, Data

from graphlab.datasets import TaskSpec
from graphlab.models import GNN, available_models, build_model
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)


def _edge_graph(seed: int) -> Data:
    return random_graph(6 + seed % 4, in_channels=8, edge_dim=3, seed=seed)


CASES = [
    LayerCase(name="gin-graph",
              make_module=lambda: GNN(8, 16, 3, num_layers=3, conv="gin", readout="mean"),
              forward=lambda m, b: m(b), levels=("graph",),
              bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS}),
    LayerCase(name="gine-sum-residual",
              make_module=lambda: GNN(8, 8, 2, num_layers=2, conv="gine", readout="sum",
                                      edge_dim=3, residual=True, norm="layer"),
              forward=lambda m, b: m(b), levels=("graph",), make_graph=_edge_graph),
    LayerCase(name="gcn-node",
              make_module=lambda: GNN(8, 16, 4, num_layers=2, conv="gcn", readout=None),
              forward=lambda m, b: m(b), levels=("node",)),
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
    model = build_model("gin", spec).eval()
    assert model.num_layers == 5 and model.hidden_channels == 300 and model.dropout == 0.5
    assert model.bond_encoders is not None and len(model.bond_encoders) == 5
    batch = Batch.from_data_list([_molecule(0), _molecule(1)])
    out = model(batch)
    assert out.shape == (2, 1) and torch.isfinite(out).all()
    # molecules are batch-composition invariant too
    alone = model(Batch.from_data_list([_molecule(1)]))
    assert torch.allclose(out[1:], alone, atol=1e-5)
    with pytest.raises(ValueError, match="integer OGB atom features"):
        model(Batch.from_data_list([Data(x=torch.randn(3, 9), edge_index=torch.empty(2, 0).long(),
                                         edge_attr=torch.empty(0, 3).long())]))


def test_registry():
    assert {"gin", "gcn", "sage"} <= set(available_models())
    with pytest.raises(ValueError, match="unknown model 'nope'; known models:.*gin"):
        build_model("nope", TaskSpec("graph", 3, 2, "ce", "acc"))
    node_model = build_model("gin", TaskSpec("node", 3, 2, "ce", "acc"), hidden_channels=8)
    assert node_model.readout is None
    with pytest.raises(ValueError, match="unknown conv"):
        GNN(3, 4, 2, conv="nope")
