"""graph_forward: inputs are checked against the graph's input layer."""

import pytest
import torch
from torch import nn

from graphlab.metanets import graph_forward, to_graph
from graphlab.metanets.corpus import CORPUS


def test_input_width_is_checked():
    """Regression (issue 18): a 7-wide input to a 4-input network silently used x[:, :4]."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
    g = to_graph(m, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"x has 7 input channels.*\[2, 7\].*input layer has 4"):
        graph_forward(g, torch.randn(2, 7))
    with pytest.raises(ValueError, match="input layer has 4"):
        graph_forward(g, torch.randn(2, 3))
    x = torch.randn(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(graph_forward(g, x), m(x))


def test_conv_input_channels_are_checked():
    arch = CORPUS["cnn_bn"]
    m, x = arch.build(), arch.input()
    g = to_graph(m, x)
    bad = torch.randn(x.size(0), x.size(1) + 1, *x.shape[2:], dtype=x.dtype)
    with pytest.raises(ValueError, match=rf"{x.size(1) + 1} input channels \(dim 1.*has {x.size(1)}"):
        graph_forward(g, bad)
    # a sequence model: the feature dim is last
    arch = CORPUS["transformer"]
    m, x = arch.build(), arch.input()
    g = to_graph(m, x)
    with pytest.raises(ValueError, match="input channels"):
        graph_forward(g, torch.cat([x, x], dim=-1))


def test_token_ids_are_checked():
    arch = CORPUS["tied_lm"]
    m, x = arch.build(), arch.input()
    g = to_graph(m, x)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 11\)"):
        graph_forward(g, torch.full_like(x, 11))
    with pytest.raises(ValueError, match="integer token ids"):
        graph_forward(g, x.double())
    with torch.no_grad():
        torch.testing.assert_close(graph_forward(g, x), m(x))


def test_dtype_mismatch_names_both_dtypes():
    arch = CORPUS["mlp"]
    m, x = arch.build(), arch.input()  # float64
    g = to_graph(m, x)
    with pytest.raises(ValueError, match=r"x is torch.float32 but the graph's weights are "
                                         r"torch.float64"):
        graph_forward(g, x.float())
