"""k-nearest-neighbour graph construction as a transform, in pure PyTorch."""

from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import to_undirected

from graphlab.utils.geometry import knn_graph

__all__ = ["KNNGraph"]


class KNNGraph(BaseTransform):
    r"""Joins every node to its ``k`` nearest neighbours in ``data.pos`` (same graph only).

    A drop-in for :class:`torch_geometric.transforms.KNNGraph` that needs neither ``pyg-lib``
    nor ``torch-cluster`` (their kernels are used when installed, with identical results). See
    :func:`graphlab.utils.geometry.knn_graph`: ties are broken by the smaller node index, and no
    dense :math:`N \times N` matrix is built. Every node receives exactly ``k`` incoming edges
    (fewer if its graph is smaller). Any existing ``edge_attr`` is dropped, as in PyG.

    Args:
        k (int): Number of neighbours. (default: :obj:`6`)
        loop (bool): Count the node itself among its neighbours. (default: :obj:`False`)
        force_undirected (bool): Add the reverse of every edge. (default: :obj:`False`)
    """

    def __init__(self, k: int = 6, loop: bool = False, force_undirected: bool = False) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.loop = loop
        self.force_undirected = force_undirected

    def forward(self, data: Data) -> Data:
        if getattr(data, "pos", None) is None:
            raise ValueError("KNNGraph needs data.pos")
        edge_index = knn_graph(data.pos, self.k, getattr(data, "batch", None), loop=self.loop)
        if self.force_undirected:
            edge_index = to_undirected(edge_index, num_nodes=data.num_nodes)
        data.edge_index = edge_index
        data.edge_attr = None
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(k={self.k})"
