"""EGNN: a stack of :class:`~graphlab.conv.EGNNConv` layers (:class:`EGNNEncoder`, features and
positions) and the predictive model on top of it (:class:`EGNN`, node or graph predictions)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform
from torch_geometric.typing import OptTensor

from graphlab.conv.egnn_conv import EGNNConv
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
from graphlab.models.registry import DataModel, register_model
from graphlab.utils.validation import check_edge_features

__all__ = ["EGNN", "EGNNEncoder"]


def _pos_of(data: Data) -> Tensor:
    pos = getattr(data, "pos", None)
    if pos is None:
        raise ValueError("EGNN needs node coordinates data.pos [N, n]; for data without "
                         "coordinates use the registered 'egnn' model (its transform adds zeros)")
    return pos


class EGNNEncoder(nn.Module):
    r"""The E(n)-equivariant message-passing stack of the `"E(n) Equivariant Graph Neural
    Networks" <https://arxiv.org/abs/2102.09844>`_ paper: a node embedding followed by
    ``num_layers`` :class:`~graphlab.conv.EGNNConv` layers that update invariant features and
    equivariant coordinates,

    .. math::
        \mathbf{h}^{(0)} = \mathrm{emb}(\mathbf{x}),\qquad
        (\mathbf{h}^{(l+1)}, \mathbf{x}^{(l+1)}) = \mathrm{EGCL}_l(\mathrm{drop}(\mathrm{norm}(
            \mathbf{h}^{(l)})), \mathbf{x}^{(l)}, \mathcal{E}).

    With ``vel`` every layer uses the velocity variant with the *initial* velocities, as in the
    paper's N-body model (Eq. 7). This is the module to use when the output is the coordinates
    (dynamics prediction); :class:`EGNN` adds a readout and a prediction head.

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): width of the embedding and of every hidden layer.
        out_channels (int): feature width of the last layer.
        num_layers (int): number of :class:`EGNNConv` layers.
        dropout (float): dropout on the features entering each layer after the first.
            (default: ``0.0``)
        act (str or Callable): activation inside the layers' MLPs (PyG's
            ``activation_resolver``). (default: ``"silu"``)
        norm (str or Callable, optional): normalization of the features entering each layer
            after the first (PyG's ``normalization_resolver``). (default: :obj:`None`, as in the
            paper)
        edge_dim (int, optional): edge feature width. (default: :obj:`None`)
        molecular (bool): embed OGB atom / bond categories with OGB's ``AtomEncoder`` /
            ``BondEncoder`` (bonds only with ``edge_dim``). (default: :obj:`False`)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.
        **conv_kwargs: passed to every :class:`EGNNConv` (``update_pos``, ``pos_aggr``,
            ``normalize``, ``tanh``, ``coords_range``, ``attention``, ``residual``).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, positions :math:`(|\mathcal{V}|, n)`, edge features
          :math:`(|\mathcal{E}|, D)` *(optional)*, batch vector :math:`(|\mathcal{V}|)`
          *(optional, used by per-graph norms)*, velocities :math:`(|\mathcal{V}|, n)`
          *(optional)*
        - **output:** ``(h, pos)``: features :math:`(|\mathcal{V}|, F_{out})` and positions
          :math:`(|\mathcal{V}|, n)`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int, *, dropout: float = 0.0, act: Act = "silu", norm: Norm = None,
                 edge_dim: int | None = None, molecular: bool = False,
                 act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None, **conv_kwargs: Any) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.dropout = dropout
        self.edge_dim = edge_dim or None
        self.molecular = molecular
        self.bond_encoder: nn.Module | None = None
        conv_edge_dim = edge_dim or 0
        if molecular:
            from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder

            self.embedding: nn.Module = AtomEncoder(hidden_channels)
            if edge_dim:
                self.bond_encoder = BondEncoder(hidden_channels)
                conv_edge_dim = hidden_channels
        else:
            self.embedding = nn.Linear(in_channels, hidden_channels)
        activation = resolve_act(act, act_kwargs)
        self.convs = nn.ModuleList([
            EGNNConv(hidden_channels, out_channels if i == num_layers - 1 else hidden_channels,
                     hidden_channels, edge_dim=conv_edge_dim, act=activation, **conv_kwargs)
            for i in range(num_layers)])
        self.norms = NormLayers(norm, hidden_channels, num_layers - 1, norm_kwargs)
        self.update_pos = self.convs[0].update_pos
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, pos: Tensor, edge_attr: OptTensor = None,
                batch: OptTensor = None, *, vel: OptTensor = None,
                num_graphs: int | None = None) -> tuple[Tensor, Tensor]:
        check_model_inputs(x, edge_index, batch, self.in_channels, self.molecular)
        if self.edge_dim is not None:
            if edge_attr is None:
                raise ValueError(f"{self.__class__.__name__}(edge_dim={self.edge_dim}) needs "
                                 f"edge_attr")
            if not self.molecular:
                check_edge_features(edge_attr, edge_index.size(1), channels=self.edge_dim)
            else:
                edge_attr = self.bond_encoder(edge_attr)
        elif edge_attr is not None:
            raise ValueError(f"{self.__class__.__name__} was built without edge_dim but got "
                             f"edge_attr {list(edge_attr.shape)}")
        h = self.embedding(x)
        for layer, conv in enumerate(self.convs):
            if layer > 0:
                if self.norms.takes_batch:
                    h = self.norms.apply(layer - 1, h, batch_or_zeros(batch, h),
                                         num_graphs_of(batch, num_graphs))
                else:
                    h = self.norms[layer - 1](h)
                h = nn.functional.dropout(h, self.dropout, self.training)
            if vel is not None:
                h, pos, _ = conv(h, pos, edge_index, edge_attr, vel=vel)
            else:
                h, pos = conv(h, pos, edge_index, edge_attr)
        return h, pos

    def forward_data(self, data: Data) -> tuple[Tensor, Tensor]:
        """``forward`` on a (batched) ``Data`` (``x``, ``edge_index``, ``pos``, ``edge_attr``
        when built with ``edge_dim``, ``batch``, ``vel`` when present)."""
        return _call_on_data(self, data)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, edge_dim={self.edge_dim})")


def _call_on_data(model: EGNNEncoder | EGNN, data: Data) -> Any:
    """``model(...)`` with its inputs taken from a (batched) ``Data``; ``edge_attr`` only when
    the model was built with ``edge_dim``."""
    edge_attr = getattr(data, "edge_attr", None) if model.edge_dim is not None else None
    return model(data.x, data.edge_index, _pos_of(data), edge_attr, getattr(data, "batch", None),
                 vel=getattr(data, "vel", None), num_graphs=data_num_graphs(data))


class EGNN(nn.Module):
    r"""The E(n)-equivariant graph neural network from the `"E(n) Equivariant Graph Neural
    Networks" <https://arxiv.org/abs/2102.09844>`_ paper, as a predictive model: an
    :class:`EGNNEncoder` of width ``hidden_channels``, an optional graph ``readout``, and a
    ``Linear-act-Linear`` head to ``out_channels``,

    .. math::
        (\mathbf{h}, \mathbf{x}') = \mathrm{EGNNEncoder}(\mathbf{x}, \mathbf{p}, \mathcal{E}),
        \qquad \hat{\mathbf{y}} = \mathrm{MLP}(\mathrm{READOUT}(\mathbf{h}))

    The prediction is E(n)-invariant. ``update_pos=False`` gives the invariant model the paper
    uses for QM9 (``readout="sum"``). The updated positions are :attr:`encoder`'s second output
    (``model.encoder(x, edge_index, pos)[1]``); use :class:`EGNNEncoder` alone to predict them.

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): width of every layer.
        out_channels (int): prediction width.
        num_layers (int): number of :class:`EGNNConv` layers.
        dropout (float): dropout between layers and in the head. (default: ``0.0``)
        act (str or Callable): activation (PyG's ``activation_resolver``). (default: ``"silu"``)
        norm (str or Callable, optional): normalization between layers (PyG's
            ``normalization_resolver``). (default: :obj:`None`)
        edge_dim (int, optional): edge feature width. (default: :obj:`None`)
        readout (str or Aggregation, optional): graph readout (PyG's ``aggregation_resolver``:
            ``"sum"``, ``"mean"``, ``"max"``, an ``Aggregation``); :obj:`None` for node-level
            predictions. (default: :obj:`None`)
        molecular (bool): embed OGB atom / bond categories. (default: :obj:`False`)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.
        **conv_kwargs: passed to every :class:`EGNNConv`.

    Shapes:
        - **input:** as :class:`EGNNEncoder`
        - **output:** :math:`(B, F_{out})` with a readout, else :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int, *, dropout: float = 0.0, act: Act = "silu", norm: Norm = None,
                 edge_dim: int | None = None, readout: Readout = None, molecular: bool = False,
                 act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None, **conv_kwargs: Any) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.dropout = dropout
        self.encoder = EGNNEncoder(in_channels, hidden_channels, hidden_channels, num_layers,
                                   dropout=dropout, act=act, norm=norm, edge_dim=edge_dim,
                                   molecular=molecular, act_kwargs=act_kwargs,
                                   norm_kwargs=norm_kwargs, **conv_kwargs)
        self.edge_dim = self.encoder.edge_dim
        self.molecular = molecular
        self.readout = resolve_readout(readout)
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels),
                                  resolve_act(act, act_kwargs), nn.Dropout(dropout),
                                  nn.Linear(hidden_channels, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        for module in self.head:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, pos: Tensor, edge_attr: OptTensor = None,
                batch: OptTensor = None, *, vel: OptTensor = None,
                num_graphs: int | None = None) -> Tensor:
        """``num_graphs`` (default ``batch.max() + 1``) counts trailing empty graphs."""
        h, _ = self.encoder(x, edge_index, pos, edge_attr, batch, vel=vel,
                            num_graphs=num_graphs)
        if self.readout is not None:
            h = self.readout(h, batch_or_zeros(batch, h),
                             dim_size=num_graphs_of(batch, num_graphs))
        return self.head(h)

    def forward_data(self, data: Data) -> Tensor:
        """``forward`` on a (batched) ``Data`` (``x``, ``edge_index``, ``pos``, ``edge_attr``
        when built with ``edge_dim``, ``batch``, ``vel`` when present)."""
        return _call_on_data(self, data)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, "
                f"readout={readout_name(self.readout)})")


class _EGNNInputs(BaseTransform):
    """What ``graphlab train`` feeds the registered EGNN: zero coordinates for data without
    ``pos`` (EGNN then reduces to an invariant MPNN with edge-feature MLPs), float features for
    non-molecular data."""

    def __init__(self, pos_dim: int, molecular: bool) -> None:
        self.pos_dim = pos_dim
        self.molecular = molecular

    def forward(self, data: Data) -> Data:
        if getattr(data, "pos", None) is None:
            data.pos = torch.zeros(data.num_nodes, self.pos_dim)
        if not self.molecular:
            data.x = data.x.float()
            if getattr(data, "edge_attr", None) is not None:
                data.edge_attr = data.edge_attr.float()
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(pos_dim={self.pos_dim})"


@register_model("egnn")
def _egnn(spec: TaskSpec, hidden_channels: int = 128, num_layers: int = 4, pos_dim: int = 3,
          readout: Readout = "sum", **kw: Any) -> DataModel:
    kw.setdefault("update_pos", False)  # the paper's invariant (QM9) model
    model = EGNN(spec.in_channels, hidden_channels, spec.out_channels, num_layers,
                 edge_dim=spec.edge_dim, readout=readout if spec.level == "graph" else None,
                 molecular=spec.molecular, **kw)
    return DataModel(model, transform=_EGNNInputs(pos_dim, spec.molecular))
