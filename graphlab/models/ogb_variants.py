"""OGB graph-property models built from graphlab's layers: virtual node, custom aggregators, sheaves.

Registered names (``graphlab train --model NAME``, ``benchmarks/ogb_graphprop.py``):

* ``gin-vn`` / ``gcn-vn`` -- OGB's reference GIN / GCN with a virtual node
  (:class:`VirtualNodeGNN`).
* ``gin-lcm``, ``gin-recurrent``, ``gin-gnp`` -- the OGB GIN whose neighbourhood aggregation is
  :class:`~graphlab.aggr.LCMAggregation`, :class:`~graphlab.aggr.RecurrentAggregation` or
  :class:`~graphlab.aggr.GNPAggregation` instead of the sum.
* ``gin-gnp-readout`` -- the OGB GIN with a :class:`~graphlab.aggr.GNPAggregation` graph readout.
* ``sheaf-graph`` -- graph-level neural sheaf diffusion (:class:`SheafGraphModel`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv, GINConv, GINEConv
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.transforms import Compose, RemoveSelfLoops, ToUndirected
from torch_geometric.typing import OptTensor
from torch_geometric.utils import scatter

from graphlab.aggr import GNPAggregation, LCMAggregation, RecurrentAggregation
from graphlab.conv.sheaf_conv import SheafConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models._common import (
    Act,
    CheckGraph,
    Norm,
    NormLayers,
    batch_or_zeros,
    check_model_inputs,
    data_num_graphs,
    num_graphs_of,
    readout_name,
    resolve_act,
    resolve_readout,
)
from graphlab.models.gnn import GNN
from graphlab.models.registry import register_model
from graphlab.utils.validation import check_edge_features

__all__ = ["VirtualNodeGNN", "SheafGraphModel"]


def _gin_mlp(in_channels: int, out_channels: int) -> nn.Sequential:
    # OGB's GIN MLP: Linear -> BN -> ReLU -> Linear with a 2x hidden width
    return nn.Sequential(nn.Linear(in_channels, 2 * out_channels),
                         nn.BatchNorm1d(2 * out_channels), nn.ReLU(),
                         nn.Linear(2 * out_channels, out_channels))


# --------------------------------------------------------------------------- virtual node
class VirtualNodeGNN(nn.Module):
    r"""OGB's reference GNN with a virtual node (`"Open Graph Benchmark"
    <https://arxiv.org/abs/2005.00687>`_; the virtual node of `"Neural Message Passing for
    Quantum Chemistry" <https://arxiv.org/abs/1704.01212>`_), connected to every node of its graph:

    .. math::
        \mathbf{h}_v^{(l)} &\leftarrow \mathbf{h}_v^{(l)} + \mathbf{u}_{G(v)}^{(l)}, \qquad
        \mathbf{h}^{(l+1)} = \mathrm{drop}\big(\sigma(\mathrm{norm}(
            \mathrm{conv}_l(\mathbf{h}^{(l)}, \mathcal{E})))\big), \\
        \mathbf{u}_G^{(l+1)} &= \mathrm{drop}\Big(\mathrm{MLP}_l\big(
            \textstyle\sum_{v \in G} \mathbf{h}_v^{(l)} + \mathbf{u}_G^{(l)}\big)\Big),

    with :math:`\mathbf{u}^{(0)} = \mathbf{0}` (a learned embedding initialised at zero),
    no activation after the last layer, a graph readout and a linear head. The virtual-node MLPs
    are OGB's (``Linear-BN-ReLU`` twice, on graph vectors).

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): width of every layer (OGB: 300).
        out_channels (int): prediction width.
        num_layers (int): number of message-passing layers (OGB: 5). (default: ``5``)
        dropout (float): dropout after every layer and on the virtual node (OGB: 0.5).
        act (str or Callable, optional): activation between layers (PyG's
            ``activation_resolver``). (default: ``"relu"``)
        norm (str or Callable, optional): normalization after every conv (PyG's
            ``normalization_resolver``; :obj:`None` for none). (default: ``"batch_norm"``)
        edge_dim (int, optional): edge feature width for non-molecular data (GINE projects it).
        readout (str or Aggregation): graph readout (PyG's ``aggregation_resolver``).
            (default: ``"mean"``)
        conv (str): ``"gin"`` (GINE with OGB bond embeddings on molecules) or ``"gcn"``.
        molecular (bool): embed OGB atom/bond categories with ``AtomEncoder``/``BondEncoder``.
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge features :math:`(|\mathcal{E}|, D)` *(with
          ``edge_dim`` or ``molecular``)*, batch vector :math:`(|\mathcal{V}|)` *(optional)*
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 5, *, dropout: float = 0.5, act: Act = "relu",
                 norm: Norm = "batch_norm", edge_dim: int | None = None,
                 readout: str | Aggregation = "mean", conv: str = "gin", molecular: bool = False,
                 act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if conv not in ("gin", "gcn"):
            raise ValueError(f"conv must be 'gin' or 'gcn', got {conv!r}")
        if readout is None:
            raise ValueError("VirtualNodeGNN is graph-level: readout cannot be None")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.conv_name = conv
        self.dropout = dropout
        self.molecular = molecular
        self.edge_dim = edge_dim
        h = hidden_channels
        self.bond_encoders: nn.ModuleList | None = None
        if molecular:
            from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder

            self.node_encoder: nn.Module = AtomEncoder(h)
            if conv == "gin":
                self.bond_encoders = nn.ModuleList(BondEncoder(h) for _ in range(num_layers))
        else:
            self.node_encoder = nn.Linear(in_channels, h)
        self.virtual_node = nn.Embedding(1, h)
        self.convs = nn.ModuleList()
        self.edge_aware = conv == "gin" and (molecular or bool(edge_dim))
        for _ in range(num_layers):
            if conv == "gcn":
                self.convs.append(GCNConv(h, h))
            elif self.edge_aware:
                self.convs.append(GINEConv(_gin_mlp(h, h), train_eps=True,
                                           edge_dim=None if molecular else edge_dim))
            else:
                self.convs.append(GINConv(_gin_mlp(h, h), train_eps=True))
        self.norms = NormLayers(norm, h, num_layers, norm_kwargs)
        self.act = resolve_act(act, act_kwargs)
        self.vn_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(h, 2 * h), nn.BatchNorm1d(2 * h), nn.ReLU(),
                          nn.Linear(2 * h, h), nn.BatchNorm1d(h), nn.ReLU())
            for _ in range(num_layers - 1))
        self.readout = resolve_readout(readout)
        self.head = nn.Linear(h, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        nn.init.zeros_(self.virtual_node.weight)  # OGB starts the virtual node at zero

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: OptTensor = None,
                batch: OptTensor = None, *, num_graphs: int | None = None) -> Tensor:
        """``num_graphs`` (default ``batch.max() + 1``) counts trailing empty graphs."""
        check_model_inputs(x, edge_index, batch, self.in_channels, self.molecular)
        if self.edge_aware:
            if edge_attr is None:
                raise ValueError(f"{self.__class__.__name__}(conv='gin', edge_dim="
                                 f"{self.edge_dim}, molecular={self.molecular}) needs edge_attr")
            if not self.molecular:
                edge_attr = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
                check_edge_features(edge_attr, edge_index.size(1), channels=self.edge_dim)
        num_graphs = num_graphs_of(batch, num_graphs)
        batch = batch_or_zeros(batch, x)
        h = self.node_encoder(x)
        vn = self.virtual_node.weight.expand(num_graphs, -1)
        for layer, conv in enumerate(self.convs):
            h = h + vn[batch]
            if self.edge_aware:
                e = self.bond_encoders[layer](edge_attr) if self.molecular else edge_attr
                out = conv(h, edge_index, e)
            else:
                out = conv(h, edge_index)
            out = self.norms.apply(layer, out, batch, num_graphs)
            if layer < self.num_layers - 1:
                out = self.act(out)
            out = F.dropout(out, self.dropout, self.training)
            if layer < self.num_layers - 1:
                pooled = scatter(h, batch, 0, dim_size=num_graphs, reduce="sum") + vn
                vn = F.dropout(self.vn_mlps[layer](pooled), self.dropout, self.training)
            h = out
        return self.head(self.readout(h, batch, dim_size=num_graphs))

    def forward_data(self, data: Data) -> Tensor:
        """``forward`` on a (batched) ``Data`` (``x``, ``edge_index``, ``edge_attr``,
        ``batch``)."""
        return self(data.x, data.edge_index, getattr(data, "edge_attr", None),
                    getattr(data, "batch", None), num_graphs=data_num_graphs(data))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, conv={self.conv_name}, "
                f"readout={readout_name(self.readout)})")


# --------------------------------------------------------------------------- sheaf, graph level
class SheafGraphModel(nn.Module):
    r"""Graph-level neural sheaf diffusion (`"Neural Sheaf Diffusion"
    <https://arxiv.org/abs/2202.04579>`_): node encoder, ``num_layers``
    :class:`~graphlab.conv.SheafConv` steps on the batched graphs (restriction maps are learned
    per edge, so the layer is inductive), a graph readout and a linear head,

    .. math::
        \mathbf{X}^{(0)} = \mathrm{drop}(\sigma(\mathrm{enc}(\mathbf{x}))),\quad
        \mathbf{X}^{(l+1)} = \mathrm{norm}(\mathrm{SheafConv}_l(\mathbf{X}^{(l)})),\quad
        \hat{\mathbf{y}}_G = \mathbf{W}_{out}\,\mathrm{readout}_{v \in G}\,\mathbf{X}^{(L)}_v .

    Bond features are not used (the sheaf learner sees node features only, so there is no
    ``edge_dim``). The sheaf Laplacian needs both directions of every edge and no self-loops;
    :attr:`transform` makes general graphs so (OGB molecules already are, so for
    ``molecular=True`` it is ``None`` and nothing is precomputed).

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): channels per stalk :math:`c`; the hidden width is :math:`d\,c`.
        out_channels (int): prediction width.
        num_layers (int): diffusion steps. (default: ``3``)
        dropout (float): dropout on hidden features. (default: ``0.0``)
        act (str or Callable, optional): activation of the encoder (PyG's
            ``activation_resolver``). (default: ``"elu"``, as in the paper)
        norm (str or Callable, optional): normalization after every diffusion step (PyG's
            ``normalization_resolver``). (default: :obj:`None`, as in the paper)
        readout (str or Aggregation): graph readout (PyG's ``aggregation_resolver``).
            (default: ``"mean"``)
        stalk_dim (int): stalk dimension :math:`d`. (default: ``3``)
        maps (str): ``"diag"``, ``"orthogonal"`` or ``"general"``. (default: ``"diag"``)
        molecular (bool): embed OGB atom categories with ``AtomEncoder``.
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)` (symmetric, no self-loops), batch vector
          :math:`(|\mathcal{V}|)` *(optional)*
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 3, *, dropout: float = 0.0, act: Act = "elu",
                 norm: Norm = None, readout: str | Aggregation = "mean", stalk_dim: int = 3,
                 maps: str = "diag", molecular: bool = False,
                 act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if readout is None:
            raise ValueError("SheafGraphModel is graph-level: readout cannot be None; use "
                             "SheafDiffusion for node-level outputs")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.stalk_dim = stalk_dim
        self.num_layers = num_layers
        self.maps = maps
        self.dropout = dropout
        self.molecular = molecular
        width = stalk_dim * hidden_channels
        if molecular:
            from ogb.graphproppred.mol_encoder import AtomEncoder

            self.node_encoder: nn.Module = AtomEncoder(width)
        else:
            self.node_encoder = nn.Linear(in_channels, width)
        self.act = resolve_act(act, act_kwargs)
        self.convs = nn.ModuleList(SheafConv(hidden_channels, stalk_dim, maps=maps,
                                             dropout=dropout) for _ in range(num_layers))
        self.norms = NormLayers(norm, width, num_layers, norm_kwargs)
        self.readout = resolve_readout(readout)
        self.head = nn.Linear(width, out_channels)
        self.transform: Callable[[Data], Data] | None = None if molecular else \
            Compose([CheckGraph(), RemoveSelfLoops(), ToUndirected()])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, batch: OptTensor = None, *,
                num_graphs: int | None = None) -> Tensor:
        """``num_graphs`` (default ``batch.max() + 1``) counts trailing empty graphs."""
        check_model_inputs(x, edge_index, batch, self.in_channels, self.molecular)
        num_graphs = num_graphs_of(batch, num_graphs)
        batch = batch_or_zeros(batch, x)
        h = self.act(self.node_encoder(x))
        h = F.dropout(h, self.dropout, self.training)
        for layer, conv in enumerate(self.convs):
            h = self.norms.apply(layer, conv(h, edge_index), batch, num_graphs)
        return self.head(self.readout(h, batch, dim_size=num_graphs))

    def forward_data(self, data: Data) -> Tensor:
        """``forward`` on a (batched) ``Data`` (``x``, ``edge_index``, ``batch``)."""
        return self(data.x, data.edge_index, getattr(data, "batch", None),
                    num_graphs=data_num_graphs(data))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, maps={self.maps!r}, "
                f"stalk_dim={self.stalk_dim}, readout={readout_name(self.readout)})")


# --------------------------------------------------------------------------- factories
def _gin_with_aggr(make_aggr: Callable[[int], Aggregation], molecular: bool):
    """A conv factory for :class:`~graphlab.models.GNN`: GIN(E) whose aggregation is ``make_aggr``.

    GIN's MLP acts after the aggregation, so the aggregator maps ``in -> in`` channels. On
    molecules (``edge_dim=None`` there: :class:`GNN` adds OGB bond embeddings of the node width)
    and on data with edge features the conv is GINE, else GIN.
    """

    def factory(in_channels: int, out_channels: int, edge_dim: int | None):
        aggr = make_aggr(in_channels)
        if edge_dim is None and not molecular:
            return GINConv(_gin_mlp(in_channels, out_channels), train_eps=True, aggr=aggr)
        return GINEConv(_gin_mlp(in_channels, out_channels), train_eps=True, edge_dim=edge_dim,
                        aggr=aggr)

    return factory


_AGGREGATORS: dict[str, Callable[[int], Aggregation]] = {
    "lcm": lambda c: LCMAggregation(c, c),
    "recurrent": lambda c: RecurrentAggregation(c, c),
    "gnp": lambda c: GNPAggregation(channels=c),
}


def _gin_family(aggr: str | None = None, gnp_readout: bool = False):
    def build(spec: TaskSpec, hidden_channels: int = 300, num_layers: int = 5,
              dropout: float = 0.5, readout: str | Aggregation | None = "mean", **kw) -> nn.Module:
        if spec.level != "graph":
            raise ValueError(f"this OGB variant is graph-level, got a {spec.level}-level task")
        # like the registered "gin": use edge features (GINE) where the data has them
        conv: str | Callable = "gine" if spec.edge_dim and not spec.molecular else "gin"
        if aggr is not None:
            conv = _gin_with_aggr(_AGGREGATORS[aggr], spec.molecular)
        if gnp_readout:
            readout = GNPAggregation(channels=hidden_channels)
        return GNN(spec.in_channels, hidden_channels, spec.out_channels, num_layers, conv=conv,
                   readout=readout, dropout=dropout, edge_dim=spec.edge_dim,
                   molecular=spec.molecular, **kw)

    return build


def _virtual_node(conv: str):
    def build(spec: TaskSpec, hidden_channels: int = 300, num_layers: int = 5,
              dropout: float = 0.5, **kw) -> nn.Module:
        if spec.level != "graph":
            raise ValueError(f"{conv}-vn is graph-level, got a {spec.level}-level task")
        return VirtualNodeGNN(spec.in_channels, hidden_channels, spec.out_channels, num_layers,
                              conv=conv, dropout=dropout, edge_dim=spec.edge_dim,
                              molecular=spec.molecular, **kw)

    return build


def _sheaf_graph(spec: TaskSpec, hidden_channels: int = 16, num_layers: int = 3,
                 **kw) -> nn.Module:
    if spec.level != "graph":
        raise ValueError(f"sheaf-graph is graph-level, got a {spec.level}-level task; "
                         f"use sheaf-diag for node classification")
    return SheafGraphModel(spec.in_channels, hidden_channels, spec.out_channels,
                           num_layers=num_layers, molecular=spec.molecular, **kw)


register_model("gin-vn")(_virtual_node("gin"))
register_model("gcn-vn")(_virtual_node("gcn"))
register_model("gin-lcm")(_gin_family("lcm"))
register_model("gin-recurrent")(_gin_family("recurrent"))
register_model("gin-gnp")(_gin_family("gnp"))
register_model("gin-gnp-readout")(_gin_family(gnp_readout=True))
register_model("sheaf-graph")(_sheaf_graph)
