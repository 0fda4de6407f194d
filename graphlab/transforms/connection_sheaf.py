"""Restriction maps of the connection Laplacian from local PCA and orthogonal Procrustes."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import scatter

from graphlab.utils.validation import check_edge_index, check_node_features

__all__ = ["ConnectionSheaf"]


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(s, s + size) for s in range(0, n, size)] or [slice(0, 0)]


class ConnectionSheaf(BaseTransform):
    r"""Fixed orthogonal restriction maps from the `"Sheaf Neural Networks with Connection
    Laplacians" <https://arxiv.org/abs/2206.08702>`_ paper, computed once before training.

    1. **Local PCA.** Every node :math:`i` gets ``num_points`` neighbourhood points: its graph
       neighbours nearest in feature space first, topped up with its nearest nodes in feature
       space when the degree is smaller. The top-:math:`d` right singular vectors of the centred
       points :math:`\{\mathbf{x}_j - \mathbf{x}_i\}` form an orthonormal frame
       :math:`\mathbf{O}_i \in \mathbb{R}^{p \times d}` (one batched ``torch.linalg.svd`` over all
       nodes).
    2. **Procrustes alignment.** For every edge :math:`(u \to v)`

       .. math::
           \mathbf{O}_{vu} = \arg\min_{\mathbf{O} \in O(d)}
           \|\mathbf{O}_v^\top \mathbf{O}_u - \mathbf{O}\|_F = \mathbf{U}\mathbf{V}^\top,
           \qquad \mathbf{O}_v^\top \mathbf{O}_u = \mathbf{U} \boldsymbol{\Sigma} \mathbf{V}^\top,

       one batched SVD of the :math:`[|\mathcal{E}|, d, d]` stack. Both directions of an edge
       decompose the same matrix, so :math:`\mathbf{O}_{uv} = \mathbf{O}_{vu}^\top` exactly.

    The maps are stored as ``data[key]`` of shape :math:`(|\mathcal{E}|, 2, d, d)` in
    :class:`~graphlab.conv.SheafConv`'s ``maps`` layout (target-side :math:`\mathbf{I}`,
    source-side :math:`\mathbf{O}_{vu}`), so :math:`\mathbf{L}_{vu} = -\mathbf{O}_{vu}` and the
    layer's Laplacian is the connection Laplacian. They are edge-level and batch with
    ``Batch.from_data_list``.

    Args:
        stalk_dim (int): frame dimension :math:`d`.
        num_points (int, optional): neighbourhood size for local PCA (default ``max(2d, 10)``).
        key (str): attribute name of the maps (default ``"sheaf_maps"``).
        chunk_size (int): rows per block of the feature-space nearest-neighbour search.
    """

    def __init__(self, stalk_dim: int, num_points: int | None = None, key: str = "sheaf_maps",
                 chunk_size: int = 2048) -> None:
        if stalk_dim < 1:
            raise ValueError(f"stalk_dim must be positive, got {stalk_dim}")
        self.stalk_dim = stalk_dim
        self.num_points = num_points if num_points is not None else max(2 * stalk_dim, 10)
        if self.num_points < 1:
            raise ValueError(f"num_points must be positive, got {self.num_points}")
        self.key = key
        self.chunk_size = chunk_size

    # ------------------------------------------------------------------ steps
    def _feature_knn(self, x: Tensor, k: int) -> Tensor:
        """``[N, k]`` nearest other nodes in feature space (row blocks, never N x N at once)."""
        n = x.size(0)
        sq = (x * x).sum(-1)
        # bag-of-words features are ~1% dense: a sparse product is several times cheaper
        sparse = x.numel() > 0 and (x != 0).float().mean() < 0.05
        if sparse:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
                xs = x.to_sparse_csr()
        out = []
        for start in range(0, n, self.chunk_size):  # loop over row blocks, not nodes
            xb = x[start:start + self.chunk_size]
            inner = (xs @ xb.T).T if sparse else xb @ x.T
            dist = sq[start:start + xb.size(0), None] - 2 * inner + sq[None]
            rows = torch.arange(start, start + xb.size(0))
            dist[rows - start, rows] = float("inf")  # not oneself
            out.append(dist.topk(min(k, max(n - 1, 1)), dim=-1, largest=False).indices)
        idx = torch.cat(out)
        if idx.size(1) < k:  # tiny graphs: repeat the last neighbour
            idx = torch.cat([idx, idx[:, -1:].expand(-1, k - idx.size(1))], 1)
        return idx

    def neighbourhoods(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """``[N, num_points]`` node ids of every node's local-PCA neighbourhood."""
        n, k = x.size(0), self.num_points
        src, dst = edge_index
        keep = src != dst
        src, dst = src[keep], dst[keep]
        sq = (x * x).sum(-1)
        dist = sq[src] + sq[dst] - 2 * (x[src] * x[dst]).sum(-1)
        # sort by distance, then stably by target: each target's neighbours, nearest first
        order = dist.argsort(stable=True)
        order = order[dst[order].argsort(stable=True)]
        src, dst = src[order], dst[order]
        deg = scatter(torch.ones_like(dst), dst, 0, dim_size=n, reduce="sum")
        start = torch.cumsum(deg, 0) - deg
        rank = torch.arange(dst.numel()) - start[dst]
        first = rank < k
        graph_part = torch.zeros(n, k, dtype=torch.long)
        graph_part[dst[first], rank[first]] = src[first]
        knn = self._feature_knn(x, k)
        slot = torch.arange(k).expand(n, k)
        num_graph = deg.clamp(max=k).unsqueeze(-1)
        fill = knn.gather(1, (slot - num_graph).clamp(min=0))
        return torch.where(slot < num_graph, graph_part, fill)

    def frames(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """``[N, p, d]`` orthonormal local PCA frames (float64; the Gram products run in the
        input precision, the K x K eigen-decompositions in float64)."""
        p, d = x.size(1), self.stalk_dim
        if d > p:
            raise ValueError(f"stalk_dim ({d}) cannot exceed the feature width ({p})")
        hood = self.neighbourhoods(x, edge_index)
        out = []
        for start in range(0, x.size(0), self.chunk_size):  # node blocks bound the memory
            rows = slice(start, start + self.chunk_size)
            # [B, K, p] centred at the node, in the input precision (memory-bound for wide p)
            points = x[hood[rows]] - x[rows].unsqueeze(1)
            # right singular vectors from the small K x K Gram matrix: V = P^T U / sigma
            evals, evecs = torch.linalg.eigh((points @ points.transpose(-1, -2)).double())
            evals, evecs = evals.flip(-1)[..., :d], evecs.flip(-1)[..., :d]
            if evals.size(-1) < d:  # fewer points than frame vectors
                pad = d - evals.size(-1)
                evals = torch.cat([evals, evals.new_zeros(evals.size(0), pad)], -1)
                evecs = torch.cat([evecs, evecs.new_zeros(*evecs.shape[:-1], pad)], -1)
            tol = 1e-10 * evals[..., :1].clamp_min(1e-30)
            # directions the neighbourhood does not span stay zero (no data to align them)
            scale = torch.where(evals > tol, evals.clamp_min(1e-300).rsqrt(), 0.0)
            frame = (points.transpose(-1, -2) @ (evecs * scale.unsqueeze(-2)).to(x.dtype))
            frame = frame.double()
            # canonical signs (largest entry of each vector positive): SVD signs are arbitrary
            # and would otherwise depend on the order of the points, breaking equivariance
            top = frame.abs().argmax(dim=1, keepdim=True)
            out.append(frame * torch.where(frame.gather(1, top) < 0, -1.0, 1.0))
        return torch.cat(out) if out else x.new_zeros(0, p, d, dtype=torch.float64)

    def alignment(self, frames: Tensor, edge_index: Tensor) -> Tensor:
        """``[E, d, d]`` Procrustes transports ``O_vu`` for edges ``(u -> v)``."""
        src, dst = edge_index
        flip = src > dst
        lo, hi = torch.where(flip, dst, src), torch.where(flip, src, dst)
        # decompose O_lo^T O_hi for both directions, so reverse edges get exact transposes
        # the gathers dominate the cost: do them in float32, the d x d SVD in float64
        f32 = frames.float()
        m = torch.cat([f32[lo[s]].transpose(-1, -2) @ f32[hi[s]]
                       for s in _blocks(lo.numel(), self.chunk_size)]).double()
        u, _, vh = torch.linalg.svd(m)
        o_lo_hi = u @ vh  # transports hi's frame into lo's
        return torch.where(flip[:, None, None], o_lo_hi, o_lo_hi.transpose(-1, -2))

    def forward(self, data: Data) -> Data:
        x, edge_index = data.x, data.edge_index
        check_node_features(x, "x")
        check_edge_index(edge_index, x.size(0))
        d = self.stalk_dim
        x = x.detach()
        if x.size(0) == 0 or edge_index.size(1) == 0:
            transport = x.new_zeros(edge_index.size(1), d, d, dtype=torch.float64)
        else:  # frames and Procrustes in float64: orthogonal to ~1e-15 before the cast
            transport = self.alignment(self.frames(x, edge_index), edge_index)
        eye = torch.eye(d, dtype=transport.dtype).expand_as(transport)
        data[self.key] = torch.stack([eye, transport], 1).to(data.x.dtype)
        return data

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(stalk_dim={self.stalk_dim}, "
                f"num_points={self.num_points})")
