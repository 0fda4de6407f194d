"""permutation_spec / random_symmetry: two-sided symmetry tests with negative controls."""

import pytest
import torch

from graphlab.metanets import (
    NODE_TYPES,
    is_automorphism,
    permutation_spec,
    permute_graph_nodes,
    permute_module,
    random_symmetry,
    to_graph,
)
from graphlab.metanets.corpus import CORPUS

NAMES = list(CORPUS)


def _max_diff(a, b, x):
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


def _weights_moved(a, b) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                      b.state_dict().values()))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_symmetry_preserves_function(name, seed):
    arch = CORPUS[name]
    m = arch.build(seed=seed)
    x = arch.input(3, seed=5)
    m2 = random_symmetry(m, seed=seed + 10, example_input=arch.input())
    assert _weights_moved(m, m2)  # a real permutation, not the identity
    assert _max_diff(m, m2, x) < 1e-10
    assert type(m2) is type(m) and m2 is not m


@pytest.mark.parametrize("name", NAMES)
def test_spec_elements_are_automorphisms_and_converter_is_equivariant(name):
    arch = CORPUS[name]
    m = arch.build()
    x = arch.input()
    g = to_graph(m, x)
    spec = permutation_spec(m, x)
    assert spec.contains(spec.identity())
    for seed in range(3):
        perm = spec.sample(seed)
        assert spec.contains(perm)
        assert is_automorphism(g, perm)
        # converting the permuted module gives the relabelled graph (the converter commutes
        # with the symmetry), bit for bit
        g_perm = to_graph(permute_module(m, perm, x), x)
        relabelled = permute_graph_nodes(g, perm)
        for key in ("x", "edge_index", "edge_attr", "edge_type", "node_type", "io_id"):
            assert torch.equal(g_perm[key], relabelled[key]), key


def _group_of(spec, kind):
    return [g for g in spec.groups if kind in g.kinds]


@pytest.mark.parametrize("name", NAMES)
def test_negative_control_inputs_and_outputs(name):
    """Permuting input or output neurons changes the function and is not a symmetry."""
    arch = CORPUS[name]
    m = arch.build()
    x = arch.input()
    g = to_graph(m, x)
    spec = permutation_spec(g)
    xt = arch.input(3, seed=2)
    for sid in (g.net.input_set, g.net.output_set):
        s = g.net.sets[sid]
        perm = torch.arange(g.num_nodes)
        perm[s.start], perm[s.start + 1] = s.start + 1, s.start  # swap two neurons
        assert not spec.contains(perm)
        assert not is_automorphism(g, perm)
        m_perm = permute_module(m, perm, x)
        if _weights_moved(m, m_perm):  # the swap is expressible in this network's weights
            assert _max_diff(m, m_perm, xt) > 1e-6
    # and as functions: f(P x) != f(x) and P f(x) != f(x)
    with torch.no_grad():
        y = m(xt)
        if xt.is_floating_point():
            chan = g.net.input_layout.chan
            x_swap = xt.clone()
            x_swap.select(chan, 0).copy_(xt.select(chan, 1))
            x_swap.select(chan, 1).copy_(xt.select(chan, 0))
        else:
            x_swap = torch.where(xt == 0, 1, torch.where(xt == 1, 0, xt))
        assert (m(x_swap) - y).abs().max().item() > 1e-6
        y_swap = y.clone()
        y_swap[..., [0, 1]] = y[..., [1, 0]]
        assert (y_swap - y).abs().max().item() > 1e-6


@pytest.mark.parametrize("name", ["transformer", "tied_lm"])
def test_negative_control_attention_heads(name):
    arch = CORPUS[name]
    m = arch.build()
    x = arch.input()
    g = to_graph(m, x)
    spec = permutation_spec(g)
    q = next(s for s in g.net.sets if s.kind == "attn_query")
    k = next(s for s in g.net.sets if s.kind == "attn_key")
    v = next(s for s in g.net.sets if s.kind == "attn_value")
    h = next(s for s in g.net.sets if s.kind == "attn_head")
    dh = q.size // h.size
    # swap query/key dim 0 of head 0 with dim 0 of head 1: Q/K stay paired but heads mix
    cross = torch.arange(g.num_nodes)
    for s in (q, k):
        cross[s.start], cross[s.start + dh] = s.start + dh, s.start
    # the same within one head is a real symmetry (the control's positive twin)
    within = torch.arange(g.num_nodes)
    for s in (q, k):
        within[s.start], within[s.start + 1] = s.start + 1, s.start
    # a value dim moved to another head while its queries stay
    v_cross = torch.arange(g.num_nodes)
    v_cross[v.start], v_cross[v.start + dh] = v.start + dh, v.start
    # permuting heads as blocks (Q, K, V and the head node together) is a symmetry
    heads = torch.arange(g.num_nodes)
    for s in (q, k, v):
        heads[s.start:s.start + s.size] = s.start + (torch.arange(s.size) + dh) % s.size
    heads[h.start], heads[h.start + 1] = h.start + 1, h.start
    xt = arch.input(3, seed=9)
    for perm in (cross, v_cross):
        assert not spec.contains(perm)
        assert not is_automorphism(g, perm)
        assert _max_diff(m, permute_module(m, perm, x), xt) > 1e-6
    # Q and K permuted differently within a head also breaks the function
    qk_split = torch.arange(g.num_nodes)
    qk_split[q.start], qk_split[q.start + 1] = q.start + 1, q.start
    assert not spec.contains(qk_split)
    assert not is_automorphism(g, qk_split)
    assert _max_diff(m, permute_module(m, qk_split, x), xt) > 1e-6
    for perm in (within, heads):
        assert spec.contains(perm)
        assert is_automorphism(g, perm)
        assert _max_diff(m, permute_module(m, perm, x), xt) < 1e-10


def test_negative_control_residual_and_groups():
    # ResNet: a block's conv output permuted without the residual stream is not a symmetry
    arch = CORPUS["resnet_block"]
    m = arch.build()
    x = arch.input()
    g = to_graph(m, x)
    spec = permutation_spec(g)
    stream = [grp for grp in spec.groups if len(grp.sets) > 3]
    assert stream, "the residual stream must tie several node sets into one group"
    sid = stream[0].sets[-1]
    s = g.net.sets[sid]
    perm = torch.arange(g.num_nodes)
    perm[s.start], perm[s.start + 1] = s.start + 1, s.start
    assert not spec.contains(perm)
    assert not is_automorphism(g, perm)
    # grouped conv: moving one channel into another group cannot even be written as weights
    arch = CORPUS["grouped_conv"]
    m = arch.build()
    x = arch.input()
    g = to_graph(m, x)
    spec = permutation_spec(g)
    blocked = [grp for grp in spec.groups if grp.num_blocks > 1 and not grp.fixed]
    assert blocked
    grp = blocked[0]
    perm = torch.arange(g.num_nodes)
    half = grp.size // grp.num_blocks
    for start in grp.starts:
        perm[start], perm[start + half] = start + half, start
    assert not spec.contains(perm)
    assert not is_automorphism(g, perm)
    with pytest.raises(ValueError, match="across layers or conv groups"):
        permute_module(m, perm, x)


def test_group_structure():
    spec = permutation_spec(CORPUS["transformer"].build(), CORPUS["transformer"].input())
    kinds = {tuple(g.kinds): g for g in spec.groups}
    qk = kinds[("attn_query", "attn_key")]
    assert qk.num_blocks == 2 and not qk.fixed
    assert kinds[("attn_value",)].family == qk.family == kinds[("attn_head",)].family
    # the residual stream of a block whose output is the network output is fixed
    stream = next(g for g in spec.groups if "sum" in g.kinds)
    assert stream.fixed and "input" in stream.kinds
    ff = next(g for g in spec.groups if g.kinds == ["neuron"] and g.size == 16)
    assert not ff.fixed and ("ff1.weight", 0) in ff.params and ("ff2.weight", 1) in ff.params
    # tied LM: the embedding dim is free (input and output vocabularies are fixed)
    lm = permutation_spec(CORPUS["tied_lm"].build(), CORPUS["tied_lm"].input())
    emb = next(g for g in lm.groups if "embedding" in g.kinds)
    assert not emb.fixed and ("emb.weight", 1) in emb.params
    assert NODE_TYPES.index("attn_head") > 0
    assert "PermutationSpec" in repr(lm)


def test_contains_rejects_malformed():
    spec = permutation_spec(CORPUS["mlp"].build())
    assert not spec.contains(torch.arange(spec.num_nodes - 1))
    assert not spec.contains(torch.zeros(spec.num_nodes, dtype=torch.long))
