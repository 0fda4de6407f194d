"""The upstream MPNN of PR-MPNN: scores candidate edges to add and existing edges to delete."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.models import MLP

from graphlab.conv.weighted_gine_conv import WeightedGINEConv
from graphlab.utils.validation import (
    check_edge_index,
    check_input_dtype,
    check_node_features,
)

__all__ = ["EdgeScorer"]


class EdgeScorer(nn.Module):
    r"""Upstream scorer of `"Probabilistically Rewired Message-Passing Neural Networks"
    <https://arxiv.org/abs/2310.02156>`_: a GINE stack gives node embeddings :math:`h`, and two
    heads score node pairs symmetrically,

    .. math::
        \theta_{uv} = \mathrm{MLP}\big([\,h_u + h_v \,\Vert\, h_u \odot h_v\,]\big),

    one head for candidate pairs to add and one for existing pairs to delete. With
    ``num_priors`` :math:`P > 1` each head ends in :math:`P` outputs, one logit per prior (the
    authors' ``ensemble``: the priors share the GINE stack and the hidden layer of the heads).

    With ``candidate_messages=True`` the GINE layers also pass messages along the candidate pairs
    (both directions, marked by a learned edge-type embedding), so the scores can depend on the
    candidate structure, e.g. on which pairs are farthest apart. On graphs that 1-WL cannot tell
    apart (EXP) the plain scorer gives both graphs the same multiset of logits.

    Args:
        in_channels (int): node feature width.
        hidden_channels (int): embedding width.
        num_layers (int): number of GINE layers (``0``: score the raw features after a linear
            map).
        edge_dim (int, optional): edge feature width.
        candidate_messages (bool): message passing over existing and candidate pairs.
        num_priors (int): logits per pair (independent priors). (default: ``1``)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge features *(optional)*, candidate pairs
          :math:`(2, C)`, existing pairs :math:`(2, P)`
        - **output:** add logits :math:`(C)`, delete logits :math:`(P)`; with ``num_priors > 1``
          :math:`(C, \text{num\_priors})` and :math:`(P, \text{num\_priors})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, num_layers: int = 2,
                 edge_dim: int | None = None, candidate_messages: bool = False,
                 num_priors: int = 1) -> None:
        super().__init__()
        if num_priors < 1:
            raise ValueError(f"num_priors must be >= 1, got {num_priors}")
        self.num_priors = num_priors
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.candidate_messages = candidate_messages
        # features of existing edges without edge_attr (row 0) and of candidate pairs (row 1)
        self.edge_type = nn.Embedding(2, edge_dim or hidden_channels) if candidate_messages \
            else None
        self.lin_in = nn.Linear(in_channels, hidden_channels)
        self.convs = nn.ModuleList(
            WeightedGINEConv(MLP([hidden_channels, hidden_channels, hidden_channels], norm=None),
                             edge_dim=edge_dim, train_eps=True)
            for _ in range(num_layers))
        self.add_head = MLP([2 * hidden_channels, hidden_channels, num_priors], norm=None)
        self.delete_head = MLP([2 * hidden_channels, hidden_channels, num_priors], norm=None)

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        self.add_head.reset_parameters()
        self.delete_head.reset_parameters()
        if self.edge_type is not None:
            self.edge_type.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None,
                add_pairs: Tensor, delete_pairs: Tensor) -> tuple[Tensor, Tensor]:
        check_node_features(x, "x", channels=self.in_channels)
        check_input_dtype(x, self.lin_in)
        num_nodes = x.size(0)
        check_edge_index(edge_index, num_nodes)
        check_edge_index(add_pairs, num_nodes, name="add_pairs")
        check_edge_index(delete_pairs, num_nodes, name="delete_pairs")
        h = self.lin_in(x)
        if self.edge_type is not None:
            num_edges = edge_index.size(1)
            if edge_attr is None:
                edge_attr = self.edge_type.weight[0].expand(num_edges, -1)
            cand = self.edge_type.weight[1].expand(2 * add_pairs.size(1), -1)
            edge_index = torch.cat([edge_index, add_pairs, add_pairs.flip(0)], dim=1)
            edge_attr = torch.cat([edge_attr, cand], dim=0)
        for conv in self.convs:
            h = conv(h, edge_index, edge_attr).relu()
        return self._score(self.add_head, h, add_pairs), \
            self._score(self.delete_head, h, delete_pairs)

    def _score(self, head: nn.Module, h: Tensor, pairs: Tensor) -> Tensor:
        hu, hv = h[pairs[0]], h[pairs[1]]
        out = head(torch.cat([hu + hv, hu * hv], dim=-1))
        return out.squeeze(-1) if self.num_priors == 1 else out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"num_layers={self.num_layers}, candidate_messages={self.candidate_messages}, "
                f"num_priors={self.num_priors})")

