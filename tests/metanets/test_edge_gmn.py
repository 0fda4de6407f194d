"""EdgeGMN (edge-level GMN head): equivariance under the networks' neuron-permutation symmetries
(the conformance suite runs on it from test_gmn.py) and learning a per-parameter target."""

import pytest
import torch
from torch_geometric.data import Batch

from graphlab.metanets import EdgeGMN, random_symmetry, to_graph
from graphlab.metanets.corpus import CORPUS, make_mlp


def _by_value(graph, out):
    """Edges with a unique value (random weights; ties such as identity edges or unit norm
    weights have no canonical order), sorted by value, with their predictions."""
    v = graph.edge_attr[:, 0]
    _, inv, counts = torch.unique(v, return_inverse=True, return_counts=True)
    uniq = counts[inv] == 1
    order = torch.argsort(v[uniq])
    return v[uniq][order], out[uniq][order]


@pytest.mark.parametrize("name", list(CORPUS))
def test_equivariant_under_random_symmetry(name):
    """A hidden-neuron permutation reorders the parameters; every parameter keeps its
    prediction (float64, so the only difference is round-off)."""
    arch = CORPUS[name]
    m = arch.build(seed=0, dtype=torch.float64)
    x = arch.input(2, dtype=torch.float64)
    mp = random_symmetry(m, seed=1, example_input=x)
    g, gp = to_graph(m, x, view="parameter"), to_graph(mp, x, view="parameter")
    torch.manual_seed(0)
    net = EdgeGMN.from_graph(g, 2, hidden_channels=16).double().eval()
    with torch.no_grad():
        out, out_p = net(Batch.from_data_list([g])), net(Batch.from_data_list([gp]))
    assert out.shape == (g.edge_index.size(1), 2)
    (v, o), (vp, op) = _by_value(g, out), _by_value(gp, out_p)
    assert v.numel() > 10
    torch.testing.assert_close(vp, v, rtol=0, atol=0)
    torch.testing.assert_close(op, o, rtol=1e-9, atol=1e-9)
    assert o.std(0).min() > 1e-4  # edges get different predictions


def test_learns_a_per_edge_target_and_repr():
    """Fits |w| ranks of a few MLPs (a target the input determines) far better than untrained."""
    torch.manual_seed(0)
    graphs = [to_graph(make_mlp((6, 8, 8, 3)), view="parameter") for _ in range(4)]
    batch = Batch.from_data_list(graphs)
    y = batch.edge_attr[:, 0].abs()
    net = EdgeGMN.from_graph(graphs[0], 1, hidden_channels=16, num_layers=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(120):  # 60 steps fit some seeds only; 120 fit every seed tried by > 100x
        loss = torch.nn.functional.mse_loss(net(batch)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert repr(net).startswith("EdgeGMN(0, 16, 1, num_layers=2")
