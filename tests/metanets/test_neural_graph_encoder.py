"""NeuralGraphEncoder: conformance, invariance under random_symmetry (untrained, trained), controls."""

import pytest
import torch
from torch_geometric.data import Batch

from graphlab.metanets import (
    NeuralGraphEncoder,
    to_graph,
)
from graphlab.metanets.corpus import CORPUS, make_mlp
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
)

VIEW = "neural"
NODE_ATTRS = ("x", "node_type", "layer", "io_id", "node_act")
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
    name="neural-graph-encoder",
    make_module=lambda: NeuralGraphEncoder(4, 16, 3, num_layers=2, edge_dim=1),
    forward=lambda m, b: m(b),
    levels=("graph",),
    make_graph=_mlp_graph,
    node_attrs=NODE_ATTRS,
    edge_attrs=EDGE_ATTRS,
    grad_inputs=("x", "edge_attr"),
    bad_inputs={**EDGE_INDEX_MUTATIONS,
                "node_type_out_of_range": _bad_node_type, "edge_attr_rows": _bad_edge_attr,
                **FEATURE_MUTATIONS},
)]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_from_graph_and_repr():
    g = to_graph(CORPUS["cnn_bn"].build(dtype=torch.float32), CORPUS["cnn_bn"].input(
        dtype=torch.float32), view=VIEW)
    net = NeuralGraphEncoder.from_graph(g, 7)
    assert net.edge_dim == 9 and net.x_dim == 4
    assert net(Batch.from_data_list([g, g])).shape == (2, 7)
    assert repr(net) == "NeuralGraphEncoder(4, 64, 7, num_layers=3, edge_dim=9)"
    # graphs of different architectures share one batch
    other = to_graph(CORPUS["grouped_conv"].build(dtype=torch.float32),
                     CORPUS["grouped_conv"].input(dtype=torch.float32))
    mixed = net(Batch.from_data_list([g, other]))
    assert torch.allclose(mixed[0], net(Batch.from_data_list([g]))[0], atol=1e-6)
