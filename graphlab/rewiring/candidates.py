"""Candidate non-edges for rewiring, chosen per graph with tensor ops."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from graphlab.rewiring.sampler import topk_mask
from graphlab.utils.validation import check_batch_vector, check_edge_index

__all__ = ["EdgeCandidates", "edge_candidates", "HEURISTICS"]

HEURISTICS = ("all", "distance", "reachable_distance", "component_distance")


def _hop_distances(local: Tensor, graph: Tensor, edge_index: Tensor, num_graphs: int,
                   max_nodes: int) -> Tensor:
    """All-pairs hop distances ``[G, Nmax, Nmax]`` (``inf`` if unreachable), by a multi-source
    breadth-first search that moves a ``[G * Nmax, Nmax]`` reachability table along the edges:
    ``O(E * Nmax)`` per hop instead of a dense ``O(N^3)`` matrix product."""
    slots = num_graphs * max_nodes
    src = graph[edge_index[0]] * max_nodes + local[edge_index[0]]
    dst = graph[edge_index[1]] * max_nodes + local[edge_index[1]]
    # distances ignore edge direction: rewiring candidates are unordered pairs
    src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    eye = torch.eye(max_nodes, dtype=torch.bool, device=local.device)
    reach = eye.repeat(num_graphs, 1)                       # reach[slot(v), s]: s reaches v
    dist = torch.full((slots, max_nodes), float("inf"), device=local.device)
    dist[reach] = 0.0
    frontier = reach
    for hop in range(1, max_nodes):
        moved = torch.zeros(slots, max_nodes, device=local.device)
        moved.index_add_(0, dst, frontier[src].float())
        frontier = (moved > 0) & ~reach
        if not bool(frontier.any()):
            break
        dist[frontier] = float(hop)
        reach = reach | frontier
    # dist[slot(v), s] is symmetric in (s, v) for undirected distances
    return dist.view(num_graphs, max_nodes, max_nodes)


def edge_candidates(edge_index: Tensor, num_nodes: int, batch: Tensor | None = None,
                    num_candidates: int | None = None, heuristic: str = "all",
                    generator: torch.Generator | None = None) -> Tensor:
    r"""Candidate node pairs :math:`(u, v)`, :math:`u < v`, that are not edges, for every graph of
    a batch at once.

    Args:
        edge_index (torch.Tensor): edges :math:`(2, |\mathcal{E}|)` (direction is ignored).
        num_nodes (int): number of nodes.
        batch (torch.Tensor, optional): graph membership :math:`(|\mathcal{V}|)`; it need not
            be sorted (nodes of a graph are ranked in node order).
        num_candidates (int, optional): at most this many pairs per graph; ``None`` keeps all.
        heuristic (str): ``"all"`` (every non-adjacent pair; when capped, a uniformly random
            subset drawn with ``generator``), ``"distance"`` (the pairs farthest apart in hops,
            unreachable pairs first; ties broken by node order) or ``"reachable_distance"`` (the
            farthest pairs joined by a path, unreachable pairs last). On graphs with several
            components ``"distance"`` spends the cap on unreachable pairs, which all tie, so the
            set is chosen by node order; ``"reachable_distance"`` keeps it structural.
            ``"component_distance"`` ranks reachable pairs by their distance minus the diameter
            of their component (unreachable pairs last), so every component offers its farthest
            pairs first: with ``"reachable_distance"`` the cap can go entirely to the
            component of largest diameter, which on EXP is the part both graphs of a pair share.
        generator (torch.Generator, optional): randomness of the capped ``"all"`` heuristic.

    Returns:
        torch.Tensor: ``cand_index`` of shape :math:`(2, C)`, grouped by graph.
    """
    if heuristic not in HEURISTICS:
        raise ValueError(f"heuristic must be one of {HEURISTICS}, got {heuristic!r}")
    if num_candidates is not None and num_candidates < 0:
        raise ValueError(f"num_candidates must be non-negative, got {num_candidates}")
    check_edge_index(edge_index, num_nodes)
    device = edge_index.device
    if num_nodes == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long, device=device)
    check_batch_vector(batch, num_nodes)
    batch = batch.long()
    num_graphs = int(batch.max()) + 1
    counts = torch.bincount(batch, minlength=num_graphs)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    # local id = rank of a node among its graph's nodes, in node order: a stable sort makes this
    # right for unsorted batch vectors too (for a sorted one it is ``arange - ptr[batch]``)
    order = torch.argsort(batch, stable=True)
    local = torch.empty_like(batch)
    local[order] = torch.arange(num_nodes, device=device) - ptr[batch[order]]
    max_nodes = int(counts.max())
    # global id of local node ``u`` of graph ``g``: ``node_of[g * max_nodes + u]``
    node_of = torch.zeros(num_graphs * max_nodes, dtype=torch.long, device=device)
    node_of[batch * max_nodes + local] = torch.arange(num_nodes, device=device)

    adj = torch.zeros(num_graphs, max_nodes, max_nodes, dtype=torch.bool, device=device)
    g = batch[edge_index[0]]
    adj[g, local[edge_index[0]], local[edge_index[1]]] = True
    adj = adj | adj.transpose(1, 2)
    node_ok = torch.arange(max_nodes, device=device) < counts.unsqueeze(1)
    upper = torch.ones(max_nodes, max_nodes, dtype=torch.bool, device=device).triu(1)
    valid = node_ok.unsqueeze(2) & node_ok.unsqueeze(1) & upper & ~adj

    if heuristic in ("distance", "reachable_distance", "component_distance"):
        dist = _hop_distances(local, batch, edge_index, num_graphs, max_nodes)
        reachable = torch.isfinite(dist)
        unreachable = float(max_nodes) if heuristic == "distance" else -1.0
        if heuristic == "component_distance":
            ecc = torch.where(reachable, dist, torch.zeros_like(dist)).amax(-1)     # [G, N]
            # diam[g, u]: largest eccentricity among the nodes u reaches
            diam = torch.where(reachable, ecc.unsqueeze(1), torch.zeros_like(dist)).amax(-1)
            dist = dist - diam.unsqueeze(-1)              # in [-(N - 1), 0] where reachable
            unreachable = -float(max_nodes)
        score = torch.where(reachable, dist, torch.full_like(dist, unreachable))
    elif num_candidates is not None:
        score = torch.rand(num_graphs, max_nodes, max_nodes, generator=generator).to(device)
    else:
        score = torch.zeros(num_graphs, max_nodes, max_nodes, device=device)

    if num_candidates is not None:
        flat_valid = valid.view(num_graphs, -1)
        k = torch.clamp(flat_valid.sum(-1), max=num_candidates)
        valid = topk_mask(score.view(num_graphs, -1), k, flat_valid).view_as(valid)
    gi, u, v = valid.nonzero(as_tuple=True)
    a, b = node_of[gi * max_nodes + u], node_of[gi * max_nodes + v]
    # local order is node order within a graph, so a < b holds for any batch order
    return torch.stack([a, b])


class EdgeCandidates(BaseTransform):
    r"""Writes candidate non-edges for probabilistic rewiring to ``data.cand_index``
    (:math:`(2, C)`, :math:`u < v`), as in `"Probabilistically Rewired Message-Passing Neural
    Networks" <https://arxiv.org/abs/2310.02156>`_.

    ``cand_index`` contains ``"index"`` in its name, so PyG's batching offsets it by the number of
    nodes like ``edge_index``. See :func:`edge_candidates` for the heuristics.

    Args:
        num_candidates (int, optional): maximal number of pairs per graph (``None``: all).
        heuristic (str): ``"all"``, ``"distance"``, ``"reachable_distance"`` or
            ``"component_distance"``.
        seed (int): seed of the random cap of the ``"all"`` heuristic.
    """

    def __init__(self, num_candidates: int | None = None, heuristic: str = "all",
                 seed: int = 0) -> None:
        if heuristic not in HEURISTICS:
            raise ValueError(f"heuristic must be one of {HEURISTICS}, got {heuristic!r}")
        self.num_candidates = num_candidates
        self.heuristic = heuristic
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, data: Data) -> Data:
        data.cand_index = edge_candidates(data.edge_index, data.num_nodes, None,
                                          self.num_candidates, self.heuristic, self.generator)
        return data

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_candidates={self.num_candidates}, "
                f"heuristic={self.heuristic!r})")
