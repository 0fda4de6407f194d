"""One dtype policy for every conv (issue 18): int32 indices are refused with the fix, and a
half-precision input to a float32 layer outside autocast names both dtypes."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn.models import MLP

from graphlab.conv import EGNNConv, PathConv, SheafConv, SheafLearner, WeightedGINEConv
from graphlab.testing import random_graph
from graphlab.transforms import AddPaths

G = random_graph(8, in_channels=8, edge_dim=8, pos_dim=3, seed=0)
P = AddPaths(2)(random_graph(8, in_channels=8, seed=1))

CALLS = {
    "EGNNConv": (lambda: EGNNConv(8, 8), lambda m, x, ei: m(x, G.pos.to(x.dtype), ei)),
    "SheafConv": (lambda: SheafConv(4, 2), lambda m, x, ei: m(x, ei)),
    "SheafLearner": (lambda: SheafLearner(8, 2), lambda m, x, ei: m(x, ei)),
    "WeightedGINEConv": (lambda: WeightedGINEConv(MLP([8, 8], norm=None)),
                         lambda m, x, ei: m(x, ei)),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_int32_edge_index_is_refused_with_the_fix(name):
    """Regression: int32 passed validation and crashed later with ``expected scalar type Long``."""
    make, call = CALLS[name]
    msg = r"^edge_index must be torch.int64 \(long\), got torch.int32; call .long\(\)$"
    with pytest.raises(ValueError, match=msg):
        call(make(), G.x, G.edge_index.int())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(CALLS))
def test_half_input_outside_autocast_names_both_dtypes(name, dtype):
    """Regression: float16 input gave ``mat1 and mat2 must have the same dtype``."""
    make, call = CALLS[name]
    with pytest.raises(ValueError, match=rf"x has dtype {dtype} but the layer computes in "
                                         r"torch.float32"):
        call(make(), G.x.to(dtype), G.edge_index)


def test_path_conv_dtype_policy():
    conv = PathConv(8, max_distance=2)
    with pytest.raises(ValueError, match=r"path_index must be torch.int64 \(long\), got "
                                         r"torch.int32; call .long\(\)"):
        conv(P.x, P.path_index_2.int(), path_dist=P.path_dist_2)
    with pytest.raises(ValueError, match="x has dtype torch.float16 but the layer computes in "
                                         "torch.float32"):
        conv(P.x.half(), P.path_index_2, path_dist=P.path_dist_2)
