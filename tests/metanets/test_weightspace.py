"""WeightSpace (flat parameter batches of one architecture), sign-flip symmetries, and the
weight-space baselines (flat MLP, NFN from the authors' package)."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch

from graphlab.metanets import to_graph, weight_statistics
from graphlab.metanets.baselines import FlatMLP, NFNClassifier, nfn_available
from graphlab.metanets.symmetry import flip_graph_signs, random_symmetry, sign_flip_nodes
from graphlab.metanets.weightspace import WeightSpace


class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x)


def siren(seed: int, width: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, width), Sine(), nn.Linear(width, width), Sine(),
                         nn.Linear(width, 1)).double()


X = torch.rand(32, 2, dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("view", ["neural", "parameter"])
def test_graphs_equal_to_graph(view):
    nets = [siren(s) for s in range(3)]
    ws = WeightSpace(nets[0], X[:2])
    flat = ws.flatten(nets).double()
    got = ws.graphs(flat, view)
    ref = Batch.from_data_list([to_graph(n, X[:2], view=view) for n in nets])
    for key in ("edge_index", "edge_type", "node_type", "io_id", "layer", "node_act", "batch"):
        assert torch.equal(getattr(got, key), getattr(ref, key)), key
    for key in ("edge_attr", "x"):
        if getattr(ref, key, None) is not None:
            assert torch.equal(getattr(got, key), getattr(ref, key)), key  # exact copies


def test_flatten_state_dict_roundtrip_and_statistics():
    nets = [siren(s) for s in range(4)]
    ws = WeightSpace(nets[0])
    flat = ws.flatten(nets)
    assert flat.shape == (4, ws.num_params) == (4, 2 * 6 + 6 + 36 + 6 + 6 + 1)
    back = siren(9)
    back.load_state_dict({k: v.double() for k, v in ws.state_dict(flat[2]).items()})
    assert torch.allclose(back(X), nets[2](X), atol=1e-5)
    ref = torch.stack([weight_statistics({k: v.float() for k, v in n.state_dict().items()})
                       for n in nets])
    assert torch.allclose(ws.statistics(flat), ref, atol=1e-6)


def test_symmetries_preserve_the_function_and_move_the_weights():
    nets = [siren(s) for s in range(3)]
    ws = WeightSpace(nets[0], X[:2])
    flat = ws.flatten(nets).double()
    index, sign = ws.symmetries(6, seed=1)
    assert torch.equal(index[0], torch.arange(ws.num_params)) and bool((sign[0] == 1).all())
    assert bool((sign[1:] == -1).any())  # sine is odd: sign flips are drawn
    twins = ws.augment(flat, torch.Generator().manual_seed(0), (index, sign))
    moved = 0
    for row, twin, net in zip(flat, twins, nets):
        m = siren(0)
        m.load_state_dict(ws.state_dict(twin))
        assert (m(X) - net(X)).abs().max() < 1e-12
        moved += int(not torch.equal(row, twin))
    assert moved >= 1


def test_sign_flips_only_where_the_activation_is_odd():
    relu = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 1)).double()
    g = to_graph(relu, X[:2])
    assert not sign_flip_nodes(g).any()
    g = to_graph(siren(0), X[:2])
    mask = sign_flip_nodes(g)
    assert int(mask.sum()) == 12 and not mask[g.io_id >= 0].any()
    # negative control: flipping an output neuron changes the function
    sign = torch.ones(g.num_nodes)
    sign[g.num_nodes - 1] = -1
    from graphlab.metanets import graph_forward

    assert (graph_forward(flip_graph_signs(g, sign), X) + siren(0)(X)).abs().max() < 1e-12
    for seed in range(3):
        twin = random_symmetry(siren(0), seed, X[:2], signs=True)
        assert (twin(X) - siren(0)(X)).abs().max() < 1e-12


def test_bad_inputs():
    ws = WeightSpace(siren(0))
    with pytest.raises(ValueError, match=r"\[B, 67\]"):
        ws.graphs(torch.zeros(2, 60))
    with pytest.raises(ValueError, match="view"):
        ws.graphs(torch.zeros(1, 67), view="op")
    with pytest.raises(ValueError, match="lacks parameter"):
        ws.flatten([{"0.weight": torch.zeros(6, 2)}])
    with pytest.raises(ValueError, match="num"):
        ws.symmetries(0)
    cnn = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 1))
    with pytest.raises(ValueError, match="MLP"):
        WeightSpace(cnn, torch.randn(2, 1, 8)).layers(torch.zeros(1, 2 * 3 + 2 + 12 + 1))


def test_flat_mlp_contract():
    m = FlatMLP(61, 16, 10, 3, dropout=0.1)
    assert m(torch.randn(4, 61)).shape == (4, 10)
    assert repr(m) == "FlatMLP(61, 16, 10, num_layers=3)"
    with pytest.raises(ValueError, match="expected flat"):
        m(torch.randn(4, 60))
    with pytest.raises(ValueError):
        FlatMLP(61, 16, 10, 1)


@pytest.mark.skipif(nfn_available() is not None, reason=str(nfn_available()))
@pytest.mark.parametrize("mode", ["hnp", "np"])
def test_nfn_classifier_is_invariant_float64(mode):
    """NFN's own layers on our WeightSpace layout: invariant to the SIREN's symmetries."""
    nets = [siren(s) for s in range(3)]
    ws = WeightSpace(nets[0], X[:2])
    flat = ws.flatten(nets).double()
    torch.manual_seed(0)
    model = NFNClassifier(ws, 8, 10, 2, mode=mode).double().eval()
    index, sign = ws.symmetries(4, seed=2, signs=False)
    out = model(flat)
    assert out.shape == (3, 10)
    for k in range(1, 4):
        twin = flat[:, index[k]] * sign[k].double()
        assert (model(twin) - out).abs().max() < 1e-10
    assert "mode='" + mode in repr(model)


@pytest.mark.parametrize("view", ["neural", "parameter"])
def test_probe_features_are_the_neurons_activations(view):
    """Probe features follow the neurons: a symmetric twin's probe features are the original's,
    permuted and sign-flipped like its neurons; the output node's features are the outputs."""
    nets = [siren(s) for s in range(2)]
    ws = WeightSpace(nets[0], X[:2])
    flat = ws.flatten(nets).double()
    probe = X[:5]
    acts = ws.activations(flat, probe)
    assert acts.shape == (2, 2 + 6 + 6 + 1, 5)
    assert torch.allclose(acts[:, -1], torch.stack([n(probe)[:, 0] for n in nets]))
    assert torch.equal(acts[:, :2], probe.T.expand(2, -1, -1))
    g = ws.graphs(flat, view, probe=probe)
    base = ws.graphs(flat, view)
    width = 0 if getattr(base, "x", None) is None else base.x.size(1)
    assert g.x.size(1) == width + 5
    # sorted multisets of |activation| per layer are invariant to the symmetries
    index, sign = ws.symmetries(3, seed=4)
    twin = ws.activations(flat[:, index[2]] * sign[2].double(), probe)
    assert torch.allclose(twin.abs().sort(1).values, acts.abs().sort(1).values)


def test_probe_stats_standardise_per_orbit_and_keep_the_symmetries():
    """probe_stats: input/output neurons get their own mean and std, a hidden layer one shared
    RMS and no shift, so the standardised features of a symmetric twin are the original's,
    permuted and sign-flipped like its neurons."""
    nets = [siren(s) for s in range(8)]
    ws = WeightSpace(nets[0], X[:2])
    flat = ws.flatten(nets).double()
    probe = X[:5]
    mean, std = ws.probe_stats(flat, probe)
    assert mean.shape == std.shape == (2 + 6 + 6 + 1, 5)
    z = (ws.activations(flat, probe) - mean) / std
    # the output neuron: standardised per position
    assert torch.allclose(z[:, -1].mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(z[:, -1].std(0), torch.ones(5, dtype=torch.float64))
    assert torch.equal(mean[2:14], torch.zeros(12, 5, dtype=torch.float64))  # hidden: no shift
    for a, b in ((2, 8), (8, 14)):  # one RMS per hidden layer and probe point
        assert torch.allclose(z[:, a:b].pow(2).mean((0, 1)), torch.ones(5, dtype=torch.float64))
        assert torch.equal(std[a:b], std[a].expand(b - a, -1))
    assert z[:, :2].abs().max() < 1e-12 and torch.equal(std[:2], torch.ones(2, 5, dtype=torch.float64))
    index, sign = ws.symmetries(3, seed=1)
    twin = flat[:, index[2]] * sign[2].double()
    g, gt = (ws.graphs(f, "neural", probe=probe, probe_stats=(mean, std)) for f in (flat, twin))
    assert torch.allclose(g.x[:, -5:].abs().reshape(8, 15, 5).sort(1).values,
                          gt.x[:, -5:].abs().reshape(8, 15, 5).sort(1).values)
    assert torch.allclose(g.x[14::15, -5:], gt.x[14::15, -5:])  # the output node is invariant
    with pytest.raises(ValueError, match="at least 2"):
        ws.probe_stats(flat[:1], probe)
