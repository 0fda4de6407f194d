import math
import warnings

import pytest
import torch
from torch_geometric.nn.aggr import PowerMeanAggregation
from torch_geometric.utils import scatter

from graphlab.aggr import GNPAggregation
from graphlab.testing import (
    CHECKS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    TARGET_MUTATIONS,
    LayerCase,
    conformance_params,
)

# the eager path promises zero graph breaks under torch.compile (fullgraph) and one graph for
# every batch size (max_compiles=1)
CASES = [
    LayerCase(name=f"gnp-p{p}-readout",
              make_module=lambda p=p: GNPAggregation(8, p=p, q=0.5),
              forward=lambda m, b: m(b.x, b.batch, dim_size=b.num_graphs),
              levels=("graph",), fullgraph=True, max_compiles=1,
              bad_inputs={**INDEX_MUTATIONS, **FEATURE_MUTATIONS})
    for p in (3.0, -2.0)
] + [
    LayerCase(name="gnp-neighbours", make_module=lambda: GNPAggregation(1, p=(2.0, -1.5)),
              forward=lambda m, b: m(b.x[b.edge_index[0]], b.edge_index[1],
                                     dim_size=b.num_nodes),
              levels=("node",), fullgraph=True, max_compiles=1,
              bad_inputs={**TARGET_MUTATIONS, **FEATURE_MUTATIONS}),
    # small |p| of both signs (p- in (-1, 0)): the e^y - 1 sums of small channels
    LayerCase(name="gnp-small-p-readout",
              make_module=lambda: GNPAggregation(8, p=(0.01, -0.5), q=1.0, p_min=1e-3),
              forward=lambda m, b: m(b.x, b.batch, dim_size=b.num_graphs),
              levels=("graph",), fullgraph=True, max_compiles=1,
              bad_inputs={**INDEX_MUTATIONS, **FEATURE_MUTATIONS}),
]


# the fused path (torch.compile'd kernels: each dtype and variant compiles for ~10-20 s, so the
# fused tests are few): float64 gradcheck, no rows and tracing by torch.compile (both take the
# eager route), input validation. Its float32 values and gradients on unsorted input with empty
# segments are compared with the eager path below; the other checks would only add compilations
# of the no-grad variant.
FUSED_CASES = [
    LayerCase(name="gnp-fused-neighbours",
              make_module=lambda: GNPAggregation(1, p=(2.0, -1.5), q=0.5, fused=True),
              forward=lambda m, b: m(b.x[b.edge_index[0]], b.edge_index[1],
                                     dim_size=b.num_nodes),
              levels=("node",), bad_inputs={**TARGET_MUTATIONS, **FEATURE_MUTATIONS}),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES) + conformance_params(
    FUSED_CASES, ["gradcheck", "empty_graph", "compile", "bad_inputs"]))
def test_conformance(case, check):
    CHECKS[check](case)


def _data(positive: bool = False, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    index = torch.randint(0, 10, (120,), generator=gen)
    x = torch.randn(120, 4, generator=gen, dtype=dtype)
    if positive:
        x = x.abs() + 0.1
    return x, index


@pytest.mark.parametrize("p,q,reduce", [(1.0, 0.0, "sum"), (1.0, 1.0, "mean")])
def test_sum_and_mean_exactly(p, q, reduce):
    x, index = _data()
    aggr = GNPAggregation(p=p, q=q).double()
    expect = scatter(x, index, 0, 12, reduce)
    assert torch.allclose(aggr(x, index, dim_size=12), expect, atol=1e-5)


@pytest.mark.parametrize("p,reduce", [((1e3, -1e3), "max"), ((-1e3, 1e3), "min")])
def test_max_and_min_in_the_limit(p, reduce):
    x, index = _data()
    aggr = GNPAggregation(p=p, q=1.0).double()
    out = aggr(x, index, dim_size=12)
    expect = scatter(x, index, 0, 12, reduce)
    # (n^-q sum x^p)^(1/p) lies within a factor n^(1/|p|) of the extreme value
    n_max = int(torch.bincount(index).max())
    tol = n_max ** (1 / 1e3) - 1
    assert torch.allclose(out, expect, rtol=tol, atol=1e-4)


def test_harmonic_mean():
    x, index = _data(positive=True)
    aggr = GNPAggregation(p=-1.0, q=1.0).double()
    out = aggr(x, index, dim_size=10)
    expect = 1.0 / scatter(1.0 / x, index, 0, 10, "mean")
    assert torch.allclose(out, expect, atol=1e-5)


def test_signed_mean_keeps_negative_values():
    aggr = GNPAggregation(p=1.0, q=1.0)
    out = aggr(torch.tensor([[-3.0], [2.0]]), torch.zeros(2, dtype=torch.long))
    assert torch.allclose(out, torch.tensor([[-0.5]]), atol=1e-5)
    # all-negative set, p = 2: ours is -(mean of squares)^(1/2); PyG's power mean clamps
    # negative inputs to 1e-4 and returns a tiny non-negative number (the documented defect;
    # PyG 2.7 returns exactly 0)
    neg = torch.tensor([[-3.0], [-2.0]])
    ours = GNPAggregation(p=2.0, q=1.0)(neg, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(ours, torch.tensor([[-(6.5 ** 0.5)]]), atol=1e-5)
    pyg = PowerMeanAggregation(p=2.0)(neg, torch.zeros(2, dtype=torch.long))
    assert 0 <= pyg.item() < 0.1


@pytest.mark.parametrize("p", [50.0, -50.0, 100.0, -100.0])
def test_no_overflow_at_large_p(p):
    x = torch.full((6, 2), 1e3, requires_grad=True)
    x.data[3:, 1] = 2e3
    index = torch.tensor([0, 0, 0, 1, 1, 1])
    aggr = GNPAggregation(p=p, q=1.0)
    out = aggr(x, index)
    # all-equal sets: the (q = 1) power mean is the common value
    assert torch.allclose(out[:, 0], torch.full((2,), 1e3), rtol=1e-5)
    assert torch.allclose(out[1, 1], torch.tensor(2e3), rtol=1e-5)
    out.sum().backward()
    for grad in (x.grad, aggr.p_raw.grad, aggr.q.grad):
        assert torch.isfinite(grad).all()


def test_pyg_power_mean_overflow_regression():
    x = torch.full((4, 1), 20.0)
    index = torch.zeros(4, dtype=torch.long)
    pyg = PowerMeanAggregation(p=30.0, learn=True)
    out_pyg = pyg(x, index)
    out_pyg.sum().backward()
    assert abs(out_pyg.item() - 20.0) > 10.0  # PyG returns ~1.17 (x^30 overflows float32)
    ours = GNPAggregation(p=30.0, q=1.0)
    out = ours(x, index)
    out.sum().backward()
    assert torch.allclose(out, torch.tensor([[20.0]]), rtol=1e-5)
    assert torch.isfinite(ours.p_raw.grad).all()


@pytest.mark.parametrize("signed", [True, False])
def test_gradcheck_including_p_and_q(signed):
    # signed: per-channel (p+, p-), (q+, q-); unsigned: one p, q shared by all channels
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(15, 3, generator=gen, dtype=torch.float64)
    x = (x if signed else x.abs() + 0.1).requires_grad_(True)
    index = torch.tensor([0, 0, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 0, 1, 3])
    aggr = (GNPAggregation(3, p=(2.5, -1.5), q=(0.5, 0.8)) if signed
            else GNPAggregation(1, p=-2.5, q=0.3, signed=False)).double()

    def fn(x, p_raw, q):
        return torch.func.functional_call(aggr, {"p_raw": p_raw, "q": q}, (x, index),
                                          {"dim_size": 5})

    p_raw = aggr.p_raw.detach().clone().requires_grad_(True)
    q = aggr.q.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x, p_raw, q))


@pytest.mark.parametrize("p,signed", [(50.0, True), (50.0, False), (-50.0, False)])
def test_large_p_on_mixed_magnitudes_matches_float64_reference(p, signed):
    # magnitudes from 1e-3 to 1e3 in one set: most terms x^p underflow against the largest
    # (p > 0) or smallest (p < 0) one; the float32 result must still match the exact formula
    gen = torch.Generator().manual_seed(4)
    x = 10 ** (torch.rand(40, 3, generator=gen) * 6 - 3)
    if signed:
        x = x * torch.sign(torch.randn(40, 3, generator=gen))
    index = torch.randint(0, 5, (40,), generator=gen)
    aggr = GNPAggregation(3, p=p, q=0.5, signed=signed)
    out = aggr(x, index, dim_size=5)

    def part(v: torch.Tensor) -> torch.Tensor:  # GNP of one branch, float64, by logsumexp
        v = v.double().clamp(min=0) + aggr.eps
        res = []
        for s in range(5):
            rows = v[index == s]
            log_sum = torch.logsumexp(p * rows.log(), 0) - 0.5 * math.log(len(rows))
            res.append(torch.exp(log_sum / p))
        return torch.stack(res)

    expect = part(x) - part(-x) if signed else part(x)
    assert expect.abs().min() > 1e-3  # a meaningful value, not the eps floor
    assert torch.allclose(out.double(), expect, rtol=1e-5)


def test_row_blocks_do_not_change_the_result(monkeypatch):
    # the elementwise passes run over blocks of rows; a tiny block size must give the same
    # values and gradients as one block, and pass gradcheck across block boundaries
    from graphlab.aggr import gnp

    gen = torch.Generator().manual_seed(5)
    index = torch.randint(0, 30, (700,), generator=gen)
    x = torch.randn(700, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    aggr = GNPAggregation(4, p=(3.0, -2.0), q=0.4).double()
    results = []
    for block_bytes in (gnp.BLOCK_BYTES, 4 * 8 * 64):  # one block; 64-row blocks
        monkeypatch.setattr(gnp, "BLOCK_BYTES", block_bytes)
        x.grad, aggr.p_raw.grad, aggr.q.grad = None, None, None
        out = aggr(x, index, dim_size=32)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append((out, x.grad, aggr.p_raw.grad, aggr.q.grad))
    for one, blocked in zip(*results):
        assert torch.allclose(one, blocked, rtol=1e-12, atol=1e-12)
    small = x[:200].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: aggr(v, index[:200], dim_size=32), (small,))


def test_per_channel_and_per_segment_shift_agree(monkeypatch):
    # small |p| max log(|x| / eps) takes one shift per channel; FAST_RANGE = 0 forces the exact
    # per-segment maximum. Same values and gradients, and the float32 per-channel path matches
    # the float64 reference although its terms are not scaled to a maximum of 1 per segment.
    from graphlab.aggr import gnp

    gen = torch.Generator().manual_seed(6)
    x = 10 ** (torch.rand(300, 3, generator=gen) * 4 - 3) * torch.sign(torch.randn(300, 3, generator=gen))
    x[::11, 0] = 0.0  # exact zeros (ReLU outputs): value eps, zero gradient in both branches
    index = torch.randint(0, 20, (300,), generator=gen)
    aggr = GNPAggregation(3, p=(3.0, -2.0), q=(0.5, 1.0))
    weight = torch.linspace(-1, 1, 22 * 3).view(22, 3)
    results = []
    for fast_range, dtype in ((gnp.FAST_RANGE, torch.float32), (0.0, torch.float32),
                              (0.0, torch.float64)):
        monkeypatch.setattr(gnp, "FAST_RANGE", fast_range)
        module = aggr.to(dtype)
        module.zero_grad()
        xx = x.to(dtype).detach().clone().requires_grad_(True)
        out = module(xx, index, dim_size=22)
        (out * weight.to(dtype)).sum().backward()
        results.append([t.double() for t in (out, xx.grad, module.p_raw.grad, module.q.grad)])
    assert float(aggr.p.detach().abs().max()) * math.log(1e1 / aggr.eps) < 0.7 * 87  # fast path
    for fast, exact, ref in zip(*results):
        assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-6)
        assert torch.allclose(exact, ref, rtol=1e-4, atol=1e-6)
    assert torch.equal(results[0][1][::11, 0], torch.zeros(28, dtype=torch.float64))
    aggr.double()
    small = torch.randn(60, 3, generator=gen, dtype=torch.float64, requires_grad=True)  # no kinks
    monkeypatch.setattr(gnp, "FAST_RANGE", 0.7)
    assert torch.autograd.gradcheck(lambda v: aggr(v, index[:60], dim_size=22), (small,))


def _reference(x: torch.Tensor, index: torch.Tensor, dim_size: int, p: float, q: float,
               eps: float = 1e-6, signed: bool = True) -> torch.Tensor:
    """GNP in float64 by logsumexp, one segment at a time (empty: 0)."""

    def part(v: torch.Tensor) -> torch.Tensor:
        v = v.double().clamp(min=0) + eps
        res = []
        for s in range(dim_size):
            rows = v[index == s]
            if len(rows) == 0:
                res.append(torch.zeros(v.size(1), dtype=torch.float64))
                continue
            log_sum = torch.logsumexp(p * rows.log(), 0) - q * math.log(len(rows))
            res.append(torch.exp(log_sum / p))
        return torch.stack(res)

    return part(x) - part(-x) if signed else part(x)


@pytest.mark.parametrize("p", [-0.5, -0.9, -0.1])
def test_negative_p_above_minus_one_is_finite_regression(p):
    # issue 18: GNPAggregation(p=-0.5, p_min=0.5) returned NaN for every p in (-1, 0) (the empty
    # segment's log T = log(tiny) divided by a p of small magnitude overflowed exp)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(40, 3, generator=gen, requires_grad=True)
    index = torch.randint(0, 6, (40,), generator=gen)
    index[index == 4] = 5  # segment 4 empty, 6 and 7 beyond the largest index
    aggr = GNPAggregation(3, p=p, q=1.0, p_min=abs(p))
    out = aggr(x, index, dim_size=8)
    assert torch.isfinite(out).all()
    assert torch.equal(out[[4, 6, 7]], torch.zeros(3, 3))
    expect = _reference(x.detach(), index, 8, p, 1.0)
    assert torch.allclose(out.double(), expect, rtol=1e-5, atol=1e-9)
    out.sum().backward()
    for grad in (x.grad, aggr.p_raw.grad, aggr.q.grad):
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("p", [-3.0, -1.0, -0.5, 0.5, 2.0, 60.0])
@pytest.mark.parametrize("fast_range", [None, 0.0])
def test_empty_segments_are_zero_for_every_p(p, fast_range, monkeypatch):
    # both shifts (FAST_RANGE = 0 forces the exact per-segment one): an empty segment is 0 with
    # zero, finite gradients
    from graphlab.aggr import gnp

    if fast_range is not None:
        monkeypatch.setattr(gnp, "FAST_RANGE", fast_range)
    x = torch.tensor([[1.5, -2.0], [0.3, 4.0], [-0.7, 0.0]], requires_grad=True)
    aggr = GNPAggregation(2, p=p, q=0.5, p_min=0.5)
    out = aggr(x, torch.tensor([0, 0, 2]), dim_size=4)
    assert torch.equal(out[[1, 3]], torch.zeros(2, 2))
    assert torch.isfinite(out).all()
    out.sum().backward()
    for grad in (x.grad, aggr.p_raw.grad, aggr.q.grad):
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("p", [1e-6, -1e-6, 1e-4, -3e-3])
@pytest.mark.parametrize("signed", [True, False])
def test_small_p_float32_matches_float64_regression(p, signed):
    # issue 18: at p = 1e-6 float32 was 13% off float64 (log T / n with T / n = 1 - O(p) lost
    # its digits, and log n was added before the O(p) terms); now within 1e-5
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(200, 4, generator=gen) * 3
    if not signed:
        x = x.abs() + 0.01
    index = torch.randint(0, 12, (200,), generator=gen)
    aggr = GNPAggregation(4, p=p, q=1.0, p_min=1e-6, signed=signed)
    out = aggr(x, index, dim_size=12)
    expect = _reference(x, index, 12, p, 1.0, signed=signed)
    # relative to each branch's magnitude: the signed difference of two near-equal geometric
    # means may itself be tiny
    scale = _reference(x, index, 12, p, 1.0, signed=False)
    if signed:
        scale = scale + _reference(-x, index, 12, p, 1.0, signed=False)
    assert ((out.double() - expect).abs() <= 1e-5 * scale).all()
    if not signed and abs(p) <= 1e-6:  # p -> 0, q = 1: the geometric mean of x + eps (+ O(p))
        geo = torch.exp(scatter((x.double() + aggr.eps).log(), index, 0, 12, "mean"))
        assert torch.allclose(out.double(), geo, rtol=1e-5)


def test_small_p_gradients_are_finite_and_match_float64():
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(60, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 5, (60,), generator=gen)
    aggr = GNPAggregation(3, p=(1e-3, -2e-3), q=(1.0, 0.9), p_min=1e-4).double()
    out = aggr(x, index, dim_size=6)
    out.sum().backward()
    grads64 = [t.grad.clone() for t in (x, aggr.p_raw, aggr.q)]
    aggr.float().zero_grad()
    x32 = x.detach().float().requires_grad_(True)
    aggr(x32, index, dim_size=6).sum().backward()
    for g32 in (x32.grad, aggr.p_raw.grad, aggr.q.grad):
        assert torch.isfinite(g32).all()
    assert torch.allclose(x32.grad.double(), grads64[0], rtol=1e-3, atol=1e-6)
    assert torch.allclose(aggr.q.grad.double(), grads64[2], rtol=1e-3)
    small = x[:20].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: aggr.double()(v, index[:20], dim_size=6), (small,))


def test_allowed_p_and_p_min_are_validated():
    # issue 18: p = 0 with p_min = 0 returned NaN; p = 0 is not a power mean, so p_min <= 0 is
    # now refused (any positive p_min is allowed and exact, see the small-p tests)
    for p_min in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="p_min"):
            GNPAggregation(p=1.0, p_min=p_min)
    with pytest.raises(ValueError, match="p must be finite"):
        GNPAggregation(p=math.nan)
    with pytest.raises(ValueError, match="q must be finite"):
        GNPAggregation(q=(1.0, math.inf))
    with pytest.raises(ValueError, match="eps"):
        GNPAggregation(eps=0.0)
    with pytest.raises(ValueError, match="channels"):
        GNPAggregation(0)
    GNPAggregation(p=-0.5, p_min=0.5)  # allowed


def test_compile_fullgraph_and_learnable_p_does_not_recompile():
    # issue 17: .item() in the shift plan made a learnable p steer Python control flow, so every
    # optimiser step re-specialised the graph (PyG's MUTAG example hit recompile_limit (8))
    import torch._dynamo

    from graphlab.testing.compile import CountingBackend, explain_graph_breaks

    gen = torch.Generator().manual_seed(14)
    aggr = GNPAggregation(4, p=(2.0, -1.5), q=0.5)
    x = torch.randn(50, 4, generator=gen, requires_grad=True)
    index = torch.randint(0, 8, (50,), generator=gen)
    breaks, reasons = explain_graph_breaks(aggr, x, index, dim_size=8)
    assert breaks == 0 and not reasons, reasons
    backend = CountingBackend()
    torch._dynamo.reset()
    try:
        compiled = torch.compile(aggr, backend=backend, fullgraph=True, dynamic=True)
        opt = torch.optim.SGD(aggr.parameters(), lr=0.01)
        for step, rows in enumerate((50, 70, 90, 120)):
            xs = torch.randn(rows, 4, generator=gen, requires_grad=True) * (10 ** step)
            idx = torch.randint(0, rows // 6, (rows,), generator=gen)
            out = compiled(xs, idx, dim_size=rows // 6)
            ref = aggr(xs, idx, dim_size=rows // 6)
            assert torch.allclose(out, ref, rtol=1e-4, atol=1e-6)
            grads = torch.autograd.grad(out.sum(), (xs, aggr.p_raw, aggr.q))
            refs = torch.autograd.grad(ref.sum(), (xs, aggr.p_raw, aggr.q))
            for g, r in zip(grads, refs):  # p's gradient sums terms that nearly cancel
                assert torch.allclose(g, r, rtol=1e-3, atol=1e-5 * float(r.abs().max()))
            opt.zero_grad()
            aggr.p_raw.grad, aggr.q.grad = grads[1], grads[2]
            opt.step()  # p moves (and |p| max log(|x| / eps) crosses the per-channel limit)
    finally:
        torch._dynamo.reset()
    assert backend.graphs == 1


def test_autocast_bfloat16_computes_in_float32():
    gen = torch.Generator().manual_seed(15)
    x = torch.randn(40, 4, generator=gen)
    index = torch.randint(0, 5, (40,), generator=gen)
    aggr = GNPAggregation(4, p=(2.0, -1.5), q=0.5)
    ref = aggr(x, index, dim_size=5)
    xb = x.bfloat16().requires_grad_(True)
    out = aggr(xb, index, dim_size=5)
    assert out.dtype == torch.bfloat16
    # only the input and output roundings of bfloat16 (2^-8), not log-space errors
    assert torch.allclose(out.float(), aggr(xb.detach().float(), index, dim_size=5),
                          rtol=1e-2, atol=1e-2)
    assert torch.allclose(out.float(), ref, rtol=5e-2, atol=5e-2)
    out.float().sum().backward()
    assert torch.isfinite(xb.grad.float()).all() and torch.isfinite(aggr.p_raw.grad).all()


def test_repr():
    assert repr(GNPAggregation(8)) == "GNPAggregation(8, p_min=1, learn=True, signed=True)"
    assert repr(GNPAggregation(4, p_min=0.5, learn=False, signed=False, fused=True)) == \
        "GNPAggregation(4, p_min=0.5, learn=False, signed=False, fused=True)"


def test_p_stays_away_from_zero():
    aggr = GNPAggregation(p=1.0)
    with torch.no_grad():
        aggr.p_raw.zero_()
    assert torch.all(aggr.p.abs() >= aggr.p_min)
    with torch.no_grad():
        aggr.p_raw.fill_(-1e-3)
    assert torch.all(aggr.p <= -aggr.p_min)
    with pytest.raises(ValueError, match="p_min"):
        GNPAggregation(p=0.01)


def test_empty_neighbourhoods():
    aggr = GNPAggregation(2, p=(-3.0, 2.0), q=0.0)
    x = torch.randn(4, 2, requires_grad=True)
    out = aggr(x, torch.tensor([0, 0, 2, 2]), dim_size=4)
    assert torch.equal(out[1], torch.zeros(2)) and torch.equal(out[3], torch.zeros(2))
    out.sum().backward()
    for grad in (x.grad, aggr.p_raw.grad, aggr.q.grad):
        assert torch.isfinite(grad).all()
    none = aggr(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), dim_size=3)
    assert torch.equal(none, torch.zeros(3, 2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="expects x with 3 channels.*got shape \\[4, 2\\]"):
        GNPAggregation(3)(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative"):
        GNPAggregation(signed=False)(torch.randn(4, 2) - 5, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="pair"):
        GNPAggregation(p=(1.0, 2.0, 3.0))


def test_runs_in_stock_pyg_convs(stock_conv_check):
    stock_conv_check(lambda: GNPAggregation(8, p=2.0), seed=2)


def _fused_vs_eager(x, index, dim_size, **kwargs):
    """Outputs and gradients (x, p_raw, q) of the eager and the fused path on the same input."""
    results = []
    for fused in (False, True):
        aggr = GNPAggregation(x.size(1), fused=fused, **kwargs).to(x.dtype)
        xx = x.detach().clone().requires_grad_(True)
        out = aggr(xx, index, dim_size=dim_size)
        weight = torch.linspace(-1, 1, out.numel(), dtype=x.dtype).view_as(out)
        (out * weight).sum().backward()
        results.append((out, xx.grad, aggr.p_raw.grad, aggr.q.grad))
    return results


def test_fused_matches_eager():
    # unsorted index, empty segments, exact zeros: the per-channel shift path of both. (The
    # unsigned variant, signed=False, is one more compilation; it is not repeated here.)
    from graphlab.aggr import gnp

    _gnp_fused = gnp._gnp_fused  # the kernels' module (private: its state is what is tested)

    gen = torch.Generator().manual_seed(7)
    x = torch.randn(900, 5, generator=gen) * 3
    x[::13, 2] = 0.0
    index = torch.randint(0, 60, (900,), generator=gen)
    index[index == 7] = 8  # segment 7 empty, and 60-63 beyond the largest index
    eager, fused = _fused_vs_eager(x, index, 64, p=(2.5, -1.5), q=(0.5, 1.0))
    assert not _gnp_fused._FAILED, _gnp_fused._FAILED  # it really ran compiled
    for e, f in zip(eager, fused):
        assert torch.allclose(f, e, rtol=1e-4, atol=1e-6)
    assert torch.equal(fused[0][60:], torch.zeros(4, 5)) and torch.equal(fused[0][7], torch.zeros(5))
    assert torch.equal(fused[1][::13, 2], torch.zeros(70))


def test_fused_large_p_takes_the_exact_shift():
    # |p| = 100 on inputs of 1e3 (and mixed magnitudes down to 1e-3): the per-segment shift path
    gen = torch.Generator().manual_seed(8)
    x = 10 ** (torch.rand(400, 3, generator=gen) * 6 - 3) * torch.sign(torch.randn(400, 3, generator=gen))
    x[:6] = 1e3
    index = torch.randint(0, 20, (400,), generator=gen)
    eager, fused = _fused_vs_eager(x, index, 20, p=(100.0, -100.0), q=1.0)
    for e, f in zip(eager, fused):
        assert torch.isfinite(f).all()
        assert torch.allclose(f, e, rtol=1e-4, atol=1e-6)


def test_fused_small_p_matches_eager():
    # the fused kernels' small-channel variant (sums of e^y - 1): p+ = 1e-4 is small, p- = -2 is
    # not, in the same call; against the eager path and the float64 reference
    gen = torch.Generator().manual_seed(16)
    x = torch.randn(300, 3, generator=gen) * 2
    index = torch.randint(0, 25, (300,), generator=gen)
    index[index == 3] = 4  # an empty segment
    eager, fused = _fused_vs_eager(x, index, 26, p=(1e-4, -2.0), q=1.0, p_min=1e-5)
    exact, _ = _fused_vs_eager(x.double(), index, 26, p=(1e-4, -2.0), q=1.0, p_min=1e-5)
    for k, (e, f, ref) in enumerate(zip(eager, fused, exact)):
        assert torch.isfinite(f).all()
        # p's gradient at small |p| is a difference of two O(max D) means that agree to
        # O(|p| var D): float32 keeps ~1e-7 max D / (|p| var D) of it (~1% here), both paths
        rtol = 2e-2 if k == 2 else 1e-4
        scale = float(ref.detach().abs().max())
        assert torch.allclose(f.double(), ref, rtol=rtol, atol=1e-6 * scale)
        assert torch.allclose(e.double(), ref, rtol=rtol, atol=1e-6 * scale)
    assert torch.equal(fused[0][[3, 25]], torch.zeros(2, 3))


def test_fused_falls_back_to_eager_once_when_compilation_fails(monkeypatch):
    from graphlab.aggr import gnp

    _gnp_fused = gnp._gnp_fused  # the kernels' module (private: its state is what is tested)

    def broken_compile(fn, **kwargs):
        def fail(*args, **kw):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(_gnp_fused, "_COMPILED", {})
    monkeypatch.setattr(_gnp_fused, "_FAILED", [])
    monkeypatch.setattr(torch, "compile", broken_compile)
    x, index = _data()
    expect = GNPAggregation(4, p=(2.0, -3.0)).double()(x, index, dim_size=12)
    aggr = GNPAggregation(4, p=(2.0, -3.0), fused=True).double()
    with pytest.warns(RuntimeWarning, match=r"no C\+\+ compiler"):
        first = aggr(x, index, dim_size=12)  # the failing call itself runs the kernels eagerly
    assert not _gnp_fused.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        second = aggr(x, index, dim_size=12)
    assert torch.allclose(first, expect) and torch.allclose(second, expect)
