"""The conformance suite's first users: PyG's own GINConv and a deliberately broken layer."""

import pytest
import torch
from torch import nn
from torch_geometric.nn import GINConv, global_add_pool
from torch_geometric.nn.models import MLP

from graphlab.testing import CHECKS, LayerCase, check_layer, conformance_params
from graphlab.utils.validation import check_edge_index

CHANNELS = 8


class ValidatedGIN(nn.Module):
    """PyG's GINConv behind graphlab's validation; node- and graph-level outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _SumGINConv(MLP([CHANNELS, 16, 16], norm=None))

    def forward(self, x, edge_index, batch, num_graphs):
        check_edge_index(edge_index, x.size(0))
        h = self.conv(x, edge_index)
        return h, global_add_pool(h, batch, size=num_graphs)


CASES = [
    LayerCase(
        name="pyg-ginconv",
        make_module=ValidatedGIN,
        forward=lambda m, b: m(b.x, b.edge_index, b.batch, b.num_graphs),
        levels=("node", "graph"),
    ),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_pyg_ginconv_conforms(case, check):
    CHECKS[check](case)


class LeakyBatchLayer(nn.Module):
    """Broken on purpose: normalises by the whole batch's mean, so graphs leak into each other."""

    def forward(self, x, edge_index):
        return x - x.mean(dim=0, keepdim=True)


class OrderDependentLayer(nn.Module):
    """Broken on purpose: output depends on node order."""

    def forward(self, x, edge_index):
        return x + torch.arange(x.size(0), dtype=x.dtype).unsqueeze(-1)


def test_suite_catches_batch_leak():
    case = LayerCase(name="leaky", make_module=LeakyBatchLayer, bad_inputs={})
    with pytest.raises(AssertionError, match="batch composition"):
        check_layer(case, ["batch_composition"])


def test_suite_catches_order_dependence():
    case = LayerCase(name="ordered", make_module=OrderDependentLayer, bad_inputs={})
    with pytest.raises(AssertionError, match="permutation"):
        check_layer(case, ["permutation"])


def test_suite_catches_missing_validation():
    case = LayerCase(name="unvalidated", make_module=lambda: GINConv(nn.Identity()))
    with pytest.raises(AssertionError, match="expected ValueError"):
        check_layer(case, ["bad_inputs"])


def test_skip_is_reported():
    case = LayerCase(name="skipper", make_module=ValidatedGIN,
                     forward=lambda m, b: m(b.x, b.edge_index, b.batch, b.num_graphs),
                     levels=("node", "graph"), skip={"compile": "demo reason"})
    report = check_layer(case, ["permutation", "compile"])
    assert report == {"permutation": "ok", "compile": "skipped: demo reason"}


# ------------------------------------------------------------------ compile / autocast / input forms
class _SumGINConv(GINConv):
    """PyG generates ``propagate`` once per class, from the first instance: a ``GINConv`` built
    earlier in the process with an ``Aggregation`` module (as the aggregator tests do) leaves the
    class without the fused sparse path, and a later sum-GIN fails on ``adj_t``. A subclass gets a
    template of its own, so the baseline does not depend on test order."""


class PlainGIN(nn.Module):
    """PyG's GINConv with a readout and no graphlab validation: the baseline for the new checks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _SumGINConv(MLP([CHANNELS, 16, 16], norm=None))

    def forward(self, x, edge_index, batch, num_graphs):
        h = self.conv(x, edge_index)
        return h, global_add_pool(h, batch, size=num_graphs)


PYG_GIN_FULL = LayerCase(
    name="pyg-ginconv-full",
    make_module=PlainGIN,
    forward=lambda m, b: m(b.x, b.edge_index, b.batch, b.num_graphs),
    forward_adj_t=lambda m, b: m(b.x, b.adj_t, b.batch, b.num_graphs),
    forward_bipartite=lambda m, b: m((b.x, b.x), b.edge_index, b.batch, b.num_graphs),
    levels=("node", "graph"),
    bad_inputs={},
    fullgraph=True,
)
NEW_CHECKS = ["autocast", "compile_fullgraph", "recompiles", "adj_t", "bipartite"]


@pytest.mark.parametrize("case,check", conformance_params([PYG_GIN_FULL], NEW_CHECKS))
def test_pyg_ginconv_passes_new_checks(case, check):
    CHECKS[check](case)


def test_inapplicable_checks_are_not_generated():
    ids = [p.id for p in conformance_params(CASES)]
    assert "pyg-ginconv-autocast" in ids and "pyg-ginconv-recompiles" in ids
    assert not any(i.endswith(("-compile_fullgraph", "-adj_t", "-bipartite")) for i in ids)
    report = check_layer(CASES[0], ["adj_t", "compile_fullgraph"])
    assert report["adj_t"].startswith("not applicable")
    assert report["compile_fullgraph"].startswith("not applicable")


def test_compile_checks_are_marked_slow():
    params = {p.id: p for p in conformance_params([PYG_GIN_FULL])}
    for name in ("compile", "compile_fullgraph", "recompiles"):
        assert any(m.name == "slow" for m in params[f"pyg-ginconv-full-{name}"].marks)
    assert not any(m.name == "slow" for m in params["pyg-ginconv-full-autocast"].marks)


class HostSyncLayer(nn.Module):
    """Broken on purpose: a host sync (``.item()``) in forward breaks the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(CHANNELS, 4)

    def forward(self, x, edge_index):
        scale = float(x.abs().max().item()) + 1.0
        return self.lin(x) / scale


def test_suite_catches_graph_break():
    case = LayerCase(name="host-sync", make_module=HostSyncLayer, bad_inputs={}, fullgraph=True)
    with pytest.raises(AssertionError, match="graph break"):
        check_layer(case, ["compile_fullgraph"])


class CallCounter(nn.Module):
    """Broken on purpose: Python state steers the maths, so every call re-specialises the graph
    (what ``if p.item() > 10:`` on a learnable parameter does)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(CHANNELS, 4)
        self.calls = 0

    def forward(self, x, edge_index):
        self.calls += 1
        return self.lin(x) * min(self.calls, 1)  # always 1, but a guard on self.calls


def test_suite_catches_too_many_compiles():
    case = LayerCase(name="call-counter", make_module=CallCounter, bad_inputs={}, max_compiles=2)
    with pytest.raises(AssertionError, match="compiled [3-9] graphs .* max_compiles=2"):
        check_layer(case, ["recompiles"])
    # and graph breaks count as graphs
    case = LayerCase(name="host-sync", make_module=HostSyncLayer, bad_inputs={}, max_compiles=1)
    with pytest.raises(AssertionError, match="max_compiles=1"):
        check_layer(case, ["recompiles"])


class Bf16Overflow(nn.Module):
    """Broken on purpose: exp of a large value is inf in bf16 (matmul output) but not in float32."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(CHANNELS, 4)

    def forward(self, x, edge_index):
        h = self.lin(x)
        if h.dtype == torch.bfloat16:  # what autocast-unsafe code looks like: dtype-blind maths
            return h + float("inf")
        return h


def test_suite_catches_autocast_failure():
    case = LayerCase(name="bf16-overflow", make_module=Bf16Overflow, bad_inputs={})
    with pytest.raises(AssertionError, match="autocast cpu/bfloat16: output 0 is not finite"):
        check_layer(case, ["autocast"])


class DropsAdjT(nn.Module):
    """Broken on purpose: ignores a sparse adjacency (treats the graph as edgeless)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = GINConv(nn.Identity())

    def forward(self, x, edge_index):
        if edge_index.is_sparse or edge_index.layout != torch.strided:
            return x
        return self.conv(x, edge_index)


def test_suite_catches_adj_t_mismatch():
    case = LayerCase(name="drops-adj-t", make_module=DropsAdjT, bad_inputs={},
                     forward_adj_t=lambda m, b: m(b.x, b.adj_t))
    with pytest.raises(AssertionError, match="adj_t"):
        check_layer(case, ["adj_t"])


class IgnoresSource(nn.Module):
    """Broken on purpose: for a pair input, aggregates the target features instead of the source."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = GINConv(nn.Identity())

    def forward(self, x, edge_index):
        if isinstance(x, tuple):
            x = (x[1] * 2, x[1])
        return self.conv(x, edge_index)


def test_suite_catches_bipartite_mismatch():
    case = LayerCase(name="ignores-source", make_module=IgnoresSource, bad_inputs={},
                     forward_bipartite=lambda m, b: m((b.x, b.x), b.edge_index))
    with pytest.raises(AssertionError, match="bipartite"):
        check_layer(case, ["bipartite"])


def test_autocast_opt_out_needs_a_reason_and_is_reported():
    case = LayerCase(name="bf16-overflow", make_module=Bf16Overflow, bad_inputs={},
                     skip={"autocast": "demo: float32-only layer"})
    assert check_layer(case, ["autocast"]) == {"autocast": "skipped: demo: float32-only layer"}
