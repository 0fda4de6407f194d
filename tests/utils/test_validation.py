import pytest
import torch

from graphlab.utils.validation import (
    check_batch_vector,
    check_edge_features,
    check_edge_index,
    check_finite,
    check_index,
    check_node_features,
    check_same_num_nodes,
)


def test_valid_inputs_pass():
    check_edge_index(torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    check_edge_index(torch.empty(2, 0, dtype=torch.long), num_nodes=0)
    check_node_features(torch.randn(3, 4), channels=4, num_nodes=3)
    check_index(torch.tensor([0, 2, 1]), dim_size=3, size=3)
    check_edge_features(torch.randn(5, 2), num_edges=5, channels=2)
    check_edge_features(torch.randn(5), num_edges=5, channels=1)
    assert check_same_num_nodes(x=torch.randn(3, 1), pos=torch.randn(3, 2), vel=None) == 3
    check_batch_vector(None, 4)


@pytest.mark.parametrize("edge_index,match", [
    (torch.zeros(3, 4, dtype=torch.long), r"shape \[2, E\], got \[3, 4\]"),
    (torch.zeros(2, 4), "integer dtype"),
    (torch.tensor([[0, 5], [1, 0]]), r"\[0, 5\], outside the valid range \[0, 2\]"),
    (torch.tensor([[0, -1], [1, 0]]), "outside the valid range"),
    ([[0, 1], [1, 0]], "must be a torch.Tensor, got list"),
])
def test_bad_edge_index(edge_index, match):
    with pytest.raises(ValueError, match=match):
        check_edge_index(edge_index, num_nodes=3)


def test_bad_features_and_indices():
    with pytest.raises(ValueError, match="floating-point"):
        check_node_features(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="4 channels"):
        check_node_features(torch.zeros(3, 2), channels=4)
    with pytest.raises(ValueError, match="5 rows"):
        check_node_features(torch.zeros(3, 2), num_nodes=5)
    with pytest.raises(ValueError, match="2-dimensional"):
        check_node_features(torch.zeros(3))
    with pytest.raises(ValueError, match="one per edge"):
        check_edge_features(torch.zeros(3, 2), num_edges=4)
    with pytest.raises(ValueError, match="3 channels"):
        check_edge_features(torch.zeros(4, 2), num_edges=4, channels=3)
    with pytest.raises(ValueError, match="x has 3, pos has 4"):
        check_same_num_nodes(x=torch.zeros(3, 1), pos=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="1-dimensional"):
        check_index(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        check_index(torch.tensor([0, 3]), dim_size=3)
    with pytest.raises(ValueError, match="non-negative"):
        check_index(torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="4 entries"):
        check_batch_vector(torch.tensor([0, 0, 1]), num_nodes=4)
    with pytest.raises(ValueError, match="NaN"):
        check_finite(torch.tensor([1.0, float("nan")]), "pos")
