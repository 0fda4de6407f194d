"""SheafLearner: shapes, both sides of an edge from one directed edge, validation, conformance."""

from __future__ import annotations

import pytest
import torch

from graphlab.conv import SheafLearner
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)

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
              bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS})
    for maps in SHAPES
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)
