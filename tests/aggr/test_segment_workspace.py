"""The CPU workspace of the tree and recurrent aggregations: held between calls, released on
demand, with the module, or never (``keep_workspace=False``)."""

import copy
import gc
import pickle
import weakref

import pytest
import torch

from graphlab.aggr import LCMAggregation, RecurrentAggregation, lcm

Workspace = lcm.Workspace  # private helper (graphlab/aggr/_segment.py), tested directly here

MODULES = {
    "lcm": lambda keep: LCMAggregation(6, 6, keep_workspace=keep),
    "lstm": lambda keep: RecurrentAggregation(6, 6, keep_workspace=keep),
}


def _call(module, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Output and input gradient of one forward and backward pass on a fixed graph."""
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, 9, (300,), generator=gen)
    x = torch.randn(300, 6, generator=gen, requires_grad=True)
    out = module(x, index, dim_size=10)
    out.pow(2).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("name", MODULES)
def test_release_workspace_frees_and_the_next_call_allocates_again(name):
    torch.manual_seed(41)
    module = MODULES[name](True)
    assert module.workspace_bytes == 0
    first = _call(module)
    held = module.workspace_bytes
    assert held >= 300 * 6 * 4  # at least the rows, in float32
    module.release_workspace()
    assert module.workspace_bytes == 0
    again = _call(module)
    assert module.workspace_bytes == held
    assert all(torch.equal(a, b) for a, b in zip(first, again))


@pytest.mark.parametrize("name", MODULES)
def test_keep_workspace_false_holds_nothing_and_computes_the_same(name):
    torch.manual_seed(42)
    kept, fresh = MODULES[name](True), MODULES[name](False)
    fresh.load_state_dict(kept.state_dict())
    for seed in (0, 1):
        assert all(torch.equal(a, b) for a, b in zip(_call(kept, seed), _call(fresh, seed)))
        assert fresh.workspace_bytes == 0 and kept.workspace_bytes > 0
    # the choice survives copies and pickles (which start with an empty workspace)
    for clone in (copy.deepcopy(fresh), pickle.loads(pickle.dumps(fresh))):
        assert not clone._workspace.keep and clone.workspace_bytes == 0
    assert pickle.loads(pickle.dumps(kept))._workspace.keep


@pytest.mark.parametrize("name", MODULES)
def test_workspace_is_freed_with_its_module(name):
    # no reference cycle keeps the buffers alive once the module and its outputs are gone
    module = MODULES[name](True)
    _call(module)
    buffers = [weakref.ref(b) for b in module._workspace._buffers.values()]
    assert buffers
    del module
    gc.collect()
    assert all(ref() is None for ref in buffers)


def test_release_under_a_live_graph_keeps_its_buffers_valid():
    # releasing drops only the workspace's reference: a pending backward still sees its data
    torch.manual_seed(43)
    module = LCMAggregation(6, 6).double()
    twin = copy.deepcopy(module)
    index = torch.randint(0, 5, (80,))
    x = torch.randn(80, 6, dtype=torch.float64, requires_grad=True)
    out = module(x, index, dim_size=5)
    module.release_workspace()
    other = torch.randn(120, 6, dtype=torch.float64)
    module(other, torch.randint(0, 7, (120,)), dim_size=7)  # new buffers, filled meanwhile
    got = torch.autograd.grad(out.sum(), x)[0]
    want = torch.autograd.grad(twin(x, index, dim_size=5).sum(), x)[0]
    assert torch.equal(got, want)


def test_workspace_hands_out_the_same_buffer_only_when_unused():
    ws = Workspace()
    like = torch.empty(0)
    a = ws.empty("a", 10, 3, like)
    assert a.shape == (10, 3) and ws.nbytes == 10 * 3 * 4
    del a
    b = ws.empty("a", 8, 3, like)  # smaller: a view of the same storage
    held = b
    c = ws.empty("a", 8, 3, like)  # b still alive: a new buffer
    assert c.untyped_storage().data_ptr() != held.untyped_storage().data_ptr()
    assert Workspace(keep=False).empty("a", 4, 2, like).shape == (4, 2)
    off = Workspace(keep=False)
    off.empty("a", 4, 2, like)
    assert off.nbytes == 0


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("training", [True, False])
def test_buffers_are_reused_while_a_loop_still_holds_the_previous_loss(name, training):
    # `loss = ...; loss.backward()` keeps the last graph alive into the next forward pass: once
    # that graph ran backward, the tree's buffers must be free again (saved for backward, not
    # kept as attributes), or every step would map and page-fault them afresh
    torch.manual_seed(44)
    module = MODULES[name](True).train(training)
    index = torch.randint(0, 9, (300,))
    x = torch.randn(300, 6, requires_grad=True)
    loss = module(x, index, dim_size=10).pow(2).sum()
    loss.backward()
    before = dict(module._workspace._buffers)  # the same tensor objects: no extra storage ref
    loss = module(x, index, dim_size=10).pow(2).sum()  # the previous loss is still alive here
    loss.backward()
    after = module._workspace._buffers
    assert before and before.keys() == after.keys()
    assert all(after[name] is buffer for name, buffer in before.items())


def test_a_retained_graph_runs_backward_twice_with_the_same_gradients():
    torch.manual_seed(45)
    module = LCMAggregation(6, 6).double()
    index = torch.randint(0, 7, (90,))
    x = torch.randn(90, 6, dtype=torch.float64, requires_grad=True)
    out = module(x, index, dim_size=8).pow(2).sum()
    first = torch.autograd.grad(out, [x, module.gru.weight], retain_graph=True)
    second = torch.autograd.grad(out, [x, module.gru.weight])
    assert all(torch.equal(a, b) for a, b in zip(first, second))
