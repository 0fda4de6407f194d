"""WeightedGINEConv: conformance, agreement with PyG's GINEConv, and weight semantics."""

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GINEConv, to_hetero
from torch_geometric.nn.models import MLP
from torch_geometric.testing import assert_module
from torch_geometric.utils import sort_edge_index, to_torch_coo_tensor, to_torch_csr_tensor

from graphlab.conv import WeightedGINEConv
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
)
from graphlab.testing.graphs import (
    HETERO_METADATA,
    adjacency_forms,
    random_graph,
    toy_hetero_graph,
)

EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 1, 0], [0, 0, 1, 1, 2, 3]])
BI_EDGE_INDEX = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])  # 4 sources -> 2 targets


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
        fullgraph=True,
        # weights travel as the adj_t's values (ToSparseTensor's default attr), features beside
        forward_adj_t=lambda m, b: m(b.x, b.adj_t, b.edge_attr),
        adj_t_attr="edge_weight",
        forward_bipartite=lambda m, b: m((b.x, b.x), b.edge_index, b.edge_attr, b.edge_weight,
                                         size=(b.num_nodes, b.num_nodes)),
    ),
    LayerCase(
        name="weighted-gin-no-edge-attr",
        make_module=lambda: WeightedGINEConv(MLP([8, 16, 16], norm=None)),
        forward=lambda m, b: m(b.x, b.edge_index, None, b.edge_weight),
        make_graph=_weighted_graph,
        grad_inputs=("x", "edge_weight"),
        fullgraph=True,
        # a value-less adj_t; the weights are passed in the adj_t's edge order
        forward_adj_t=lambda m, b: m(b.x, b.adj_t, None, b.edge_weight),
        adj_t_attr=None,
        forward_bipartite=lambda m, b: m((b.x, b.x), b.edge_index, None, b.edge_weight),
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


# ------------------------------------------------------------------ PyG input contract
# adapted from PyG's test/nn/conv/test_gine_conv.py
def test_pyg_contract_adj_forms_bipartite_and_size():
    torch.manual_seed(0)
    x1, x2 = torch.randn(4, 16), torch.randn(2, 16)
    value = torch.randn(EDGE_INDEX.size(1), 16)
    conv = WeightedGINEConv(MLP([16, 32], norm=None), train_eps=True)
    assert str(conv) == "WeightedGINEConv(nn=MLP(16, 32))"
    out = conv(x1, EDGE_INDEX, value)
    assert out.size() == (4, 32)
    for name, adj in adjacency_forms(EDGE_INDEX, (4, 4), value).items():
        args = (adj, value) if name == "EdgeIndex" else (adj,)  # sparse forms carry the values
        torch.testing.assert_close(conv(x1, *args), out, msg=name)
    # explicit size
    torch.testing.assert_close(conv(x1, EDGE_INDEX, value, size=(4, 4)), out)

    # bipartite: 4 sources, 2 targets
    bi_value = torch.randn(BI_EDGE_INDEX.size(1), 16)
    out = conv((x1, x2), BI_EDGE_INDEX, bi_value, size=(4, 2))
    assert out.size() == (2, 32)
    torch.testing.assert_close(conv((x1, x2), BI_EDGE_INDEX, bi_value), out)
    for name, adj in adjacency_forms(BI_EDGE_INDEX, (4, 2), bi_value).items():
        args = (adj, bi_value) if name == "EdgeIndex" else (adj,)
        torch.testing.assert_close(conv((x1, x2), *args), out, msg=name)


def test_pyg_contract_sparse_values_are_weights_or_features():
    torch.manual_seed(1)
    x = torch.randn(4, 8)
    w, e = torch.rand(EDGE_INDEX.size(1)), torch.randn(EDGE_INDEX.size(1), 3)
    conv = WeightedGINEConv(MLP([8, 8], norm=None), edge_dim=3)
    expected = conv(x, EDGE_INDEX, e, w)
    adj_w = to_torch_csr_tensor(EDGE_INDEX.flip(0), w, size=(4, 4))      # built as adj_t directly
    _, perm = sort_edge_index(EDGE_INDEX, torch.arange(EDGE_INDEX.size(1)), sort_by_row=False)
    torch.testing.assert_close(conv(x, adj_w, e[perm]), expected)         # 1-D values: weights
    adj_e = to_torch_coo_tensor(EDGE_INDEX.flip(0), e, size=(4, 4)).coalesce()
    torch.testing.assert_close(conv(x, adj_e, None, w[perm]), expected)   # 2-D values: features


def test_pyg_assert_module():
    torch.manual_seed(2)
    conv = WeightedGINEConv(MLP([16, 32], norm=None))
    assert_module(conv, torch.randn(4, 16), EDGE_INDEX, expected_size=(4, 32), atol=1e-6)
    conv = WeightedGINEConv(MLP([16, 32], norm=None), edge_dim=5)
    assert_module(conv, torch.randn(4, 16), EDGE_INDEX, expected_size=(4, 32), atol=1e-6,
                  edge_attr=torch.randn(EDGE_INDEX.size(1), 5), test_sparse_layouts=[])


def test_bipartite_and_sparse_errors_name_the_problem():
    conv = WeightedGINEConv(MLP([16, 32], norm=None))
    adj_t = to_torch_csr_tensor(BI_EDGE_INDEX, size=(4, 2)).t()
    with pytest.raises(ValueError, match="3 target rows but the adjacency has 2 target nodes"):
        conv((torch.randn(4, 16), torch.randn(3, 16)), adj_t)
    with pytest.raises(ValueError, match="same width"):
        conv((torch.randn(4, 16), torch.randn(2, 8)), BI_EDGE_INDEX)
    with pytest.raises(ValueError, match=r"source node ids \(edge_index\[0\]\) in \[0, 3\]"):
        conv((torch.randn(3, 16), torch.randn(2, 16)), BI_EDGE_INDEX)


def test_to_hetero():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = WeightedGINEConv(MLP([8, 16], norm=None))
            self.conv2 = WeightedGINEConv(MLP([16, 16], norm=None))

        def forward(self, x, edge_index):
            return self.conv2(self.conv1(x, edge_index).relu(), edge_index)

    torch.manual_seed(3)
    x_dict, ei_dict, _ = toy_hetero_graph(8)
    model = to_hetero(Net(), HETERO_METADATA, aggr="sum")
    out = model(x_dict, ei_dict)
    assert out["paper"].shape == (6, 16) and out["author"].shape == (4, 16)
    # the same computation by hand with the per-edge-type copies
    c1, c2 = model.conv1, model.conv2
    cites, writes, rev = (ei_dict[k] for k in HETERO_METADATA[1])
    h_p = (c1["paper__cites__paper"](x_dict["paper"], cites)
           + c1["author__writes__paper"]((x_dict["author"], x_dict["paper"]), writes)).relu()
    h_a = c1["paper__rev_writes__author"]((x_dict["paper"], x_dict["author"]), rev).relu()
    ref_p = c2["paper__cites__paper"](h_p, cites) + c2["author__writes__paper"]((h_a, h_p), writes)
    torch.testing.assert_close(out["paper"], ref_p)
    # and with sparse adjacencies instead of edge_index
    adj_dict = {k: to_torch_csr_tensor(v.flip(0), size=(x_dict[k[2]].size(0), x_dict[k[0]].size(0)))
                for k, v in ei_dict.items()}
    out_adj = model(x_dict, adj_dict)
    torch.testing.assert_close(out_adj["paper"], out["paper"])
    torch.testing.assert_close(out_adj["author"], out["author"])
