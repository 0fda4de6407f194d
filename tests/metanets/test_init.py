"""init_parameters / seeded_module: weights from an explicit generator, global RNG untouched."""

import math

import pytest
import torch
from torch import nn
from torch_geometric.nn import GCNConv, GINConv

from graphlab.metanets import GMN, NeuralGraphEncoder, OpGraphEncoder, init_parameters, to_graph
from graphlab.metanets.corpus import CORPUS, make_mlp
from graphlab.metanets.init import seeded_module


def test_matches_torch_defaults_for_linear_stacks():
    """For Linear stacks, drawing from a generator seeded with s gives exactly the weights that
    torch.manual_seed(s) + construction gives (same distributions, same draw order)."""
    torch.manual_seed(5)
    ref = make_mlp()
    got = make_mlp()
    state = torch.random.get_rng_state()
    init_parameters(got, torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(ref.parameters(), got.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", list(CORPUS))
def test_seeded_module_is_deterministic_and_leaves_global_rng(name):
    state = torch.random.get_rng_state()
    a = seeded_module(CORPUS[name].make, 3)
    b = seeded_module(CORPUS[name].make, torch.Generator().manual_seed(3))
    c = seeded_module(CORPUS[name].make, 4)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_distributions_follow_the_layers():
    m = seeded_module(lambda: nn.Sequential(nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8),
                                            nn.Embedding(7, 5, padding_idx=0),
                                            nn.MultiheadAttention(8, 2), nn.LayerNorm(8)), 0)
    conv, bn, emb, mha, ln = m
    bound = 1 / math.sqrt(4 * 9)
    assert conv.bias.abs().max() <= bound and conv.weight.abs().max() <= bound
    assert torch.equal(bn.weight, torch.ones(8)) and torch.equal(bn.running_var, torch.ones(8))
    assert torch.equal(emb.weight[0], torch.zeros(5)) and emb.weight[1:].std() > 0.5
    assert torch.equal(mha.in_proj_bias, torch.zeros(24))
    assert torch.equal(mha.out_proj.bias, torch.zeros(8))
    assert torch.equal(ln.weight, torch.ones(8)) and torch.equal(ln.bias, torch.zeros(8))


def test_encoders_and_pyg_layers():
    g = to_graph(make_mlp(), view="parameter")
    for make in (lambda: GMN.from_graph(g, 3), lambda: OpGraphEncoder(7, 32, 3),
                 lambda: NeuralGraphEncoder.from_graph(to_graph(make_mlp()), 3),
                 lambda: nn.ModuleList([GCNConv(4, 8), GINConv(nn.Linear(4, 4), train_eps=True)])):
        a, b = seeded_module(make, 1), seeded_module(make, 1)
        for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), k


def test_unknown_parameterised_module_is_refused():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(torch.ones(3))

    with pytest.raises(ValueError, match=r"does not know how to initialise .*Scale.*\['s'\]"):
        init_parameters(nn.Sequential(nn.Linear(3, 3), Scale()), 0)
