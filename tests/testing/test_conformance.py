"""The conformance suite's first users: PyG's own GINConv and a deliberately broken layer."""

import pytest
import torch
from torch import nn
from torch_geometric.nn import GINConv, global_add_pool
from torch_geometric.nn.models import MLP

from graphlab.testing import CHECKS, LayerCase, check_layer, conformance_params
from graphlab.utils.validation import check_edge_index

CHANNELS = 8


class ValidatedGIN(nn.Module):
    """PyG's GINConv behind graphlab's validation; node- and graph-level outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = GINConv(MLP([CHANNELS, 16, 16], norm=None))

    def forward(self, x, edge_index, batch, num_graphs):
        check_edge_index(edge_index, x.size(0))
        h = self.conv(x, edge_index)
        return h, global_add_pool(h, batch, size=num_graphs)


CASES = [
    LayerCase(
        name="pyg-ginconv",
        make_module=ValidatedGIN,
        forward=lambda m, b: m(b.x, b.edge_index, b.batch, b.num_graphs),
        levels=("node", "graph"),
    ),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_pyg_ginconv_conforms(case, check):
    CHECKS[check](case)


class LeakyBatchLayer(nn.Module):
    """Broken on purpose: normalises by the whole batch's mean, so graphs leak into each other."""

    def forward(self, x, edge_index):
        return x - x.mean(dim=0, keepdim=True)


class OrderDependentLayer(nn.Module):
    """Broken on purpose: output depends on node order."""

    def forward(self, x, edge_index):
        return x + torch.arange(x.size(0), dtype=x.dtype).unsqueeze(-1)


def test_suite_catches_batch_leak():
    case = LayerCase(name="leaky", make_module=LeakyBatchLayer, bad_inputs={})
    with pytest.raises(AssertionError, match="batch composition"):
        check_layer(case, ["batch_composition"])


def test_suite_catches_order_dependence():
    case = LayerCase(name="ordered", make_module=OrderDependentLayer, bad_inputs={})
    with pytest.raises(AssertionError, match="permutation"):
        check_layer(case, ["permutation"])


def test_suite_catches_missing_validation():
    case = LayerCase(name="unvalidated", make_module=lambda: GINConv(nn.Identity()))
    with pytest.raises(AssertionError, match="expected ValueError"):
        check_layer(case, ["bad_inputs"])


def test_skip_is_reported():
    case = LayerCase(name="skipper", make_module=ValidatedGIN,
                     forward=lambda m, b: m(b.x, b.edge_index, b.batch, b.num_graphs),
                     levels=("node", "graph"), skip={"compile": "demo reason"})
    report = check_layer(case, ["permutation", "compile"])
    assert report == {"permutation": "ok", "compile": "skipped: demo reason"}
