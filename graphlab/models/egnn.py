"""EGNN: a stack of :class:`~graphlab.conv.EGNNConv` layers with node- or graph-level heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.typing import OptTensor
from torch_geometric.utils import scatter

from graphlab.conv.egnn_conv import EGNNConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models.registry import register_model
from graphlab.utils.validation import check_batch_vector, check_node_features

__all__ = ["EGNN"]


class EGNN(nn.Module):
    r"""The E(n)-equivariant graph neural network from the `"E(n) Equivariant Graph Neural
    Networks" <https://arxiv.org/abs/2102.09844>`_ paper.

    ``Linear`` embedding of the invariant node features, ``num_layers`` :class:`EGNNConv` layers
    of width ``hidden_channels``, then a head: per node (``level="node"``) or after a
    ``readout`` over each graph (``level="graph"``), ``Linear-act-Linear`` to ``out_channels``.
    With ``vel`` every layer uses the velocity variant with the *initial* velocities, as in the
    paper's N-body model (Eq. 7); ``update_pos=False`` gives the invariant model used for QM9.

    Args:
        in_channels (int): Size of each input node feature.
        hidden_channels (int): Width of every layer.
        out_channels (int, optional): Size of the head's output; :obj:`None` for no head (the
            last layer's features are returned).
        num_layers (int): Number of :class:`EGNNConv` layers.
        edge_dim (int): Size of the edge features (0 for none). (default: :obj:`0`)
        level (str): ``"node"`` or ``"graph"``. (default: :obj:`"node"`)
        readout (str): ``"sum"``, ``"mean"`` or ``"max"`` for ``level="graph"``.
            (default: :obj:`"sum"`, as in the paper's QM9 model)
        act (str): Activation. (default: :obj:`"silu"`)
        **conv_kwargs: Passed to every :class:`EGNNConv` (``update_pos``, ``pos_aggr``,
            ``normalize``, ``tanh``, ``coords_range``, ``attention``, ``residual``).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, positions
          :math:`(|\mathcal{V}|, n)`, edge indices :math:`(2, |\mathcal{E}|)`, edge features
          :math:`(|\mathcal{E}|, D)` *(optional)*, velocities :math:`(|\mathcal{V}|, n)`
          *(optional)*, batch vector :math:`(|\mathcal{V}|)` *(optional)*
        - **output:** ``(out, pos_out)`` with ``out`` of shape :math:`(|\mathcal{V}|, F_{out})`
          or :math:`(B, F_{out})`, and ``pos_out`` :math:`(|\mathcal{V}|, n)`
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int | None,
        num_layers: int,
        edge_dim: int = 0,
        level: str = "node",
        readout: str = "sum",
        act: str = "silu",
        **conv_kwargs,
    ) -> None:
        super().__init__()
        if level not in ("node", "graph"):
            raise ValueError(f"level must be 'node' or 'graph', got {level!r}")
        if readout not in ("sum", "mean", "max"):
            raise ValueError(f"readout must be 'sum', 'mean' or 'max', got {readout!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.edge_dim = edge_dim
        self.level = level
        self.readout = readout
        self.embedding = nn.Linear(in_channels, hidden_channels)
        self.convs = nn.ModuleList([
            EGNNConv(hidden_channels, hidden_channels, hidden_channels, edge_dim=edge_dim,
                     act=act, **conv_kwargs) for _ in range(num_layers)
        ])
        self.update_pos = self.convs[0].update_pos
        if out_channels is None:
            self.head = None
        else:
            self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels),
                                      activation_resolver(act),
                                      nn.Linear(hidden_channels, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        if self.head is not None:
            for module in self.head:
                if isinstance(module, nn.Linear):
                    module.reset_parameters()

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        edge_attr: OptTensor = None,
        vel: OptTensor = None,
        batch: OptTensor = None,
        num_graphs: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        check_node_features(x, "x", channels=self.in_channels)
        check_batch_vector(batch, x.size(0))
        h = self.embedding(x)
        for conv in self.convs:
            if vel is not None:
                h, pos, _ = conv(h, pos, edge_index, edge_attr, vel=vel)
            else:
                h, pos = conv(h, pos, edge_index, edge_attr)
        if self.level == "graph":
            if batch is None:
                batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
            if num_graphs is None:
                num_graphs = int(batch.max()) + 1 if batch.numel() else 1
            h = scatter(h, batch, dim=0, dim_size=num_graphs, reduce=self.readout)
        if self.head is not None:
            h = self.head(h)
        return h, pos

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, level={self.level!r})")


class _EGNNTask(nn.Module):
    """Adapter for ``graphlab train``: ``forward(data)`` -> predictions (invariant mode).

    Data without ``pos`` gets zero coordinates, which reduces EGNN to an invariant MPNN with
    edge-feature MLPs. OGB molecules are embedded with the OGB atom/bond encoders.
    """

    def __init__(self, spec: TaskSpec, hidden_channels: int = 128, num_layers: int = 4,
                 pos_dim: int = 3, **kw) -> None:
        super().__init__()
        self.molecular = spec.molecular
        self.pos_dim = pos_dim
        in_channels, edge_dim = spec.in_channels, spec.edge_dim or 0
        self.atom_encoder = self.bond_encoder = None
        if spec.molecular:
            from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder

            self.atom_encoder = AtomEncoder(hidden_channels)
            in_channels = hidden_channels
            if spec.edge_dim:
                self.bond_encoder = BondEncoder(hidden_channels)
                edge_dim = hidden_channels
        kw.setdefault("update_pos", False)
        self.model = EGNN(in_channels, hidden_channels, spec.out_channels, num_layers,
                          edge_dim=edge_dim, level=spec.level, **kw)
        self.uses_edges = edge_dim > 0

    def forward(self, data) -> Tensor:
        x = data.x
        if self.atom_encoder is not None:
            x = self.atom_encoder(x.long())
        else:
            x = x.float()
        pos = getattr(data, "pos", None)
        if pos is None:
            pos = x.new_zeros(x.size(0), self.pos_dim)
        edge_attr = None
        if self.uses_edges:
            edge_attr = data.edge_attr
            if self.bond_encoder is not None:
                edge_attr = self.bond_encoder(edge_attr.long())
            else:
                edge_attr = edge_attr.float()
        out, _ = self.model(x, pos, data.edge_index, edge_attr, batch=getattr(data, "batch", None),
                            num_graphs=getattr(data, "num_graphs", None))
        return out


@register_model("egnn")
def _egnn(spec: TaskSpec, **kw) -> nn.Module:
    return _EGNNTask(spec, **kw)
