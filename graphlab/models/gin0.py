"""The GIN paper's graph classifier (GIN-0 / GIN-eps), with a prediction from every layer."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GINConv
from torch_geometric.nn.models import MLP
from torch_geometric.transforms import OneHotDegree
from torch_geometric.typing import Adj, OptTensor
from torch_geometric.utils import degree

from graphlab.datasets.spec import TaskSpec
from graphlab.models._common import (
    Act,
    Norm,
    NormLayers,
    Readout,
    batch_or_zeros,
    data_num_graphs,
    num_graphs_of,
    readout_name,
    resolve_act,
    resolve_readout,
)
from graphlab.models.registry import DataModel, register_model
from graphlab.utils.validation import check_adj, check_batch_vector, check_node_features

__all__ = ["GIN0"]


class GIN0(nn.Module):
    r"""The graph classifier of `"How Powerful are Graph Neural Networks?"
    <https://arxiv.org/abs/1810.00826>`_ (Xu et al., ICLR 2019): GIN-0 (:math:`\epsilon = 0`)
    or, with ``train_eps=True``, GIN-:math:`\epsilon`, as in the authors' ``GraphCNN``
    (``models/graphcnn.py`` of `weihua916/powerful-gnns
    <https://github.com/weihua916/powerful-gnns>`_).

    Each of the :math:`L` layers is a GIN update followed by a normalisation and an activation,
    and every layer, the input features included, contributes a linear prediction from its
    graph readout (Eq. 4.2 of the paper, with a sum over layers instead of a concatenation
    followed by one linear layer, as in the authors' code):

    .. math::
        \mathbf{h}^{(k)}_v = \sigma\Big(\mathrm{BN}\big(\mathrm{MLP}^{(k)}\big((1 +
            \epsilon^{(k)})\, \mathbf{h}^{(k-1)}_v + \textstyle\sum_{u \in \mathcal{N}(v)}
            \mathbf{h}^{(k-1)}_u\big)\big)\Big), \qquad \mathbf{h}^{(0)}_v = \mathbf{x}_v,

    .. math::
        \hat{\mathbf{y}}_G = \sum_{k=0}^{L} \mathrm{drop}\Big(\mathbf{W}^{(k)}\,
            \mathrm{READOUT}\big(\{\mathbf{h}^{(k)}_v : v \in G\}\big) + \mathbf{b}^{(k)}\Big),

    where each :math:`\mathrm{MLP}^{(k)}` has ``num_mlp_layers`` linear layers of width
    ``hidden_channels`` with batch norm and ReLU between them (none after the last),
    :math:`\mathrm{READOUT}` is a sum, and dropout acts on each layer's prediction only ("the
    dropout ratio after the dense layer", Sec. 7; ``F.dropout(linears_prediction[k](pooled))``
    in the authors' code). GIN-0 aggregates the node itself with its neighbours
    (:math:`\epsilon^{(k)} = 0`); GIN-:math:`\epsilon` learns one :math:`\epsilon^{(k)}` per
    layer, initialised at 0. The paper's "5 layers including the input" is ``num_layers=4``.

    Args:
        in_channels (int): node feature width (the paper's one-hot node labels or degrees).
        hidden_channels (int): width of every MLP layer and node representation.
        out_channels (int): number of classes (logits).
        num_layers (int): GIN layers, not counting the input. (default: ``4``)
        dropout (float): dropout on each layer's prediction. (default: ``0.5``)
        act (str or Callable, optional): activation inside the MLPs and after each layer,
            resolved by PyG's ``activation_resolver``. (default: ``"relu"``)
        norm (str or Callable, optional): normalisation inside the MLPs and after each layer,
            resolved by PyG's ``normalization_resolver``; :obj:`None` for none.
            (default: ``"batch_norm"``, momentum 0.1 as in the authors' ``nn.BatchNorm1d``)
        train_eps (bool): learn :math:`\epsilon` (GIN-:math:`\epsilon`) instead of fixing it at
            0 (GIN-0). (default: :obj:`False`)
        num_mlp_layers (int): linear layers per MLP. (default: ``2``)
        readout (str or Aggregation): graph readout, resolved by PyG's
            ``aggregation_resolver`` (the paper: ``"sum"``; its ablation: ``"mean"``).
            (default: ``"sum"``)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)` or a sparse ``adj_t`` :math:`(|\mathcal{V}|,
          |\mathcal{V}|)`, batch vector :math:`(|\mathcal{V}|)` *(optional)*
        - **output:** graph logits :math:`(B, F_{out})`
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 4,
        *,
        dropout: float = 0.5,
        act: Act = "relu",
        norm: Norm = "batch_norm",
        train_eps: bool = False,
        num_mlp_layers: int = 2,
        readout: Readout = "sum",
        act_kwargs: dict[str, Any] | None = None,
        norm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels), ("num_layers", num_layers),
                            ("num_mlp_layers", num_mlp_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if readout is None:
            raise ValueError("GIN0 is a graph classifier: readout cannot be None")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.num_mlp_layers = num_mlp_layers
        self.dropout = dropout
        self.train_eps = train_eps

        self.convs = nn.ModuleList()
        for layer in range(num_layers):
            width = in_channels if layer == 0 else hidden_channels
            mlp = MLP([width] + [hidden_channels] * num_mlp_layers, act=act, norm=norm,
                      act_kwargs=act_kwargs, norm_kwargs=norm_kwargs, dropout=0.0,
                      plain_last=True)
            self.convs.append(GINConv(mlp, eps=0.0, train_eps=train_eps))
        self.norms = NormLayers(norm, hidden_channels, num_layers, norm_kwargs)
        self.act = resolve_act(act, act_kwargs)
        self.readout = resolve_readout(readout)
        self.heads = nn.ModuleList(
            nn.Linear(in_channels if k == 0 else hidden_channels, out_channels)
            for k in range(num_layers + 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()  # resets its MLP and eps (to 0)
        for norm in self.norms:
            if hasattr(norm, "reset_parameters"):
                norm.reset_parameters()
        for head in self.heads:
            head.reset_parameters()

    def forward(self, x: Tensor, edge_index: Adj, batch: OptTensor = None, *,
                num_graphs: int | None = None) -> Tensor:
        """``edge_index`` is a ``[2, E]`` index or a sparse ``adj_t``; ``num_graphs`` (default
        ``batch.max() + 1``) counts trailing empty graphs."""
        if not isinstance(x, Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
        check_node_features(x, "x", channels=self.in_channels)
        check_adj(edge_index, x.size(0))
        check_batch_vector(batch, x.size(0))
        size = num_graphs_of(batch, num_graphs)
        index = batch_or_zeros(batch, x)

        def predict(k: int, h: Tensor) -> Tensor:
            score = self.heads[k](self.readout(h, index, dim_size=size))
            return nn.functional.dropout(score, self.dropout, self.training)

        h = x
        out = predict(0, h)
        for layer, conv in enumerate(self.convs):
            h = self.act(self.norms.apply(layer, conv(h, edge_index), batch, size))
            out = out + predict(layer + 1, h)
        return out

    def forward_data(self, data: Data) -> Tensor:
        """``forward`` on a (batched) ``Data``: ``x``, ``adj_t`` (when present, else
        ``edge_index``) and ``batch``; edge features are not used (the paper has none)."""
        adj = data.adj_t if getattr(data, "adj_t", None) is not None else data.edge_index
        return self(data.x, adj, getattr(data, "batch", None), num_graphs=data_num_graphs(data))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, "
                f"train_eps={self.train_eps}, readout={readout_name(self.readout)})")


@register_model("gin-0")
def _gin0(spec: TaskSpec, hidden_channels: int = 64, num_layers: int = 4,
          one_hot_degree: int | None = None, **kw: Any) -> GIN0 | DataModel:
    """``graphlab train --model gin-0``: :class:`GIN0` (``model_kwargs={"train_eps": True}`` for
    GIN-eps); float node features and graph classification only, as in the paper.

    ``one_hot_degree=D`` replaces the node features by one-hot degrees ``0..D`` (PyG's
    ``OneHotDegree``, applied to every graph once before training): the authors'
    ``--degree_as_tag`` for IMDB and COLLAB. ``D`` must be at least the dataset's largest
    degree."""
    if spec.level != "graph":
        raise ValueError(f"gin-0 is the GIN paper's graph classifier; this task is "
                         f"{spec.level}-level (use --model gin)")
    if spec.molecular:
        raise ValueError("gin-0 takes float node features (the paper's one-hot labels), not "
                         "OGB's atom categories; use --model gin for OGB molecules")
    if one_hot_degree is None:
        return GIN0(spec.in_channels, hidden_channels, spec.out_channels, num_layers, **kw)
    if isinstance(one_hot_degree, bool) or not isinstance(one_hot_degree, int) \
            or one_hot_degree < 1:
        raise ValueError(f"one_hot_degree must be a positive integer (the largest degree), got "
                         f"{one_hot_degree!r}")
    model = GIN0(one_hot_degree + 1, hidden_channels, spec.out_channels, num_layers, **kw)
    return DataModel(model, transform=_CheckedOneHotDegree(one_hot_degree, cat=False))


class _CheckedOneHotDegree(OneHotDegree):
    """PyG's ``OneHotDegree`` with a clear error for a degree above ``max_degree`` (PyG's
    raises ``one_hot``'s "Class values must be smaller than num_classes")."""

    def forward(self, data: Data) -> Data:
        if data.edge_index.numel():  # runs once per graph before training: the read is cheap
            largest = int(degree(data.edge_index[1 if self.in_degree else 0],
                                 data.num_nodes).max())
            if largest > self.max_degree:
                raise ValueError(f"one_hot_degree={self.max_degree} is below a graph's degree "
                                 f"{largest}; pass the dataset's largest degree")
        return super().forward(data)
