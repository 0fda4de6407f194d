"""EdgeScorer through the conformance suite: pair scores are symmetric, equivariant, batchable."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from graphlab.rewiring import EdgeCandidates, EdgeScorer
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)


def _bad_cand_range(b: Batch) -> Batch:
    b.cand_index = b.cand_index.clone()
    b.cand_index[1, 0] = b.num_nodes + 3
    return b


def _bad_cand_shape(b: Batch) -> Batch:
    b.cand_index = b.cand_index.t().contiguous()
    return b


def _score_edges(m: EdgeScorer, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    # every edge is scored both as a pair to add and as a pair to delete: edge-level outputs
    return m(b.x, b.edge_index, None, b.edge_index, b.edge_index)


def _score_candidates(m: EdgeScorer, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    add, delete = m(b.x, b.edge_index, None, b.cand_index, b.edge_index)
    # candidate pairs have no level of their own: sum each pair's score onto both endpoints
    node = add.new_zeros(b.num_nodes).index_add(0, b.cand_index[0], add)
    return node.index_add(0, b.cand_index[1], add), delete


CASES = [
    LayerCase(name="edgescorer", make_module=lambda: EdgeScorer(8, 16, num_layers=2),
              forward=_score_edges, levels=("edge", "edge"),
              bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS}),
    # all non-edges as candidates (an equivariant set), with messages along them
    LayerCase(name="edgescorer-candidate-messages",
              make_module=lambda: EdgeScorer(8, 16, num_layers=2, candidate_messages=True),
              transform=EdgeCandidates(), forward=_score_candidates, levels=("node", "edge"),
              bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS,
                          "cand_index_out_of_range": _bad_cand_range,
                          "cand_index_transposed": _bad_cand_shape},
              skip={"isolated_nodes": "added nodes add candidate pairs, along which messages "
                    "pass, so they rightly change the other nodes' scores"}),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_scores_are_symmetric_in_the_pair():
    g = random_graph(9, seed=4)
    torch.manual_seed(0)
    scorer = EdgeScorer(8, 16, num_layers=2)
    add, delete = scorer(g.x, g.edge_index, None, g.edge_index, g.edge_index)
    add_r, delete_r = scorer(g.x, g.edge_index, None, g.edge_index.flip(0), g.edge_index.flip(0))
    torch.testing.assert_close(add, add_r)
    torch.testing.assert_close(delete, delete_r)


def test_bad_inputs_name_the_argument():
    g = random_graph(6, seed=1)
    scorer = EdgeScorer(8, 16, num_layers=1)
    with pytest.raises(ValueError, match="add_pairs"):
        scorer(g.x, g.edge_index, None, torch.tensor([[0], [6]]), g.edge_index)
    with pytest.raises(ValueError, match="delete_pairs"):
        scorer(g.x, g.edge_index, None, g.edge_index, g.edge_index.int())
    with pytest.raises(ValueError, match="8 channels"):
        scorer(g.x[:, :5], g.edge_index, None, g.edge_index, g.edge_index)
    with pytest.raises(ValueError, match="float16 but the layer computes in torch.float32"):
        scorer(g.x.half(), g.edge_index, None, g.edge_index, g.edge_index)
