"""A generic graph model: any conv, stacked with residual, norm and dropout, and any readout."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.nn.resolver import aggregation_resolver

from graphlab.datasets.spec import TaskSpec
from graphlab.models.registry import register_model
from graphlab.utils.validation import check_batch_vector, check_edge_index, check_node_features

__all__ = ["GNN"]

#: ``factory(in_channels, out_channels, edge_dim) -> MessagePassing``
ConvFactory = Callable[[int, int, int | None], MessagePassing]


def _mlp(in_channels: int, out_channels: int) -> nn.Sequential:
    # OGB's reference GIN MLP: Linear -> BN -> ReLU -> Linear (hidden = 2 * emb)
    return nn.Sequential(nn.Linear(in_channels, 2 * out_channels),
                         nn.BatchNorm1d(2 * out_channels), nn.ReLU(),
                         nn.Linear(2 * out_channels, out_channels))


def _conv_factory(name: str) -> ConvFactory:
    from torch_geometric import nn as pyg

    name = name.lower()
    if name == "gin":
        return lambda i, o, e: pyg.GINConv(_mlp(i, o), train_eps=True)
    if name == "gine":
        return lambda i, o, e: pyg.GINEConv(_mlp(i, o), train_eps=True, edge_dim=e)
    if name == "gcn":
        return lambda i, o, e: pyg.GCNConv(i, o)
    if name in ("sage", "graphsage"):
        return lambda i, o, e: pyg.SAGEConv(i, o)
    raise ValueError(f"unknown conv {name!r}; pass one of gin, gine, gcn, sage or a factory "
                     f"callable (in_channels, out_channels, edge_dim) -> MessagePassing")


class GNN(nn.Module):
    r"""A stack of message-passing layers with optional residual connections, normalisation,
    dropout and a graph readout; the baseline scaffold into which graphlab's layers plug.

    .. math::
        \mathbf{h}^{(l+1)} = \mathrm{drop}\big(\sigma(\mathrm{norm}(
            \mathrm{conv}_l(\mathbf{h}^{(l)}, \mathcal{E}))) \big) + [\mathbf{h}^{(l)}]_{\text{res}}

    With ``molecular=True`` raw OGB atom and bond categories are embedded by OGB's
    ``AtomEncoder`` / per-layer ``BondEncoder`` as in OGB's reference GIN (`"Open Graph Benchmark"
    <https://arxiv.org/abs/2005.00687>`_): with ``conv="gin"``, 5 layers, 300 channels, batch norm,
    dropout 0.5 and a mean readout this is that reference model (messages
    :math:`\mathrm{ReLU}(\mathbf{h}_j + \mathbf{e}_{ji})`).

    Args:
        in_channels: node feature width (ignored with ``molecular=True``).
        hidden_channels: width of every layer.
        out_channels: prediction width.
        num_layers: number of message-passing layers.
        conv: ``"gin"``, ``"gine"``, ``"gcn"``, ``"sage"`` or a factory
            ``(in_channels, out_channels, edge_dim) -> MessagePassing``.
        readout: any PyG ``Aggregation`` (instance or name such as ``"mean"``), or ``None`` for
            node-level outputs.
        norm: ``"batch"``, ``"layer"`` or ``None``.
        dropout: dropout probability after every layer.
        residual: add the layer input to its output.
        edge_dim: edge feature width, passed to convs that take ``edge_attr``.
        molecular: embed OGB atom/bond features.
    Shapes:
        - **input:** a (batched) ``Data`` with ``x`` :math:`(|\mathcal{V}|, F_{in})`,
          ``edge_index`` :math:`(2, |\mathcal{E}|)`, optional ``edge_attr`` and ``batch``.
        - **output:** :math:`(B, F_{out})` with a readout, else :math:`(|\mathcal{V}|, F_{out})`.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 5,
        conv: str | ConvFactory = "gin",
        readout: str | Aggregation | None = "mean",
        norm: str | None = "batch",
        dropout: float = 0.5,
        residual: bool = False,
        edge_dim: int | None = None,
        molecular: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.conv_name = conv if isinstance(conv, str) else getattr(conv, "__name__", "custom")
        self.dropout = dropout
        self.residual = residual
        self.molecular = molecular
        self.edge_dim = edge_dim
        factory = _conv_factory(conv) if isinstance(conv, str) else conv

        if molecular:
            from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder

            self.atom_encoder = AtomEncoder(hidden_channels)
            # OGB's GIN embeds bonds separately in every layer and adds them to the messages
            self.bond_encoders = nn.ModuleList(BondEncoder(hidden_channels)
                                               for _ in range(num_layers))
            if isinstance(conv, str) and conv.lower() == "gin":
                factory = _conv_factory("gine")
            conv_edge_dim = None  # bond embeddings already have the node width
            first_in = hidden_channels
        else:
            self.atom_encoder = None
            self.bond_encoders = None
            conv_edge_dim = edge_dim
            first_in = in_channels

        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(num_layers):
            self.convs.append(factory(first_in if layer == 0 else hidden_channels,
                                      hidden_channels, conv_edge_dim))
            if norm == "batch":
                self.norms.append(nn.BatchNorm1d(hidden_channels))
            elif norm == "layer":
                self.norms.append(nn.LayerNorm(hidden_channels))
            elif norm is None:
                self.norms.append(nn.Identity())
            else:
                raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")
        self._uses_edge_attr = [_takes_edge_attr(c) for c in self.convs]
        self.readout = aggregation_resolver(readout) if isinstance(readout, str) else readout
        self.head = nn.Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, data: Data) -> Tensor:
        x, edge_index = data.x, data.edge_index
        num_nodes = x.size(0)
        check_edge_index(edge_index, num_nodes)
        batch = getattr(data, "batch", None)
        check_batch_vector(batch, num_nodes)
        edge_attr = getattr(data, "edge_attr", None)
        if self.molecular:
            if x.is_floating_point():
                raise ValueError("molecular=True expects integer OGB atom features, got "
                                 f"{x.dtype}")
            h = self.atom_encoder(x)
        else:
            check_node_features(x, "x", channels=self.in_channels)
            h = x
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if self._uses_edge_attr[layer]:
                e = edge_attr
                if self.molecular:
                    e = self.bond_encoders[layer](edge_attr)
                elif e is not None and e.dim() == 1:
                    e = e.unsqueeze(-1)
                out = conv(h, edge_index, e)
            else:
                out = conv(h, edge_index)
            out = norm(out)
            if layer < self.num_layers - 1:  # OGB's reference keeps the last layer linear
                out = torch.relu(out)
            out = nn.functional.dropout(out, self.dropout, self.training)
            h = out + h if self.residual and out.shape == h.shape else out
        if self.readout is not None:
            if batch is None:
                batch = torch.zeros(num_nodes, dtype=torch.long, device=h.device)
            num_graphs = int(getattr(data, "num_graphs", 0) or (int(batch.max()) + 1
                                                                 if batch.numel() else 1))
            h = self.readout(h, batch, dim_size=num_graphs)
        return self.head(h)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, conv={self.conv_name}, "
                f"readout={self.readout})")


def _takes_edge_attr(conv: nn.Module) -> bool:
    import inspect

    try:
        return "edge_attr" in inspect.signature(conv.forward).parameters
    except (TypeError, ValueError):
        return False


def _baseline(conv: str) -> Callable[..., nn.Module]:
    def factory(spec: TaskSpec, hidden_channels: int = 300, num_layers: int = 5,
                dropout: float = 0.5, readout: str | None = "mean", **kw) -> nn.Module:
        if spec.level == "node":
            readout = None
        conv_name = conv
        if conv == "gin" and spec.edge_dim and not spec.molecular:
            conv_name = "gine"  # use edge features where the data has them
        return GNN(spec.in_channels, hidden_channels, spec.out_channels, num_layers,
                   conv=conv_name, readout=readout, dropout=dropout,
                   edge_dim=spec.edge_dim, molecular=spec.molecular, **kw)

    return factory


register_model("gin")(_baseline("gin"))
register_model("gcn")(_baseline("gcn"))
register_model("sage")(_baseline("sage"))
