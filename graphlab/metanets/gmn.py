r"""Graph metanetwork (GMN) over parameter graphs."""

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

__all__ = ["GMN"]


class GMN(nn.Module):
    r"""The graph metanetwork from the `"Graph Metanetworks for Processing Diverse Neural
    Architectures" <https://arxiv.org/abs/2312.04501>`_ paper (Lim et al., ICLR 2024): an
    edge-and-node-updating message-passing network (a Battaglia-style ``EdgeMPNN``) over the
    parameter graphs of :func:`~graphlab.metanets.to_graph` (``view="parameter"``; it also accepts
    neural-view graphs), with a DeepSets readout over edges and nodes.

    .. math::
        \mathbf{e}_{ij} &\leftarrow \mathbf{e}_{ij} + \phi_e\left(\mathbf{h}_i, \mathbf{h}_j,
        \mathbf{e}_{ij}\right) \\
        \mathbf{h}_j &\leftarrow \mathrm{LN}\Big(\mathbf{h}_j + \phi_v\big(\mathbf{h}_j,
        \textstyle\bigoplus_{i \to j} \mathbf{e}_{ij},
        \bigoplus_{j \to k} \mathbf{e}_{jk}\big)\Big) \\
        \mathbf{y} &= \rho\Big(\operatorname{mean}_{e} \mathbf{e},\ \max_e \mathbf{e},\
        \operatorname{mean}_v \mathbf{h},\ \max_v \mathbf{h}\Big)

    with :math:`\bigoplus` = (mean, sum). Inputs are embedded from node type, activation, layer
    depth, the index of input/output neurons (sinusoidal; hidden neurons get none), the edge value
    (linear + sinusoidal features), edge type and kernel position. All
    of these are invariant under the network's neuron-permutation symmetries, so the output is
    invariant by construction.

    Args:
        in_channels (int): Width of the float node features ``x`` (``0``: none, as in the
            parameter view; neural-view graphs carry 4 columns, see
            :data:`~graphlab.metanets.X_COLUMNS`).
        hidden_channels (int): Hidden size.
        out_channels (int): Size of each graph embedding.
        num_layers (int): Message-passing layers. (default: :obj:`3`)
        edge_dim (int): Width of ``edge_attr``. (default: :obj:`1`)
        dropout (float): Dropout on the edge and node updates. (default: :obj:`0.0`)
        act (str or Callable, optional): activation inside the update MLPs, resolved by PyG's
            ``activation_resolver``. (default: :obj:`"silu"`)
        norm (str or Callable, optional): normalization after every edge and node update,
            resolved by PyG's ``normalization_resolver`` (:obj:`None`: none). (default:
            :obj:`"layer_norm"`, per row: ``norm_kwargs={"mode": "node"}``)
        use_pos (bool): Embed ``edge_pos`` (kernel position). (default: :obj:`True`)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.

    Shapes:
        - **input:** a (batched) :class:`~torch_geometric.data.Data` with ``edge_index``
          :math:`(2, |\mathcal{E}|)`, ``edge_attr`` :math:`(|\mathcal{E}|, D)`, ``edge_type``,
          ``edge_pos``, ``node_type``, ``node_act``, ``layer``, ``io_id``, ``batch`` and, if
          ``in_channels > 0``, ``x`` :math:`(|\mathcal{V}|, F_{in})`
        - **output:** graph embeddings :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 3, *, edge_dim: int = 1, dropout: float = 0.0,
                 act: Act = "silu", norm: Norm = "layer_norm", use_pos: bool = True,
                 act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        check_contract(in_channels, hidden_channels, out_channels, num_layers, dropout)
        self.in_channels, self.hidden_channels, self.out_channels = (in_channels,
                                                                     hidden_channels,
                                                                     out_channels)
        self.num_layers, self.edge_dim, self.use_pos, self.dropout = (num_layers, edge_dim,
                                                                      use_pos, dropout)
        h = hidden_channels
        self.node_enc = NodeEncoder(h, in_channels)
        self.edge_enc = EdgeEncoder(h, edge_dim, use_pos)
        self.edge_mlps = nn.ModuleList([GatherMLP(2, h, h, h, resolve_act(act, act_kwargs))
                                        for _ in range(num_layers)])
        self.node_mlps = nn.ModuleList([mlp(5 * h, h, h, resolve_act(act, act_kwargs))
                                        for _ in range(num_layers)])
        self.edge_norms = NormLayers(norm, h, num_layers, row_norm_kwargs(norm, norm_kwargs))
        self.node_norms = NormLayers(norm, h, num_layers, row_norm_kwargs(norm, norm_kwargs))
        self.readout = mlp(4 * h, h, out_channels, resolve_act(act, act_kwargs))
        self.reset_parameters()

    @property
    def x_dim(self) -> int:
        """``in_channels`` (the width of ``x``), under the name of the graph attribute."""
        return self.in_channels

    @classmethod
    def from_graph(cls, example_graph: Data, out_channels: int, hidden_channels: int = 64,
                   num_layers: int = 3, **kwargs: Any) -> GMN:
        """A GMN sized for the feature widths of ``example_graph`` (either view):
        ``in_channels``, ``edge_dim`` and ``use_pos`` are read from it."""
        x = getattr(example_graph, "x", None)
        kwargs.setdefault("edge_dim", example_graph.edge_attr.size(-1))
        kwargs.setdefault("use_pos", getattr(example_graph, "edge_pos", None) is not None)
        return cls(0 if x is None else x.size(-1), hidden_channels, out_channels, num_layers,
                   **kwargs)

    def reset_parameters(self) -> None:
        reset(self)

    def embed(self, batch: Data) -> tuple[Tensor, Tensor, Tensor, int]:
        r"""Validated message passing without the readout: ``(h, e, batch_vector, num_graphs)``
        with node embeddings ``h`` :math:`(|\mathcal{V}|, F)` and edge embeddings ``e``
        :math:`(|\mathcal{E}|, F)` (edge-level heads such as
        :class:`~graphlab.metanets.edge_gmn.EdgeGMN` read these)."""
        n, vec, num_graphs = validate(batch, self.in_channels, self.edge_dim, self.use_pos)
        dtype = batch.edge_attr.dtype
        h = self.node_enc(batch, dtype)
        e = self.edge_enc(batch)
        src, dst = batch.edge_index
        evec = vec[src]
        for i, (phi_e, phi_v) in enumerate(zip(self.edge_mlps, self.node_mlps)):
            de = F.dropout(phi_e(h, [src, dst], e), self.dropout, self.training)
            e = self.edge_norms.apply(i, e + de, evec, num_graphs)
            agg = [scatter(e, idx, 0, dim_size=n, reduce=r) for idx in (dst, src)
                   for r in ("mean", "sum")]
            dh = F.dropout(phi_v(torch.cat([h, *agg], dim=-1)), self.dropout, self.training)
            h = self.node_norms.apply(i, h + dh, vec, num_graphs)
        return h, e, vec, num_graphs

    def forward(self, batch: Data) -> Tensor:
        h, e, vec, num_graphs = self.embed(batch)
        pooled = torch.cat([graph_pool(e, vec[batch.edge_index[0]], num_graphs),
                            graph_pool(h, vec, num_graphs)], dim=-1)
        return self.readout(pooled)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, edge_dim={self.edge_dim})")
