"""ConnectionSheaf: orthogonal, reverse-consistent maps; flat data gives a flat connection."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphlab.conv import SheafConv
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
    permute_graph,
    random_graph,
)
from graphlab.transforms import ConnectionSheaf

D = 3


def _ring_graph(n: int, x: torch.Tensor) -> Data:
    ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    chords = torch.stack([torch.arange(n), (torch.arange(n) + 3) % n])
    ei = torch.unique(torch.cat([ring, ring.flip(0), chords, chords.flip(0)], 1), dim=1)
    return Data(x=x, edge_index=ei)


def test_maps_orthogonal_and_reverse_consistent():
    g = random_graph(40, num_edges=100, in_channels=16, seed=0)
    out = ConnectionSheaf(D, num_points=6)(g.clone())
    maps = out.sheaf_maps
    assert maps.shape == (g.edge_index.size(1), 2, D, D)
    torch.testing.assert_close(maps[:, 0], torch.eye(D).expand(maps.size(0), D, D))
    gram = maps[:, 1] @ maps[:, 1].transpose(-1, -2)
    assert (gram - torch.eye(D)).abs().max() < 1e-6
    key = {tuple(e): k for k, e in enumerate(g.edge_index.t().tolist())}
    rev = torch.tensor([key[(v, u)] for u, v in g.edge_index.t().tolist()])
    torch.testing.assert_close(maps[rev, 1], maps[:, 1].transpose(-1, -2), atol=0, rtol=0)


def test_features_on_a_subspace_give_a_flat_connection():
    """Points on one d-dim subspace: every frame spans it, O_v^T O_u is already orthogonal, the
    transports compose consistently, and the connection Laplacian has a d-dim kernel."""
    n, p = 12, 9
    gen = torch.Generator().manual_seed(1)
    basis, _ = torch.linalg.qr(torch.randn(p, D, generator=gen, dtype=torch.float64))
    x = torch.randn(n, D, generator=gen, dtype=torch.float64) @ basis.T
    g = _ring_graph(n, x)
    t = ConnectionSheaf(D, num_points=5)
    frames = t.frames(x, g.edge_index)
    for v in range(n):  # each frame spans the subspace
        torch.testing.assert_close(basis @ (basis.T @ frames[v]), frames[v])
    maps = t(g.clone()).sheaf_maps
    src, dst = g.edge_index
    torch.testing.assert_close(maps[:, 1], frames[dst].transpose(-1, -2) @ frames[src],
                               atol=1e-6, rtol=1e-6)
    conv = SheafConv(1, D, maps="given", normalised=False).double()
    eye = torch.eye(n * D, dtype=torch.float64).view(n, D, n * D)
    lap = conv.laplacian(eye, g.edge_index, maps).reshape(n * D, n * D)
    evals = torch.linalg.eigvalsh(lap)
    # the transform gathers frames in float32 (memory), hence 1e-6 rather than 1e-12
    assert (evals[:D].abs() < 1e-6).all() and evals[D] > 1e-3
    # the global sections are the subspace coordinates of one fixed vector in every frame
    z = torch.randn(p, dtype=torch.float64, generator=gen)
    section = (frames.transpose(-1, -2) @ (basis @ (basis.T @ z))).reshape(-1)
    assert (lap @ section).abs().max() < 1e-5


def test_neighbourhoods_prefer_graph_neighbours_then_feature_neighbours():
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    ei = torch.tensor([[3, 0], [0, 3]])  # one edge 0 - 3
    hood = ConnectionSheaf(1, num_points=3).neighbourhoods(x, ei)
    assert hood[0].tolist() == [3, 1, 2]  # its graph neighbour first, then nearest in features
    assert hood[4].tolist() == [3, 2, 1]  # no graph neighbours: nearest in feature space
    dense = ConnectionSheaf(1, num_points=3)
    dense_x = x + 0.5  # dense features take the non-sparse product path: same neighbourhoods
    assert dense.neighbourhoods(dense_x, ei).tolist() == hood.tolist()


def test_permutation_equivariant_and_batchable():
    g = random_graph(15, in_channels=8, seed=2)
    t = ConnectionSheaf(2, num_points=4)
    base = t(g.clone()).sheaf_maps
    gen = torch.Generator().manual_seed(0)
    perm, eperm = torch.randperm(15, generator=gen), torch.randperm(g.num_edges, generator=gen)
    permuted = t(permute_graph(g, perm, eperm)).sheaf_maps
    torch.testing.assert_close(permuted, base[eperm], atol=1e-6, rtol=1e-5)
    other = random_graph(9, in_channels=8, seed=3)
    batch = Batch.from_data_list([t(g.clone()), t(other.clone())])
    assert batch.sheaf_maps.shape[0] == batch.edge_index.size(1)


def test_edge_cases_and_errors():
    empty = ConnectionSheaf(2)(Data(x=torch.randn(4, 5), edge_index=torch.empty(2, 0,
                                                                              dtype=torch.long)))
    assert empty.sheaf_maps.shape == (0, 2, 2, 2)
    with pytest.raises(ValueError, match="stalk_dim"):
        ConnectionSheaf(0)
    with pytest.raises(ValueError, match="exceed"):
        ConnectionSheaf(6)(random_graph(5, in_channels=4, seed=0))
    with pytest.raises(ValueError, match="edge_index"):
        ConnectionSheaf(2)(Data(x=torch.randn(3, 4), edge_index=torch.tensor([[0, 5], [1, 0]])))
    assert "stalk_dim=2" in repr(ConnectionSheaf(2))


# a SheafConv fed by the transform, end to end through the conformance suite
CASES = [
    LayerCase(name="sheafconv-connection", make_module=lambda: SheafConv(4, 2, maps="given"),
              make_graph=lambda s: random_graph(7 + s % 5, in_channels=8, seed=s),
              transform=ConnectionSheaf(2, num_points=4),
              forward=lambda m, b: m(b.x, b.edge_index, b.sheaf_maps),
              edge_attrs=("sheaf_maps",),
              bad_inputs={**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS},
              skip={"isolated_nodes": "ConnectionSheaf tops neighbourhoods up with the nearest "
                    "nodes in feature space, so added nodes rightly change other nodes' maps"}),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda ei: torch.cat([ei, ei[:1]]), r"shape \[2, E\], got \[3, "),
    (lambda ei: ei.t().contiguous(), r"shape \[2, E\], got \[\d+, 2\]"),
    (lambda ei: ei.float(), "int64"),
    (lambda ei: ei.int(), "int32"),
])
def test_malformed_edge_index_is_a_value_error(mutate, match):
    """Issue 18: transforms validate edge_index instead of repairing or misreading it."""
    g = random_graph(7, in_channels=4, seed=0)
    with pytest.raises(ValueError, match=match):
        ConnectionSheaf(2, num_points=3)(Data(x=g.x, edge_index=mutate(g.edge_index)))
