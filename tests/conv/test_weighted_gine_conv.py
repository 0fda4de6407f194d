"""WeightedGINEConv: conformance, agreement with PyG's GINEConv, and weight semantics."""

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GINEConv
from torch_geometric.nn.models import MLP

from graphlab.conv import WeightedGINEConv
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
)
from graphlab.testing.graphs import random_graph


def _weighted_graph(seed: int) -> Data:
    g = random_graph(7 + seed % 5, in_channels=8, edge_dim=3, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    g.edge_weight = torch.rand(g.edge_index.size(1), generator=gen)
    return g


def _bad_weight_shape(b):
    b.edge_weight = b.edge_weight[:-1]
    return b


def _nan_weight(b):
    b.edge_weight = b.edge_weight.clone()
    b.edge_weight[0] = float("nan")
    return b


CASES = [
    LayerCase(
        name="weighted-gine",
        make_module=lambda: WeightedGINEConv(MLP([8, 16, 8], norm=None), train_eps=True,
                                             edge_dim=3),
        forward=lambda m, b: m(b.x, b.edge_index, b.edge_attr, b.edge_weight),
        make_graph=_weighted_graph,
        grad_inputs=("x", "edge_attr", "edge_weight"),
        bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS,
                    "edge_weight_wrong_length": _bad_weight_shape, "edge_weight_nan": _nan_weight},
    ),
    LayerCase(
        name="weighted-gin-no-edge-attr",
        make_module=lambda: WeightedGINEConv(MLP([8, 16, 16], norm=None)),
        forward=lambda m, b: m(b.x, b.edge_index, None, b.edge_weight),
        make_graph=_weighted_graph,
        grad_inputs=("x", "edge_weight"),
    ),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_unit_weights_equal_pyg_gineconv():
    g = random_graph(10, in_channels=8, edge_dim=4, seed=0)
    torch.manual_seed(0)
    ours = WeightedGINEConv(MLP([8, 16, 8], norm=None), eps=0.3, edge_dim=4)
    ref = GINEConv(MLP([8, 16, 8], norm=None), eps=0.3, edge_dim=4)
    ref.load_state_dict(ours.state_dict())
    expected = ref(g.x, g.edge_index, g.edge_attr)
    torch.testing.assert_close(ours(g.x, g.edge_index, g.edge_attr), expected)
    ones = torch.ones(g.edge_index.size(1))
    torch.testing.assert_close(ours(g.x, g.edge_index, g.edge_attr, ones), expected)


def test_zero_weight_equals_removing_the_edge():
    g = random_graph(9, in_channels=8, edge_dim=8, seed=1)
    conv = WeightedGINEConv(MLP([8, 8], norm=None))
    w = torch.ones(g.edge_index.size(1))
    w[::3] = 0.0
    keep = w > 0
    out_weighted = conv(g.x, g.edge_index, g.edge_attr, w)
    out_removed = conv(g.x, g.edge_index[:, keep], g.edge_attr[keep])
    torch.testing.assert_close(out_weighted, out_removed)


def test_mismatched_edge_width_needs_edge_dim():
    g = random_graph(5, in_channels=8, edge_dim=3, seed=2)
    with pytest.raises(ValueError, match="edge_dim"):
        WeightedGINEConv(MLP([8, 8], norm=None))(g.x, g.edge_index, g.edge_attr)
    assert "WeightedGINEConv" in repr(WeightedGINEConv(MLP([8, 8], norm=None)))
