"""GINE with messages scaled by scalar edge weights (the PR-MPNN downstream layer)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.inits import reset

from graphlab.utils.validation import (
    check_edge_features,
    check_edge_index,
    check_finite,
    check_node_features,
)

__all__ = ["WeightedGINEConv"]


class WeightedGINEConv(MessagePassing):
    r"""The GINE operator of `"Strategies for Pre-training Graph Neural Networks"
    <https://arxiv.org/abs/1905.12265>`_ with messages scaled by scalar edge weights, the
    downstream layer of `"Probabilistically Rewired Message-Passing Neural Networks"
    <https://arxiv.org/abs/2310.02156>`_:

    .. math::
        \mathbf{x}^{\prime}_i = h_{\mathbf{\Theta}} \left( (1 + \epsilon) \cdot \mathbf{x}_i +
        \sum_{j \in \mathcal{N}(i)} w_{j,i}\, \mathrm{ReLU}(\mathbf{x}_j + \mathbf{e}_{j,i})
        \right)

    With ``edge_weight=None`` every :math:`w_{j,i} = 1` (stock GINE); with ``edge_attr=None`` the
    edge term is dropped (a weighted GIN). Weights are differentiable, so sampled rewirings with
    straight-through gradients train the upstream scorer through this layer.

    Args:
        nn (torch.nn.Module): the network :math:`h_{\mathbf{\Theta}}` mapping
            ``[-1, in_channels]`` to ``[-1, out_channels]``.
        eps (float): initial :math:`\epsilon`. (default: ``0.``)
        train_eps (bool): learn :math:`\epsilon`. (default: ``False``)
        edge_dim (int, optional): edge feature width; when given, edge features are projected to
            the node width by a linear layer (needed when they differ).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge features :math:`(|\mathcal{E}|, D)` *(optional)*,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(self, nn: torch.nn.Module, eps: float = 0.0, train_eps: bool = False,
                 edge_dim: int | None = None) -> None:
        super().__init__(aggr="add")
        self.nn = nn
        self.initial_eps = eps
        self.edge_dim = edge_dim
        if train_eps:
            self.eps = torch.nn.Parameter(torch.empty(1))
        else:
            self.register_buffer("eps", torch.empty(1))
        self.lin = None
        if edge_dim is not None:
            in_channels = _first_in_features(nn)
            if in_channels is None:
                raise ValueError("could not infer in_channels from nn; its first layer should "
                                 "be a torch.nn.Linear (or PyG MLP) when edge_dim is given")
            self.lin = torch.nn.Linear(edge_dim, in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset(self.nn)
        self.eps.data.fill_(self.initial_eps)
        if self.lin is not None:
            self.lin.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                edge_weight: Tensor | None = None) -> Tensor:
        check_node_features(x)
        check_edge_index(edge_index, x.size(0))
        num_edges = edge_index.size(1)
        if edge_attr is not None:
            check_edge_features(edge_attr, num_edges, name="edge_attr")
            if self.lin is None and edge_attr.size(-1) != x.size(-1):
                raise ValueError(f"edge_attr has {edge_attr.size(-1)} channels but x has "
                                 f"{x.size(-1)}; set edge_dim to project edge features")
        if edge_weight is not None:
            check_edge_features(edge_weight, num_edges, name="edge_weight")
            if edge_weight.dim() != 1:
                raise ValueError(f"edge_weight must have shape [E], got "
                                 f"{list(edge_weight.shape)}")
            check_finite(edge_weight, "edge_weight")
        if edge_attr is not None and self.lin is not None:
            edge_attr = self.lin(edge_attr)
        out = self.propagate(edge_index, x=x, edge_attr=edge_attr, edge_weight=edge_weight)
        return self.nn(out + (1 + self.eps) * x)

    def message(self, x_j: Tensor, edge_attr: Tensor | None,
                edge_weight: Tensor | None) -> Tensor:
        msg = x_j if edge_attr is None else x_j + edge_attr
        msg = msg.relu()
        return msg if edge_weight is None else msg * edge_weight.unsqueeze(-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(nn={self.nn})"


def _first_in_features(module: nn.Module) -> int | None:
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            return sub.in_features
        if hasattr(sub, "in_channels") and isinstance(sub.in_channels, int) and sub is not module:
            return sub.in_channels
    return getattr(module, "in_channels", None)
