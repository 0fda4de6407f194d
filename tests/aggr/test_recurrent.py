import copy

import pytest
import torch
from torch_geometric.nn.aggr import LSTMAggregation

from graphlab.aggr import RecurrentAggregation
from graphlab.testing import (
    CHECKS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    TARGET_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)


def _graph_with_pos(seed: int):
    # ``pos`` is the RNAR ordering key; it permutes with the nodes, so ordering by it is
    # equivariant to node relabelling and independent of the edge order
    n = 7 + seed % 5
    return random_graph(n, num_edges=3 * n, in_channels=8, pos_dim=1, seed=seed)


# The packed RNN calls are the one graph break (their number and batch sizes depend on the
# degrees): the graph before it, compiled once for every batch size, and the one after it.
COMPILES = 2

CASES = [
    LayerCase(name=f"recurrent-{cell}-readout",
              make_module=lambda cell=cell: RecurrentAggregation(8, 6, cell=cell),
              forward=lambda m, b: m(b.x, b.batch, dim_size=b.num_graphs, key=b.pos[:, 0]),
              levels=("graph",), make_graph=_graph_with_pos, max_compiles=COMPILES,
              bad_inputs={**INDEX_MUTATIONS, **FEATURE_MUTATIONS})
    for cell in ("lstm", "gru")
] + [
    LayerCase(name="recurrent-lstm-neighbours", make_module=lambda: RecurrentAggregation(8, 6),
              forward=lambda m, b: m(b.x[b.edge_index[0]], b.edge_index[1],
                                     dim_size=b.num_nodes, key=b.pos[b.edge_index[0], 0]),
              levels=("node",), make_graph=_graph_with_pos, max_compiles=COMPILES,
              bad_inputs={**TARGET_MUTATIONS, **FEATURE_MUTATIONS}),
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


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_values_and_gradients_match_per_segment_rnn_float64(cell):
    # issue 21: the hand-written backpropagation through time (one cell step per time step on
    # the still-running prefix) against torch's own RNN run on each neighbourhood alone
    torch.manual_seed(21)
    aggr = RecurrentAggregation(3, 5, cell=cell, order="descending").double()
    degrees = torch.tensor([0, 1, 2, 3, 5, 8, 13, 40, 1, 0, 2, 77])
    index = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    perm = torch.randperm(index.numel())
    index, key = index[perm], torch.randn(index.numel(), dtype=torch.float64)
    x = torch.randn(index.numel(), 3, dtype=torch.float64, requires_grad=True)
    out = aggr(x, index, dim_size=degrees.numel(), key=key)
    rows = []
    for s in range(degrees.numel()):
        mine = (index == s).nonzero().squeeze(-1)
        mine = mine[key[mine].argsort(descending=True)]
        if mine.numel() == 0:
            rows.append(x.new_zeros(5))
            continue
        state = aggr.rnn(x[mine].unsqueeze(1))[1]
        rows.append((state[0] if cell == "lstm" else state)[0, 0])
    expect = torch.stack(rows)
    assert torch.allclose(out, expect, atol=1e-12)
    grad = torch.randn_like(out)
    inputs = [x, *aggr.parameters()]
    for got, want in zip(torch.autograd.grad(out, inputs, grad, retain_graph=True),
                         torch.autograd.grad(expect, inputs, grad)):
        assert torch.allclose(got, want, atol=1e-11)
    # a retained graph runs backward again to the same result
    again = torch.autograd.grad(out, inputs, grad)
    first = torch.autograd.grad(aggr(x, index, dim_size=degrees.numel(), key=key), inputs, grad)
    assert all(torch.equal(a, b) for a, b in zip(again, first))


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


def test_batch_composition_regression_against_pyg_lstm(composition_gap):
    torch.manual_seed(3)
    with torch.no_grad():
        assert composition_gap(RecurrentAggregation(4, 4), sort=False, seed=2) < 1e-6
        # PyG's LSTMAggregation reads the zero padding of short neighbourhoods, so node 0's
        # output depends on the largest degree in the batch (the defect fixed here).
        assert composition_gap(LSTMAggregation(4, 4), sort=True, seed=2) > 1e-3


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


def test_channel_mismatch_is_a_value_error_regression():
    # issue 18: RecurrentAggregation(8, 16) took 3-channel input and returned a finite [4, 16]
    aggr = RecurrentAggregation(8, 16)
    with pytest.raises(ValueError, match=r"in_channels=8 channels, got shape \[4, 3\]"):
        aggr(torch.randn(4, 3), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="out_channels must be a positive int"):
        RecurrentAggregation(8, 0)


def test_sage_conv_under_bfloat16_autocast_regression():
    # issue 17: SAGEConv(aggr=RecurrentAggregation(...)) under bf16 autocast failed with "Index
    # put requires the source and destination dtypes match"
    from torch_geometric.nn import SAGEConv

    torch.manual_seed(7)
    data = random_graph(30, num_edges=150, in_channels=8, seed=7)  # degrees in several buckets
    for cell in ("lstm", "gru"):
        conv = SAGEConv(8, 8, aggr=RecurrentAggregation(8, 8, cell=cell))
        ref = conv(data.x, data.edge_index)
        x = data.x.clone().requires_grad_(True)
        with torch.autocast("cpu", torch.bfloat16):
            out = conv(x, data.edge_index)
        assert torch.isfinite(out).all()
        assert torch.allclose(out.float(), ref, atol=0.1)  # bfloat16 linear layers around it
        out.float().sum().backward()
        assert torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in conv.parameters() if p.grad is not None)


def test_compile_one_break_and_no_recompile_per_batch_size():
    # issue 17: SAGE + Recurrent had 15 graph breaks (torch.unique(...).tolist(), nonzero, the
    # packed LSTM); now the packed calls are the only break and the number of compiled graphs
    # does not grow with the number of batch sizes
    from torch_geometric.nn import SAGEConv

    from graphlab.testing.compile import count_compiles, explain_graph_breaks

    torch.manual_seed(8)
    aggr = RecurrentAggregation(8, 8)
    x, index = torch.randn(40, 8), torch.randint(0, 7, (40,))
    _, reasons = explain_graph_breaks(aggr, x, index, dim_size=7)
    assert len(reasons) <= 1, reasons
    conv = SAGEConv(8, 8, aggr=RecurrentAggregation(8, 8))
    graphs = [random_graph(n, num_edges=4 * n, in_channels=8, seed=n) for n in (9, 14, 23, 31, 47)]
    inputs = [(g.x, g.edge_index) for g in graphs]
    _, reasons = explain_graph_breaks(conv, *inputs[0])
    assert reasons and all("_reduce" in r for r in reasons), reasons
    assert count_compiles(conv, inputs[:3]) == count_compiles(conv, inputs) <= 5
    compiled = torch.compile(conv, dynamic=True, backend="aot_eager")
    for g in graphs[:2]:
        assert torch.allclose(compiled(g.x, g.edge_index), conv(g.x, g.edge_index), atol=1e-5)


def test_repr_like_pyg():
    assert repr(RecurrentAggregation(8, 16)) == \
        "RecurrentAggregation(8, 16, cell='lstm', order=None)"
    assert repr(LSTMAggregation(8, 16)) == "LSTMAggregation(8, 16)"  # the same prefix


def test_runs_in_stock_pyg_convs(stock_conv_check):
    stock_conv_check(lambda: RecurrentAggregation(8, 8), seed=5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_workspace_reuse_never_overwrites_a_live_graph(cell):
    # the CPU workspace is handed out again only when no autograd graph still views it: two
    # forward passes before either backward give the gradients of two separate modules
    torch.manual_seed(24)
    aggr = RecurrentAggregation(4, 5, cell=cell).double()
    twin = copy.deepcopy(aggr)
    index = [torch.randint(0, 7, (60,)), torch.randint(0, 4, (30,))]
    xs = [torch.randn(i.numel(), 4, dtype=torch.float64, requires_grad=True) for i in index]
    outs = [aggr(x, i, dim_size=8) for x, i in zip(xs, index)]
    got = [torch.autograd.grad(o.pow(2).sum(), [x, aggr.rnn.weight_hh_l0])
           for o, x in zip(outs, xs)]
    for x, i, g in zip(xs, index, got):
        fresh = copy.deepcopy(twin)
        want = torch.autograd.grad(fresh(x, i, dim_size=8).pow(2).sum(),
                                   [x, fresh.rnn.weight_hh_l0])
        assert all(torch.equal(a, b) for a, b in zip(g, want))
