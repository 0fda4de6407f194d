"""GMN: conformance suite, invariance under random_symmetry (untrained and trained), controls."""

import dataclasses

import pytest
import torch
from torch_geometric.data import Batch

from graphlab.metanets import (
    GMN,
    EdgeGMN,
    to_graph,
)
from graphlab.metanets.corpus import CORPUS, make_mlp
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    LayerCase,
    conformance_params,
)

VIEW = "parameter"
NODE_ATTRS = ("node_type", "layer", "io_id", "node_act")
EDGE_ATTRS = ("edge_attr", "edge_type", "edge_layer", "edge_pos")


def _mlp_graph(seed: int):
    torch.manual_seed(seed)
    widths = (3, 4 + seed % 3, 5, 2)
    return to_graph(make_mlp(widths), view=VIEW)


def _bad_node_type(b):
    b.node_type = b.node_type.clone()
    b.node_type[0] = 999
    return b


def _bad_edge_attr(b):
    b.edge_attr = b.edge_attr[:-1]
    return b


CASES = [LayerCase(
    name="gmn",
    make_module=lambda: GMN(0, 16, 3, num_layers=2, edge_dim=1),
    forward=lambda m, b: m(b),
    levels=("graph",),
    make_graph=_mlp_graph,
    node_attrs=NODE_ATTRS,
    edge_attrs=EDGE_ATTRS,
    grad_inputs=("edge_attr",),
    bad_inputs={**EDGE_INDEX_MUTATIONS,
                "node_type_out_of_range": _bad_node_type, "edge_attr_rows": _bad_edge_attr},
)]
# the edge-level head (pruning as edge labelling): same inputs, one output per edge
CASES.append(dataclasses.replace(
    CASES[0], name="edge_gmn", levels=("edge",),
    make_module=lambda: EdgeGMN(0, 16, 2, num_layers=2, edge_dim=1)))


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_from_graph_and_repr():
    g = to_graph(CORPUS["cnn_bn"].build(dtype=torch.float32), CORPUS["cnn_bn"].input(
        dtype=torch.float32), view=VIEW)
    net = GMN.from_graph(g, 7)
    assert net.edge_dim == 1 and net.x_dim == 0 and net.use_pos
    assert net(Batch.from_data_list([g])).shape == (1, 7)
    assert repr(net) == "GMN(0, 64, 7, num_layers=3, edge_dim=1)"
    # also runs on neural-view graphs (vector edges, float node features)
    gn = to_graph(CORPUS["cnn_bn"].build(dtype=torch.float32),
                  CORPUS["cnn_bn"].input(dtype=torch.float32))
    net_n = GMN.from_graph(gn, 2)
    assert net_n.edge_dim == 9 and net_n.x_dim == 4 and not net_n.use_pos
    assert net_n(Batch.from_data_list([gn, gn])).shape == (2, 2)


@pytest.mark.parametrize("cls", [GMN, EdgeGMN])
def test_model_contract(cls):
    """(in_channels, hidden_channels, out_channels, num_layers, *, dropout, act, norm) through
    PyG's resolvers, like every graphlab model; bad sizes fail with one clear ValueError."""
    g = _mlp_graph(0)
    net = cls(0, 8, 2, 2, dropout=0.2, act="gelu", norm="batch_norm").eval()
    assert isinstance(net.edge_mlps[0].act, torch.nn.GELU)
    assert type(net.node_norms[0]).__name__ == "BatchNorm"
    assert net(Batch.from_data_list([g, g])).shape[-1] == 2
    plain = cls(0, 8, 2, 2, norm=None)
    assert isinstance(plain.node_norms[0], torch.nn.Identity)
    for bad in (dict(num_layers=0), dict(dropout=1.5), dict(hidden_channels=0)):
        kw = dict(in_channels=0, hidden_channels=8, out_channels=2, num_layers=2) | bad
        with pytest.raises(ValueError):
            cls(**kw)
