"""KNNGraph transform: k incoming edges per node, batches, undirected option."""

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import is_undirected

from graphlab.testing import CHECKS, conformance_params, graph_builder_case
from graphlab.transforms import KNNGraph
from graphlab.utils.geometry import knn_graph


def test_transform_matches_function():
    pos = torch.randn(25, 3, generator=torch.Generator().manual_seed(0))
    out = KNNGraph(k=4)(Data(pos=pos))
    assert torch.equal(out.edge_index, knn_graph(pos, 4))
    assert torch.equal(torch.bincount(out.edge_index[1]), torch.full((25,), 4))


def test_force_undirected_and_batches():
    gen = torch.Generator().manual_seed(2)
    graphs = [Data(pos=torch.randn(n, 3, generator=gen)) for n in (6, 2, 9)]
    batch = KNNGraph(k=3, force_undirected=True)(Batch.from_data_list(graphs))
    assert is_undirected(batch.edge_index)
    b = batch.batch
    assert (b[batch.edge_index[0]] == b[batch.edge_index[1]]).all()
    # the two-node graph can only give each node one neighbour
    small = (b[batch.edge_index[1]] == 1).sum()
    assert small == 2


def test_transform_validation_and_repr():
    with pytest.raises(ValueError, match="k must be"):
        KNNGraph(k=0)
    with pytest.raises(ValueError, match="pos"):
        KNNGraph()(Data(x=torch.randn(3, 2)))
    assert repr(KNNGraph(5)) == "KNNGraph(k=5)"


def test_nan_coordinate_is_a_value_error_not_an_empty_graph():
    """Issue 18: one NaN coordinate made KNNGraph silently drop every edge of the batch."""
    pos = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    pos[3, 1] = float("nan")
    with pytest.raises(ValueError, match="pos must be finite"):
        KNNGraph(3)(Data(pos=pos))


# ------------------------------------------------------------------ conformance suite (issue 17)
KNN = KNNGraph(k=3)
CASES = [graph_builder_case(
    "knn-graph", KNN,
    skip={"isolated_nodes": "a node added to a graph becomes a nearest neighbour of "
                            "other nodes: no node is isolated in a kNN graph"})]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_batch_built_graph_equals_the_per_graph_graphs():
    gen = torch.Generator().manual_seed(5)
    graphs = [Data(pos=torch.randn(n, 3, generator=gen)) for n in (6, 1, 9, 4)]
    per_graph = Batch.from_data_list([KNNGraph(3)(g.clone()) for g in graphs])
    whole = KNNGraph(3)(Batch.from_data_list(graphs))
    assert torch.equal(whole.edge_index, per_graph.edge_index)
