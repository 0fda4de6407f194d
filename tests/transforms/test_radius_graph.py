"""RadiusGraph transform: same edges as the functional form, batches, no dense matrices."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphlab.testing import CHECKS, conformance_params, graph_builder_case
from graphlab.transforms import RadiusGraph
from graphlab.utils.geometry import radius_graph


def test_transform_matches_function_and_drops_edge_attr():
    pos = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    data = Data(pos=pos, edge_index=torch.tensor([[0], [1]]), edge_attr=torch.ones(1, 2))
    out = RadiusGraph(1.0, max_num_neighbors=5)(data.clone())
    assert torch.equal(out.edge_index, radius_graph(pos, 1.0, max_num_neighbors=5))
    assert out.edge_attr is None
    assert torch.bincount(out.edge_index[1], minlength=30).max() <= 5


def test_transform_on_a_batch_has_no_cross_graph_edges():
    gen = torch.Generator().manual_seed(1)
    graphs = [Data(pos=torch.randn(n, 2, generator=gen) * 0.1) for n in (4, 7, 1)]
    batch = RadiusGraph(10.0)(Batch.from_data_list(graphs))
    b = batch.batch
    assert (b[batch.edge_index[0]] == b[batch.edge_index[1]]).all()
    assert batch.edge_index.size(1) == 4 * 3 + 7 * 6


def test_transform_validation_and_repr():
    with pytest.raises(ValueError, match="pos"):
        RadiusGraph(1.0)(Data(x=torch.randn(3, 2)))
    with pytest.raises(ValueError, match="r must be positive"):
        RadiusGraph(-1.0)
    assert repr(RadiusGraph(2.0, 8)) == "RadiusGraph(r=2.0, max_num_neighbors=8)"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_coordinate_is_a_value_error_not_an_overflow(bad):
    """Issue 18: a NaN coordinate raised an OverflowError from the cell-key computation."""
    pos = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    pos[3, 1] = bad
    with pytest.raises(ValueError, match="pos must be finite"):
        RadiusGraph(0.5)(Data(pos=pos))


# ------------------------------------------------------------------ conformance suite (issue 17)
RADIUS = RadiusGraph(r=1.5)
CASES = [graph_builder_case(
    "radius-graph", RADIUS,
    skip={"isolated_nodes": "added nodes at random positions fall within r of other "
                            "nodes and rightly change their neighbourhoods"})]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)
