import copy
import math

import pytest
import torch
from torch_geometric.nn.aggr import LCMAggregation as PyGLCMAggregation
from torch_geometric.utils import scatter

from graphlab.aggr import LCMAggregation, lcm
from graphlab.aggr.lcm import tree_reduce
from graphlab.testing import (
    CHECKS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    TARGET_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)


def _dense_graph(seed: int):
    n = 7 + seed % 5
    return random_graph(n, num_edges=4 * n, in_channels=8, seed=seed)


READOUT_BAD = {**INDEX_MUTATIONS, **FEATURE_MUTATIONS}
NEIGHBOUR_BAD = {**TARGET_MUTATIONS, **FEATURE_MUTATIONS}

# The tree reduction is the one graph break (its depth and level sizes depend on the degrees):
# the graph before it, compiled once for every batch size, and the one after it make two.
COMPILES = 2

CASES = [
    LayerCase(name=f"lcm-{combine}-readout",
              make_module=lambda combine=combine: LCMAggregation(8, 6, combine=combine),
              forward=lambda m, b: m(b.x, b.batch, dim_size=b.num_graphs),
              levels=("graph",), make_graph=_dense_graph, bad_inputs=READOUT_BAD,
              max_compiles=COMPILES)
    for combine in ("gru", "mlp")
] + [
    LayerCase(name="lcm-gru-neighbours", make_module=lambda: LCMAggregation(8, 6),
              forward=lambda m, b: m(b.x[b.edge_index[0]], b.edge_index[1],
                                     dim_size=b.num_nodes),
              levels=("node",), make_graph=_dense_graph, bad_inputs=NEIGHBOUR_BAD,
              max_compiles=COMPILES),
    LayerCase(name="lcm-unprojected-neighbours",
              make_module=lambda: LCMAggregation(8, 8, project=False),
              forward=lambda m, b: m(b.x[b.edge_index[0]], b.edge_index[1],
                                     dim_size=b.num_nodes),
              levels=("node",), make_graph=_dense_graph, bad_inputs=NEIGHBOUR_BAD,
              max_compiles=COMPILES),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def _reference_tree(rows: list[torch.Tensor], combine) -> torch.Tensor:
    """Level-by-level pairing of one multiset, written with Python lists."""
    while len(rows) > 1:
        nxt = [combine(rows[i], rows[i + 1]) for i in range(0, len(rows) - 1, 2)]
        if len(rows) % 2:
            nxt.append(rows[-1])
        rows = nxt
    return rows[0]


def _oracle_tree_reduce(x, index, dim_size, combine, identity, key=None):
    """The level-by-level implementation before issue 21 (boolean masks and index_put at every
    level, plain autograd), kept as the oracle of values and gradients."""
    if key is None:
        perm = torch.argsort(index, stable=True)
    else:
        by_key = torch.argsort(key, stable=True)
        perm = by_key[torch.argsort(index[by_key], stable=True)]
    count = torch.bincount(index, minlength=dim_size)
    sid = index[perm]
    y, rank = x[perm], torch.arange(index.numel()) - (torch.cumsum(count, 0) - count)[sid]
    size = count[sid]
    max_count = int(count.max()) if count.numel() else 0
    done_vals, done_ids = [], []
    for _ in range(math.ceil(math.log2(max_count)) if max_count > 1 else 0):
        fin = size == 1
        done_vals.append(y[fin])
        done_ids.append(sid[fin])
        live = ~fin
        y, sid, rank, size = y[live], sid[live], rank[live], size[live]
        even = torch.nonzero(rank % 2 == 0).squeeze(-1)
        paired = torch.nonzero(rank[even] + 1 < size[even]).squeeze(-1)
        left = even[paired]
        y = torch.index_put(y[even], (paired,), combine(y[left], y[left + 1]))
        sid, rank, size = sid[even], rank[even] // 2, (size[even] + 1) // 2
    done_vals.append(y)
    done_ids.append(sid)
    out = identity.to(x.dtype).expand(dim_size, x.size(-1)).contiguous()
    return torch.index_put(out, (torch.cat(done_ids),), torch.cat(done_vals))


def _oracle_forward(aggr, x, index, dim_size):
    h = aggr.lin(x).relu() if aggr.lin is not None else x
    key = h.detach() @ aggr.order_key if aggr.order == "value" else None
    return _oracle_tree_reduce(h, index, dim_size, aggr.combine, aggr.identity, key)


@pytest.mark.parametrize("combine,project,order,block", [
    ("gru", True, "value", None), ("gru", False, "input", None), ("mlp", True, "input", None),
    ("mlp", False, "value", None), ("gru", True, "value", 7), ("mlp", False, "input", 7)])
def test_values_and_gradients_match_the_oracle_float64(monkeypatch, combine, project, order,
                                                       block):
    # issue 21: the blocked tree with its hand-written backward computes what the plain autograd
    # implementation computed, on degrees 0..1000 in scrambled order (many levels, odd carries);
    # with blocks of 7 pairs, every level but the last ones runs in many full and partial blocks
    if block is not None:
        monkeypatch.setattr(lcm, "BLOCK", block)
    torch.manual_seed(21)
    aggr = LCMAggregation(6, 6, project=project, combine=combine, order=order).double()
    with torch.no_grad():
        aggr.identity.normal_()
    degrees = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 100, 0, 1000, 3])
    index = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    index = index[torch.randperm(index.numel())]
    x = torch.randn(index.numel(), 6, dtype=torch.float64, requires_grad=True)
    dim_size = degrees.numel() + 2  # trailing empty segments
    out, expect = aggr(x, index, dim_size=dim_size), _oracle_forward(aggr, x, index, dim_size)
    assert torch.allclose(out, expect, atol=1e-12)
    grad = torch.randn_like(out)
    inputs = [x, *aggr.parameters()]
    for got, want in zip(torch.autograd.grad(out, inputs, grad),
                         torch.autograd.grad(expect, inputs, grad)):
        assert torch.allclose(got, want, atol=1e-11)


def test_backward_twice_with_a_retained_graph():
    torch.manual_seed(22)
    aggr = LCMAggregation(4, 4).double()
    index = torch.randint(0, 6, (40,))
    x = torch.randn(40, 4, dtype=torch.float64, requires_grad=True)
    out = aggr(x, index, dim_size=6).sum()
    first = torch.autograd.grad(out, [x, *aggr.parameters()], retain_graph=True)
    second = torch.autograd.grad(out, [x, *aggr.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_plan_levels_cost_what_is_left_of_the_trees():
    from graphlab.aggr.lcm import tree_plan

    # one segment of 1000 rows among 10,000 of one or two rows: the levels after the first
    # hold the big segment only (500, 250, ... pairs), not every segment again
    degrees = torch.tensor([1000] + [1, 2] * 5_000)
    index = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    plan = tree_plan(index, degrees.numel())
    sizes = [left.numel() for left in plan.left]
    assert sizes == [500 + 5_000, 250, 125, 62, 31, 16, 8, 4, 2, 1]  # 125 rows: 62 pairs + 1
    assert plan.num_rows == index.numel() + sum(sizes) == 2 * index.numel() - degrees.numel()
    # every row is consumed once: as the operand of one pair or as a root
    used = torch.cat([*plan.left, *plan.right, plan.root])
    assert torch.equal(used.sort().values, torch.arange(plan.num_rows))


def test_tree_matches_per_segment_reference():
    torch.manual_seed(0)
    aggr = LCMAggregation(4, 5, order="input").eval()
    index = torch.randint(0, 9, (60,))
    x = torch.randn(60, 4)
    out = aggr(x, index, dim_size=11)
    h = aggr.lin(x).relu()
    for s in range(11):
        rows = list(h[index == s].unbind(0))
        expect = aggr.identity if not rows else _reference_tree(
            [r[None] for r in rows], aggr.combine)[0]
        assert torch.allclose(out[s], expect, atol=1e-6)


def test_sequential_steps_equal_ceil_log2_degree():
    gen = torch.Generator().manual_seed(1)
    degrees = torch.tensor([0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100, 1000])
    index = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    index = index[torch.randperm(index.numel(), generator=gen)]  # unsorted on purpose
    x = torch.zeros(index.numel(), 1)
    # combine = 1 + max depth of its operands, so the result is the depth of the tree actually built
    depth, steps = tree_reduce(x, index, degrees.numel(), lambda a, b: torch.maximum(a, b) + 1,
                               torch.zeros(1), return_steps=True)
    expect = torch.tensor([math.ceil(math.log2(d)) if d > 0 else 0 for d in degrees.tolist()])
    assert torch.equal(steps, expect)
    assert torch.equal(depth.squeeze(-1).long(), expect)


def test_tree_with_sum_is_segment_sum():
    gen = torch.Generator().manual_seed(2)
    index = torch.randint(0, 30, (500,), generator=gen)
    x = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    out = tree_reduce(x, index, 32, torch.add, torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(out, scatter(x, index, 0, 32, "sum"))


@pytest.mark.parametrize("combine", ["gru", "mlp"])
def test_operator_is_exactly_commutative(combine):
    torch.manual_seed(3)
    aggr = LCMAggregation(4, 16, combine=combine)
    a, b = torch.randn(257, 16), torch.randn(257, 16)
    assert torch.equal(aggr.combine(a, b), aggr.combine(b, a))
    assert not torch.equal(aggr.combine(a, b), aggr.combine(a, a))


def test_batch_composition_regression_against_pyg(composition_gap):
    torch.manual_seed(5)
    ours = LCMAggregation(4, 4).eval()
    pyg = PyGLCMAggregation(4, 4).eval()
    with torch.no_grad():
        assert composition_gap(ours, sort=False, seed=4) < 1e-6
        # PyG pads every neighbourhood with zeros to the batch's largest degree, so node 0's
        # output changes with its neighbour's degree (this documents the defect we fix).
        assert composition_gap(pyg, sort=True, seed=4) > 1e-3


def test_order_invariance_of_value_order():
    torch.manual_seed(6)
    aggr = LCMAggregation(4, 8).eval()
    index = torch.randint(0, 5, (40,))
    x = torch.randn(40, 4)
    perm = torch.randperm(40)
    with torch.no_grad():
        assert torch.allclose(aggr(x, index, dim_size=5), aggr(x[perm], index[perm], dim_size=5),
                              atol=1e-6)


def test_empty_neighbourhoods_get_learned_identity():
    torch.manual_seed(7)
    aggr = LCMAggregation(4, 3)
    with torch.no_grad():
        aggr.identity.copy_(torch.tensor([1.0, -2.0, 3.0]))
    x = torch.randn(5, 4, requires_grad=True)
    index = torch.tensor([0, 0, 2, 2, 2])
    out = aggr(x, index, dim_size=4)
    assert torch.equal(out[1], aggr.identity.detach())
    assert torch.equal(out[3], aggr.identity.detach())
    out.sum().backward()
    assert torch.equal(aggr.identity.grad, torch.full((3,), 2.0))  # two empty rows
    assert torch.isfinite(x.grad).all()
    # no rows at all
    empty = aggr(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), dim_size=2)
    assert empty.shape == (2, 3) and torch.equal(empty[0], aggr.identity.detach())


def test_ptr_matches_index():
    torch.manual_seed(8)
    aggr = LCMAggregation(4, 6).eval()
    ptr = torch.tensor([0, 3, 3, 10])
    x = torch.randn(10, 4)
    index = torch.tensor([0, 0, 0, 2, 2, 2, 2, 2, 2, 2])
    assert torch.allclose(aggr(x, ptr=ptr), aggr(x, index, dim_size=3))


def test_aux_loss_trains_towards_associativity():
    torch.manual_seed(9)
    aggr = LCMAggregation(4, 8).train()
    x = torch.randn(64, 4)
    aggr(x, torch.randint(0, 8, (64,)), dim_size=8)
    gen = torch.Generator().manual_seed(0)
    first = aggr.aux_loss(generator=gen)
    assert first.item() > 0
    opt = torch.optim.Adam(aggr.parameters(), lr=1e-2)
    for _ in range(50):
        opt.zero_grad()
        loss = aggr.aux_loss(generator=torch.Generator().manual_seed(0))
        loss.backward()
        opt.step()
    assert aggr.aux_loss(generator=torch.Generator().manual_seed(0)).item() < 0.5 * first.item()


def test_bad_arguments():
    with pytest.raises(ValueError, match="combine"):
        LCMAggregation(4, 4, combine="lstm")
    with pytest.raises(ValueError, match="identity"):
        LCMAggregation(4, 4, identity="ones")
    aggr = LCMAggregation(4, 4)
    with pytest.raises(ValueError, match="two-dimensional"):
        aggr(torch.randn(3, 2, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="ptr"):
        aggr(torch.randn(3, 4), ptr=torch.tensor([0, 2]))


def test_project_like_pyg():
    # issue 17: PyG's LCMAggregation(in_channels, out_channels, project=True)
    torch.manual_seed(11)
    ours = LCMAggregation(4, 4, project=False, order="input").eval()
    assert ours.lin is None and ours.project is False
    x = torch.randn(30, 4)
    index = torch.randint(0, 6, (30,))
    expect = tree_reduce(x, index, 7, ours.combine, ours.identity)  # the rows as they are
    assert torch.allclose(ours(x, index, dim_size=7), expect, atol=1e-6)
    projected = LCMAggregation(4, 4, True, order="input").eval()  # positional, as in PyG
    h = projected.lin(x).relu()
    assert torch.allclose(projected(x, index, dim_size=7),
                          tree_reduce(h, index, 7, projected.combine, projected.identity),
                          atol=1e-6)
    with pytest.raises(ValueError, match="must be projected"):
        LCMAggregation(4, 8, project=False)
    PyGLCMAggregation(4, 4, project=False)  # the same signature in PyG
    with pytest.raises(ValueError, match="must be projected"):
        PyGLCMAggregation(4, 8, project=False)


def test_repr_like_pyg():
    assert repr(LCMAggregation(8, 6)) == ("LCMAggregation(8, 6, project=True, combine='gru', "
                                          "identity='learned', order='value')")
    assert repr(PyGLCMAggregation(8, 6)) == "LCMAggregation(8, 6, project=True)"  # its prefix


def test_channel_mismatch_is_a_value_error_regression():
    # issue 18: channel counts are checked in every aggregator, naming expected and received
    with pytest.raises(ValueError, match=r"in_channels=8 channels, got shape \[5, 3\]"):
        LCMAggregation(8, 6)(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        LCMAggregation(0, 6)


def test_compile_one_break_and_no_recompile_per_batch_size():
    # issue 17: 26-39 graphs over 3 batch sizes before (every level's boolean masks and the
    # depth broke the graph); now the tree is the only break and the count does not grow with
    # the number of batch sizes
    from torch_geometric.nn import GINConv

    from graphlab.testing.compile import count_compiles, explain_graph_breaks

    torch.manual_seed(12)
    aggr = LCMAggregation(8, 8)
    x, index = torch.randn(40, 8), torch.randint(0, 7, (40,))
    _, reasons = explain_graph_breaks(aggr, x, index, dim_size=7)
    # the projection now runs inside the tree's autograd function, so the aggregation alone may
    # leave dynamo nothing to compile; at most the one break at the tree
    assert len(reasons) == 1 and ("_tree" in reasons[0] or "no graph" in reasons[0]), reasons
    conv = GINConv(torch.nn.Linear(8, 8), aggr=LCMAggregation(8, 8))
    graphs = [random_graph(n, num_edges=4 * n, in_channels=8, seed=n) for n in (9, 14, 23, 31, 47)]
    inputs = [(g.x, g.edge_index) for g in graphs]
    assert count_compiles(conv, inputs[:3]) == count_compiles(conv, inputs) <= 5
    compiled = torch.compile(conv, dynamic=True, backend="aot_eager")
    for g in graphs[:2]:
        assert torch.allclose(compiled(g.x, g.edge_index), conv(g.x, g.edge_index), atol=1e-5)


def test_autocast_bfloat16_in_a_stock_conv():
    from torch_geometric.nn import SAGEConv

    torch.manual_seed(13)
    data = random_graph(20, num_edges=80, in_channels=8, seed=13)
    for project in (True, False):
        conv = SAGEConv(8, 8, aggr=LCMAggregation(8, 8, project=project))
        x = data.x.clone().requires_grad_(True)
        with torch.autocast("cpu", torch.bfloat16):
            out = conv(x, data.edge_index)
        assert torch.isfinite(out).all()
        out.float().sum().backward()
        assert torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in conv.parameters() if p.grad is not None)


def test_runs_in_stock_pyg_convs(stock_conv_check):
    stock_conv_check(lambda: LCMAggregation(8, 8), seed=10)


def test_workspace_reuse_never_overwrites_a_live_graph():
    # the CPU workspace is handed out again only when no autograd graph still views it: two
    # forward passes before either backward give the gradients of two separate modules
    torch.manual_seed(23)
    aggr = LCMAggregation(5, 5).double()
    twin = copy.deepcopy(aggr)
    index = [torch.randint(0, 7, (60,)), torch.randint(0, 4, (30,))]
    xs = [torch.randn(i.numel(), 5, dtype=torch.float64, requires_grad=True) for i in index]
    outs = [aggr(x, i, dim_size=8) for x, i in zip(xs, index)]
    got = [torch.autograd.grad(o.pow(2).sum(), [x, aggr.gru.weight]) for o, x in zip(outs, xs)]
    for x, i, g in zip(xs, index, got):
        fresh = copy.deepcopy(twin)
        want = torch.autograd.grad(fresh(x, i, dim_size=8).pow(2).sum(), [x, fresh.gru.weight])
        assert all(torch.equal(a, b) for a, b in zip(g, want))
