"""A generic graph model: any conv, stacked with residual, norm and dropout, and any readout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import OptTensor

from graphlab.datasets.spec import TaskSpec
from graphlab.models._common import (
    Act,
    Norm,
    NormLayers,
    Readout,
    batch_or_zeros,
    check_model_inputs,
    data_num_graphs,
    num_graphs_of,
    readout_name,
    resolve_act,
    resolve_readout,
)
from graphlab.models.registry import register_model
from graphlab.utils.validation import check_edge_features

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
            \mathrm{conv}_l(\mathbf{h}^{(l)}, \mathcal{E}))) \big) + [\mathbf{h}^{(l)}]_{\text{res}},
        \qquad \hat{\mathbf{y}} = \mathbf{W}\,\mathrm{READOUT}(\mathbf{h}^{(L)})

    (no activation after the last layer, as in OGB's reference). With ``molecular=True`` raw OGB
    atom and bond categories are embedded by OGB's ``AtomEncoder`` / per-layer ``BondEncoder`` as
    in OGB's reference GIN (`"Open Graph Benchmark" <https://arxiv.org/abs/2005.00687>`_): with
    ``conv="gin"``, 5 layers, 300 channels, batch norm, dropout 0.5 and a mean readout this is
    that reference model (messages :math:`\mathrm{ReLU}(\mathbf{h}_j + \mathbf{e}_{ji})`).

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): width of every layer.
        out_channels (int): prediction width.
        num_layers (int): number of message-passing layers. (default: ``5``)
        dropout (float): dropout probability after every layer. (default: ``0.5``)
        act (str or Callable, optional): activation between layers, resolved by PyG's
            ``activation_resolver``. (default: ``"relu"``)
        norm (str or Callable, optional): normalization after every layer, resolved by PyG's
            ``normalization_resolver`` (``"batch_norm"``, ``"layer_norm"``, ``"graph_norm"``,
            ...; :obj:`None` for none). (default: ``"batch_norm"``)
        edge_dim (int, optional): edge feature width, passed to convs that take ``edge_attr``.
        readout (str or Aggregation, optional): graph readout, resolved by PyG's
            ``aggregation_resolver`` (``"mean"``, ``"sum"``, ``"max"``, an ``Aggregation``);
            :obj:`None` for node-level outputs. (default: ``"mean"``)
        conv (str or Callable): ``"gin"``, ``"gine"``, ``"gcn"``, ``"sage"`` or a factory
            ``(in_channels, out_channels, edge_dim) -> MessagePassing``. (default: ``"gin"``)
        residual (bool): add the layer input to its output. (default: :obj:`False`)
        molecular (bool): embed OGB atom/bond features. (default: :obj:`False`)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` (integer OGB categories with
          ``molecular=True``), edge indices :math:`(2, |\mathcal{E}|)`, edge features
          :math:`(|\mathcal{E}|, D)` *(optional)*, batch vector :math:`(|\mathcal{V}|)`
          *(optional)*
        - **output:** :math:`(B, F_{out})` with a readout, else :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 5,
        *,
        dropout: float = 0.5,
        act: Act = "relu",
        norm: Norm = "batch_norm",
        edge_dim: int | None = None,
        readout: Readout = "mean",
        conv: str | ConvFactory = "gin",
        residual: bool = False,
        molecular: bool = False,
        act_kwargs: dict[str, Any] | None = None,
        norm_kwargs: dict[str, Any] | None = None,
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

        self.convs = nn.ModuleList(
            factory(first_in if layer == 0 else hidden_channels, hidden_channels, conv_edge_dim)
            for layer in range(num_layers))
        self.norms = NormLayers(norm, hidden_channels, num_layers, norm_kwargs)
        self.act = resolve_act(act, act_kwargs)
        self._uses_edge_attr = [_takes_edge_attr(c) for c in self.convs]
        self.readout = resolve_readout(readout)
        self.head = nn.Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: OptTensor = None,
                batch: OptTensor = None, *, num_graphs: int | None = None) -> Tensor:
        """``num_graphs`` (default ``batch.max() + 1``) counts trailing empty graphs."""
        check_model_inputs(x, edge_index, batch, self.in_channels, self.molecular)
        needs_edges = any(self._uses_edge_attr) and (self.molecular or self.edge_dim)
        if needs_edges:
            if edge_attr is None:
                raise ValueError(f"{self.__class__.__name__}(edge_dim={self.edge_dim}, "
                                 f"molecular={self.molecular}) needs edge_attr")
            if not self.molecular:
                if edge_attr.dim() == 1:
                    edge_attr = edge_attr.unsqueeze(-1)
                check_edge_features(edge_attr, edge_index.size(1), channels=self.edge_dim)
        size = num_graphs_of(batch, num_graphs)
        h = self.atom_encoder(x) if self.molecular else x
        for layer, conv in enumerate(self.convs):
            if self._uses_edge_attr[layer]:
                e = self.bond_encoders[layer](edge_attr) if self.molecular else edge_attr
                out = conv(h, edge_index, e)
            else:
                out = conv(h, edge_index)
            out = self.norms.apply(layer, out, batch, size)
            if layer < self.num_layers - 1:  # OGB's reference keeps the last layer linear
                out = self.act(out)
            out = nn.functional.dropout(out, self.dropout, self.training)
            h = out + h if self.residual and out.shape == h.shape else out
        if self.readout is not None:
            h = self.readout(h, batch_or_zeros(batch, h), dim_size=size)
        return self.head(h)

    def forward_data(self, data: Data) -> Tensor:
        """``forward`` on a (batched) ``Data``: ``x``, ``edge_index``, ``edge_attr`` and
        ``batch`` are read from it."""
        return self(data.x, data.edge_index, getattr(data, "edge_attr", None),
                    getattr(data, "batch", None), num_graphs=data_num_graphs(data))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, conv={self.conv_name}, "
                f"readout={readout_name(self.readout)})")


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
