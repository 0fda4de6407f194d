"""Metanet symmetry properties shared by GMN (parameter view) and NeuralGraphEncoder (neural view):
invariance under random_symmetry (untrained and after training on a mixed-architecture zoo) and
negative controls (permuted input neurons, mixed attention heads) that must move the embedding."""

import pytest
import torch
from torch_geometric.data import Batch

from graphlab.metanets import (
    GMN,
    NeuralGraphEncoder,
    pad_edge_attr,
    permute_module,
    random_symmetry,
    to_graph,
)
from graphlab.metanets.corpus import CORPUS

METANETS = [(GMN, "parameter"), (NeuralGraphEncoder, "neural")]
IDS = ["gmn", "neural-graph-encoder"]


def _embed(net, modules, x, view):
    graphs = [to_graph(m, x, view=view) for m in modules]
    return net(Batch.from_data_list(graphs))


@pytest.mark.parametrize("name", list(CORPUS))
@pytest.mark.parametrize("metanet,view", METANETS, ids=IDS)
def test_invariant_under_random_symmetry(metanet, view, name):
    arch = CORPUS[name]
    m = arch.build(seed=0, dtype=torch.float32)
    x = arch.input(2, dtype=torch.float32)
    perms = [random_symmetry(m, seed=s, example_input=x) for s in range(2)]
    torch.manual_seed(0)
    net = metanet.from_graph(to_graph(m, x, view=view), 4, hidden_channels=32).eval()
    with torch.no_grad():
        out = _embed(net, [m, *perms], x, view)
    assert (out[1:] - out[0]).abs().max().item() < 1e-5
    assert out.abs().max().item() > 1e-3  # not trivially constant


def _graph(m, x, view):
    g = to_graph(m, x, view=view)
    return pad_edge_attr(g, 9) if view == "neural" else g  # one width for every architecture


@pytest.mark.parametrize("metanet,view", METANETS, ids=IDS)
def test_trained_invariance_and_negative_controls(metanet, view):
    """Train on a mixed-architecture zoo (the whole corpus), then for every architecture: the
    embedding is invariant under random symmetries and moves when input neurons are permuted."""
    f32 = torch.float32
    zoo = [(arch.build(seed=s, dtype=f32), arch.input(2, dtype=f32))
           for arch in CORPUS.values() for s in range(1)]
    with torch.no_grad():  # target: a function-level property (mean |output|)
        y = torch.stack([m(x).abs().mean() for m, x in zoo]).unsqueeze(-1)
    batch = Batch.from_data_list([_graph(m, x, view) for m, x in zoo])
    torch.manual_seed(0)
    net = metanet.from_graph(batch[0], 1, hidden_channels=32, num_layers=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(batch), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]  # it trained
    net.eval()
    for arch in CORPUS.values():
        m, x = arch.build(seed=7, dtype=f32), arch.input(2, dtype=f32)
        perms = [random_symmetry(m, seed=s, example_input=x) for s in (1, 2)]
        with torch.no_grad():
            out = net(Batch.from_data_list([_graph(mm, x, view) for mm in (m, *perms)]))
            assert (out[1:] - out[0]).abs().max().item() < 1e-5, arch.name
        if arch.name in ("mlp", "cnn_bn", "grouped_conv"):
            # negative control: swapping two input neurons changes the network and its embedding
            g = to_graph(m, x)
            s = g.net.sets[g.net.input_set]
            perm = torch.arange(g.num_nodes)
            perm[s.start], perm[s.start + 1] = s.start + 1, s.start
            with torch.no_grad():
                control = net(Batch.from_data_list([_graph(m, x, view),
                                                    _graph(permute_module(m, perm, x), x, view)]))
            assert (control[1] - control[0]).abs().max().item() > 1e-6, arch.name


@pytest.mark.parametrize("metanet,view", METANETS, ids=IDS)
def test_attention_head_control_changes_embedding(metanet, view):
    """Mixing heads is not a symmetry: the embedding moves (by ~1e-4 untrained), while a true
    symmetry leaves it unchanged up to float64 round-off."""
    arch = CORPUS["transformer"]
    m = arch.build(dtype=torch.float64)
    x = arch.input(dtype=torch.float64)
    g = to_graph(m, x)
    q = next(s for s in g.net.sets if s.kind == "attn_query")
    k = next(s for s in g.net.sets if s.kind == "attn_key")
    perm = torch.arange(g.num_nodes)
    for s in (q, k):  # move one query/key dimension into the other head
        perm[s.start], perm[s.start + s.size // 2] = s.start + s.size // 2, s.start
    torch.manual_seed(0)
    net = metanet.from_graph(to_graph(m, x, view=view), 4).double().eval()
    with torch.no_grad():
        out = _embed(net, [m, permute_module(m, perm, x), random_symmetry(m, 3, x)], x, view)
    assert (out[2] - out[0]).abs().max().item() < 1e-12  # a true symmetry: round-off only
    assert (out[1] - out[0]).abs().max().item() > 1e-6
