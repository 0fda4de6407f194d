"""The name registry and DataModel, the Data-calling wrapper graphlab train uses."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch

from graphlab.datasets.spec import TaskSpec
from graphlab.models import GNN, DataModel, available_models, build_model, register_model
from graphlab.testing import random_graph


def test_build_model_wraps_the_tensor_model():
    spec = TaskSpec("graph", 8, 3, "ce", "acc")
    torch.manual_seed(0)
    model = build_model("gin", spec, hidden_channels=8, num_layers=2).eval()
    assert isinstance(model, DataModel) and isinstance(model.model, GNN)
    assert repr(model).startswith("DataModel(GNN(8, 8, 3") and "\n" not in repr(model)
    assert all(k.startswith("model.") for k in model.state_dict())
    batch = Batch.from_data_list([random_graph(5 + k, in_channels=8, seed=k) for k in range(3)])
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model.model(batch.x, batch.edge_index,
                                                             batch=batch.batch))


def test_data_model_transform_and_arguments():
    pathnn = build_model("pathnn-ap", TaskSpec("graph", 8, 2, "ce", "acc"), num_layers=2,
                         hidden_channels=8)
    assert pathnn.transform is pathnn.model.transform  # the harness pre-transforms with it
    assert build_model("gin", TaskSpec("graph", 8, 2, "ce", "acc")).transform is None
    custom = DataModel(GNN(8, 8, 2, 1), transform=lambda d: d)
    assert custom.transform is not None
    with pytest.raises(ValueError, match="forward_data"):
        DataModel(nn.Linear(2, 2))


def test_register_model_and_unknown_names(monkeypatch):
    from graphlab.models import registry

    # a private copy of the table: the test's model must not leak into other tests
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model("test-tiny-gnn")
    def _tiny(spec: TaskSpec, **kw) -> GNN:
        return GNN(spec.in_channels, 4, spec.out_channels, 1, **kw)

    assert "test-tiny-gnn" in available_models()
    built = build_model("TEST-TINY-GNN", TaskSpec("graph", 3, 2, "ce", "acc"), readout="sum")
    assert isinstance(built, DataModel) and built.model.hidden_channels == 4
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model("nope", TaskSpec("graph", 3, 2, "ce", "acc"))
