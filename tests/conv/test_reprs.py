"""PyG-style reprs for every conv: ``Name(in, out, key=value)`` with the constructor's names."""

import pytest
from torch_geometric.nn.models import MLP

from graphlab.conv import EGNNConv, PathConv, SheafConv, SheafLearner, WeightedGINEConv


@pytest.mark.parametrize("layer,text", [
    (EGNNConv(6, 16, edge_dim=2), "EGNNConv(6, 16, hidden_channels=16, edge_dim=2, update_pos=True)"),
    (EGNNConv((5, 6), 16), "EGNNConv((5, 6), 16, hidden_channels=16, edge_dim=0, update_pos=True)"),
    (SheafConv(3, 2, maps="general"), "SheafConv(3, stalk_dim=2, maps='general')"),
    (SheafLearner(8, 3, "orthogonal"), "SheafLearner(8, stalk_dim=3, maps='orthogonal')"),
    (WeightedGINEConv(MLP([16, 32])), "WeightedGINEConv(nn=MLP(16, 32))"),
    (PathConv(8, edge_dim=3, max_distance=2), "PathConv(8, edge_dim=3, max_distance=2)"),
])
def test_repr(layer, text):
    assert repr(layer) == text
