"""OpGraphEncoder: conformance suite and architecture sensitivity."""

import pytest
import torch
from torch_geometric.data import Batch

from graphlab.metanets import OpGraphEncoder, to_graph
from graphlab.testing import CHECKS, EDGE_INDEX_MUTATIONS, LayerCase, conformance_params
from graphlab.zoo import ResMLP


def _op_graph(seed: int):
    torch.manual_seed(seed)
    m = ResMLP(3, 4, 1 + seed % 3, 2, "tanh", norm=bool(seed % 2), residual=seed % 3 != 1)
    return to_graph(m, torch.zeros(2, 3), view="op")


def _bad_node_type(b):
    b.node_type = b.node_type.clone()
    b.node_type[0] = 999
    return b


def _bad_x(b):
    b.x = b.x[:, :-1]
    return b


CASES = [LayerCase(
    name="op_graph_encoder",
    make_module=lambda: OpGraphEncoder(7, 8, 3, num_layers=2),
    forward=lambda m, b: m(b),
    levels=("graph",),
    make_graph=_op_graph,
    node_attrs=("x", "node_type"),
    edge_attrs=(),
    grad_inputs=("x",),
    bad_inputs={**EDGE_INDEX_MUTATIONS, "node_type_out_of_range": _bad_node_type,
                "x_width": _bad_x},
)]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_distinguishes_architectures():
    torch.manual_seed(0)
    enc = OpGraphEncoder(7, 8, 4).eval()
    g_res = to_graph(ResMLP(3, 4, 2, 2, residual=True), torch.zeros(2, 3), view="op")
    g_plain = to_graph(ResMLP(3, 4, 2, 2, residual=False), torch.zeros(2, 3), view="op")
    out = enc(Batch.from_data_list([g_res, g_plain]))
    assert out.shape == (2, 4)
    assert not torch.allclose(out[0], out[1])
    # the op graph ignores weight values: two inits of one architecture embed identically
    g_res2 = to_graph(ResMLP(3, 4, 2, 2, residual=True), torch.zeros(2, 3), view="op")
    torch.testing.assert_close(enc(g_res), enc(g_res2))
