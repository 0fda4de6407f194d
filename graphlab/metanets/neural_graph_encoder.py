r"""Message passing with edge features over neural graphs (NG-GNN style)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from graphlab.metanets._encoding import (
    EdgeEncoder,
    GatherMLP,
    NodeEncoder,
    graph_pool,
    mlp,
    reset,
    validate,
)

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
        out_channels (int): Size of each graph embedding.
        hidden_channels (int): Hidden size. (default: :obj:`64`)
        num_layers (int): Message-passing layers. (default: :obj:`3`)
        x_dim (int): Width of ``x``. (default: :obj:`4`)
        edge_dim (int): Width of ``edge_attr`` (the largest flattened kernel). (default: :obj:`1`)
        edge_updates (bool): Update edge features every layer. (default: :obj:`True`)

    Shapes:
        - **input:** a (batched) :class:`~torch_geometric.data.Data` with ``x``
          :math:`(|\mathcal{V}|, 4)`, ``edge_index`` :math:`(2, |\mathcal{E}|)`, ``edge_attr``
          :math:`(|\mathcal{E}|, D)`, ``edge_type``, ``node_type``, ``node_act``, ``layer``,
          ``io_id`` and ``batch``
        - **output:** graph embeddings :math:`(B, F_{out})`
    """

    def __init__(self, out_channels: int, hidden_channels: int = 64, num_layers: int = 3,
                 x_dim: int = 4, edge_dim: int = 1, edge_updates: bool = True) -> None:
        super().__init__()
        self.out_channels, self.hidden_channels = out_channels, hidden_channels
        self.num_layers, self.x_dim, self.edge_dim = num_layers, x_dim, edge_dim
        self.edge_updates = edge_updates
        h = hidden_channels
        self.node_enc = NodeEncoder(h, x_dim)
        self.edge_enc = EdgeEncoder(h, edge_dim, use_pos=False)
        self.fwd = nn.ModuleList([GatherMLP(1, h, h, h) for _ in range(num_layers)])
        self.bwd = nn.ModuleList([GatherMLP(1, h, h, h) for _ in range(num_layers)])
        self.upd = nn.ModuleList([mlp(5 * h, h, h) for _ in range(num_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(h) for _ in range(num_layers)])
        if edge_updates:
            self.edge_mlps = nn.ModuleList([GatherMLP(2, h, h, h) for _ in range(num_layers)])
            self.edge_norms = nn.ModuleList([nn.LayerNorm(h) for _ in range(num_layers)])
        self.readout = mlp(2 * h, h, out_channels)
        self.reset_parameters()

    @classmethod
    def from_graph(cls, example_graph: Data, out_channels: int,
                   **kwargs: Any) -> NeuralGraphEncoder:
        """An encoder sized for the feature widths of ``example_graph``."""
        x = getattr(example_graph, "x", None)
        kwargs.setdefault("x_dim", 0 if x is None else x.size(-1))
        kwargs.setdefault("edge_dim", example_graph.edge_attr.size(-1))
        return cls(out_channels, **kwargs)

    def reset_parameters(self) -> None:
        reset(self)

    def forward(self, batch: Data) -> Tensor:
        n, vec, num_graphs = validate(batch, self.x_dim, self.edge_dim, use_pos=False)
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
            h_new = self.norms[i](h + self.upd[i](torch.cat([h, *agg], dim=-1)))
            if self.edge_updates:
                e = self.edge_norms[i](e + self.edge_mlps[i](h, [src, dst], e))
            h = h_new
        return self.readout(graph_pool(h, vec, num_graphs))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.out_channels}, hidden={self.hidden_channels}, "
                f"layers={self.num_layers}, edge_dim={self.edge_dim})")
