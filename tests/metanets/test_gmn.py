"""GMN: conformance suite, invariance under random_symmetry (untrained and trained), controls."""

import pytest
import torch
from torch_geometric.data import Batch

from graphlab.metanets import (
    GMN,
    pad_edge_attr,
    permute_module,
    random_symmetry,
    to_graph,
)
from graphlab.metanets.corpus import CORPUS, make_mlp
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    LayerCase,
    conformance_params,
)

VIEW = "parameter"
NODE_ATTRS = ("node_type", "layer", "io_id", "node_act")
EDGE_ATTRS = ("edge_attr", "edge_type", "edge_layer", "edge_pos")


def _mlp_graph(seed: int):
    torch.manual_seed(seed)
    widths = (3, 4 + seed % 3, 5, 2)
    return to_graph(make_mlp(widths), view=VIEW)


def _bad_node_type(b):
    b.node_type = b.node_type.clone()
    b.node_type[0] = 999
    return b


def _bad_edge_attr(b):
    b.edge_attr = b.edge_attr[:-1]
    return b


CASES = [LayerCase(
    name="gmn",
    make_module=lambda: GMN(out_channels=3, hidden_channels=16, num_layers=2, edge_dim=1),
    forward=lambda m, b: m(b),
    levels=("graph",),
    make_graph=_mlp_graph,
    node_attrs=NODE_ATTRS,
    edge_attrs=EDGE_ATTRS,
    grad_inputs=("edge_attr",),
    bad_inputs={**EDGE_INDEX_MUTATIONS,
                "node_type_out_of_range": _bad_node_type, "edge_attr_rows": _bad_edge_attr},
)]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def _embed(net, modules, x):
    graphs = [to_graph(m, x, view=VIEW) for m in modules]
    return net(Batch.from_data_list(graphs))


@pytest.mark.parametrize("name", list(CORPUS))
def test_invariant_under_random_symmetry(name):
    arch = CORPUS[name]
    m = arch.build(seed=0, dtype=torch.float32)
    x = arch.input(2, dtype=torch.float32)
    perms = [random_symmetry(m, seed=s, example_input=x) for s in range(2)]
    torch.manual_seed(0)
    net = GMN.from_graph(to_graph(m, x, view=VIEW), 4, hidden_channels=32).eval()
    with torch.no_grad():
        out = _embed(net, [m, *perms], x)
    assert (out[1:] - out[0]).abs().max().item() < 1e-5
    assert out.abs().max().item() > 1e-3  # not trivially constant


def _graph(m, x):
    g = to_graph(m, x, view=VIEW)
    return pad_edge_attr(g, 9) if VIEW == "neural" else g  # one width for every architecture


def test_trained_invariance_and_negative_controls():
    """Train on a mixed-architecture zoo (the whole corpus), then for every architecture: the
    embedding is invariant under random symmetries and moves when input neurons are permuted."""
    f32 = torch.float32
    zoo = [(arch.build(seed=s, dtype=f32), arch.input(2, dtype=f32))
           for arch in CORPUS.values() for s in range(1)]
    with torch.no_grad():  # target: a function-level property (mean |output|)
        y = torch.stack([m(x).abs().mean() for m, x in zoo]).unsqueeze(-1)
    batch = Batch.from_data_list([_graph(m, x) for m, x in zoo])
    torch.manual_seed(0)
    net = GMN.from_graph(batch[0], 1, hidden_channels=32, num_layers=2)
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
            out = net(Batch.from_data_list([_graph(mm, x) for mm in (m, *perms)]))
            assert (out[1:] - out[0]).abs().max().item() < 1e-5, arch.name
        if arch.name in ("mlp", "cnn_bn", "grouped_conv"):
            # negative control: swapping two input neurons changes the network and its embedding
            g = to_graph(m, x)
            s = g.net.sets[g.net.input_set]
            perm = torch.arange(g.num_nodes)
            perm[s.start], perm[s.start + 1] = s.start + 1, s.start
            with torch.no_grad():
                control = net(Batch.from_data_list([_graph(m, x),
                                                    _graph(permute_module(m, perm, x), x)]))
            assert (control[1] - control[0]).abs().max().item() > 1e-6, arch.name


def test_attention_head_control_changes_embedding():
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
    net = GMN.from_graph(to_graph(m, x, view=VIEW), 4).double().eval()
    with torch.no_grad():
        out = _embed(net, [m, permute_module(m, perm, x), random_symmetry(m, 3, x)], x)
    assert (out[2] - out[0]).abs().max().item() < 1e-12  # a true symmetry: round-off only
    assert (out[1] - out[0]).abs().max().item() > 1e-6


def test_from_graph_and_repr():
    g = to_graph(CORPUS["cnn_bn"].build(dtype=torch.float32), CORPUS["cnn_bn"].input(
        dtype=torch.float32), view=VIEW)
    net = GMN.from_graph(g, 7)
    assert net.edge_dim == 1 and net.x_dim == 0 and net.use_pos
    assert net(Batch.from_data_list([g])).shape == (1, 7)
    assert "GMN(7" in repr(net)
    # also runs on neural-view graphs (vector edges, float node features)
    gn = to_graph(CORPUS["cnn_bn"].build(dtype=torch.float32),
                  CORPUS["cnn_bn"].input(dtype=torch.float32))
    net_n = GMN.from_graph(gn, 2)
    assert net_n.edge_dim == 9 and net_n.x_dim == 4 and not net_n.use_pos
    assert net_n(Batch.from_data_list([gn, gn])).shape == (2, 2)
