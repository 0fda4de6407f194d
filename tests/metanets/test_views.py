"""to_graph / graph_to_state_dict / graph_forward over the architecture corpus."""

import math
import time
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphlab.metanets import (
    EDGE_TYPES,
    NODE_TYPES,
    OP_TYPES,
    UnsupportedModuleError,
    graph_forward,
    graph_to_state_dict,
    to_graph,
)
from graphlab.metanets.corpus import CORPUS, resnet18

NAMES = list(CORPUS)


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", NAMES)
def test_graph_forward_equals_module(name):
    arch = CORPUS[name]
    m = arch.build(seed=1)
    g = to_graph(m, arch.input(2, seed=0))
    x = arch.input(4, seed=7)  # another batch size and another draw than the traced input
    with torch.no_grad():
        ref, out = m(x), graph_forward(g, x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < 1e-10


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("view", ["neural", "parameter"])
def test_round_trip_is_exact(name, view):
    arch = CORPUS[name]
    m = arch.build(seed=2)
    g = to_graph(m, arch.input(), view=view)
    assert _state_equal(graph_to_state_dict(g, m), m.state_dict())
    # the inverse reads the graph, not the module: a fresh module of the same class gets the weights
    other = arch.build(seed=3)
    other.load_state_dict(graph_to_state_dict(g, other))
    assert _state_equal(other.state_dict(), m.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_edited_graph_edits_the_network(name):
    arch = CORPUS[name]
    m = arch.build(seed=4)
    x = arch.input(3, seed=1)
    g = to_graph(m, x)
    gen = torch.Generator().manual_seed(0)
    mask = torch.zeros_like(g.edge_attr)  # only weight entries are parameters (not the padding
    for b in g.net.blocks:  # of short kernels, nor structural residual / identity edges)
        tied = g.net.aliases and (b.etype == "embedding" or b.dst_set == g.net.output_set)
        if b.values is not None and not tied:  # tied uses must be edited together: leave them
            mask[b.start:b.start + b.src.numel(), :b.width] = 1
    g.edge_attr = g.edge_attr + 0.01 * mask * torch.randn(g.edge_attr.shape, generator=gen,
                                                          dtype=g.edge_attr.dtype)
    g.x = g.x + 0.01 * torch.rand(g.x.shape, generator=gen, dtype=g.x.dtype)  # var stays > 0
    edited = arch.build(seed=4)
    edited.load_state_dict(graph_to_state_dict(g, edited))
    with torch.no_grad():
        assert (graph_forward(g, x) - edited(x)).abs().max().item() < 1e-10
        assert (edited(x) - m(x)).abs().max().item() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_parameter_view_has_one_edge_per_parameter(name):
    arch = CORPUS[name]
    m = arch.build()
    g = to_graph(m, arch.input(), view="parameter")
    n_params = sum(t.numel() for k, t in m.state_dict().items()
                   if not k.endswith("num_batches_tracked"))
    structural = {EDGE_TYPES.index(t) for t in ("identity", "residual", "attn_qk", "attn_head")}
    is_param = ~torch.isin(g.edge_type, torch.tensor(sorted(structural)))
    assert int(is_param.sum()) == n_params  # a tied weight has one edge per use
    residual = g.edge_type == EDGE_TYPES.index("residual")
    assert bool((g.edge_attr[residual] == 1).all())
    # conv kernels: one edge per kernel tap, tagged with its offset
    conv = g.edge_type == EDGE_TYPES.index("conv")
    if conv.any():
        assert int(g.edge_pos[conv].max()) + 1 == max(
            math.prod(c.kernel_size) for c in m.modules() if isinstance(c, nn.Conv1d | nn.Conv2d))
    assert bool((g.edge_pos[~is_param] == -1).all())


@pytest.mark.parametrize("name", NAMES)
def test_neural_view_layout(name):
    arch = CORPUS[name]
    m = arch.build()
    g = to_graph(m, arch.input())
    count = {t: int((g.edge_type == EDGE_TYPES.index(t)).sum()) for t in EDGE_TYPES}
    convs = [c for c in m.modules() if isinstance(c, nn.Conv1d | nn.Conv2d)]
    # one edge per (in, out) channel pair, block-diagonal for grouped convs
    assert count["conv"] == sum(c.out_channels * c.in_channels // c.groups for c in convs)
    kernel = max([1] + [math.prod(c.kernel_size) for c in convs])
    linears = [mm for n, mm in m.named_modules() if isinstance(mm, nn.Linear)
               and not n.endswith("out_proj")]
    if name == "cnn_bn":  # Linear(6*2*2 -> 5) after Flatten: 6 x 5 edges, each a 4-vector
        assert count["flatten_linear"] == 30
        kernel = max(kernel, 4)
    else:
        assert count["linear"] == sum(mm.weight.numel() for mm in linears)
    assert g.edge_attr.size(1) == kernel
    # input and output neurons carry their index, hidden ones do not
    assert bool((g.io_id[g.node_type == NODE_TYPES.index("input")] >= 0).all())
    assert int((g.io_id >= 0).sum()) == g.net.sets[g.net.input_set].size + \
        g.net.sets[g.net.output_set].size


def test_zero_weights_keep_their_edges():
    arch = CORPUS["mlp"]
    m = arch.build()
    with torch.no_grad():
        m[0].weight[:, ::2] = 0.0  # pruned
    g = to_graph(m, arch.input())
    assert g.num_edges == to_graph(arch.build(), arch.input()).num_edges
    assert int((g.edge_attr == 0).sum()) >= m[0].weight.numel() // 2
    assert _state_equal(graph_to_state_dict(g, m), m.state_dict())


def test_attention_heads_are_encoded_as_heads():
    arch = CORPUS["transformer"]
    m = arch.build()
    g = to_graph(m, arch.input())
    heads, d = m.attn.num_heads, m.attn.embed_dim
    nt = {t: int((g.node_type == NODE_TYPES.index(t)).sum()) for t in NODE_TYPES}
    assert nt["attn_head"] == heads
    assert nt["attn_query"] == nt["attn_key"] == nt["attn_value"] == d
    member = g.edge_index[:, g.edge_type == EDGE_TYPES.index("attn_head")]
    assert member.size(1) == 3 * d  # every q/k/v node hangs off exactly one head node
    assert torch.equal(torch.bincount(member[1], minlength=g.num_nodes).max(), torch.tensor(1))
    per_head = torch.bincount(member[0] - int(member[0].min()))
    assert per_head.tolist() == [3 * d // heads] * heads
    qk = g.edge_index[:, g.edge_type == EDGE_TYPES.index("attn_qk")]
    assert qk.size(1) == d  # query dim i <-> key dim i
    assert bool((g.node_type[qk[0]] == NODE_TYPES.index("attn_query")).all())
    assert bool((g.node_type[qk[1]] == NODE_TYPES.index("attn_key")).all())


def test_weight_tying_is_recorded():
    arch = CORPUS["tied_lm"]
    m = arch.build()
    g = to_graph(m, arch.input())
    assert g.net.aliases == {"head.weight": "emb.weight"}
    emb = g.edge_type == EDGE_TYPES.index("embedding")
    assert int(emb.sum()) == m.emb.weight.numel()
    sd = graph_to_state_dict(g, m)
    assert torch.equal(sd["head.weight"], sd["emb.weight"])


@pytest.mark.parametrize("name", NAMES)
def test_op_view(name):
    arch = CORPUS[name]
    m = arch.build()
    g = to_graph(m, arch.input(), view="op")
    gm = torch.fx.symbolic_trace(m)
    assert g.num_nodes == len(list(gm.graph.nodes))
    assert int(g.node_type[0]) == OP_TYPES.index("input")
    assert int(g.node_type[-1]) == OP_TYPES.index("output")
    # parameters per op (a tied weight counts at each use)
    n_params = sum(p.numel() for n in gm.graph.nodes if n.op == "call_module"
                   for p in gm.get_submodule(n.target).parameters())
    assert abs(float(torch.expm1(g.x[:, 0]).sum()) - n_params) < 1e-6 * n_params
    assert bool((g.edge_index[0] < g.edge_index[1]).all())  # a DAG in topological order
    with pytest.raises(ValueError, match="no weights"):
        graph_to_state_dict(g, m)


def test_resnet18_scale():
    """A ResNet-18-sized CNN converts in seconds; the neural view is sparse."""
    torch.manual_seed(0)
    m = resnet18().eval()
    x = torch.randn(1, 3, 32, 32)
    t0 = time.perf_counter()
    g = to_graph(m, x)
    elapsed = time.perf_counter() - t0
    assert elapsed < 20, elapsed
    convs = [mm for mm in m.modules() if isinstance(mm, nn.Conv2d)]
    n_chan = 3 + sum(c.out_channels for c in convs)
    assert g.num_edges == sum(c.in_channels * c.out_channels for c in convs) + 512 * 10 + \
        int((g.edge_type == EDGE_TYPES.index("identity")).sum()) + \
        int((g.edge_type == EDGE_TYPES.index("residual")).sum())
    assert g.num_edges / g.num_nodes ** 2 < 0.02  # sparse
    assert g.num_nodes > n_chan
    assert g.edge_attr.size(1) == 9
    assert _state_equal(graph_to_state_dict(g, m), m.state_dict())
    op = to_graph(m, x, view="op")
    assert op.num_nodes == len(list(torch.fx.symbolic_trace(m).graph.nodes))


# --------------------------------------------------------------------------- errors / fallback
class _Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        return self.a(x) * self.b(x)


class _Branchy(nn.Module):
    """Data-dependent control flow: fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.l1, self.act, self.l2 = nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)

    def forward(self, x):
        if x.sum() > 1e9:
            return x
        return self.l2(self.act(self.l1(x)))


class _BranchySkip(_Branchy):
    def __init__(self):
        super().__init__()
        self.l2 = nn.Linear(5, 5)
        self.l1 = nn.Linear(5, 5)

    def forward(self, x):
        if x.sum() > 1e9:
            return x
        return x + self.l2(self.act(self.l1(x)))


def test_unsupported_module_names_module_and_type():
    m = nn.Sequential(nn.Linear(4, 4), nn.GRU(4, 4))
    with pytest.raises(UnsupportedModuleError, match=r"'1'.*torch\.nn\.modules\.rnn\.GRU"):
        to_graph(m, torch.randn(2, 4))


def test_unsupported_function_is_named():
    with pytest.raises(UnsupportedModuleError, match="mul"):
        to_graph(_Gated(), torch.randn(2, 4))


def test_bad_arguments():
    m = CORPUS["mlp"].build()
    with pytest.raises(ValueError, match="view"):
        to_graph(m, view="pixels")
    with pytest.raises(ValueError, match="nn.Module"):
        to_graph(lambda x: x)
    g = to_graph(m)
    with pytest.raises(ValueError, match="shape"):
        graph_to_state_dict(g, CORPUS["mlp"].make().double().requires_grad_(False).__class__(
            nn.Linear(5, 9), nn.ReLU(), nn.Linear(9, 8), nn.Tanh(), nn.Linear(8, 3)).double())
    with pytest.raises(ValueError, match="floating"):
        graph_forward(g, torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="dims"):
        graph_forward(g, torch.ones(2, 3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="input channels"):
        graph_forward(g, torch.ones(2, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="neural"):
        graph_forward(to_graph(m, view="parameter"), torch.ones(2, 5, dtype=torch.float64))


def test_fallback_when_tracing_fails():
    torch.manual_seed(0)
    m = _Branchy().double().eval()
    x = torch.randn(4, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match="could not trace _Branchy"):
        g = to_graph(m, x)
    assert g.net.fallback is not None
    with torch.no_grad():
        assert (graph_forward(g, x) - m(x)).abs().max().item() < 1e-12
    assert _state_equal(graph_to_state_dict(g, m), m.state_dict())


def test_fallback_refuses_a_wrong_chain():
    torch.manual_seed(0)
    m = _BranchySkip().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnsupportedModuleError, match="does not reproduce"):
            to_graph(m, torch.randn(4, 5))


class _SignGated(_Branchy):
    """Data-dependent control flow that the example input does not exercise."""

    def forward(self, x):
        h = self.l2(self.act(self.l1(x)))
        if x.mean() > 0:
            return h
        return -h


def test_fallback_is_verified_on_fresh_inputs():
    """Regression (issue 18): the fallback was checked on the example input only (error 0.0
    there, 1.99 on another input); fresh random inputs now expose the hidden branch."""
    m = _SignGated().double().eval()
    x = torch.rand(4, 3, dtype=torch.float64) + 0.1  # positive mean: the branch the chain matches
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnsupportedModuleError, match="on a fresh random input") as err:
            to_graph(m, x)
    assert "max abs error" in str(err.value)
    # the same for integer token inputs: ids are drawn from the embedding's vocabulary
    class _TokenGated(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(10, 4), nn.Linear(4, 2)

        def forward(self, t):
            out = self.fc(self.emb(t))
            return out if bool((t < 5).all()) else 2 * out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnsupportedModuleError, match="fresh random input"):
            to_graph(_TokenGated().eval(), torch.randint(0, 5, (3, 4)))


def test_to_graph_leaves_the_global_rng_alone():
    """Without an example input, to_graph guesses one from a seeded generator."""
    m = CORPUS["mlp"].build()
    state = torch.random.get_rng_state()
    g1, g2 = to_graph(m), to_graph(m)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert g1.net.input_shape == g2.net.input_shape == (2, 5)


def test_functional_ops_and_eval_mode():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(2, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            h = torch.relu(self.bn(self.c(x)))
            h = F.dropout(h * 0.5, 0.3, self.training)
            h = F.max_pool2d(h, 2).mean((2, 3))
            return self.fc(h).sigmoid()

    torch.manual_seed(0)
    m = Net().double()
    m.train()  # conversion always encodes the eval-mode function and restores the mode
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    g = to_graph(m, x)
    assert m.training
    m.eval()
    with torch.no_grad():
        assert (graph_forward(g, x) - m(x)).abs().max().item() < 1e-12


def test_shared_activation_gets_its_own_nodes():
    """An activation whose input is also used elsewhere becomes an identity-linked node set."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2, self.l3 = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)

        def forward(self, x):
            h = self.l1(x)
            a = F.relu(h)
            b = self.l2(a) + h
            return self.l3(2.0 * torch.tanh(b) - 1 + a)

    torch.manual_seed(0)
    m = Net().double().eval()
    x = torch.randn(5, 4, dtype=torch.float64)
    g = to_graph(m, x)
    assert int((g.node_type == NODE_TYPES.index("identity")).sum()) == 6
    with torch.no_grad():
        assert (graph_forward(g, x) - m(x)).abs().max().item() < 1e-12


class _Sine(torch.nn.Module):
    """SIREN's activation sin(w0 x) (Sitzmann et al., 2020), written as INR zoos write it."""

    def __init__(self, w0: float = 1.0) -> None:
        super().__init__()
        self.w0 = w0

    def forward(self, x):
        return torch.sin(self.w0 * x)


def test_siren_traces_with_sine_activation():
    from graphlab.metanets import ACT_TYPES, graph_forward, random_symmetry

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), _Sine(30.0), torch.nn.Linear(8, 8), _Sine(),
                              torch.nn.Linear(8, 1)).double()
    x = torch.rand(16, 2, dtype=torch.float64) * 2 - 1
    g = to_graph(net, x)
    assert g.num_nodes == 2 + 8 + 8 + 1
    hidden = g.node_type == 1
    assert (g.node_act[hidden & (g.io_id < 0)] == ACT_TYPES.index("sine")).all()
    assert (graph_forward(g, x) - net(x)).abs().max() < 1e-12
    assert (random_symmetry(net, 3, x)(x) - net(x)).abs().max() < 1e-12
