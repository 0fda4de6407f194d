"""Radius-graph construction as a transform, in pure PyTorch."""

from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from graphlab.utils.geometry import radius_graph

__all__ = ["RadiusGraph"]


class RadiusGraph(BaseTransform):
    r"""Joins every node to the nodes closer than ``r`` in ``data.pos`` (no cross-graph edges).

    A drop-in for :class:`torch_geometric.transforms.RadiusGraph` that needs neither ``pyg-lib``
    nor ``torch-cluster`` (their kernels are used when installed, with identical results). See
    :func:`graphlab.utils.geometry.radius_graph`: the search uses a cell grid (no dense
    :math:`N \times N` matrix), keeps the ``max_num_neighbors`` *nearest* neighbours, and is
    deterministic. Any existing ``edge_attr`` is dropped, as in PyG.

    Args:
        r (float): The cutoff distance (pairs with distance ``< r`` are joined).
        max_num_neighbors (int, optional): Neighbours kept per node, nearest first; :obj:`None`
            for all. (default: :obj:`32`)
        loop (bool): Include self-loops. (default: :obj:`False`)
    """

    def __init__(self, r: float, max_num_neighbors: int | None = 32, loop: bool = False) -> None:
        if not r > 0:
            raise ValueError(f"r must be positive, got {r}")
        self.r = r
        self.max_num_neighbors = max_num_neighbors
        self.loop = loop

    def forward(self, data: Data) -> Data:
        if getattr(data, "pos", None) is None:
            raise ValueError("RadiusGraph needs data.pos")
        data.edge_index = radius_graph(data.pos, self.r, getattr(data, "batch", None),
                                       loop=self.loop, max_num_neighbors=self.max_num_neighbors)
        data.edge_attr = None
        return data

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(r={self.r}, "
                f"max_num_neighbors={self.max_num_neighbors})")
