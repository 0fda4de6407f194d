"""Input handling shared by every aggregator (``graphlab/aggr/_segment.py``), checked through the
public classes: PyG's ``dim_size`` errors, index dtype and value checks, ``ptr``."""

import pytest
import torch
from torch_geometric.nn.aggr import SumAggregation

from graphlab.aggr import GNPAggregation, LCMAggregation, RecurrentAggregation

MAKERS = {
    "gnp": lambda: GNPAggregation(4, p=2.0),
    "lcm": lambda: LCMAggregation(4, 4),
    "recurrent": lambda: RecurrentAggregation(4, 4),
}


@pytest.fixture(params=list(MAKERS))
def aggr(request):
    torch.manual_seed(0)
    return MAKERS[request.param]()


def _pyg_message(call) -> str:
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


def test_dim_size_too_small_is_pyg_error(aggr):
    # issue 17: the same message as PyG's aggregations, through __call__ and forward alike
    x, index = torch.randn(6, 4), torch.tensor([0, 0, 1, 2, 4, 4])
    expected = _pyg_message(lambda: SumAggregation()(x, index, dim_size=3))
    assert expected == "Encountered invalid 'dim_size' (got '3' but expected >= '5')"
    for call in (lambda: aggr(x, index, dim_size=3), lambda: aggr.forward(x, index, dim_size=3)):
        with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            call()


def test_ptr_dim_size_mismatch_is_pyg_error(aggr):
    x, ptr = torch.randn(6, 4), torch.tensor([0, 2, 6])
    expected = _pyg_message(lambda: SumAggregation()(x, ptr=ptr, dim_size=3))
    assert expected == "Encountered invalid 'dim_size' (got '3' but expected '2')"
    for call in (lambda: aggr(x, ptr=ptr, dim_size=3),
                 lambda: aggr.forward(x, ptr=ptr, dim_size=3)):
        with pytest.raises(ValueError, match=r"got '3' but expected '2'"):
            call()


def test_bad_dim_size_index_and_ptr_values(aggr):
    x = torch.randn(6, 4)
    index = torch.tensor([0, 0, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="non-negative int"):
        aggr.forward(x, index, dim_size=-1)
    with pytest.raises(ValueError, match="non-negative"):
        aggr(x, torch.tensor([0, -1, 1, 2, 2, 2]), dim_size=3)
    with pytest.raises(ValueError, match=r"torch.int64 \(long\), got torch.int32; call .long\(\)"):
        aggr(x, index.int(), dim_size=3)
    with pytest.raises(ValueError, match="one per input row"):
        aggr(x, index[:-1], dim_size=3)
    with pytest.raises(ValueError, match="non-decreasing"):
        aggr(x, ptr=torch.tensor([0, 4, 3, 6]))
    with pytest.raises(ValueError, match="two-dimensional"):
        aggr(x.view(6, 2, 2), index)
    with pytest.raises(ValueError, match="first dimension"):
        aggr.forward(x, index, dim=1)


def test_ptr_equals_index_and_larger_dim_size_pads(aggr):
    aggr.eval()
    x = torch.randn(6, 4)
    ptr = torch.tensor([0, 2, 2, 6])
    index = torch.tensor([0, 0, 2, 2, 2, 2])
    with torch.no_grad():
        by_ptr = aggr(x, ptr=ptr)
        by_index = aggr(x, index, dim_size=3)
        padded = aggr(x, index, dim_size=5)
    assert torch.allclose(by_ptr, by_index, atol=1e-6)
    assert torch.allclose(padded[:3], by_index, atol=1e-6)
    assert by_index.shape == (3, by_index.size(1)) and padded.shape == (5, by_index.size(1))
