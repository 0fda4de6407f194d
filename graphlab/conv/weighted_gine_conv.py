"""GINE with messages scaled by scalar edge weights (the PR-MPNN downstream layer)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.inits import reset
from torch_geometric.typing import Adj, OptTensor, PairTensor, Size

from graphlab.conv._adj import adj_sizes, check_pair_features, pair, validated_adj
from graphlab.utils.validation import check_edge_features, check_finite, check_input_dtype

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

    Inputs follow PyG's contract: ``edge_index`` may be a ``[2, E]`` tensor, an ``EdgeIndex``, a
    ``torch.sparse`` ``adj_t`` (COO/CSR/CSC, row = target) or a ``SparseTensor``; the values of a
    sparse ``adj_t`` are edge weights when 1-D and edge features when 2-D (as in PyG's
    ``GINEConv``/``GCNConv``), unless ``edge_weight``/``edge_attr`` are passed, in the adjacency's
    storage order. ``x`` may be a pair ``(x_src, x_dst)`` (of equal width) with ``size=(N_src,
    N_dst)`` for bipartite message passing.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V_s}|, F_{in}), (|\mathcal{V_t}|, F_{in}))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` or a sparse :math:`(|\mathcal{V_t}|,
          |\mathcal{V_s}|)` ``adj_t``, edge features :math:`(|\mathcal{E}|, D)` *(optional)*,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})` or
          :math:`(|\mathcal{V}_t|, F_{out})` if bipartite
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

    def forward(self, x: Tensor | PairTensor, edge_index: Adj, edge_attr: OptTensor = None,
                edge_weight: OptTensor = None, size: Size = None) -> Tensor:
        x_src, x_dst = pair(x)
        n_src, n_dst = adj_sizes(edge_index, size, x_src.size(0), x_dst.size(0))
        check_pair_features(x_src, x_dst, n_src, n_dst)
        if x_src.size(-1) != x_dst.size(-1):
            raise ValueError(f"x[0] (source) and x[1] (target) must have the same width, got "
                             f"{x_src.size(-1)} and {x_dst.size(-1)}")
        check_input_dtype(x_dst, self, "x")
        edge_index, values = validated_adj(edge_index, n_src, n_dst)
        if values is not None:  # PyG's convention for sparse values: [E] weights, [E, D] features
            if values.dim() == 1 and edge_weight is None:
                edge_weight = values
            elif values.dim() == 2 and edge_attr is None:
                edge_attr = values
        num_edges = edge_index.size(1)
        if edge_attr is not None:
            check_edge_features(edge_attr, num_edges, name="edge_attr")
            if self.lin is None and edge_attr.size(-1) != x_src.size(-1):
                raise ValueError(f"edge_attr has {edge_attr.size(-1)} channels but x has "
                                 f"{x_src.size(-1)}; set edge_dim to project edge features")
        if edge_weight is not None:
            check_edge_features(edge_weight, num_edges, name="edge_weight")
            if edge_weight.dim() != 1:
                raise ValueError(f"edge_weight must have shape [E], got "
                                 f"{list(edge_weight.shape)}")
            check_finite(edge_weight, "edge_weight")
        if edge_attr is not None and self.lin is not None:
            edge_attr = self.lin(edge_attr)
        # message arguments are named e/w, not edge_attr/edge_weight, so that propagate never
        # substitutes a sparse adjacency's values for them behind our back
        out = self.propagate(edge_index, x=(x_src, x_dst), e=edge_attr, w=edge_weight,
                             size=(n_src, n_dst))
        return self.nn(out + (1 + self.eps) * x_dst)

    def message(self, x_j: Tensor, e: OptTensor, w: OptTensor) -> Tensor:
        msg = x_j if e is None else x_j + e
        msg = msg.relu()
        return msg if w is None else msg * w.unsqueeze(-1).to(msg.dtype)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(nn={self.nn})"


def _first_in_features(module: nn.Module) -> int | None:
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            return sub.in_features
        if hasattr(sub, "in_channels") and isinstance(sub.in_channels, int) and sub is not module:
            return sub.in_channels
    return getattr(module, "in_channels", None)
