import pytest
import torch
from torch_geometric.nn import GINConv, GraphConv
from torch_geometric.nn.aggr import LSTMAggregation

from graphlab.aggr import RecurrentAggregation
from graphlab.testing import CHECKS, INDEX_MUTATIONS, LayerCase, conformance_params, random_graph


def _graph_with_pos(seed: int):
    # ``pos`` is the RNAR ordering key; it permutes with the nodes, so ordering by it is
    # equivariant to node relabelling and independent of the edge order
    n = 7 + seed % 5
    return random_graph(n, num_edges=3 * n, in_channels=8, pos_dim=1, seed=seed)


def _short_batch(b):
    b.batch = b.batch[:-1]
    return b


def _bad_target(b):
    b.edge_index = b.edge_index.clone()
    b.edge_index[1, 0] = -1
    return b


def _integer_x(b):
    b.x = b.x.round().long()
    return b


CASES = [
    LayerCase(name=f"recurrent-{cell}-readout",
              make_module=lambda cell=cell: RecurrentAggregation(8, 6, cell=cell),
              forward=lambda m, b: m(b.x, b.batch, dim_size=b.num_graphs, key=b.pos[:, 0]),
              levels=("graph",), make_graph=_graph_with_pos,
              bad_inputs={**INDEX_MUTATIONS, "index_wrong_length": _short_batch,
                          "x_integer": _integer_x})
    for cell in ("lstm", "gru")
] + [
    LayerCase(name="recurrent-lstm-neighbours", make_module=lambda: RecurrentAggregation(8, 6),
              forward=lambda m, b: m(b.x[b.edge_index[0]], b.edge_index[1],
                                     dim_size=b.num_nodes, key=b.pos[b.edge_index[0], 0]),
              levels=("node",), make_graph=_graph_with_pos,
              bad_inputs={"negative_target": _bad_target, "x_integer": _integer_x}),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("order", [None, "descending"])
def test_matches_rnn_run_per_neighbourhood(cell, order):
    torch.manual_seed(0)
    aggr = RecurrentAggregation(3, 5, cell=cell, order=order)
    index = torch.randint(0, 7, (50,))
    x = torch.randn(50, 3)
    key = torch.randn(50)
    out = aggr(x, index, dim_size=9, key=key)
    for s in range(9):
        rows, keys = x[index == s], key[index == s]
        if rows.numel() == 0:
            assert torch.equal(out[s], torch.zeros(5))
            continue
        rows = rows[keys.argsort(descending=order == "descending")]
        state = aggr.rnn(rows.unsqueeze(1))[1]
        h = state[0] if cell == "lstm" else state
        assert torch.allclose(out[s], h[0, 0], atol=1e-6)


def test_degrees_across_many_length_buckets():
    # neighbourhoods of 1 to 40 rows fall into six packed calls ([1], [2, 3], ..., [32, 63])
    torch.manual_seed(6)
    aggr = RecurrentAggregation(3, 4, cell="gru")
    degrees = torch.tensor([1, 40, 0, 2, 3, 4, 7, 8, 15, 16, 17, 33, 1, 5])
    index = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    perm = torch.randperm(index.numel())
    index = index[perm]
    x = torch.randn(index.numel(), 3, requires_grad=True)
    out = aggr(x, index, dim_size=degrees.numel())
    for s in range(degrees.numel()):
        rows = x[index == s]
        expect = torch.zeros(4) if rows.numel() == 0 else aggr.rnn(rows.unsqueeze(1))[1][0, 0]
        assert torch.allclose(out[s], expect, atol=1e-6)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and bool((x.grad.abs().sum(-1) > 0).all())


def test_default_order_is_input_order_per_segment():
    torch.manual_seed(1)
    aggr = RecurrentAggregation(3, 4)
    index = torch.tensor([1, 0, 1, 1, 0])
    x = torch.randn(5, 3)
    out = aggr(x, index, dim_size=2)
    h1 = aggr.rnn(x[[0, 2, 3]].unsqueeze(1))[1][0]
    assert torch.allclose(out[1], h1[0, 0], atol=1e-6)
    # integer keys (e.g. source node ids) order the neighbourhood
    out_key = aggr(x, index, dim_size=2, key=torch.tensor([9, 4, 2, 5, 1]))
    h1 = aggr.rnn(x[[2, 3, 0]].unsqueeze(1))[1][0]
    assert torch.allclose(out_key[1], h1[0, 0], atol=1e-6)


def _composition_gap(aggr, sort: bool) -> float:
    gen = torch.Generator().manual_seed(2)
    own = torch.randn(3, 4, generator=gen)
    outs = []
    for other_degree in (3, 9):
        x = torch.cat([own, torch.randn(other_degree, 4, generator=gen)])
        index = torch.cat([torch.zeros(3, dtype=torch.long),
                           torch.ones(other_degree, dtype=torch.long)])
        if not sort:
            perm = torch.cat([torch.arange(3, 3 + other_degree), torch.arange(3)])
            x, index = x[perm], index[perm]
        outs.append(aggr(x, index, dim_size=2)[0])
    return float((outs[0] - outs[1]).abs().max())


def test_batch_composition_regression_against_pyg_lstm():
    torch.manual_seed(3)
    with torch.no_grad():
        assert _composition_gap(RecurrentAggregation(4, 4), sort=False) < 1e-6
        # PyG's LSTMAggregation reads the zero padding of short neighbourhoods, so node 0's
        # output depends on the largest degree in the batch (the defect fixed here).
        assert _composition_gap(LSTMAggregation(4, 4), sort=True) > 1e-3


def test_empty_and_ptr():
    torch.manual_seed(4)
    aggr = RecurrentAggregation(3, 4)
    out = aggr(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), dim_size=3)
    assert torch.equal(out, torch.zeros(3, 4))
    x = torch.randn(6, 3, requires_grad=True)
    ptr = torch.tensor([0, 2, 2, 6])
    out = aggr(x, ptr=ptr)
    assert torch.equal(out[1], torch.zeros(4))
    assert torch.allclose(out, aggr(x, torch.tensor([0, 0, 2, 2, 2, 2]), dim_size=3))
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell"):
        RecurrentAggregation(3, 4, cell="rnn")
    with pytest.raises(ValueError, match="order"):
        RecurrentAggregation(3, 4, order="random")
    aggr = RecurrentAggregation(3, 4)
    with pytest.raises(ValueError, match="key"):
        aggr(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), key=torch.randn(3))


@pytest.mark.parametrize("conv_cls", ["GraphConv", "GINConv"])
def test_runs_in_stock_pyg_convs(conv_cls):
    torch.manual_seed(5)
    data = random_graph(12, in_channels=8, seed=5)
    if conv_cls == "GraphConv":
        conv = GraphConv(8, 5, aggr=RecurrentAggregation(8, 8))
    else:
        conv = GINConv(torch.nn.Linear(8, 5), aggr=RecurrentAggregation(8, 8))
    out = conv(data.x, data.edge_index)
    assert out.shape == (12, 5) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in conv.parameters() if p.requires_grad)
