"""radius_graph / knn_graph in pure PyTorch: equal to brute force, deterministic, batched."""

import pytest
import torch

from graphlab.utils.geometry import knn_graph, radius_graph


def _brute_force(pos, batch, loop, limit, r=None, k=None):
    """Reference: all pairs, per centre sorted by (distance, index), truncated."""
    diff = pos.unsqueeze(1) - pos.unsqueeze(0)
    dist = (diff * diff).sum(-1)
    ok = batch.unsqueeze(1) == batch.unsqueeze(0)
    if not loop:
        ok &= ~torch.eye(pos.size(0), dtype=torch.bool)
    if r is not None:
        ok &= dist < r * r
    edges = []
    for i in range(pos.size(0)):
        js = sorted(ok[i].nonzero().flatten().tolist(), key=lambda j: (dist[i, j].item(), j))
        keep = k if k is not None else limit
        edges += [(j, i) for j in (js if keep is None else js[:keep])]
    return torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)


def _cloud(n, dim, seed, duplicates=True):
    pos = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    if duplicates:  # coincident points and exact distance ties
        pos[5] = pos[3]
        pos[7] = pos[3]
    return pos


BATCH = torch.tensor([0] * 20 + [1] * 3 + [2] * 1 + [3] * 36)


@pytest.mark.parametrize("dim", [1, 2, 3, 5])
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("limit", [None, 4])
def test_radius_graph_equals_brute_force(dim, loop, limit):
    pos = _cloud(60, dim, seed=dim)
    out = radius_graph(pos, 1.1, BATCH, loop=loop, max_num_neighbors=limit)
    assert torch.equal(out, _brute_force(pos, BATCH, loop, limit, r=1.1))


@pytest.mark.parametrize("dim", [1, 2, 3, 5])
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("k", [1, 4, 40])
def test_knn_graph_equals_brute_force(dim, loop, k):
    pos = _cloud(60, dim, seed=10 + dim)
    out = knn_graph(pos, k, BATCH, loop=loop)
    assert torch.equal(out, _brute_force(pos, BATCH, loop, None, k=k))


def test_knn_grid_path_on_a_larger_cloud():
    # 3,000 points: the grid search settles most centres, the rest go to the blocked search.
    gen = torch.Generator().manual_seed(0)
    pos = torch.cat([torch.rand(2990, 3, generator=gen) * 5, torch.randn(10, 3, generator=gen) * 50])
    out = knn_graph(pos, 6)
    assert out.shape == (2, 6 * 3000)
    # compare with brute force on a random subset of centres
    centres = torch.randperm(3000, generator=gen)[:50]
    dist = torch.cdist(pos[centres].double(), pos.double())
    dist[torch.arange(50), centres] = float("inf")
    expected = dist.topk(6, largest=False).indices.sort(dim=1).values
    got = torch.stack([out[0][out[1] == c] for c in centres.tolist()]).sort(dim=1).values
    assert torch.equal(got, expected)


def test_radius_graph_nearest_first_truncation():
    pos = torch.tensor([[0.0], [0.3], [-0.1], [0.2], [0.9]])
    out = radius_graph(pos, 1.0, max_num_neighbors=2)
    nbrs_of_0 = out[0][out[1] == 0].tolist()
    assert nbrs_of_0 == [2, 3]  # distances 0.1 and 0.2; 0.3 and 0.9 dropped


def test_no_cross_graph_edges_and_loop_flag():
    pos = torch.zeros(6, 3)  # all coincident
    batch = torch.tensor([0, 0, 0, 1, 1, 2])
    out = radius_graph(pos, 0.5, batch)
    assert (batch[out[0]] == batch[out[1]]).all()
    assert out.size(1) == 3 * 2 + 2 * 1 + 0
    with_loops = radius_graph(pos, 0.5, batch, loop=True)
    assert with_loops.size(1) == out.size(1) + 6
    assert knn_graph(pos, 5, batch).size(1) == 3 * 2 + 2 * 1


def test_large_radius_graph_is_fast_and_sparse():
    import time

    pos = torch.rand(20_000, 3, generator=torch.Generator().manual_seed(0)) * 10
    start = time.process_time()  # CPU time: robust to a shared, loaded machine
    out = radius_graph(pos, 0.5, max_num_neighbors=None)
    elapsed = time.process_time() - start
    assert elapsed < 20  # about 0.3 s; a dense 20k x 20k float matrix alone would be 1.6 GB
    # spot check: the neighbour set of a few centres equals brute force
    for c in (0, 1234, 19_999):
        d = ((pos - pos[c]) ** 2).sum(-1)
        d[c] = float("inf")
        expected = (d < 0.25).nonzero().flatten().sort().values
        assert torch.equal(out[0][out[1] == c].sort().values, expected)


def test_empty_and_invalid_inputs():
    assert radius_graph(torch.empty(0, 3), 1.0).shape == (2, 0)
    assert knn_graph(torch.empty(0, 2), 3).shape == (2, 0)
    with pytest.raises(ValueError, match="r must be positive"):
        radius_graph(torch.randn(4, 3), 0.0)
    with pytest.raises(ValueError, match="k must be"):
        knn_graph(torch.randn(4, 3), 0)
    with pytest.raises(ValueError, match="sorted"):
        radius_graph(torch.randn(4, 3), 1.0, torch.tensor([1, 0, 0, 1]))
    with pytest.raises(ValueError, match="pos must be a floating-point"):
        knn_graph(torch.ones(4, 3, dtype=torch.long), 2)


def test_gradients_do_not_flow_into_the_graph():
    pos = torch.randn(30, 3, requires_grad=True)
    out = radius_graph(pos, 1.0)
    assert out.dtype == torch.long and not out.requires_grad


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("builder", ["knn", "radius"])
def test_non_finite_coordinates_are_a_value_error(bad, builder):
    """Issue 18: one NaN made knn_graph silently drop every edge of the batch and radius_graph
    raise an OverflowError; now both name the problem and the node."""
    pos = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    pos[7, 1] = bad
    batch = torch.tensor([0] * 5 + [1] * 7)
    with pytest.raises(ValueError, match=r"pos must be finite.*1 node\(s\), first at node 7"):
        if builder == "knn":
            knn_graph(pos, 3, batch)
        else:
            radius_graph(pos, 0.8, batch)
