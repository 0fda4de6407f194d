from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch

from graphlab.conv import PathConv
from graphlab.conv.path_conv import lstm_unrolled, lstm_weights
from graphlab.testing import CHECKS, FEATURE_MUTATIONS, LayerCase, conformance_params, random_graph
from graphlab.testing.compile import count_graph_breaks
from graphlab.transforms import AddPaths

LENGTH = 2


def _bad_path_range(b: Batch) -> Batch:
    b.path_index_2 = b.path_index_2.clone()
    b.path_index_2[0, 0] = b.num_nodes + 3
    return b


def _bad_path_shape(b: Batch) -> Batch:
    b.path_index_2 = b.path_index_2[:, 0]
    return b


def _bad_path_dtype(b: Batch) -> Batch:
    b.path_index_2 = b.path_index_2.float()
    return b


def _bad_path_edge(b: Batch) -> Batch:
    b.path_edge_2 = b.path_edge_2.clone()
    b.path_edge_2[0, 0] = b.edge_index.size(1) + 1
    return b


def _bad_path_dist(b: Batch) -> Batch:
    b.path_dist_2 = b.path_dist_2[:, :1]
    return b


PATH_MUTATIONS = {"path_index_out_of_range": _bad_path_range,
                  "path_index_wrong_shape": _bad_path_shape,
                  "path_index_float": _bad_path_dtype,
                  "path_edge_out_of_range": _bad_path_edge,
                  "path_dist_wrong_shape": _bad_path_dist,
                  **FEATURE_MUTATIONS}


def _forward(m, b):
    return m(b.x, b.path_index_2, b.edge_attr, b.path_edge_2, b.path_dist_2)


def _graph(seed: int):
    return random_graph(6 + seed % 4, in_channels=8, edge_dim=3, seed=seed)


CASES = [
    LayerCase(name=f"path_conv_{kind}",
              make_module=lambda: PathConv(8, edge_dim=3, max_distance=LENGTH),
              forward=_forward, levels=("node",), make_graph=_graph,
              transform=AddPaths(LENGTH, kind=kind), grad_inputs=("x", "edge_attr"),
              bad_inputs=PATH_MUTATIONS, fullgraph=True)
    for kind in ("shortest", "all_shortest", "all_simple")
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_matches_per_path_loop():
    """Reference: run the LSTM on every path separately and sum at the last node."""
    torch.manual_seed(0)
    conv = PathConv(8, edge_dim=3, max_distance=3, mlp_layers=1).eval()
    g = AddPaths(3)(random_graph(7, edge_dim=3, seed=4))
    for length in (1, 2, 3):
        index, edge, dist = g[f"path_index_{length}"], g[f"path_edge_{length}"], \
            g[f"path_dist_{length}"]
        agg = torch.zeros_like(g.x)
        for p, e, d in zip(index, edge, dist):
            steps = []
            for i in range(length + 1):
                ef = torch.zeros(3) if i == 0 else g.edge_attr[e[i - 1]]
                steps.append(torch.cat([g.x[p[i]], ef, conv.distance_embedding.weight[d[i]]]))
            _, (h, _) = conv.encoder(torch.stack(steps)[None])
            agg[p[-1]] += h[-1, 0]
        expected = conv.mlp(conv.norm(g.x + agg))
        out = conv(g.x, index, g.edge_attr, edge, dist)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_shared_encoder_and_options():
    lstm = nn.LSTM(16, 16, batch_first=True)
    a, b = PathConv(16, encoder=lstm), PathConv(16, encoder=lstm)
    assert a.encoder is b.encoder
    with pytest.raises(ValueError, match="encoder"):
        PathConv(16, edge_dim=4, encoder=lstm)
    g = AddPaths(1, distance_encoding=False)(random_graph(5, in_channels=16, seed=0))
    out = PathConv(16, norm=False, mlp_layers=0)(g.x, g.path_index_1)
    assert out.shape == (5, 16) and bool((out >= 0).all())
    with pytest.raises(ValueError, match="path_dist"):
        PathConv(16, max_distance=2)(g.x, g.path_index_1)
    with pytest.raises(ValueError, match="edge_attr"):
        PathConv(16, edge_dim=2)(g.x, g.path_index_1)
    assert repr(a) == "PathConv(16, edge_dim=None, max_distance=None)"


# ------------------------------------------------------------------ compile / mixed precision
@pytest.mark.parametrize("layers,bias", [(1, True), (2, False), (3, True)])
def test_unrolled_lstm_equals_nn_lstm(layers, bias):
    torch.manual_seed(layers)
    lstm = nn.LSTM(5, 7, num_layers=layers, bias=bias, batch_first=True, dropout=0.3).eval()
    seq = torch.randn(11, 4, 5, dtype=torch.float64)
    lstm = lstm.double()
    _, (h, _) = lstm(seq)
    torch.testing.assert_close(lstm_unrolled(lstm_weights(lstm), seq), h[-1])
    assert lstm_unrolled(lstm_weights(lstm), seq[:0]).shape == (0, 7)


def test_compiles_without_graph_breaks():
    """Regression (issue 17): dynamo does not trace nn.LSTM, so PathConv broke its graph twice."""
    torch.manual_seed(0)
    conv = PathConv(8, edge_dim=3, max_distance=LENGTH).eval()
    g = AddPaths(LENGTH)(random_graph(8, edge_dim=3, seed=1))
    args = (g.x, g.path_index_2, g.edge_attr, g.path_edge_2, g.path_dist_2)
    assert count_graph_breaks(conv, *args) == 0
    compiled = torch.compile(conv, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args), conv(*args), atol=1e-5, rtol=1e-5)
    torch._dynamo.reset()


def test_bf16_autocast_runs_the_encoder_in_float32():
    """Regression (issue 17): oneDNN could not create a bf16 LSTM primitive under autocast."""
    torch.manual_seed(0)
    conv = PathConv(8, edge_dim=3, max_distance=LENGTH).eval()
    g = AddPaths(LENGTH)(random_graph(8, edge_dim=3, seed=2))
    args = (g.x, g.path_index_2, g.edge_attr, g.path_edge_2, g.path_dist_2)
    ref = conv(*args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(*args)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)


def test_compiled_encoder_follows_dtype_conversion_and_copies():
    """The unrolled encoder reads the LSTM's parameters from a list: .double() and deepcopy keep
    it pointing at the module's current parameters."""
    import copy

    torch.manual_seed(0)
    conv = PathConv(8, max_distance=LENGTH, mlp_layers=1).eval()
    g = AddPaths(LENGTH)(random_graph(7, seed=3))
    conv64 = copy.deepcopy(conv).double()
    assert conv64._unroll[0][0] is conv64.encoder.weight_ih_l0
    assert conv64._unroll[0][0] is not conv._unroll[0][0]
    args = (g.x.double(), g.path_index_2, None, None, g.path_dist_2)
    compiled = torch.compile(conv64, fullgraph=True, backend="aot_eager")
    out = compiled(*args)
    torch._dynamo.reset()
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, conv64(*args))


def test_norm_takes_resolver_names_and_keeps_the_former_flag():
    """``norm`` goes through PyG's normalization_resolver like the other models' norms; the
    former ``True`` / ``False`` flag still builds ``nn.BatchNorm1d`` (same state-dict keys as
    older checkpoints) / no norm."""
    from torch_geometric.nn.norm import BatchNorm, LayerNorm

    assert isinstance(PathConv(16).norm, nn.BatchNorm1d)
    assert "norm.running_mean" in PathConv(16, norm=True).state_dict()
    assert isinstance(PathConv(16, norm=False).norm, nn.Identity)
    assert isinstance(PathConv(16, norm=None).norm, nn.Identity)
    assert isinstance(PathConv(16, norm="batch_norm").norm, BatchNorm)
    layer = PathConv(16, norm="layer_norm", norm_kwargs={"mode": "node"}, mlp_layers=0)
    assert isinstance(layer.norm, LayerNorm)
    g = AddPaths(LENGTH)(random_graph(7, in_channels=16, seed=0))
    with torch.no_grad():
        torch.testing.assert_close(layer(g.x, g.path_index_1),
                                   torch.relu(layer.norm(g.x + _path_sum(layer, g))))
    for per_graph in ("graph_norm", "layer_norm", "instance_norm"):
        with pytest.raises(ValueError, match="per graph"):
            PathConv(16, norm=per_graph)


def _path_sum(layer: PathConv, g) -> torch.Tensor:
    """The sum over paths of the encoded paths, aggregated at their last node."""
    enc = layer.encode(g.x, g.path_index_1)
    return torch.zeros_like(g.x).index_add_(0, g.path_index_1[:, -1], enc)
