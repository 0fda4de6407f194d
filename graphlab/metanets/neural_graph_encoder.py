r"""Message passing with edge features over neural graphs (NG-GNN style)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from graphlab.metanets._encoding import (
    EdgeEncoder,
    GatherMLP,
    NodeEncoder,
    check_contract,
    graph_pool,
    mlp,
    reset,
    row_norm_kwargs,
    validate,
)
from graphlab.models._common import Act, Norm, NormLayers, resolve_act

__all__ = ["NeuralGraphEncoder"]


class NeuralGraphEncoder(nn.Module):
    r"""The neural-graph encoder from the `"Graph Neural Networks for Learning Equivariant
    Representations of Neural Networks" <https://arxiv.org/abs/2403.12143>`_ paper (Kofinas et
    al., ICLR 2024), on sparse ``edge_index`` graphs: message passing with edge features in both
    directions of the neural graph of :func:`~graphlab.metanets.to_graph` (``view="neural"``, where
    an edge carries a weight or a whole flattened conv kernel), optional edge updates, and a
    mean/max graph readout.

    .. math::
        \mathbf{m}^{\rightarrow}_j &= \bigoplus_{i \to j} \psi_f(\mathbf{h}_i, \mathbf{e}_{ij}),
        \qquad
        \mathbf{m}^{\leftarrow}_i = \bigoplus_{i \to j} \psi_b(\mathbf{h}_j, \mathbf{e}_{ij}) \\
        \mathbf{h}_j &\leftarrow \mathrm{LN}\big(\mathbf{h}_j + \phi(\mathbf{h}_j,
        \mathbf{m}^{\rightarrow}_j, \mathbf{m}^{\leftarrow}_j)\big), \qquad
        \mathbf{e}_{ij} \leftarrow \mathrm{LN}\big(\mathbf{e}_{ij} +
        \phi_e(\mathbf{h}_i, \mathbf{h}_j, \mathbf{e}_{ij})\big)

    with :math:`\bigoplus` = (sum, mean). Node inputs are the bias / norm parameters ``x`` plus
    type, activation, layer and input/output-index embeddings (hidden neurons carry no index), so
    the output is invariant under the network's neuron permutations by construction.

    Args:
        in_channels (int): Width of the float node features ``x`` (the neural view's 4
            :data:`~graphlab.metanets.X_COLUMNS`; ``0``: none).
        hidden_channels (int): Hidden size.
        out_channels (int): Size of each graph embedding.
        num_layers (int): Message-passing layers. (default: :obj:`3`)
        edge_dim (int): Width of ``edge_attr`` (the largest flattened kernel). (default: :obj:`1`)
        dropout (float): Dropout on the node and edge updates. (default: :obj:`0.0`)
        act (str or Callable, optional): activation inside the update MLPs, resolved by PyG's
            ``activation_resolver``. (default: :obj:`"silu"`)
        norm (str or Callable, optional): normalization after every update, resolved by PyG's
            ``normalization_resolver`` (:obj:`None`: none). (default: :obj:`"layer_norm"`, per
            row: ``norm_kwargs={"mode": "node"}``)
        edge_updates (bool): Update edge features every layer. (default: :obj:`True`)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.

    Shapes:
        - **input:** a (batched) :class:`~torch_geometric.data.Data` with ``x``
          :math:`(|\mathcal{V}|, F_{in})`, ``edge_index`` :math:`(2, |\mathcal{E}|)`,
          ``edge_attr`` :math:`(|\mathcal{E}|, D)`, ``edge_type``, ``node_type``, ``node_act``,
          ``layer``, ``io_id`` and ``batch``
        - **output:** graph embeddings :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 3, *, edge_dim: int = 1, dropout: float = 0.0,
                 act: Act = "silu", norm: Norm = "layer_norm", edge_updates: bool = True,
                 act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        check_contract(in_channels, hidden_channels, out_channels, num_layers, dropout)
        self.in_channels, self.hidden_channels, self.out_channels = (in_channels,
                                                                     hidden_channels,
                                                                     out_channels)
        self.num_layers, self.edge_dim, self.dropout = num_layers, edge_dim, dropout
        self.edge_updates = edge_updates
        h = hidden_channels

        def act_() -> nn.Module:
            return resolve_act(act, act_kwargs)

        self.node_enc = NodeEncoder(h, in_channels)
        self.edge_enc = EdgeEncoder(h, edge_dim, use_pos=False)
        self.fwd = nn.ModuleList([GatherMLP(1, h, h, h, act_()) for _ in range(num_layers)])
        self.bwd = nn.ModuleList([GatherMLP(1, h, h, h, act_()) for _ in range(num_layers)])
        self.upd = nn.ModuleList([mlp(5 * h, h, h, act_()) for _ in range(num_layers)])
        self.norms = NormLayers(norm, h, num_layers, row_norm_kwargs(norm, norm_kwargs))
        if edge_updates:
            self.edge_mlps = nn.ModuleList([GatherMLP(2, h, h, h, act_())
                                            for _ in range(num_layers)])
            self.edge_norms = NormLayers(norm, h, num_layers, row_norm_kwargs(norm, norm_kwargs))
        self.readout = mlp(2 * h, h, out_channels, act_())
        self.reset_parameters()

    @property
    def x_dim(self) -> int:
        """``in_channels`` (the width of ``x``), under the name of the graph attribute."""
        return self.in_channels

    @classmethod
    def from_graph(cls, example_graph: Data, out_channels: int, hidden_channels: int = 64,
                   num_layers: int = 3, **kwargs: Any) -> NeuralGraphEncoder:
        """An encoder sized for the feature widths of ``example_graph`` (``in_channels`` and
        ``edge_dim`` are read from it)."""
        x = getattr(example_graph, "x", None)
        kwargs.setdefault("edge_dim", example_graph.edge_attr.size(-1))
        return cls(0 if x is None else x.size(-1), hidden_channels, out_channels, num_layers,
                   **kwargs)

    def reset_parameters(self) -> None:
        reset(self)

    def forward(self, batch: Data) -> Tensor:
        n, vec, num_graphs = validate(batch, self.in_channels, self.edge_dim, use_pos=False)
        h = self.node_enc(batch, batch.edge_attr.dtype)
        e = self.edge_enc(batch)
        src, dst = batch.edge_index
        for i in range(self.num_layers):
            mf = self.fwd[i](h, [src], e)
            mb = self.bwd[i](h, [dst], e)
            agg = [scatter(mf, dst, 0, dim_size=n, reduce="sum"),
                   scatter(mf, dst, 0, dim_size=n, reduce="mean"),
                   scatter(mb, src, 0, dim_size=n, reduce="sum"),
                   scatter(mb, src, 0, dim_size=n, reduce="mean")]
            dh = F.dropout(self.upd[i](torch.cat([h, *agg], dim=-1)), self.dropout, self.training)
            h_new = self.norms.apply(i, h + dh, vec, num_graphs)
            if self.edge_updates:
                de = F.dropout(self.edge_mlps[i](h, [src, dst], e), self.dropout, self.training)
                e = self.edge_norms.apply(i, e + de, vec[src], num_graphs)
            h = h_new
        return self.readout(graph_pool(h, vec, num_graphs))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, edge_dim={self.edge_dim})")
