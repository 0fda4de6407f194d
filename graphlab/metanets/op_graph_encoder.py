r"""A GIN encoder over op-level computation graphs (GHN / NAS-predictor style)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GINConv, global_max_pool, global_mean_pool

from graphlab.metanets._encoding import check_contract, mlp, row_norm_kwargs
from graphlab.metanets.spec import OP_TYPES
from graphlab.models._common import Act, Norm, NormLayers, resolve_act
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
        in_channels (int): Width of the op features ``x`` (7 for ``to_graph(..., view="op")``).
        hidden_channels (int): Hidden size.
        out_channels (int): Output size.
        num_layers (int): GIN layers. (default: :obj:`3`)
        dropout (float): Dropout after every layer. (default: :obj:`0.0`)
        act (str or Callable, optional): activation, resolved by PyG's ``activation_resolver``.
            (default: :obj:`"relu"`)
        norm (str or Callable, optional): normalization after every layer, resolved by PyG's
            ``normalization_resolver``. (default: :obj:`"layer_norm"`, per node)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.

    Shapes:
        - **input:** a (batched) op-view :class:`~torch_geometric.data.Data` with ``x``
          :math:`(|\mathcal{V}|, F)`, ``node_type`` :math:`(|\mathcal{V}|)`, ``edge_index``
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 3, *, dropout: float = 0.0, act: Act = "relu",
                 norm: Norm = "layer_norm", act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        check_contract(in_channels, hidden_channels, out_channels, num_layers, dropout)
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1 (op graphs carry features), got "
                             f"{in_channels}")
        h = hidden_channels
        self.in_channels, self.hidden_channels, self.out_channels = (in_channels,
                                                                     hidden_channels,
                                                                     out_channels)
        self.num_layers, self.dropout = num_layers, dropout
        self.type_emb = nn.Embedding(len(OP_TYPES), h)
        self.x_lin = nn.Linear(in_channels, h)
        self.convs = nn.ModuleList([
            GINConv(mlp(h, h, h, resolve_act(act, act_kwargs)), train_eps=True)
            for _ in range(num_layers)])
        self.act = resolve_act(act, act_kwargs)
        self.norms = NormLayers(norm, h, num_layers, row_norm_kwargs(norm, norm_kwargs))
        self.readout = mlp(2 * h, h, out_channels, resolve_act(act, act_kwargs))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, batch: Data) -> Tensor:
        n = batch.num_nodes
        check_node_features(batch.x, "x", channels=self.in_channels, num_nodes=n)
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
        for i, conv in enumerate(self.convs):
            dh = F.dropout(self.act(conv(h, ei)), self.dropout, self.training)
            h = self.norms.apply(i, h + dh, vec, size)
        pooled = torch.cat([global_mean_pool(h, vec, size), global_max_pool(h, vec, size)], -1)
        return self.readout(pooled)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers})")
