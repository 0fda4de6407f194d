"""Radius and k-nearest-neighbour graphs in plain PyTorch.

PyG's :func:`torch_geometric.nn.radius_graph` and :func:`~torch_geometric.nn.knn_graph` need the
compiled ``pyg-lib`` (or ``torch-cluster``) kernels, which a plain ``pip install`` does not bring.
The functions here work with torch alone, on CPU or GPU, and never build a dense ``N x N``
distance matrix:

* :func:`radius_graph` hashes points into a grid of cells of side ``r`` (spatial dimension
  ``<= 3``) so that only the ``3^d`` neighbouring cells are searched; memory and time grow with the
  number of candidate pairs, not with ``N^2``. Higher dimensions fall back to blocked brute force.
* :func:`knn_graph` compares query blocks against the candidates of their own graphs only, with
  the block size chosen so that a block never holds more than about ``2^22`` distances.

When ``pyg-lib`` is installed its kernels are used to find candidates, and the same exact
post-processing (distance test, nearest-first truncation, ordering) is applied, so both paths
return the same edges. Both functions are deterministic: edges are sorted by target, then by
distance, then by source index; ``max_num_neighbors`` keeps the nearest neighbours.

Edge direction follows PyG (``flow="source_to_target"``): ``edge_index[1]`` is the centre node
and ``edge_index[0]`` its neighbour.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from graphlab.utils.validation import check_batch_vector, check_node_features

__all__ = ["radius_graph", "knn_graph"]

# Upper bound on the number of pairwise distances held at once (blocks are sized to fit).
_BLOCK_ELEMENTS = 1 << 22
# Cell hashing beyond three dimensions searches 3^d cells per point; brute force wins there.
_MAX_GRID_DIM = 3


def _check_inputs(pos: Tensor, batch: Tensor | None) -> tuple[Tensor, int]:
    check_node_features(pos, "pos")
    check_batch_vector(batch, pos.size(0))
    if not torch.compiler.is_compiling():
        # a NaN compares false with every distance (kNN silently dropped every edge of the
        # batch) and an inf overflows the integer cell keys: reject both (a value check, so
        # eager mode only; these builders read sizes from the data and never run compiled)
        bad = ~torch.isfinite(pos).all(dim=-1)
        if bool(bad.any()):
            node = int(bad.nonzero()[0, 0])
            raise ValueError(f"pos must be finite, got NaN or inf coordinates at {int(bad.sum())} "
                             f"node(s), first at node {node}: {pos[node].tolist()}")
    if batch is None:
        return torch.zeros(pos.size(0), dtype=torch.long, device=pos.device), 1
    batch = batch.long()
    if pos.size(0) > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted in non-decreasing order (as produced by PyG's "
                         "DataLoader)")
    return batch, int(batch[-1]) + 1 if batch.numel() else 0


def _sq_dist(pos: Tensor, row: Tensor, col: Tensor) -> Tensor:
    # The explicit difference (not the |a|^2+|b|^2-2ab expansion used by cdist) is exact for
    # coincident points and identical in every code path, so all paths agree bit for bit.
    diff = pos[row] - pos[col]
    return (diff * diff).sum(dim=-1)


def _finalize(row: Tensor, col: Tensor, dist: Tensor, num_nodes: int,
              max_num_neighbors: int | None) -> Tensor:
    """Sort edges by (target, distance, source) and keep the first ``max_num_neighbors``."""
    # Three stable sorts give a lexicographic order without building a combined float key.
    order = torch.argsort(col, stable=True)
    order = order[torch.argsort(dist[order], stable=True)]
    order = order[torch.argsort(row[order], stable=True)]
    row, col = row[order], col[order]
    if max_num_neighbors is not None and row.numel():
        count = torch.bincount(row, minlength=num_nodes)
        start = torch.cumsum(count, 0) - count
        rank = torch.arange(row.numel(), device=row.device) - start[row]
        keep = rank < max_num_neighbors
        row, col = row[keep], col[keep]
    # row = centre (target), col = neighbour (source); PyG flow puts the target second.
    return torch.stack([col, row], dim=0)


def _graph_ranges(batch: Tensor, num_graphs: int) -> Tensor:
    count = torch.bincount(batch, minlength=num_graphs)
    return torch.cat([count.new_zeros(1), torch.cumsum(count, 0)])


def _blocked_pairs(pos: Tensor, batch: Tensor, num_graphs: int, keep_fn: Callable,
                   with_diff: bool = True, queries: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Brute force over query blocks; each block only sees the nodes of its own graphs.

    ``keep_fn(q, c)`` returns the ``[len(q), len(c)]`` mask of pairs to keep. ``queries`` (sorted
    node ids, default all) restricts the centres.
    """
    if queries is None:
        queries = torch.arange(pos.size(0), device=pos.device)
    qbatch = batch[queries]
    n = queries.numel()
    ptr = _graph_ranges(batch, num_graphs).tolist()
    # Elements held per (query, candidate) pair: the difference vector or a single distance.
    per_pair = pos.size(1) if with_diff else 2
    rows, cols = [], []
    start = 0
    while start < n:
        # The candidate window of a block is the node range of the graphs it touches; the block
        # is sized so that the window stays under the element budget.
        lo = ptr[int(qbatch[start])]
        width = ptr[int(qbatch[start]) + 1] - lo
        end = min(n, start + max(1, _BLOCK_ELEMENTS // max(1, width * per_pair)))
        hi = ptr[int(qbatch[end - 1]) + 1]
        while end - start > 1 and (end - start) * (hi - lo) * per_pair > _BLOCK_ELEMENTS:
            end = start + max(1, (end - start) // 2)
            hi = ptr[int(qbatch[end - 1]) + 1]
        q = queries[start:end]
        c = torch.arange(lo, hi, device=pos.device)
        qi, ci = keep_fn(q, c).nonzero(as_tuple=True)
        rows.append(q[qi])
        cols.append(c[ci])
        start = end
    if not rows:
        empty = torch.empty(0, dtype=torch.long, device=pos.device)
        return empty, empty
    return torch.cat(rows), torch.cat(cols)


def _grid_pairs(pos: Tensor, batch: Tensor, num_graphs: int, cell_size: float,
                chunk_fn: Callable, queries: Tensor | None = None) -> list | None:
    """Pairs (query, candidate) whose cells touch, in a grid of side ``cell_size``.

    Every pair closer than ``cell_size`` is among the candidates. Queries are processed in
    chunks of at most about ``_BLOCK_ELEMENTS`` candidate pairs, and ``chunk_fn(row, col)`` reduces
    each chunk right away, so memory never holds more than one chunk of raw candidates. Returns
    the list of ``chunk_fn`` results, or ``None`` if the integer cell keys would overflow.
    """
    n, d = pos.shape
    device = pos.device
    # Cells are computed in float64 and made slightly larger than requested, so rounding can
    # never put two points closer than cell_size more than one cell apart.
    p64 = pos.detach().double()
    cell = torch.floor((p64 - p64.min(dim=0).values) / (cell_size * (1 + 1e-6))).long()
    sizes = [int(e) + 1 for e in cell.max(dim=0).values.tolist()]
    total = num_graphs
    for size in sizes:
        total *= size + 2
    if total >= 2**62:
        return None
    # Pad every axis by one empty cell on each side so neighbour offsets never wrap around.
    strides = [1] * d
    for k in range(d - 2, -1, -1):
        strides[k] = strides[k + 1] * (sizes[k + 1] + 2)
    stride = torch.tensor(strides, dtype=torch.long, device=device)
    key = batch * (strides[0] * (sizes[0] + 2)) + ((cell + 1) * stride).sum(dim=-1)
    order = torch.argsort(key, stable=True)
    sorted_key = key[order]

    offsets = torch.tensor(list(itertools.product((-1, 0, 1), repeat=d)), dtype=torch.long,
                           device=device)
    if queries is None:
        queries = torch.arange(n, device=device)
    nkey = key[queries].unsqueeze(1) + (offsets * stride).sum(dim=-1).unsqueeze(0)  # [Q, 3^d]
    lo = torch.searchsorted(sorted_key, nkey, right=False)
    cnt = torch.searchsorted(sorted_key, nkey, right=True) - lo
    cum = torch.cumsum(cnt.sum(dim=1), 0).tolist()

    results = []
    start, done, num_q = 0, 0, queries.numel()
    while start < num_q:
        # Largest chunk of queries whose candidates fit the budget (at least one query).
        a, b = start + 1, num_q
        while a < b:
            mid = (a + b + 1) // 2
            if cum[mid - 1] - done <= _BLOCK_ELEMENTS:
                a = mid
            else:
                b = mid - 1
        end = a
        seg_lo, seg_n = lo[start:end].reshape(-1), cnt[start:end].reshape(-1)
        row = queries[start:end].repeat_interleave(offsets.size(0)).repeat_interleave(seg_n)
        seg_start = torch.cumsum(seg_n, 0) - seg_n
        within = torch.arange(row.numel(), device=device) - seg_start.repeat_interleave(seg_n)
        col = order[seg_lo.repeat_interleave(seg_n) + within]
        results.append(chunk_fn(row, col))
        done = cum[end - 1]
        start = end
    return results


def _compiled_available(name: str) -> bool:
    try:
        import torch_geometric.typing as pyg_typing
    except ImportError:  # pragma: no cover - PyG is a hard dependency
        return False
    return bool(getattr(pyg_typing, name, False))


def radius_graph(pos: Tensor, r: float, batch: Tensor | None = None, loop: bool = False,
                 max_num_neighbors: int | None = 32, use_compiled: bool | None = None) -> Tensor:
    r"""Edges from every point to the points strictly closer than ``r`` (same graph only).

    Args:
        pos (torch.Tensor): Node coordinates :math:`(N, d)`, any :math:`d \ge 1`; finite (NaN
            or inf is a ``ValueError``).
        r (float): The cutoff distance; pairs with :math:`\|p_i - p_j\| < r` are joined.
        batch (torch.Tensor, optional): Sorted graph assignment :math:`(N,)`; no edge crosses
            graphs.
        loop (bool): Include self-loops. (default: :obj:`False`)
        max_num_neighbors (int, optional): Keep at most this many neighbours per centre, the
            nearest ones (ties by smaller index). :obj:`None` keeps all. (default: :obj:`32`)
        use_compiled (bool, optional): Use ``pyg-lib``'s kernel for candidate search when
            installed (default: when available).

    Returns:
        ``edge_index`` :math:`(2, E)` with the centre in ``edge_index[1]``.
    """
    batch, num_graphs = _check_inputs(pos, batch)
    if not r > 0:
        raise ValueError(f"r must be positive, got {r}")
    if max_num_neighbors is not None and max_num_neighbors < 0:
        raise ValueError(f"max_num_neighbors must be >= 0 or None, got {max_num_neighbors}")
    n, d = pos.shape
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    r2 = r * r
    if use_compiled is None:
        use_compiled = _compiled_available("WITH_RADIUS")
    p = pos.detach()

    def within(row: Tensor, col: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        dist = _sq_dist(p, row, col)
        keep = dist < r2
        if not loop:
            keep &= row != col
        return row[keep], col[keep], dist[keep]

    chunks = None
    if use_compiled:  # pragma: no cover - pyg-lib is not part of the test environment
        ptr = _graph_ranges(batch, num_graphs)
        # Exact filtering happens in ``within``, so both paths apply the same distance test.
        ei = torch.ops.pyg.radius(p, p, ptr, ptr, r * (1 + 1e-6), n, 1, False)
        chunks = [within(ei[0], ei[1])]
    elif d <= _MAX_GRID_DIM:
        chunks = _grid_pairs(p, batch, num_graphs, r, within)
    if chunks is None:
        def keep_fn(q: Tensor, c: Tensor) -> Tensor:
            diff = p[q].unsqueeze(1) - p[c].unsqueeze(0)
            keep = ((diff * diff).sum(dim=-1) < r2) & (batch[q].unsqueeze(1) == batch[c])
            if not loop:
                keep &= q.unsqueeze(1) != c.unsqueeze(0)
            return keep

        chunks = [within(*_blocked_pairs(p, batch, num_graphs, keep_fn))]
    row, col, dist = (torch.cat(t) for t in zip(*chunks))
    return _finalize(row, col, dist, n, max_num_neighbors)


def _knn_cell_size(pos: Tensor, batch: Tensor, num_graphs: int, k: int) -> float | None:
    """A cell side ``s`` such that a ball of radius ``s`` holds about ``1.5 k`` points on average.

    The density is estimated per graph from its bounding box; the median over graphs is used.
    """
    d = pos.size(1)
    count = torch.bincount(batch, minlength=num_graphs).to(pos.dtype)
    lo = torch.full((num_graphs, d), float("inf"), dtype=pos.dtype, device=pos.device)
    hi = torch.full((num_graphs, d), float("-inf"), dtype=pos.dtype, device=pos.device)
    idx = batch.unsqueeze(1).expand_as(pos)
    lo = lo.scatter_reduce(0, idx, pos, reduce="amin")
    hi = hi.scatter_reduce(0, idx, pos, reduce="amax")
    side = (hi - lo)[count > 0]
    count = count[count > 0]
    if side.numel() == 0:
        return None
    # Flat directions (e.g. planar points in 3-D) would give a zero volume; floor them.
    side = side.clamp(min=float(side.max()) * 1e-3 + 1e-12)
    volume_per_point = side.prod(dim=1) / count
    unit_ball = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
    cell = float(((1.5 * k + 1) * volume_per_point / unit_ball).pow(1.0 / d).median())
    return cell if cell > 0 and cell != float("inf") else None


def knn_graph(pos: Tensor, k: int, batch: Tensor | None = None, loop: bool = False,
              use_compiled: bool | None = None) -> Tensor:
    r"""Edges from every point to its ``k`` nearest neighbours in the same graph.

    Ties are broken by the smaller node index, so the result is deterministic. A node whose
    graph has fewer than ``k`` other nodes gets all of them.

    Args:
        pos (torch.Tensor): Node coordinates :math:`(N, d)`, any :math:`d \ge 1`; finite (NaN
            or inf is a ``ValueError``).
        k (int): Number of neighbours.
        batch (torch.Tensor, optional): Sorted graph assignment :math:`(N,)`.
        loop (bool): Count the node itself as one of its neighbours. (default: :obj:`False`)
        use_compiled (bool, optional): Use ``pyg-lib``'s kernel when installed.

    Returns:
        ``edge_index`` :math:`(2, E)` with the centre in ``edge_index[1]``.
    """
    batch, num_graphs = _check_inputs(pos, batch)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = pos.size(0)
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    if use_compiled is None:
        use_compiled = _compiled_available("WITH_KNN")
    p = pos.detach()
    if use_compiled:  # pragma: no cover - pyg-lib is not part of the test environment
        ptr = _graph_ranges(batch, num_graphs)
        # Ask for a few more than k so that ties at the k-th distance are resolved by index here.
        ei = torch.ops.pyg.knn(p, p, ptr, ptr, k + 1 + 4, False, 1)
        row, col = ei[0], ei[1]
        if not loop:
            keep = row != col
            row, col = row[keep], col[keep]
        return _finalize(row, col, _sq_dist(p, row, col), n, k)

    rows, cols, dists = [], [], []
    pending = torch.arange(n, device=pos.device)
    cell_size = _knn_cell_size(p, batch, num_graphs, k) if p.size(1) <= _MAX_GRID_DIM else None
    # Grid search with a growing cell: a centre is settled once its k-th nearest candidate is
    # closer than the cell side (nothing outside the 3^d touching cells can be closer). Centres
    # still open after a few rounds (tiny graphs, outliers) go to the exact blocked search.
    for _ in range(4 if cell_size is not None else 0):
        if pending.numel() == 0:
            break
        limit = cell_size * cell_size

        def settle(row: Tensor, col: Tensor, limit: float = limit) -> tuple[Tensor, ...]:
            dist = _sq_dist(p, row, col)
            # Only candidates inside the cell radius can settle a centre; drop the rest before
            # the (comparatively expensive) sort.
            keep = dist < limit
            if not loop:
                keep &= row != col
            ei = _finalize(row[keep], col[keep], dist[keep], n, k)
            col, row = ei[0], ei[1]
            dist = _sq_dist(p, row, col)
            cnt = torch.bincount(row, minlength=n)
            kth = torch.zeros(n, dtype=dist.dtype, device=dist.device)
            kth = kth.scatter_reduce(0, row, dist, reduce="amax", include_self=False)
            done = (cnt >= k) & (kth < limit)
            keep = done[row]
            return row[keep], col[keep], dist[keep], done

        chunks = _grid_pairs(p, batch, num_graphs, cell_size, settle, queries=pending)
        if chunks is None:
            break
        settled = torch.zeros(n, dtype=torch.bool, device=pos.device)
        for row, col, dist, done in chunks:
            rows.append(row)
            cols.append(col)
            dists.append(dist)
            settled |= done
        pending = pending[~settled[pending]]
        cell_size *= 2

    if pending.numel():
        # Candidate selection uses the fast |a|^2 + |b|^2 - 2ab expansion (one matmul per
        # block); its rounding error is bounded, so widening the k-th distance by twice that
        # bound keeps every true neighbour. Exact distances are recomputed for candidates only.
        c = p - p.mean(dim=0)  # centring shrinks |a|^2 + |b|^2 and with it the rounding error
        sq = (c * c).sum(dim=-1)
        tol_scale = 8 * (p.size(1) + 4) * torch.finfo(p.dtype).eps

        def keep_fn(qi: Tensor, ci: Tensor) -> Tensor:
            approx = sq[qi].unsqueeze(1) + sq[ci].unsqueeze(0) - 2 * (c[qi] @ c[ci].t())
            other = batch[qi].unsqueeze(1) != batch[ci].unsqueeze(0)
            if not loop:
                other |= qi.unsqueeze(1) == ci.unsqueeze(0)
            approx = approx.masked_fill(other, float("inf"))
            thresh = approx.topk(min(k, approx.size(1)), dim=1, largest=False).values[:, -1:]
            tol = tol_scale * (sq[qi].unsqueeze(1) + sq[ci].max())
            return (approx <= thresh + 2 * tol) & torch.isfinite(approx)

        row, col = _blocked_pairs(c, batch, num_graphs, keep_fn, with_diff=False,
                                  queries=pending)
        rows.append(row)
        cols.append(col)
        dists.append(_sq_dist(p, row, col))
    return _finalize(torch.cat(rows), torch.cat(cols), torch.cat(dists), n, k)
