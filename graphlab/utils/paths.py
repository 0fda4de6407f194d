"""Vectorised path enumeration for Path Neural Networks (array ops only, CPU or GPU).

A *path of length* :math:`L` is a sequence of :math:`L` edges :math:`e_1, \\dots, e_L` joining
:math:`L + 1` pairwise distinct nodes :math:`u_0 \\to u_1 \\to \\dots \\to u_L`. Paths are
stored in *flow order* (PyG's ``source -> target`` convention): row ``[u_0, ..., u_L]`` of
``paths[L]`` follows edge directions and ends at the node :math:`v = u_L` that aggregates it, so
an undirected graph stores every path in both directions. Paths are identified by their edge ids,
so parallel (multi-)edges give distinct paths; self-loops never lie on a simple path.

All routines work on a whole (batched, disjoint) graph at once: paths never cross components,
so enumerating a batch equals enumerating its graphs one by one. A single small graph on the CPU
(at most 64 nodes: one molecule, as a per-graph pre-transform sees it) runs the same growth on
NumPy views of its tensors, where a small operation costs a fraction of a torch op.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from graphlab.utils.validation import check_edge_index

__all__ = ["DEFAULT_MAX_PATHS", "PATH_KINDS", "PathCapError", "Paths", "enumerate_paths",
           "feature_node_keys", "lookup_distance", "multiset_ids", "path_colour_refinement",
           "shortest_path_distances", "wl_node_keys"]

#: the path families of the PathNN paper: SP, SP+ and AP
PATH_KINDS = ("shortest", "all_shortest", "all_simple")

_MASK64 = (1 << 64) - 1


def _signed(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >= (1 << 63) else v


# splitmix64 constants as signed int64 (torch has no uint64 arithmetic)
_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _mix(x: Tensor) -> Tensor:
    """splitmix64 finaliser on int64 (wrapping arithmetic); a deterministic integer hash."""
    x = x + _GOLDEN
    x = (x ^ ((x >> 30) & ((1 << 34) - 1))) * _MIX1
    x = (x ^ ((x >> 27) & ((1 << 37) - 1))) * _MIX2
    return x ^ ((x >> 31) & ((1 << 33) - 1))


@dataclass
class Paths:
    """Result of :func:`enumerate_paths`; entry ``k`` of each list holds paths with ``k + 1`` edges.

    Attributes:
        nodes: ``nodes[k]`` is a ``LongTensor [P_k, k + 2]`` of node ids in flow order; the last
            column is the node the path belongs to.
        edges: ``edges[k]`` is a ``LongTensor [P_k, k + 1]``; column ``i`` is the id (column of
            ``edge_index``) of the edge ``nodes[k][:, i] -> nodes[k][:, i + 1]``.
        dists: with ``distance_encoding``, ``dists[k]`` is a ``LongTensor [P_k, k + 2]`` holding
            the shortest-path distance from every path node to the path's last node (along edge
            directions); otherwise ``None``.
    """

    nodes: list[Tensor]
    edges: list[Tensor]
    dists: list[Tensor] | None = None

    @property
    def max_length(self) -> int:
        return len(self.nodes)

    def counts(self) -> list[int]:
        return [int(p.size(0)) for p in self.nodes]


def _in_csr(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Incoming-edge CSR: ``rowptr`` over targets and the edge ids sorted by target (stable)."""
    perm = torch.sort(edge_index[1], stable=True).indices
    counts = torch.bincount(edge_index[1], minlength=num_nodes)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    rowptr[1:] = torch.cumsum(counts, 0)
    return rowptr, perm


def _expand(first: Tensor, rowptr: Tensor, perm: Tensor) -> tuple[Tensor, Tensor]:
    """For every entry of ``first`` list all incoming edges: (row of ``first``, edge id)."""
    start = rowptr[first]
    deg = rowptr[first + 1] - start
    row = torch.repeat_interleave(torch.arange(first.numel(), device=first.device), deg)
    offset = torch.cumsum(deg, 0) - deg
    pos = start[row] + torch.arange(row.numel(), device=first.device) - offset[row]
    return row, perm[pos]


#: default cap on the rows one expansion step may create (candidate paths, or node pairs of
#: the breadth-first search): about 0.5-1.5 GB of int64 index tensors for paths of 2-6 edges
DEFAULT_MAX_PATHS = 10_000_000


class PathCapError(ValueError):
    """A growth (or breadth-first) step would create more rows than its cap allows."""


def _check_expansion(first: Tensor, deg: Tensor, max_rows: int | None, what: str,
                     option: str = "max_paths") -> int:
    """The exact number of rows expanding the rows whose first node is ``first`` along all
    incoming edges creates (``deg``: in-degrees); a ``ValueError`` above ``max_rows``, raised
    before allocating, names the node most rows go through and its in-degree.
    """
    total = int(deg.index_select(0, first).sum()) if first.numel() else 0
    if max_rows is None or total <= max_rows:
        return total
    load = torch.bincount(first, minlength=deg.numel()) * deg
    node = int(load.argmax())
    raise PathCapError(
        f"{what} would create {total} rows, above {option}={max_rows}: {int(load[node])} of "
        f"them extend paths through node {node} (in-degree {int(deg[node])}). High-degree "
        f"nodes make the number of paths explode; raise the cap ({option}=..., None for no cap; "
        f"also AddPaths({option}=...)) if the memory allows (~{total * 64 // 2**20} MiB or "
        f"more), or lower max_length.")


def _contains(sorted_keys: Tensor, query: Tensor) -> Tensor:
    """Membership of ``query`` in a sorted 1-D tensor (binary search; faster than ``isin``)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(query, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == query


def _bfs_levels(edge_index: Tensor, num_nodes: int, max_distance: int,
                max_pairs: int | None = DEFAULT_MAX_PATHS, option: str = "max_pairs"
                ) -> list[Tensor]:
    """``levels[d]``: sorted keys ``v * N + u`` of the pairs with :math:`d(u \\to v) = d`."""
    device = edge_index.device
    rowptr, perm = _in_csr(edge_index, num_nodes)
    target = torch.arange(num_nodes, device=device)
    node = target
    seen = target * num_nodes + node  # sorted
    levels = [seen]
    for d in range(1, max_distance + 1):
        _check_expansion(node, rowptr.diff(), max_pairs,
                         f"the breadth-first search to distance {d}", option)
        row, eid = _expand(node, rowptr, perm)
        keys = torch.unique(target[row] * num_nodes + edge_index[0, eid])
        keys = keys[~_contains(seen, keys)]
        levels.append(keys)
        if keys.numel() == 0:
            break
        seen = torch.sort(torch.cat([seen, keys])).values
        target, node = keys // num_nodes, keys % num_nodes
    while len(levels) < max_distance + 1:
        levels.append(seen.new_empty(0))
    return levels


def shortest_path_distances(
    edge_index: Tensor, num_nodes: int, max_distance: int,
    max_pairs: int | None = DEFAULT_MAX_PATHS,
) -> tuple[Tensor, Tensor]:
    """Sparse BFS distances up to ``max_distance`` between all node pairs of a (batched) graph.

    Returns ``(keys, dist)``: sorted ``keys = v * num_nodes + u`` for every pair with
    :math:`d(u \\to v) \\le` ``max_distance`` (distance along edge directions, ``d(v, v) = 0``)
    and the matching distances. Memory is linear in the number of such pairs, never
    :math:`O(N^2)`. Look distances up with :func:`lookup_distance`. A breadth-first step that
    would expand more than ``max_pairs`` (node pair, edge) rows is a ``ValueError`` naming the
    node of largest in-degree responsible (``None``: no cap).
    """
    return _distances(_bfs_levels(edge_index, num_nodes, max_distance, max_pairs))


def _distances(levels: list[Tensor]) -> tuple[Tensor, Tensor]:
    keys = torch.cat(levels)
    dist = torch.cat([torch.full_like(k, d) for d, k in enumerate(levels)])
    order = torch.argsort(keys)
    return keys[order], dist[order]


def lookup_distance(keys: Tensor, dist: Tensor, query: Tensor, default: int = -1) -> Tensor:
    """Distances of the pairs ``query`` (same key encoding); ``default`` where not reachable."""
    if keys.numel() == 0:
        return torch.full_like(query, default)
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    found = keys[pos] == query
    return torch.where(found, dist[pos], torch.full_like(query, default))


def wl_node_keys(
    edge_index: Tensor, num_nodes: int, node_key: Tensor | None = None, num_iterations: int = 3
) -> Tensor:
    """Permutation-invariant int64 node keys: hashed 1-WL colour refinement.

    ``node_key`` (``[N]`` int64, e.g. a hash of node features) seeds the colours. A node's key
    depends only on its (features-labelled) rooted neighbourhood, never on node ids, so it gives
    a node-order-independent tie-break. Nodes with equal keys are WL-indistinguishable (up to
    64-bit hash collisions).
    """
    device = edge_index.device
    if node_key is None:
        colour = torch.zeros(num_nodes, dtype=torch.long, device=device)
    else:
        colour = _mix(node_key.to(torch.long))
    src, dst = edge_index
    for it in range(num_iterations):
        # sum of hashed neighbour colours = hash of the neighbour multiset (wrapping int64 sum);
        # in- and out-neighbours are hashed differently so directed graphs are refined too
        agg_in = torch.zeros_like(colour).index_add_(0, dst, _mix(colour[src]))
        agg_out = torch.zeros_like(colour).index_add_(0, src, _mix(colour[dst] + 1))
        colour = _mix(colour * 31 + _mix(agg_in + it) * 7 + _mix(agg_out))
    return colour


def feature_node_keys(x: Tensor) -> Tensor:
    """An int64 hash of every node feature row (its bit pattern), for :func:`wl_node_keys`."""
    width = 1
    for size in x.shape[1:]:
        width *= int(size)
    x = x.reshape(x.size(0), width)
    if x.is_floating_point():
        # via float32 so that a float32 graph and its float64 copy get the same keys
        bits = x.detach().to(torch.float32).contiguous().view(torch.int32).to(torch.int64)
    else:
        bits = x.detach().to(torch.int64)
    key = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    for j in range(bits.size(1)):  # loop over feature columns, not nodes
        key = _mix(key * 1000003 + bits[:, j])
    return key


def _truncate(nodes: Tensor, edges: Tensor, max_paths: int) -> tuple[Tensor, Tensor, int]:
    """Keep the first ``max_paths`` paths of every last node, in a deterministic order."""
    last = nodes[:, -1]
    order = torch.sort(last, stable=True).indices
    last_sorted = last[order]
    first_pos = torch.searchsorted(last_sorted, last_sorted, right=False)
    rank = torch.arange(last.numel(), device=last.device) - first_pos
    keep = order[rank < max_paths]
    keep = torch.sort(keep).values
    dropped = last.numel() - keep.numel()
    return nodes[keep], edges[keep], dropped


def _canonical_shortest(nodes: Tensor, edges: Tensor, wl: Tensor) -> tuple[Tensor, Tensor]:
    """One path per (first, last) node pair: the lexicographically smallest WL-key sequence.

    Sorting is stable, so remaining ties (paths with equal key sequences, i.e. through
    WL-indistinguishable nodes) are broken by enumeration order.
    """
    n_nodes = int(nodes.size(1))
    order = torch.arange(nodes.size(0), device=nodes.device)
    # least significant column first (LSD radix-style lexsort), path read from v outwards
    for col in range(n_nodes - 1):
        order = order[torch.sort(wl[nodes[order, col]], stable=True).indices]
    pair = nodes[:, 0] * (int(nodes.max()) + 1 if nodes.numel() else 1) + nodes[:, -1]
    order = order[torch.sort(pair[order], stable=True).indices]
    pair_sorted = pair[order]
    is_first = torch.ones_like(pair_sorted, dtype=torch.bool)
    is_first[1:] = pair_sorted[1:] != pair_sorted[:-1]
    keep = torch.sort(order[is_first]).values
    return nodes[keep], edges[keep]


#: graphs with at most this many node pairs keep their pair tables (the shortest-path "seen"
#: set, the distances of the path nodes) as dense ``[N, N]`` matrices: a few ops per step, which
#: is what a per-graph pre-transform over small molecules pays for; larger (batched) graphs use
#: sorted int64 keys, memory linear in the pairs
_DENSE_PAIRS = 1 << 16
#: a padded in-neighbour table ``[N, max in-degree]`` is built when it holds at most
#: ``_PADDED_FACTOR * E + _PADDED_SLACK`` slots (no hub far above the mean in-degree)
_PADDED_FACTOR = 3
_PADDED_SLACK = 1 << 12


class _InEdges:
    """The incoming edges of every node, built once per :func:`enumerate_paths` call.

    Always a CSR (edge ids sorted stably by target). When no node's in-degree is far above the
    mean, also a padded table of (source, edge id) per node, ``[N, W]`` with ``W`` the largest
    in-degree: a growth step is then one gather of ``[P, W]`` candidates instead of a CSR
    expansion (same candidates, same order). A free slot of node ``u`` holds ``u`` itself,
    which every path rule rejects with no extra mask: ``u`` is on the path, and the pair
    ``(v, u)`` was reached one step earlier.
    """

    __slots__ = ("deg", "eid", "n", "nbr", "perm", "src", "start", "width")

    def __init__(self, edge_index: Tensor, n: int) -> None:
        tgt = edge_index[1]
        num_edges = tgt.numel()
        self.n = n
        self.perm = torch.sort(tgt, stable=True).indices
        self.deg = torch.bincount(tgt, minlength=n)
        self.start = torch.cumsum(self.deg, 0) - self.deg
        self.src = edge_index[0].index_select(0, self.perm)  # sources in CSR order
        self.width = int(self.deg.max()) if num_edges else 0
        self.nbr: Tensor | None = None
        self.eid: Tensor | None = None
        if self.width and n * self.width <= _PADDED_FACTOR * num_edges + _PADDED_SLACK:
            tgt_sorted = tgt.index_select(0, self.perm)
            slot = (tgt_sorted * self.width + torch.arange(num_edges, device=tgt.device)
                    - self.start.index_select(0, tgt_sorted))
            self.nbr = torch.arange(n, device=tgt.device).repeat_interleave(self.width).index_copy_(
                0, slot, self.src).view(n, self.width)
            self.eid = tgt.new_full((n * self.width,), -1).index_copy_(
                0, slot, self.perm).view(n, self.width)

    def candidates(self, nodes: Tensor, max_rows: int | None, what: str
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Every extension ``w -> nodes[:, 0]`` of the paths ``nodes``.

        Returns ``(context, cand, eid, row)``: ``cand`` (``[R, C]``, padded with the first
        node) are the new first nodes, ``eid`` their edge ids, ``context`` (``[R, L]``) the path each
        row of ``cand`` extends and ``row`` its row of ``nodes`` (``None``: ``R`` is the
        number of paths and ``context`` is ``nodes``). Fails before allocating when the exact
        number of candidates exceeds ``max_rows``.
        """
        first = nodes[:, 0]
        if self.nbr is not None and (max_rows is None or first.numel() * self.width <= max_rows):
            assert self.eid is not None
            return nodes, self.nbr.index_select(0, first), self.eid.index_select(0, first), None
        total = _check_expansion(first, self.deg, max_rows, what)
        deg = self.deg.index_select(0, first)
        row = torch.repeat_interleave(torch.arange(first.numel(), device=first.device), deg,
                                      output_size=total)
        shift = self.start.index_select(0, first) - (torch.cumsum(deg, 0) - deg)
        pos = torch.arange(total, device=first.device) + shift.index_select(0, row)
        return (nodes.index_select(0, row), self.src.index_select(0, pos).view(-1, 1),
                self.perm.index_select(0, pos).view(-1, 1), row)


def _select(ok: Tensor, cand: Tensor, eid: Tensor, row: Tensor | None
            ) -> tuple[Tensor, Tensor, Tensor]:
    """``(row, w, edge id)`` of the candidates where ``ok``, in row-major order."""
    flat = ok.view(-1).nonzero().squeeze(1)
    width = cand.size(1)
    index = flat if width == 1 else torch.div(flat, width, rounding_mode="floor")
    if row is not None:
        index = row.index_select(0, index)
    return index, cand.view(-1).index_select(0, flat), eid.reshape(-1).index_select(0, flat)


class _SeenPairs:
    """The node pairs ``(v, u)`` reached by the shortest paths grown so far.

    A candidate ``w`` extending a shortest path ``u_0 -> ... -> v`` of ``L - 1`` edges has
    :math:`d(w \\to v) \\le L`; it lies at distance exactly :math:`L` (the monotone-distance rule)
    iff the pair ``(v, w)`` was not reached by a shorter path, and every pair at distance
    :math:`d` is reached by the paths of :math:`d` edges. So the breadth-first search runs inside
    the growth. Dense ``[N, N]`` booleans for small graphs, sorted keys ``v * N + u`` otherwise.
    """

    def __init__(self, n: int, device: torch.device) -> None:
        self.n = n
        self.table: Tensor | None = None
        self.keys = torch.arange(n, device=device) * (n + 1)  # the pairs (v, v), sorted
        if n * n <= _DENSE_PAIRS:
            self.table = torch.eye(n, dtype=torch.bool, device=device)

    def new(self, context: Tensor, cand: Tensor) -> Tensor:
        key = context[:, -1:] * self.n + cand
        if self.table is not None:
            return ~torch.take(self.table, key)
        return ~_contains(self.keys, key)

    def add(self, nodes: Tensor) -> None:
        key = nodes[:, -1] * self.n + nodes[:, 0]
        if self.table is not None:
            self.table.view(-1).index_fill_(0, key, True)
        else:
            self.keys = torch.sort(torch.cat([self.keys, torch.unique(key)])).values


def _simple_distances(paths: list[Tensor], n: int) -> list[Tensor]:
    """Distances of every node of every simple path to its last node, read off the paths.

    The shortest route from the ``i``-th node of a path of ``L`` edges to its last node ``v`` is
    a simple path of at most ``L - i`` edges ending at ``v``, so it is among the enumerated
    ones: :math:`d(u \\to v)` is the fewest edges of an enumerated path from ``u`` to ``v``.
    """
    device = paths[0].device
    keys = [p[:, -1:] * n + p for p in paths]  # column 0: the pair (v, u_0)
    if n * n <= _DENSE_PAIRS:
        table = torch.full((n, n), -1, dtype=torch.long, device=device).fill_diagonal_(0)
        flat = table.view(-1)
        for length in range(len(paths), 0, -1):  # shorter paths overwrite longer ones
            flat.index_fill_(0, keys[length - 1][:, 0], length)
        return [torch.take(table, k) for k in keys]
    pairs = torch.cat([torch.arange(n, device=device) * (n + 1)] + [k[:, 0] for k in keys])
    length = torch.cat([torch.zeros(n, dtype=torch.long, device=device)]
                       + [torch.full_like(p[:, 0], k) for k, p in enumerate(paths, start=1)])
    pairs, order = torch.sort(pairs, stable=True)  # stable: a pair's shortest path comes first
    first = torch.ones_like(pairs, dtype=torch.bool)
    first[1:] = pairs[1:] != pairs[:-1]
    pairs, dist = pairs[first], length[order[first]]
    return [lookup_distance(pairs, dist, k) for k in keys]


#: CPU graphs with at most this many nodes (a molecule: the unit of work of a per-graph
#: pre-transform) are enumerated by :func:`_small_graph_paths`; larger (batched) graphs, and
#: graphs on other devices, by the tensor growth of :func:`enumerate_paths`
_SMALL_NODES = 64


def _small_graph_paths(ei: np.ndarray, n: int, max_length: int, kind: str,
                       simple_distances: bool, max_paths: int | None
                       ) -> tuple[list[Tensor], list[Tensor], list[Tensor] | None] | None:
    """The growth of :func:`enumerate_paths` for one small CPU graph, on NumPy views.

    At molecule size every array holds a few hundred entries and the time is the fixed cost
    per operation: about 1 us in NumPy against 3-10 us for a torch op (dispatch, autograd and
    TensorIterator set-up). So the same vectorised algorithm runs on zero-copy views of the
    tensors, and the results come back as tensors without a copy (``torch.from_numpy``): about
    130 NumPy calls for AP with distances up to 4 edges (the tensor growth makes 140 torch
    calls), none per node or path, in a third of the time.

    * A path lives in one row ``[u_0, ~e_0, u_1, ~e_1, ..., u_L]`` (node ids interleaved with
      bit-inverted edge ids). Extending all paths is one gather of their first node's slots
      in a padded in-edge table ``[N, W, .]`` (a free slot of ``u`` holds ``u``, which every
      rule rejects), one test per candidate and one concatenation of the kept ones in front.
    * The simple-path rule tests ``w`` against a bit set of the path's nodes (an int64 per
      path, hence at most 64 nodes): one ``&`` instead of a comparison with every column.
    * The shortest-path rule reads one dense matrix, :math:`D_{vu} = \\#\\{k \\le L :
      ((I + A)^k)_{vu} = 0\\} = \\min(d(u \\to v), L + 1)` (``max_length - 1`` products of
      ``[N, N]`` matrices); AP's distances are read off the paths (:func:`_simple_distances`).

    Rows come out in the order of the tensor growth (last node, then the in-edge rank of every
    further node, CSR order), so the outputs are identical. Returns ``None`` when a growth step
    would hold more than ``max_paths`` candidate rows: the tensor growth then counts them
    exactly and raises.
    """
    src, tgt = ei[0], ei[1]  # a view of edge_index: never written
    perm = np.argsort(tgt, kind="stable")
    tgt_sorted = tgt.take(perm)
    # rank of every edge among the in-edges of its target (CSR order), and the table width
    rank = np.arange(tgt.shape[0]) - np.searchsorted(tgt_sorted, tgt_sorted)
    width = int(rank.max()) + 1 if rank.size else 0
    simple = kind == "all_simple"
    ids = np.arange(n)
    src_sorted = src.take(perm)
    table = np.zeros((n, width, 3 if simple else 2), dtype=np.int64)  # (w, ~e[, bit of w])
    table[:, :, 0] = ids[:, None]  # a free slot of u holds u (so its edge is never picked)
    table[tgt_sorted, rank, 0] = src_sorted
    table[tgt_sorted, rank, 1] = ~perm
    if simple:
        table[:, :, 2] = np.left_shift(1, table[:, :, 0])

    dist = None
    if not simple:
        step = np.eye(n)
        step[tgt, src] = 1.0  # step[v, x] = 1 for an edge x -> v: step = I + A
        # only the zero pattern of step^k matters: clamp where the products could overflow
        # float64 (inf * 0 is nan), a bound on the shapes alone
        clamp = max_length * math.log2(max(n, 2)) > 1000
        reach = [np.eye(n), step]
        for _ in range(max_length - 1):
            power = reach[-1] @ step
            reach.append(np.minimum(power, 1.0, out=power) if clamp else power)
        dist = (np.stack(reach) == 0).sum(0, dtype=np.int64).reshape(-1)  # [v * N + u]

    rows = ids.reshape(n, 1)
    onpath = np.left_shift(1, ids)
    grown = []
    for length in range(1, max_length + 1):
        if max_paths is not None and rows.shape[0] * width > max_paths:
            return None
        cand = table if length == 1 else table.take(rows[:, 0], 0)  # [R, W, .]
        if simple:
            ok = (cand[:, :, 2] & onpath[:, None]) == 0
        else:  # monotone-distance rule: d(w -> v) = length
            assert dist is not None
            ok = dist.take(cand[:, :, 0] + rows[:, -1:] * n) == length
        keep = np.flatnonzero(ok)
        parent = keep // max(width, 1)
        picked = cand.reshape(-1, table.shape[2]).take(keep, 0)
        if simple:
            onpath = onpath.take(parent) | picked[:, 2]
        rows = np.concatenate((picked[:, :2], rows.take(parent, 0)), 1)
        grown.append(rows)

    nodes = [np.ascontiguousarray(r[:, ::2]) for r in grown]
    edges = [torch.from_numpy(~r[:, 1::2]) for r in grown]
    dists = None
    if simple and simple_distances:
        # as in _simple_distances: the shortest route from a path node to v is an enumerated
        # simple path, so d(u -> v) is the fewest edges of an enumerated path from u to v
        keys = [p + p[:, -1:] * n for p in nodes]  # pairs (v, u); column 0: (v, u_0)
        dist = np.full(n * n, -1, dtype=np.int64)
        for length in range(max_length, 0, -1):  # shorter paths overwrite longer ones
            dist[keys[length - 1][:, 0]] = length
        dist[ids * (n + 1)] = 0
        dists = [torch.from_numpy(dist.take(k)) for k in keys]
    return [torch.from_numpy(p) for p in nodes], edges, dists


def enumerate_paths(
    edge_index: Tensor,
    num_nodes: int,
    max_length: int,
    kind: str = "all_simple",
    distance_encoding: bool = False,
    max_paths_per_node: int | None = None,
    node_key: Tensor | None = None,
    max_paths: int | None = DEFAULT_MAX_PATHS,
) -> Paths:
    r"""Enumerate the paths of a (batched) graph with up to ``max_length`` edges.

    Paths are grown backwards from their last node :math:`v` by CSR expansion over incoming
    edges: a path :math:`u_0 \to \dots \to v` extends to :math:`w \to u_0 \to \dots \to v` for
    every edge :math:`w \to u_0` such that

    * ``"all_simple"``: :math:`w` is not on the path (an on-path mask);
    * ``"all_shortest"`` / ``"shortest"``: :math:`d(w \to v) = L + 1` (the monotone-distance
      rule on BFS distances), which yields exactly the shortest paths;
    * ``"shortest"`` then keeps one path per node pair :math:`(u_0, v)`: the one whose sequence of
      1-WL node keys (:func:`wl_node_keys`, seeded with ``node_key``) is lexicographically
      smallest. The choice does not depend on node ids except among paths whose key sequences
      tie (automorphic / WL-indistinguishable routes), where any choice gives the same multiset
      of key sequences.

    A CPU graph of at most 64 nodes without ``max_paths_per_node`` (one molecule) runs the same
    growth on NumPy views (:func:`_small_graph_paths`: its time is the fixed cost per
    operation, not the work); the tensors it returns are identical, order included.

    Args:
        edge_index: ``[2, E]`` edges ``source -> target``.
        num_nodes: number of nodes :math:`N`.
        max_length: largest number of edges per path (the paper's cutoff minus one).
        kind: ``"shortest"``, ``"all_shortest"`` or ``"all_simple"``.
        distance_encoding: also return the distances of every path node to the last node.
        max_paths_per_node: keep at most this many paths of each length per last node (the
            first ones in enumeration order, which is deterministic); warns when it truncates.
            Truncation is applied while growing, so longer paths extend only kept ones.
        node_key: optional ``[N]`` int64 node labels seeding the ``"shortest"`` tie-break.
        max_paths: cap on the rows one growth step (or breadth-first step) may create. Before
            every step the exact number of candidate rows is computed from the in-degrees of the
            paths' first nodes; above the cap a ``ValueError`` names the node most of them go
            through and its in-degree, before anything is allocated (a star with 5,000 leaves
            has ~25M paths of 2 edges). ``None`` disables the cap. (default: ``10_000_000``)

    Returns:
        :class:`Paths` with per-length node, edge and (optionally) distance tensors.
    """
    if kind not in PATH_KINDS:
        raise ValueError(f"kind must be one of {PATH_KINDS}, got {kind!r}")
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    if max_paths_per_node is not None and max_paths_per_node < 1:
        raise ValueError(f"max_paths_per_node must be >= 1 or None, got {max_paths_per_node}")
    if max_paths is not None and (isinstance(max_paths, bool) or not isinstance(max_paths, int)
                                  or max_paths < 1):
        raise ValueError(f"max_paths must be a positive int or None, got {max_paths!r}")
    device = edge_index.device
    n = int(num_nodes)
    small = None
    if n <= _SMALL_NODES and max_paths_per_node is None and device.type == "cpu":
        check_edge_index(edge_index)  # shape and dtype; the ids, on the NumPy view (cheaper)
        ids = edge_index.numpy()
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            check_edge_index(edge_index, n)  # raises, naming the range
        small = _small_graph_paths(ids, n, max_length, kind, distance_encoding, max_paths)
    else:
        check_edge_index(edge_index, num_nodes)
    if small is not None:
        out_nodes, out_edges, simple_dists = small
        if kind == "shortest":
            wl = wl_node_keys(edge_index, n, node_key, num_iterations=max_length + 1)
            for k, (p, e) in enumerate(zip(out_nodes, out_edges)):
                out_nodes[k], out_edges[k] = _canonical_shortest(p, e, wl)
        return Paths(out_nodes, out_edges,
                     _path_distances(out_nodes, n, kind, distance_encoding, None, simple_dists))
    adj = _InEdges(edge_index, n)
    levels = None
    if max_paths_per_node is not None and (kind != "all_simple" or distance_encoding):
        # truncated paths may miss a pair's shortest route: exact breadth-first distances
        levels = _bfs_levels(edge_index, n, max_length, max_paths, "max_paths")
    seen = _SeenPairs(n, device) if kind != "all_simple" and levels is None else None
    wl = None
    if kind == "shortest":
        wl = wl_node_keys(edge_index, n, node_key, num_iterations=max_length + 1)

    nodes = torch.arange(n, device=device).view(-1, 1)
    edges = nodes.new_empty(n, 0)
    # the growing frontier holds *all* shortest paths even for kind="shortest": a canonical
    # path's prefix need not be the canonical path of its own pair
    out_nodes: list[Tensor] = []
    out_edges: list[Tensor] = []
    dropped_total = 0
    for length in range(1, max_length + 1):
        context, cand, eid, row = adj.candidates(
            nodes, max_paths, f"enumerate_paths: growing paths to {length} edges")
        if kind == "all_simple":
            ok = (cand.unsqueeze(2) != context.unsqueeze(1)).all(2)
        elif seen is not None:
            ok = seen.new(context, cand)
        else:  # monotone-distance rule on exact distances: d(w -> v) = length
            assert levels is not None
            ok = _contains(levels[length], context[:, -1:] * n + cand)
        row, w, eid = _select(ok, cand, eid, row)
        nodes = torch.cat([w.unsqueeze(1), nodes.index_select(0, row)], dim=1)
        edges = torch.cat([eid.unsqueeze(1), edges.index_select(0, row)], dim=1)
        if seen is not None:
            seen.add(nodes)
        if max_paths_per_node is not None:
            nodes, edges, dropped = _truncate(nodes, edges, max_paths_per_node)
            dropped_total += dropped
        if kind == "shortest":
            assert wl is not None
            sel_nodes, sel_edges = _canonical_shortest(nodes, edges, wl)
            out_nodes.append(sel_nodes)
            out_edges.append(sel_edges)
        else:
            out_nodes.append(nodes)
            out_edges.append(edges)
    if dropped_total:
        warnings.warn(f"enumerate_paths: {dropped_total} paths exceeded max_paths_per_node="
                      f"{max_paths_per_node} and were dropped (deterministically)", stacklevel=2)
    dists = _path_distances(out_nodes, n, kind, distance_encoding, levels, None)
    return Paths(out_nodes, out_edges, dists)


def _path_distances(paths: list[Tensor], n: int, kind: str, distance_encoding: bool,
                    levels: list[Tensor] | None, simple: list[Tensor] | None
                    ) -> list[Tensor] | None:
    """``Paths.dists``: from the growth's own distances (``simple``, ``levels``) or the paths."""
    if not distance_encoding:
        return None
    if kind != "all_simple":  # on a shortest path the i-th node is length - i steps from v
        return [torch.arange(length, -1, -1, device=p.device).expand(p.size(0), -1).clone()
                for length, p in enumerate(paths, start=1)]
    if simple is not None:
        return simple
    if levels is not None:
        keys, dist = _distances(levels)
        return [lookup_distance(keys, dist, p[:, -1:] * n + p) for p in paths]
    return _simple_distances(paths, n)


def _rank_pairs(a: Tensor, b: Tensor) -> Tensor:
    """Dense ranks of the pairs ``(a[i], b[i])`` of non-negative int64s: equal iff the pairs are.

    Packs a pair into one int64 when that cannot overflow, else falls back to row-wise unique.
    """
    if a.numel() == 0:
        return a.clone()
    span = int(b.max()) + 1
    if (int(a.max()) + 1) * span < 2**62:
        return torch.unique(a * span + b, return_inverse=True)[1]
    return torch.unique(torch.stack([a, b], dim=1), dim=0, return_inverse=True)[1]


def multiset_ids(index: Tensor, value: Tensor, num_groups: int, prefix: Tensor | None = None
                 ) -> Tensor:
    """Dense ids of the groups ``0..num_groups-1`` by the multiset of their ``value`` entries.

    Entry ``i`` puts the int64 ``value[i]`` into group ``index[i]``. Two groups get
    the same id iff their multisets (and ``prefix`` entries, an optional ``[num_groups]`` int64
    tensor) are equal: exact, no hashing. Memory is ``num_groups`` times the largest number of
    distinct values in one group.
    """
    device = value.device
    # dense value ranks keep the packed (group, value) key far below 2**63
    value = torch.unique(value.to(torch.long), return_inverse=True)[1]
    span = int(value.max()) + 1 if value.numel() else 1
    if num_groups * span >= 2**62:
        raise ValueError(f"multiset_ids: {num_groups} groups x {span} values overflow int64")
    pair, counts = torch.unique(index.to(torch.long) * span + value, return_counts=True)
    group = pair // span  # pairs are sorted by (group, value): a canonical order per group
    item = _rank_pairs(pair % span, counts)
    size = torch.bincount(group, minlength=num_groups)
    width = int(size.max()) if size.numel() else 0
    table = torch.full((num_groups, width + 1), -1, dtype=torch.long, device=device)
    table[:, 0] = 0 if prefix is None else prefix.to(torch.long)
    if pair.numel():
        pos = torch.arange(pair.numel(), device=device) - (torch.cumsum(size, 0) - size)[group]
        table[group, pos + 1] = item
    return torch.unique(table, dim=0, return_inverse=True)[1]


def path_colour_refinement(
    edge_index: Tensor,
    num_nodes: int,
    max_length: int,
    colours: Tensor | None = None,
    distance_encoding: bool = True,
    schedule: str | list[int] = "layers",
    max_iterations: int = 100,
    kind: str = "all_simple",
    paths: Paths | None = None,
) -> list[Tensor]:
    r"""Injective (idealised) PathNN colour refinement: an upper bound on PathNN's power.

    Every iteration gives node :math:`v` the new colour

    .. math::
        c'(v) = \mathrm{ID}\Big(c(v),\ \big\{\!\!\big\{ \big((c(u_0), d_0), \dots,
            (c(u_L), d_L)\big) : p = (u_0 \to \dots \to u_L = v) \in \mathcal{P}_L(v),\
            L \in \Lambda \big\}\!\!\big\}\Big)

    with :math:`d_i` the shortest-path distance from :math:`u_i` to :math:`v` (dropped without
    ``distance_encoding``) and :math:`\mathrm{ID}` an exact injective relabelling (dense ranks,
    no hashing). A PathNN layer (:class:`~graphlab.conv.PathConv`) computes a function of the
    same arguments, so graphs with equal multisets of refined colours get equal embeddings from
    *every* PathNN with the same path family, whatever its weights or width.

    ``schedule="layers"`` follows :class:`~graphlab.models.PathNN`: iteration :math:`\ell`
    uses the paths of :math:`\ell` edges, :math:`\Lambda = \{\ell\}`, for
    :math:`\ell = 1..` ``max_length``. ``schedule="fixpoint"`` uses all lengths
    :math:`\Lambda = \{1..` ``max_length`` :math:`\}` in every iteration until the colour
    partition stops refining; since old colours are kept, its result refines the ``"layers"``
    one and bounds PathNNs with any number of layers over paths of up to ``max_length`` edges.
    A list of lengths runs one iteration per entry with :math:`\Lambda = \{\text{entry}\}`
    (e.g. ``[1, 2, 3, 4, 4]``: a PathNN with a second layer over 4-edge paths). Colours are
    consistent across the graphs of a batch.

    Args:
        edge_index: ``[2, E]`` edges of a (batched) graph.
        num_nodes: number of nodes.
        max_length: longest path in edges.
        colours: initial ``[N]`` non-negative int64 colours (default all equal).
        distance_encoding: include the distances :math:`d_i` (PathNN-AP's distance encoding).
        schedule: ``"layers"``, ``"fixpoint"`` or a list of path lengths, one per iteration.
        max_iterations: cap on the ``"fixpoint"`` iterations.
        kind: path family, as in :func:`enumerate_paths`.
        paths: precomputed :func:`enumerate_paths` output (with distances when
            ``distance_encoding``) to reuse.

    Returns:
        The ``[N]`` colours after every iteration (dense ids ``0..C-1``).
    """
    if isinstance(schedule, str):
        if schedule not in ("layers", "fixpoint"):
            raise ValueError(f"schedule must be 'layers', 'fixpoint' or a list of lengths, "
                             f"got {schedule!r}")
        per_round = [[length] for length in range(1, max_length + 1)] if schedule == "layers" \
            else [list(range(1, max_length + 1))] * max_iterations
    else:
        if not all(isinstance(k, int) and 1 <= k <= max_length for k in schedule):
            raise ValueError(f"schedule lengths must lie in 1..{max_length}, got {schedule}")
        per_round = [[k] for k in schedule]
    n = int(num_nodes)
    if paths is None:
        paths = enumerate_paths(edge_index, n, max_length, kind, distance_encoding=distance_encoding)
    if paths.max_length < max_length or (distance_encoding and paths.dists is None):
        raise ValueError("paths must hold max_length lengths (and distances with "
                         "distance_encoding)")
    colour = torch.zeros(n, dtype=torch.long, device=edge_index.device) if colours is None \
        else torch.unique(colours.to(torch.long), return_inverse=True)[1]
    history: list[Tensor] = []
    for lengths in per_round:
        owners, tags, codes = [], [], []
        for length in lengths:
            nodes = paths.nodes[length - 1]
            code = colour.new_zeros(nodes.size(0))
            # fold the path left to right: code = ID(code, (colour, distance)) per position
            for i in range(length + 1):
                token = colour[nodes[:, i]]
                if distance_encoding:
                    assert paths.dists is not None
                    token = _rank_pairs(token, paths.dists[length - 1][:, i])
                code = _rank_pairs(code, token)
            owners.append(nodes[:, -1])
            tags.append(torch.full_like(code, length))
            codes.append(code)
        # the length tag keeps the per-length code spaces apart
        items = _rank_pairs(torch.cat(tags), torch.cat(codes))
        new = multiset_ids(torch.cat(owners), items, n, prefix=colour)
        history.append(new)
        done = int(new.max()) == int(colour.max()) if n else True
        colour = new
        if schedule == "fixpoint" and done:
            break
    return history
