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

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv, GINConv, GINEConv
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.nn.resolver import aggregation_resolver
from torch_geometric.transforms import Compose, RemoveSelfLoops, ToUndirected
from torch_geometric.utils import scatter

from graphlab.aggr import GNPAggregation, LCMAggregation, RecurrentAggregation
from graphlab.conv.sheaf_conv import SheafConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models.gnn import GNN
from graphlab.models.registry import register_model
from graphlab.utils.validation import check_batch_vector, check_edge_index, check_node_features

__all__ = ["VirtualNodeGNN", "SheafGraphModel"]


def _gin_mlp(in_channels: int, out_channels: int) -> nn.Sequential:
    # OGB's GIN MLP: Linear -> BN -> ReLU -> Linear with a 2x hidden width
    return nn.Sequential(nn.Linear(in_channels, 2 * out_channels),
                         nn.BatchNorm1d(2 * out_channels), nn.ReLU(),
                         nn.Linear(2 * out_channels, out_channels))


def _num_graphs(data: Data, batch: Tensor) -> int:
    num = getattr(data, "num_graphs", None)
    if num is not None:
        return int(num)
    return int(batch.max()) + 1 if batch.numel() else 1


def _batch_of(data: Data, num_nodes: int, device: torch.device) -> Tensor:
    batch = getattr(data, "batch", None)
    check_batch_vector(batch, num_nodes)
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long, device=device)
    return batch


# --------------------------------------------------------------------------- virtual node
class VirtualNodeGNN(nn.Module):
    r"""OGB's reference GNN with a virtual node (`"Open Graph Benchmark"
    <https://arxiv.org/abs/2005.00687>`_; the virtual node of `"Neural Message Passing for
    Quantum Chemistry" <https://arxiv.org/abs/1704.01212>`_), connected to every node of its graph:

    .. math::
        \mathbf{h}_v^{(l)} &\leftarrow \mathbf{h}_v^{(l)} + \mathbf{u}_{G(v)}^{(l)}, \qquad
        \mathbf{h}^{(l+1)} = \mathrm{drop}\big(\sigma(\mathrm{BN}(
            \mathrm{conv}_l(\mathbf{h}^{(l)}, \mathcal{E})))\big), \\
        \mathbf{u}_G^{(l+1)} &= \mathrm{drop}\Big(\mathrm{MLP}_l\big(
            \textstyle\sum_{v \in G} \mathbf{h}_v^{(l)} + \mathbf{u}_G^{(l)}\big)\Big),

    with :math:`\mathbf{u}^{(0)} = \mathbf{0}` (a learned embedding initialised at zero),
    no activation after the last layer, a mean readout and a linear head.

    Args:
        in_channels: node feature width (ignored with ``molecular=True``).
        hidden_channels: width of every layer (OGB: 300).
        out_channels: prediction width.
        num_layers: number of message-passing layers (OGB: 5).
        conv: ``"gin"`` (GINE with OGB bond embeddings on molecules) or ``"gcn"``.
        dropout: dropout after every layer and on the virtual node (OGB: 0.5).
        readout: graph readout (aggregation name or instance).
        edge_dim: edge feature width for non-molecular data (GINE projects it).
        molecular: embed OGB atom/bond categories with ``AtomEncoder``/``BondEncoder``.

    Shapes:
        - **input:** a (batched) ``Data`` with ``x``, ``edge_index``, optional ``edge_attr`` and
          ``batch``
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 5, conv: str = "gin", dropout: float = 0.5,
                 readout: str | Aggregation = "mean", edge_dim: int | None = None,
                 molecular: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if conv not in ("gin", "gcn"):
            raise ValueError(f"conv must be 'gin' or 'gcn', got {conv!r}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.conv_name = conv
        self.dropout = dropout
        self.molecular = molecular
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
        self.norms = nn.ModuleList(nn.BatchNorm1d(h) for _ in range(num_layers))
        self.vn_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(h, 2 * h), nn.BatchNorm1d(2 * h), nn.ReLU(),
                          nn.Linear(2 * h, h), nn.BatchNorm1d(h), nn.ReLU())
            for _ in range(num_layers - 1))
        self.readout = aggregation_resolver(readout) if isinstance(readout, str) else readout
        self.head = nn.Linear(h, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        nn.init.zeros_(self.virtual_node.weight)  # OGB starts the virtual node at zero

    def forward(self, data: Data) -> Tensor:
        x, edge_index = data.x, data.edge_index
        num_nodes = x.size(0)
        check_edge_index(edge_index, num_nodes)
        batch = _batch_of(data, num_nodes, x.device)
        num_graphs = _num_graphs(data, batch)
        if self.molecular:
            if x.is_floating_point():
                raise ValueError(f"molecular=True expects integer OGB atom features, got {x.dtype}")
            h = self.node_encoder(x)
        else:
            check_node_features(x, "x", channels=self.in_channels)
            h = self.node_encoder(x)
        edge_attr = getattr(data, "edge_attr", None)
        vn = self.virtual_node.weight.expand(num_graphs, -1)
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = h + vn[batch]
            if self.edge_aware:
                e = self.bond_encoders[layer](edge_attr) if self.molecular else edge_attr.to(h.dtype)
                out = conv(h, edge_index, e)
            else:
                out = conv(h, edge_index)
            out = norm(out)
            if layer < self.num_layers - 1:
                out = torch.relu(out)
            out = F.dropout(out, self.dropout, self.training)
            if layer < self.num_layers - 1:
                pooled = scatter(h, batch, 0, dim_size=num_graphs, reduce="sum") + vn
                vn = F.dropout(self.vn_mlps[layer](pooled), self.dropout, self.training)
            h = out
        return self.head(self.readout(h, batch, dim_size=num_graphs))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, conv={self.conv_name})")


# --------------------------------------------------------------------------- sheaf, graph level
class SheafGraphModel(nn.Module):
    r"""Graph-level neural sheaf diffusion (`"Neural Sheaf Diffusion"
    <https://arxiv.org/abs/2202.04579>`_): node encoder, ``num_layers``
    :class:`~graphlab.conv.SheafConv` steps on the batched graphs (restriction maps are learned
    per edge, so the layer is inductive), a graph readout and a linear head,

    .. math::
        \mathbf{X}^{(0)} = \mathrm{drop}(\mathrm{ELU}(\mathrm{enc}(\mathbf{x}))),\quad
        \mathbf{X}^{(l+1)} = \mathrm{SheafConv}_l(\mathbf{X}^{(l)}),\quad
        \hat{\mathbf{y}}_G = \mathbf{W}_{out}\,\mathrm{readout}_{v \in G}\,\mathbf{X}^{(L)}_v .

    Bond features are not used (the sheaf learner sees node features only). The sheaf Laplacian
    needs both directions of every edge and no self-loops; :attr:`transform` makes general graphs
    so (OGB molecules already are, so for ``molecular=True`` it is ``None`` and nothing is
    precomputed).

    Args:
        in_channels: node feature width (ignored with ``molecular=True``).
        hidden_channels: channels per stalk :math:`c`; the hidden width is :math:`d\,c`.
        out_channels: prediction width.
        stalk_dim: stalk dimension :math:`d`.
        num_layers: diffusion steps.
        maps: ``"diag"``, ``"orthogonal"`` or ``"general"``.
        dropout: dropout on hidden features.
        readout: graph readout (aggregation name or instance).
        molecular: embed OGB atom categories with ``AtomEncoder``.

    Shapes:
        - **input:** a (batched) ``Data`` with ``x``, ``edge_index`` (symmetric) and ``batch``
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 stalk_dim: int = 3, num_layers: int = 3, maps: str = "diag",
                 dropout: float = 0.0, readout: str | Aggregation = "mean",
                 molecular: bool = False) -> None:
        super().__init__()
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
        self.convs = nn.ModuleList(SheafConv(hidden_channels, stalk_dim, maps=maps,
                                             dropout=dropout) for _ in range(num_layers))
        self.readout = aggregation_resolver(readout) if isinstance(readout, str) else readout
        self.head = nn.Linear(width, out_channels)
        self.transform: Callable[[Data], Data] | None = None if molecular else \
            Compose([RemoveSelfLoops(), ToUndirected()])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, data: Data) -> Tensor:
        x, edge_index = data.x, data.edge_index
        num_nodes = x.size(0)
        check_edge_index(edge_index, num_nodes)
        batch = _batch_of(data, num_nodes, x.device)
        if self.molecular:
            if x.is_floating_point():
                raise ValueError(f"molecular=True expects integer OGB atom features, got {x.dtype}")
        else:
            check_node_features(x, "x", channels=self.in_channels)
        h = F.elu(self.node_encoder(x))
        h = F.dropout(h, self.dropout, self.training)
        for conv in self.convs:
            h = conv(h, edge_index)
        return self.head(self.readout(h, batch, dim_size=_num_graphs(data, batch)))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, maps={self.maps!r}, stalk_dim={self.stalk_dim}, "
                f"num_layers={self.num_layers})")


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
