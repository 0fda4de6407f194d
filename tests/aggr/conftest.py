"""Shared check of the aggregation tests: an aggregation inside stock PyG convolutions."""

from collections.abc import Callable

import pytest
import torch
from torch_geometric.nn import GINConv, GraphConv
from torch_geometric.nn.aggr import Aggregation

from graphlab.testing import random_graph


@pytest.fixture(params=["GraphConv", "GINConv"])
def stock_conv_check(request) -> Callable[[Callable[[], Aggregation], int], None]:
    """``check(make_aggr, seed)``: ``make_aggr()`` (8 channels in and out) serves as the
    ``aggr`` of a stock ``GraphConv`` / ``GINConv``; forward and backward must work."""

    def check(make_aggr: Callable[[], Aggregation], seed: int) -> None:
        torch.manual_seed(seed)
        data = random_graph(12, in_channels=8, seed=seed)
        if request.param == "GraphConv":
            conv = GraphConv(8, 5, aggr=make_aggr())
        else:
            conv = GINConv(torch.nn.Linear(8, 5), aggr=make_aggr())
        out = conv(data.x, data.edge_index)
        assert out.shape == (12, 5) and torch.isfinite(out).all()
        out.sum().backward()
        assert all(p.grad is not None for p in conv.parameters() if p.requires_grad)

    return check


def _composition_gap(aggr: Aggregation, sort: bool, seed: int) -> float:
    """Largest change of node 0's output (the same 3 rows) when the other node of the batch has
    3 or 9 rows. ``sort=False`` puts the other node's rows first (node 0's rows keep their
    order), which only an aggregation accepting unsorted ``index`` can take."""
    gen = torch.Generator().manual_seed(seed)
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


@pytest.fixture
def composition_gap() -> Callable[[Aggregation, bool, int], float]:
    """``composition_gap(aggr, sort, seed)``: see :func:`_composition_gap`."""
    return _composition_gap
