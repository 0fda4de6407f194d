"""graphlab.conv._adj: every PyG adjacency form read as one [2, E] index in storage order."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.typing import WITH_TORCH_SPARSE

from graphlab.conv._adj import (  # noqa: PLC2701 - unit test of the shared conv helpers
    adj_sizes,
    check_pair_features,
    pair,
    unpack_adj,
)
from graphlab.testing.graphs import adjacency_forms

EI = torch.tensor([[0, 2, 1, 3, 3], [1, 0, 1, 0, 2]])  # 4 sources -> 3 targets


def _edges(ei: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(u), int(v)) for u, v in ei.t()}


def test_every_form_gives_the_same_edges_and_values_in_the_same_order():
    value = torch.arange(EI.size(1), dtype=torch.float32) + 1.0
    for name, adj in adjacency_forms(EI, (4, 3), value).items():
        ei, values = unpack_adj(adj)
        assert ei.dtype == torch.int64 and type(ei) is torch.Tensor, name
        assert _edges(ei) == _edges(EI), name
        if name == "EdgeIndex":
            assert values is None
            continue
        # each edge keeps its own value: the order of ei is the order of values
        lookup = {(int(u), int(v)): float(w) for (u, v), w in zip(EI.t(), value)}
        assert [lookup[(int(u), int(v))] for u, v in ei.t()] == values.tolist(), name


def test_sizes_come_from_size_then_the_sparse_shape_then_the_features():
    adj_t = adjacency_forms(EI, (4, 3))["csr"]
    assert adj_sizes(EI, None, 4, 3) == (4, 3)
    assert adj_sizes(EI, (5, None), 4, 3) == (5, 3)
    assert adj_sizes(adj_t, None, 9, 9) == (4, 3)
    with pytest.raises(ValueError, match="size must be"):
        adj_sizes(EI, (1, 2, 3), 4, 3)


def test_pair_and_side_checks():
    x = torch.randn(4, 2)
    assert pair(x) == (x, x)
    with pytest.raises(ValueError, match="pair must be"):
        pair((x, x, x))
    with pytest.raises(ValueError, match="3 target rows but the adjacency has 2"):
        check_pair_features(x, torch.randn(3, 2), 4, 2)
    with pytest.raises(ValueError, match="same dtype"):
        check_pair_features(x, torch.randn(2, 2, dtype=torch.float64), 4, 2)


@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason="torch-sparse is not installed")
def test_sparse_tensor():
    from torch_geometric.typing import SparseTensor

    adj_t = SparseTensor.from_edge_index(EI, sparse_sizes=(4, 3)).t()
    ei, _ = unpack_adj(adj_t)
    assert _edges(ei) == _edges(EI)
    assert adj_sizes(adj_t, None, 0, 0) == (4, 3)
