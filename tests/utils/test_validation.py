import pytest
import torch
import torch_geometric
from torch_geometric import EdgeIndex
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

from graphlab.utils import validation
from graphlab.utils.validation import (
    check_adj,
    check_batch_vector,
    check_edge_features,
    check_edge_index,
    check_finite,
    check_index,
    check_index_dtype,
    check_input_dtype,
    check_node_features,
    check_same_num_nodes,
    value_checks_enabled,
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
    (torch.zeros(2, 4), r"must be torch.int64 \(long\), got torch.float32"),
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


# ------------------------------------------------------------------ index dtype policy (issue 18)
def test_int32_edge_index_is_refused_with_the_fix():
    ei = torch.tensor([[0, 1], [1, 0]], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"^edge_index must be torch.int64 \(long\), got "
                                         r"torch.int32; call .long\(\)$"):
        check_edge_index(ei, num_nodes=2)


@pytest.mark.parametrize("fn,name", [
    (lambda t: check_index(t), "index"),
    (lambda t: check_batch_vector(t, 3), "batch"),
    (lambda t: check_index_dtype(t, "index"), "index"),
])
def test_int32_indices_are_refused(fn, name):
    with pytest.raises(ValueError, match=rf"{name} must be torch.int64 \(long\), got torch.int32"):
        fn(torch.tensor([0, 1, 1], dtype=torch.int32))


# ------------------------------------------------------------------ adjacency forms
def _graph():
    return torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])


def test_check_adj_accepts_every_pyg_form():
    ei = _graph()
    check_adj(ei, 3)
    check_adj(EdgeIndex(ei, sparse_size=(3, 3)), 3)
    check_adj(to_torch_csr_tensor(ei, size=(3, 3)).t(), 3)
    check_adj(to_torch_coo_tensor(ei, size=(3, 3)).t(), 3)
    # bipartite: 3 sources, 2 targets; adj_t is [num_dst, num_src]
    bi = torch.tensor([[0, 2, 1], [0, 1, 1]])
    check_adj(bi, (3, 2))
    check_adj(to_torch_csr_tensor(bi, size=(3, 2)).t(), (3, 2))


def test_check_adj_rejects_wrong_sparse_shape_and_types():
    adj_t = to_torch_csr_tensor(_graph(), size=(3, 3)).t()
    with pytest.raises(ValueError, match=r"\[num_dst, num_src\] = \[4, 4\], got \[3, 3\]"):
        check_adj(adj_t, 4)
    with pytest.raises(ValueError, match="got list"):
        check_adj([[0, 1], [1, 0]], 2)
    with pytest.raises(ValueError, match="does not take adj_t"):
        check_edge_index(adj_t, 3)


def test_bipartite_ranges_name_the_side():
    bi = torch.tensor([[0, 2, 1], [0, 1, 2]])
    with pytest.raises(ValueError, match=r"target node ids \(edge_index\[1\]\) in \[0, 2\]"):
        check_edge_index(bi, (3, 2))


# ------------------------------------------------------------------ cost policy
def test_value_checks_skip_accelerators_unless_debugging():
    meta = torch.zeros(2, 3, dtype=torch.long, device="meta")
    assert value_checks_enabled(torch.zeros(1))
    assert not value_checks_enabled(meta)
    check_edge_index(meta, num_nodes=1)       # no host read: passes without looking at values
    with validation.debug():
        assert value_checks_enabled(meta)
    assert not value_checks_enabled(meta)
    with torch_geometric.debug():
        assert value_checks_enabled(meta)
    validation.set_debug(True)
    try:
        assert value_checks_enabled(meta)
    finally:
        validation.set_debug(False)


def test_checks_do_not_break_torch_compile():
    from graphlab.testing.compile import count_graph_breaks

    def fn(x, edge_index, batch):
        check_edge_index(edge_index, x.size(0))
        check_batch_vector(batch, x.size(0))
        check_finite(x, "x")
        return x[edge_index[0]].sum() + batch.sum()

    x, ei, batch = torch.randn(3, 2), _graph(), torch.tensor([0, 0, 1])
    assert count_graph_breaks(fn, x, ei, batch) == 0


def test_value_checks_still_run_in_eager_cpu():
    with pytest.raises(ValueError, match="outside the valid range"):
        check_edge_index(torch.tensor([[0, 7], [1, 0]]), 3)


# ------------------------------------------------------------------ floating dtype mismatches
def test_half_input_to_float_layer_names_both_dtypes():
    lin = torch.nn.Linear(3, 2)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        with pytest.raises(ValueError, match=rf"x has dtype {dtype} but the layer computes in "
                                             r"torch.float32"):
            check_input_dtype(torch.randn(4, 3, dtype=dtype), lin)
    check_input_dtype(torch.randn(4, 3), lin)
    check_input_dtype(torch.randn(4, 3, dtype=torch.float16), torch.nn.ReLU())  # no parameters
    with torch.autocast("cpu", dtype=torch.bfloat16):
        check_input_dtype(torch.randn(4, 3, dtype=torch.bfloat16), lin)
    check_input_dtype(torch.randn(4, 3, dtype=torch.bfloat16), torch.bfloat16)
