r"""A GIN encoder over op-level computation graphs (GHN / NAS-predictor style)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GINConv, global_max_pool, global_mean_pool

from graphlab.metanets.spec import OP_TYPES
from graphlab.utils.validation import (
    check_edge_index,
    check_node_features,
    value_checks_enabled,
)

__all__ = ["OpGraphEncoder"]


class OpGraphEncoder(nn.Module):
    r"""Graph-level embedding of an op graph (``to_graph(module, view="op")``), for predicting
    properties of unseen architectures as in NAS predictors and GHN-2's property prediction
    (`Knyazev et al., NeurIPS 2021 <https://arxiv.org/abs/2110.13100>`_). Node inputs are the
    op type (embedded) and the op's numeric features ``x`` (log parameter count, output size,
    kernel, stride, groups); edges are used in both directions:

    .. math::
        \mathbf{h}_i^{(l+1)} = \mathrm{MLP}^{(l)}\Big((1+\epsilon)\mathbf{h}_i^{(l)} +
        \sum_{j \in \mathcal{N}(i)} \mathbf{h}_j^{(l)}\Big), \qquad
        \mathbf{y} = \rho\big(\operatorname{mean}_i \mathbf{h}_i,\ \max_i \mathbf{h}_i\big)

    Args:
        out_channels (int): Output size.
        hidden_channels (int): Hidden size. (default: :obj:`32`)
        num_layers (int): GIN layers. (default: :obj:`3`)
        x_dim (int): Width of the op features ``x``. (default: :obj:`7`)

    Shapes:
        - **input:** a (batched) op-view :class:`~torch_geometric.data.Data` with ``x``
          :math:`(|\mathcal{V}|, F)`, ``node_type`` :math:`(|\mathcal{V}|)`, ``edge_index``
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, out_channels: int, hidden_channels: int = 32, num_layers: int = 3,
                 x_dim: int = 7) -> None:
        super().__init__()
        h = hidden_channels
        self.out_channels, self.hidden_channels, self.num_layers, self.x_dim = (
            out_channels, hidden_channels, num_layers, x_dim)
        self.type_emb = nn.Embedding(len(OP_TYPES), h)
        self.x_lin = nn.Linear(x_dim, h)
        self.convs = nn.ModuleList([
            GINConv(nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h)), train_eps=True)
            for _ in range(num_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(h) for _ in range(num_layers)])
        self.readout = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU(), nn.Linear(h, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, batch: Data) -> Tensor:
        n = batch.num_nodes
        check_node_features(batch.x, "x", channels=self.x_dim, num_nodes=n)
        check_edge_index(batch.edge_index, n)
        nt = batch.node_type
        if nt.shape != (n,) or nt.dtype != torch.long or (nt.numel() and value_checks_enabled(nt)
                                                           and (int(nt.min()) < 0
                                                                or int(nt.max()) >= len(OP_TYPES))):
            raise ValueError(f"node_type must be a long tensor of shape ({n},) with values in "
                             f"[0, {len(OP_TYPES)})")
        vec = getattr(batch, "batch", None)
        if vec is None:
            vec = torch.zeros(n, dtype=torch.long, device=batch.x.device)
        size = batch.num_graphs if isinstance(batch, Batch) else 1
        ei = torch.cat([batch.edge_index, batch.edge_index.flip(0)], dim=1)
        h = self.type_emb(batch.node_type) + self.x_lin(batch.x.to(self.x_lin.weight.dtype))
        for conv, norm in zip(self.convs, self.norms):
            h = norm(h + conv(h, ei).relu())
        pooled = torch.cat([global_mean_pool(h, vec, size), global_max_pool(h, vec, size)], -1)
        return self.readout(pooled)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.out_channels}, hidden={self.hidden_channels}, "
                f"layers={self.num_layers})")
