"""graphlab.testing.compile: graph-break and compile counting helpers."""

import torch
from torch import nn
from torch_geometric.nn import GINConv

from graphlab.testing.compile import (
    CountingBackend,
    count_compiles,
    count_graph_breaks,
    explain_graph_breaks,
)


class TwoBreaks(nn.Module):
    def forward(self, x):
        a = x.sum().item()                  # break 1
        b = x.max().item()                  # break 2
        return x * (a + b)


def test_explain_counts_breaks_and_names_reasons():
    count, reasons = explain_graph_breaks(TwoBreaks(), torch.randn(4, 3))
    assert count == 2 and len(reasons) == 2
    assert all("item" in r.lower() or "scalar" in r.lower() for r in reasons), reasons


def test_no_breaks_for_pyg_ginconv():
    conv = GINConv(nn.Linear(3, 3))
    x, ei = torch.randn(5, 3), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    assert count_graph_breaks(conv, x, ei) == 0


def test_count_compiles_dynamic_vs_static():
    lin = nn.Linear(3, 2)
    inputs = [(torch.randn(n, 3),) for n in (5, 9, 13)]
    assert count_compiles(lin, inputs, dynamic=True) == 1
    # static shapes: the first call compiles a static graph, the second a dynamic one
    assert count_compiles(lin, inputs, dynamic=False) == 3
    assert count_compiles(lin, inputs, dynamic=None) == 2


def test_count_compiles_kwargs_and_custom_call():
    lin = nn.Linear(3, 2)
    items = [((), {"input": torch.randn(n, 3)}) for n in (4, 6)]
    assert count_compiles(lin, items) == 1
    assert count_compiles(lin, [4, 6], call=lambda f, n: f(torch.randn(n, 3))) == 1


def test_counting_backend_counts_each_graph():
    backend = CountingBackend()
    torch._dynamo.reset()
    f = torch.compile(TwoBreaks(), backend=backend)
    f(torch.randn(4, 3))
    torch._dynamo.reset()
    assert backend.graphs >= 2
