"""LCMAggregation(fused=True): the GRU operator's elementwise work compiled by torch.compile.

The compiled kernels run on accelerators only (on the CPU the eager passes are faster), so these
tests force them on the CPU, except the one that checks that the CPU does not use them. Each
channel count and dtype compiles for ~15-20 s on this CPU, so these tests share a few (float64
with 6 channels, float32 with 8)."""

import warnings

import pytest
import torch

from graphlab.aggr import LCMAggregation, lcm
from graphlab.testing import random_graph

_lcm_fused = lcm._lcm_fused  # the kernels' module (private: its state is what is tested)


@pytest.fixture(autouse=True)
def compiled_on_cpu(request, monkeypatch):
    """The compiled kernels on the CPU too (they are what these tests check)."""
    if "eager_on_cpu" not in request.node.name:
        monkeypatch.setattr(_lcm_fused, "pays", lambda device: True)


def _pair(channels: int, dtype: torch.dtype, **kwargs) -> tuple[LCMAggregation, LCMAggregation]:
    """An eager and a fused module with the same parameters (and a non-trivial identity)."""
    eager = LCMAggregation(channels, channels, **kwargs).to(dtype)
    with torch.no_grad():
        eager.identity.normal_()
    fused = LCMAggregation(channels, channels, fused=True, **kwargs).to(dtype)
    fused.load_state_dict(eager.state_dict())
    return eager, fused


@pytest.mark.parametrize("project,order", [(True, "value"), (False, "input")])
def test_fused_matches_eager_and_the_oracle_float64(project, order):
    # degrees 0..1000 in scrambled order: many levels, odd carries, full and partial blocks of
    # pairs (2,048 per block), trailing empty segments
    torch.manual_seed(31)
    eager, fused = _pair(6, torch.float64, project=project, order=order)
    degrees = torch.tensor([0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 100, 0, 1000, 3, 4500])
    index = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    index = index[torch.randperm(index.numel())]
    x = torch.randn(index.numel(), 6, dtype=torch.float64, requires_grad=True)
    dim_size = degrees.numel() + 2
    got, want = fused(x, index, dim_size=dim_size), eager(x, index, dim_size=dim_size)
    assert not _lcm_fused._FAILED, _lcm_fused._FAILED  # it really ran compiled
    assert torch.allclose(got, want, atol=1e-13)  # the eager path: test_lcm's oracle tests
    grad = torch.randn_like(got)
    for g, w in zip(torch.autograd.grad(got, [x, *fused.parameters()], grad),
                    torch.autograd.grad(want, [x, *eager.parameters()], grad)):
        assert torch.allclose(g, w, atol=1e-11)
    # no gradient wanted: the forward pass keeps no gates and gives the same values
    with torch.no_grad():
        assert torch.allclose(fused(x, index, dim_size=dim_size), want, atol=1e-13)


def test_fused_inside_a_compiled_model_and_under_autocast():
    # the tree stays the one graph break of a compiled GIN (the fused kernels are compiled on
    # their own inside it); bf16 autocast runs the tree in float32 as the eager path does
    from torch_geometric.nn import GINConv

    from graphlab.testing.compile import explain_graph_breaks

    torch.manual_seed(32)
    aggr = LCMAggregation(8, 8, fused=True)
    x, index = torch.randn(40, 8), torch.randint(0, 7, (40,))
    _, reasons = explain_graph_breaks(aggr, x, index, dim_size=7)
    assert len(reasons) == 1 and ("_tree" in reasons[0] or "no graph" in reasons[0]), reasons
    conv = GINConv(torch.nn.Linear(8, 8), aggr=LCMAggregation(8, 8, fused=True))
    eager_conv = GINConv(torch.nn.Linear(8, 8), aggr=LCMAggregation(8, 8))
    eager_conv.load_state_dict(conv.state_dict())
    compiled = torch.compile(conv, dynamic=True, backend="aot_eager")
    for n in (9, 23):
        g = random_graph(n, num_edges=4 * n, in_channels=8, seed=n)
        assert torch.allclose(compiled(g.x, g.edge_index), eager_conv(g.x, g.edge_index),
                              atol=1e-5)
    g = random_graph(20, num_edges=80, in_channels=8, seed=13)
    xs = [g.x.clone().requires_grad_(True) for _ in range(2)]
    with torch.autocast("cpu", torch.bfloat16):
        outs = [m(x, g.edge_index) for m, x in zip((conv, eager_conv), xs)]
    assert outs[0].dtype == outs[1].dtype
    assert torch.allclose(outs[0].float(), outs[1].float(), atol=1e-2)
    for out in outs:
        out.float().sum().backward()
    assert torch.allclose(xs[0].grad, xs[1].grad, atol=1e-2)


def test_compilation_failure_warns_once_and_falls_back(monkeypatch):
    # e.g. no C++ compiler: one RuntimeWarning, then the eager path with the same results
    def broken(*args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(_lcm_fused, "_FAILED", [])
    monkeypatch.setattr(_lcm_fused, "_COMPILED", {"forward": broken, "backward": broken})
    torch.manual_seed(33)
    eager, fused = _pair(4, torch.float64)
    index = torch.randint(0, 5, (50,))
    x = torch.randn(50, 4, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        got = fused(x, index, dim_size=5)
    assert torch.allclose(got, eager(x, index, dim_size=5), atol=1e-13)
    assert not _lcm_fused.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.allclose(fused(x, index, dim_size=5), got, atol=1e-13)


def test_fused_repr():
    assert repr(LCMAggregation(8, 6, fused=True)) == (
        "LCMAggregation(8, 6, project=True, combine='gru', identity='learned', order='value', "
        "fused=True)")


def test_fused_runs_eager_on_cpu(monkeypatch):
    # nothing compiled on the CPU, where the eager passes are faster: same bits as eager
    def compiled(*args):
        raise AssertionError("compiled kernel called on the CPU")

    monkeypatch.setattr(_lcm_fused, "run", compiled)
    torch.manual_seed(34)
    eager, fused = _pair(8, torch.float32)
    index = torch.randint(0, 9, (300,))
    x = torch.randn(300, 8, requires_grad=True)
    got, want = fused(x, index, dim_size=9), eager(x, index, dim_size=9)
    assert torch.equal(got, want)
    for g, w in zip(torch.autograd.grad(got.sum(), [x, *fused.parameters()]),
                    torch.autograd.grad(want.sum(), [x, *eager.parameters()])):
        assert torch.equal(g, w)
