"""SheafLearner: shapes, both sides of an edge from one directed edge, validation, conformance."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import to_edge_index

from graphlab.conv import SheafLearner
from graphlab.nn.orthogonal import orthogonal_from_params
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)
from graphlab.testing.graphs import adjacency_forms

SHAPES = {"diag": (2, 3), "orthogonal": (2, 3, 3), "general": (2, 3, 3)}


@pytest.mark.parametrize("maps", list(SHAPES))
def test_shapes_and_swapped_sides_on_reverse_edges(maps):
    torch.manual_seed(0)
    g = random_graph(10, in_channels=6, seed=1)
    learner = SheafLearner(6, 3, maps)
    out = learner(g.x, g.edge_index)
    assert out.shape == (g.edge_index.size(1), *SHAPES[maps])
    # the reversed edge list carries the same pair of maps with the sides swapped
    rev = learner(g.x, g.edge_index.flip(0))
    torch.testing.assert_close(rev[:, 0], out[:, 1])
    torch.testing.assert_close(rev[:, 1], out[:, 0])
    if maps != "orthogonal":  # tanh-bounded entries
        assert out.abs().max() <= 1


def test_activations_and_zero_features():
    g = random_graph(6, in_channels=4, seed=0)
    for act in ("tanh", "elu", "id"):
        assert torch.isfinite(SheafLearner(4, 2, "general", act=act)(g.x, g.edge_index)).all()
    zero = torch.zeros(6, 4)
    # no bias: zero features give the neutral maps (0 for diag, +-I for Householder)
    assert SheafLearner(4, 2, "diag")(zero, g.edge_index).abs().max() == 0
    q = SheafLearner(4, 2, "orthogonal", edge_weights=False)(zero, g.edge_index)
    torch.testing.assert_close(q, -torch.eye(2).expand_as(q))


def test_bad_arguments():
    with pytest.raises(ValueError, match="maps must be one of"):
        SheafLearner(4, 2, "given")
    with pytest.raises(ValueError, match="orthogonal"):
        SheafLearner(4, 2, "orthogonal", orthogonal="euler")
    with pytest.raises(ValueError, match="act"):
        SheafLearner(4, 2, act="relu")
    with pytest.raises(ValueError, match="stalk_dim"):
        SheafLearner(4, 0)
    learner = SheafLearner(4, 2)
    with pytest.raises(ValueError, match="channels"):
        learner(torch.randn(5, 3), torch.zeros(2, 1, dtype=torch.long))
    assert "maps='diag'" in repr(learner)


CASES = [
    LayerCase(name=f"sheaflearner-{maps}", make_module=lambda maps=maps: SheafLearner(8, 3, maps),
              forward=lambda m, b: m(b.x, b.edge_index).flatten(1), levels=("edge",),
              bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS}, fullgraph=True,
              forward_adj_t=lambda m, b: m(b.x, b.adj_t).flatten(1),
              forward_bipartite=lambda m, b: m((b.x, b.x), b.edge_index).flatten(1))
    for maps in SHAPES
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


# ------------------------------------------------------------------ PyG input contract
BI_EI = torch.tensor([[0, 1, 2, 3, 3], [0, 0, 1, 1, 0]])  # 4 sources -> 2 targets


@pytest.mark.parametrize("maps", list(SHAPES))
def test_adj_forms_and_bipartite(maps):
    torch.manual_seed(0)
    learner = SheafLearner(6, 3, maps)
    x_s, x_t = torch.randn(4, 6), torch.randn(2, 6)
    out = learner((x_s, x_t), BI_EI)
    assert out.shape == (BI_EI.size(1), *SHAPES[maps])
    torch.testing.assert_close(learner((x_s, x_t), BI_EI, size=(4, 2)), out)
    # edge k's maps come from its own endpoints: target-side input [x_t[v] || x_s[u]]
    k = 2
    u, v = BI_EI[:, k]
    alone = learner((x_s[u:u + 1], x_t[v:v + 1]), torch.tensor([[0], [0]]))
    torch.testing.assert_close(alone[0], out[k])
    # sparse adjacencies hold the edges in their storage order (CSR: by target, CSC: by source);
    # maps follow that order, as to_edge_index lists it
    key = {(int(u), int(v)): k for k, (u, v) in enumerate(BI_EI.t())}
    for name, adj in adjacency_forms(BI_EI, (4, 2)).items():
        if name == "EdgeIndex":
            order = torch.arange(BI_EI.size(1))
        else:
            dst_src = to_edge_index(adj)[0]
            order = torch.tensor([key[(int(u), int(v))] for v, u in dst_src.t()])
        torch.testing.assert_close(learner((x_s, x_t), adj), out[order], msg=name)


def test_pair_of_different_widths_is_refused():
    learner = SheafLearner(6, 3)
    with pytest.raises(ValueError, match=r"x\[1\] \(target\) must have 6 channels"):
        learner((torch.randn(4, 6), torch.randn(2, 5)), BI_EI)


@pytest.mark.parametrize("maps", list(SHAPES))
def test_per_node_split_equals_the_concatenated_product(maps):
    """W_l x_v + W_r x_u computed per node and gathered equals W [x_v || x_u] on every edge
    (float64 values and gradients), bipartite inputs included."""
    torch.manual_seed(0)
    learner = SheafLearner(6, 3, maps).double()
    x_s = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    x_t = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    src, dst = BI_EI
    pairs = torch.stack([torch.cat([x_t[dst], x_s[src]], -1),
                         torch.cat([x_s[src], x_t[dst]], -1)], 1)
    expected = torch.tanh(learner.lin(pairs))
    if maps == "general":
        expected = expected.reshape(-1, 2, 3, 3)
    elif maps == "orthogonal":
        expected = orthogonal_from_params(expected, 3) * torch.sigmoid(
            learner.weight_lin(pairs)).unsqueeze(-1)
    out = learner((x_s, x_t), BI_EI)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-14)
    weight = torch.randn_like(out)
    inputs = [x_s, x_t, *learner.parameters()]
    for g_new, g_ref in zip(torch.autograd.grad((out * weight).sum(), inputs),
                            torch.autograd.grad((expected * weight).sum(), inputs), strict=True):
        torch.testing.assert_close(g_new, g_ref, rtol=1e-12, atol=1e-13)
