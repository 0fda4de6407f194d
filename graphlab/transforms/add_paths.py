"""Precompute PathNN path tensors as a PyG transform."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.transforms import BaseTransform
from tqdm import tqdm

from graphlab.utils.paths import (
    DEFAULT_MAX_PATHS,
    PATH_KINDS,
    PathCapError,
    Paths,
    enumerate_paths,
    feature_node_keys,
)
from graphlab.utils.safe_globals import register_safe_globals
from graphlab.utils.validation import check_edge_index

__all__ = ["AddPaths", "PathData", "path_keys", "parse_path_key"]

# Exact attribute formats written by AddPaths (full match, never substring matching):
#   path_index_{L}: [P_L, L + 1] node ids       -> incremented by num_nodes when batching
#   path_edge_{L}:  [P_L, L]     edge ids       -> incremented by num_edges
#   path_dist_{L}:  [P_L, L + 1] distances      -> not incremented
_PATH_KEY = re.compile(r"path_(index|edge|dist)_([1-9][0-9]*)")


def parse_path_key(key: str) -> tuple[str, int] | None:
    """``(field, L)`` for an attribute written by :class:`AddPaths`, else ``None``."""
    match = _PATH_KEY.fullmatch(key)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def path_keys(length: int) -> tuple[str, str, str]:
    """Attribute names ``(path_index_L, path_edge_L, path_dist_L)`` for paths with ``L`` edges."""
    return f"path_index_{length}", f"path_edge_{length}", f"path_dist_{length}"


class PathData(Data):
    """A :class:`~torch_geometric.data.Data` that batches the path tensors of :class:`AddPaths`.

    Path tensors are concatenated along dimension 0 (one row per path); node ids are shifted by
    ``num_nodes`` and edge ids by ``num_edges`` of the preceding graphs. Every other attribute
    batches as in :class:`~torch_geometric.data.Data`.
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        parsed = parse_path_key(key)
        if parsed is None:
            return super().__inc__(key, value, *args, **kwargs)
        field = parsed[0]
        if field == "index":
            return self.num_nodes
        if field == "edge":
            return self.edge_index.size(1) if self.edge_index is not None else 0
        return 0

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if parse_path_key(key) is not None:
            return 0
        return super().__cat_dim__(key, value, *args, **kwargs)


# datasets pre-transformed with AddPaths store PathData by reference: allow it in the safe loader
register_safe_globals(PathData)


class AddPaths(BaseTransform):
    r"""Enumerates the paths used by Path Neural Networks from the `"Path Neural Networks:
    Expressive and Accurate Graph Neural Networks" <https://arxiv.org/abs/2306.05955>`_ paper.

    For every length :math:`L = 1, \dots,` ``max_length`` it stores

    * ``path_index_L`` (``[P_L, L + 1]``): node ids of every path in flow order
      :math:`u_0 \to \dots \to u_L`; the path belongs to (is aggregated at) its last node
      :math:`v = u_L`;
    * ``path_edge_L`` (``[P_L, L]``): the id of the edge ``u_i -> u_{i+1}`` (a column of
      ``edge_index``, for edge features);
    * ``path_dist_L`` (``[P_L, L + 1]``, with ``distance_encoding``): the shortest-path distance
      :math:`d(u_i, v)` of every path node to :math:`v`.

    The output is a :class:`PathData`, whose ``__inc__`` / ``__cat_dim__`` make these tensors batch
    correctly in :class:`~torch_geometric.loader.DataLoader`. A collated
    :class:`~torch_geometric.data.Batch` is annotated in place instead, so the transform can also
    run per mini-batch (paths never cross graphs). Enumeration is vectorised
    (:func:`graphlab.utils.paths.enumerate_paths`).

    Args:
        max_length (int): largest number of edges per path (the paper's cutoff minus one).
        kind (str): ``"shortest"`` (SP: one canonical shortest path per node pair, chosen by a
            node-order-independent 1-WL key, seeded with the node features), ``"all_shortest"``
            (SP+) or ``"all_simple"`` (AP). (default: ``"all_simple"``)
        distance_encoding (bool): store ``path_dist_L``. (default: ``True``)
        max_paths_per_node (int, optional): keep at most this many paths of each length per node;
            more triggers a warning and a deterministic truncation. (default: ``None``)
        max_paths (int, optional): memory cap: a growth step of the enumeration that would create
            more rows is a ``ValueError`` raised before allocating, naming the high-degree node
            responsible (see :func:`~graphlab.utils.paths.enumerate_paths`); ``None``: no cap.
            (default: ``10_000_000``)
    """

    def __init__(self, max_length: int, kind: str = "all_simple", distance_encoding: bool = True,
                 max_paths_per_node: int | None = None,
                 max_paths: int | None = DEFAULT_MAX_PATHS) -> None:
        if kind not in PATH_KINDS:
            raise ValueError(f"kind must be one of {PATH_KINDS}, got {kind!r}")
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        self.max_length = max_length
        self.kind = kind
        self.distance_encoding = distance_encoding
        self.max_paths_per_node = max_paths_per_node
        if max_paths is not None and (isinstance(max_paths, bool)
                                      or not isinstance(max_paths, int) or max_paths < 1):
            raise ValueError(f"max_paths must be a positive int or None, got {max_paths!r}")
        self.max_paths = max_paths

    def forward(self, data: Data) -> PathData:
        num_nodes = data.num_nodes if data.num_nodes is not None else 0
        edge_index = data.edge_index
        if edge_index is None:
            edge_index = torch.empty(2, 0, dtype=torch.long)
        node_key = None
        if self.kind == "shortest" and data.x is not None and data.x.size(0) == num_nodes:
            node_key = feature_node_keys(data.x)
        paths = self._enumerate(edge_index, num_nodes, node_key)
        # a collated Batch is annotated in place (enumerating a batch equals enumerating its
        # graphs); a single graph becomes a PathData so that it batches its paths correctly
        out = data if isinstance(data, (PathData, Batch)) else PathData(**dict(data.to_dict()))
        return self._annotate(out, num_nodes, paths.nodes, paths.edges, paths.dists)

    def _enumerate(self, edge_index: Tensor, num_nodes: int, node_key: Tensor | None) -> Paths:
        return enumerate_paths(edge_index, num_nodes, self.max_length, kind=self.kind,
                               distance_encoding=self.distance_encoding,
                               max_paths_per_node=self.max_paths_per_node, node_key=node_key,
                               max_paths=self.max_paths)

    def _annotate(self, out: Data, num_nodes: int, nodes: Sequence[Tensor],
                  edges: Sequence[Tensor], dists: Sequence[Tensor] | None) -> Data:
        if out.num_nodes is None or "num_nodes" not in out:
            out.num_nodes = num_nodes
        for length in range(1, self.max_length + 1):
            k_index, k_edge, k_dist = path_keys(length)
            out[k_index] = nodes[length - 1]
            out[k_edge] = edges[length - 1]
            if dists is not None:
                out[k_dist] = dists[length - 1]
        return out

    def apply_to_dataset(self, graphs: Sequence[Data], chunk_size: int = 512,
                         progress: bool = False) -> list[PathData]:
        r"""``[self(g) for g in graphs]``, enumerated ``chunk_size`` graphs at a time.

        The graphs of a chunk are enumerated as one disjoint graph (one call of the batched
        kernel, which spreads the fixed cost per call over the chunk: about 1.7x faster than
        per-graph calls on molhiv) and the paths are split back per graph. Paths never cross
        graphs and the batched enumeration order is graph by graph, so every graph gets exactly
        the tensors, values and order, that ``self(g)`` gives it. Use it to pre-process a dataset once, e.g.
        ``InMemoryDataset.save(AddPaths(4).apply_to_dataset(raw_graphs), path)``.

        Memory: besides the output, a chunk holds its paths twice (batched and split) and the
        candidates of one growth step, so the peak grows linearly with ``chunk_size``. On the
        first 2,000 ogbg-molhiv molecules (``max_length=4``, all simple paths with distances;
        49 MiB of output tensors) the peak resident growth of the whole pass is 64 MiB with
        ``chunk_size=64``, 81 MiB with 512 and 139 MiB with 2,000: about 0.04 MiB per graph of
        the chunk (``benchmarks/pathnn_speed.py`` records it per chunk size). A chunk whose
        growth step exceeds ``max_paths`` is enumerated in halves, down to single graphs, where
        the cap raises exactly as :meth:`forward` does. With ``max_paths_per_node``, the
        truncation warning comes once per chunk.

        Args:
            graphs: the graphs (a list, or an indexable dataset).
            chunk_size (int): graphs enumerated together; bounds the memory.
            progress (bool): show a progress bar over the graphs.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        out: list[PathData] = []
        with tqdm(total=len(graphs), desc="AddPaths", disable=not progress,
                  mininterval=2) as bar:
            for start in range(0, len(graphs), chunk_size):
                chunk = [graphs[i] for i in range(start, min(start + chunk_size, len(graphs)))]
                out.extend(self._chunk(chunk))
                bar.update(len(chunk))
        return out

    def _chunk(self, graphs: list[Data]) -> list[PathData]:
        """Enumerate ``graphs`` as one disjoint graph and split the paths per graph."""
        num_nodes = [g.num_nodes if g.num_nodes is not None else 0 for g in graphs]
        edge_list = [g.edge_index if g.edge_index is not None
                     else torch.empty(2, 0, dtype=torch.long) for g in graphs]
        node_key = None
        if self.kind == "shortest":
            has_x = [g.x is not None and g.x.size(0) == n for g, n in zip(graphs, num_nodes)]
            if any(has_x) and not (all(has_x) and len({g.x.shape[1:] for g in graphs}) == 1):
                return [self(g) for g in graphs]  # seeds differ per graph: no common batch
            if all(has_x):
                node_key = feature_node_keys(torch.cat([g.x for g in graphs]))
        for ei in edge_list:
            check_edge_index(ei)  # shape and dtype; ranges are checked per graph below
        node_ptr = torch.tensor([0, *num_nodes]).cumsum(0)
        edge_ptr = torch.tensor([0, *(ei.size(1) for ei in edge_list)]).cumsum(0)
        local = torch.cat(edge_list, dim=1)
        graph_of_edge = torch.repeat_interleave(edge_ptr.diff())
        size = node_ptr.diff().index_select(0, graph_of_edge)
        bad = ((local < 0) | (local >= size)).any(0)
        if bool(bad.any()):
            g = int(graph_of_edge[bad.nonzero()[0, 0]])
            raise ValueError(f"graphs[{g}].edge_index holds node ids outside the valid range "
                             f"[0, {num_nodes[g] - 1}] for {num_nodes[g]} nodes")
        try:
            paths = self._enumerate(local + node_ptr.index_select(0, graph_of_edge),
                                    int(node_ptr[-1]), node_key)
        except PathCapError:
            if len(graphs) == 1:
                raise
            half = len(graphs) // 2
            return self._chunk(graphs[:half]) + self._chunk(graphs[half:])
        # the paths of a graph are contiguous (growth keeps the order of the last nodes)
        per_graph: list[list[list[Tensor]]] = [[[], [], []] for _ in graphs]
        for length in range(self.max_length):
            nodes = paths.nodes[length]
            graph = torch.searchsorted(node_ptr, nodes[:, -1].contiguous(), right=True) - 1
            counts = torch.bincount(graph, minlength=len(graphs)).tolist()
            parts = [nodes - node_ptr.index_select(0, graph).unsqueeze(1),
                     paths.edges[length] - edge_ptr.index_select(0, graph).unsqueeze(1)]
            if paths.dists is not None:
                parts.append(paths.dists[length])
            for field, tensor in enumerate(parts):
                for store, piece in zip(per_graph, tensor.split(counts)):
                    store[field].append(piece.clone())  # own storage, not a view of the chunk
        return [self._annotate(PathData(**dict(g.to_dict())), n, nodes, edges,
                               dists if paths.dists is not None else None)
                for g, n, (nodes, edges, dists) in zip(graphs, num_nodes, per_graph)]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(max_length={self.max_length}, kind={self.kind!r}, "
                f"distance_encoding={self.distance_encoding}, "
                f"max_paths_per_node={self.max_paths_per_node}, max_paths={self.max_paths})")


def get_paths(data: Data, length: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """The ``(path_index, path_edge, path_dist)`` tensors of paths with ``length`` edges."""
    k_index, k_edge, k_dist = path_keys(length)
    if k_index not in data or k_edge not in data:
        raise ValueError(f"data has no {k_index!r}: apply graphlab.transforms.AddPaths("
                         f"max_length>={length}) to the dataset first")
    return data[k_index], data[k_edge], data[k_dist] if k_dist in data else None
