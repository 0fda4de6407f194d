"""Path Neural Networks (PathNN-SP, -SP+, -AP) as a graph-level model."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.typing import OptTensor

from graphlab.conv.path_conv import PathConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models._common import (
    Act,
    Norm,
    batch_or_zeros,
    check_model_inputs,
    data_num_graphs,
    num_graphs_of,
    readout_name,
    resolve_act,
    resolve_readout,
)
from graphlab.models.registry import register_model
from graphlab.transforms.add_paths import AddPaths, get_paths
from graphlab.utils.paths import DEFAULT_MAX_PATHS
from graphlab.utils.validation import check_edge_features

__all__ = ["PathNN", "centre_layers"]


#: ``paths[L - 1] = (path_index, path_edge, path_dist)`` for the paths with ``L`` edges
Paths = Sequence[tuple[Tensor, Tensor | None, Tensor | None]]


class PathNN(nn.Module):
    r"""Path Neural Network from the `"Path Neural Networks: Expressive and Accurate Graph Neural
    Networks" <https://arxiv.org/abs/2306.05955>`_ paper (ICML 2023).

    Layer :math:`\ell = 1, \dots, K` is a :class:`~graphlab.conv.PathConv` over the paths with
    :math:`L_\ell` edges ending at every node; one LSTM (and one distance embedding) is shared by
    all layers, as in the paper:

    .. math::
        \mathbf{h}^{(\ell)}_v = \phi^{(\ell)}\Big(\mathrm{norm}\big(\mathbf{h}^{(\ell-1)}_v +
            \sum_{p \in \mathcal{P}_{L_\ell}(v)} \mathrm{LSTM}(p)\big)\Big), \qquad
        \mathbf{y}_G = \mathrm{MLP}\Big(\mathrm{READOUT}_{v \in G}\, \mathbf{h}^{(K)}_v\Big)

    By default (the paper's schedule) :math:`L_\ell = \ell` and :math:`K` = ``num_layers``.
    ``path_lengths`` sets another schedule, e.g. ``[1, 2, 3, 4, 4]``: on SR25 the exact PathNN
    colour refinement (:func:`~graphlab.utils.paths.path_colour_refinement`) proves that the
    paper's 4 layers over 1-4 edges can separate at most 98 of the 105 pairs, while one more
    layer over 4-edge paths separates all 105, without enumerating longer paths
    (:func:`centre_layers` gives the untrained model that reaches it).

    The paths are precomputed by :class:`~graphlab.transforms.AddPaths` with
    :attr:`max_length` (the longest scheduled length), ``kind`` and ``distance_encoding``;
    :attr:`transform` returns that transform, :meth:`forward_data` reads a transformed
    (batched) ``Data``, and :meth:`forward` takes the tensors (:meth:`paths_of` collects them).

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): width of every layer.
        out_channels (int): output width.
        num_layers (int): number of path layers; with the default schedule also the longest
            path (in edges, the paper's cutoff - 1).
        dropout (float): dropout after every layer and in the head. (default: ``0.0``)
        act (str or Callable): activation of the prediction head (PyG's
            ``activation_resolver``; each layer's :math:`\phi` is PathConv's ReLU MLP).
            (default: ``"relu"``)
        norm (str or Callable, optional): node-wise normalization after each layer's residual
            sum (PyG's ``normalization_resolver``: ``"batch_norm"``, ``"layer_norm"`` with
            ``norm_kwargs={"mode": "node"}``, ...); the paper's synthetic (isomorphism-test)
            model has none (:obj:`None`). (default: ``"batch_norm"``)
        edge_dim (int, optional): edge feature width; edges are embedded to
            ``hidden_channels`` and fed to the LSTM. (default: :obj:`None`)
        readout (str or Aggregation): graph readout (PyG's ``aggregation_resolver``: ``"sum"``,
            ``"mean"``, ``"max"``, an ``Aggregation``). (default: ``"mean"``; the paper's
            synthetic experiments use ``"sum"``)
        path_lengths (Sequence[int], optional): the path length (edges) read by each layer, in
            order; ``num_layers`` entries, each >= 1 (repeats allowed). :obj:`None` is
            ``range(1, num_layers + 1)``. (default: :obj:`None`)
        kind (str): ``"shortest"`` (SP), ``"all_shortest"`` (SP+) or ``"all_simple"`` (AP).
            (default: ``"all_simple"``)
        distance_encoding (bool, optional): embed shortest-path distances; default ``True`` for
            ``"all_simple"`` (as in the paper) and ``False`` otherwise.
        mlp_layers (int): depth of each layer's MLP :math:`\phi` (0 = ReLU). (default: ``2``)
        l2_norm (bool): L2-normalise node states before each layer (the paper's synthetic
            setting). (default: ``False``)
        molecular (bool): embed raw OGB atom / bond categories with OGB's encoders.
            (default: ``False``)
        readout_norm (bool): batch-normalise the graph embedding before the head. Sums over
            paths and nodes without normalisation give embeddings of norm ~1e3-1e4 (CSL), whose
            logits can stall training; this standardises the head's input. (default: ``False``)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.
        max_paths (int, optional): the memory cap of :attr:`transform` (``AddPaths``): a growth
            step of the path enumeration creating more rows is a ``ValueError`` naming the
            high-degree node responsible; :obj:`None`: no cap. (default: ``10_000_000``)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, ``paths`` with ``paths[L - 1] = (path_index, path_edge,
          path_dist)`` of shapes :math:`(P_L, L + 1)`, :math:`(P_L, L)` (with ``edge_dim``),
          :math:`(P_L, L + 1)` (with distance encoding) for every scheduled :math:`L` (the
          ``path_*_L`` attributes :class:`~graphlab.transforms.AddPaths` writes), edge features
          :math:`(|\mathcal{E}|, D)` *(with ``edge_dim``)*, batch vector
          :math:`(|\mathcal{V}|)` *(optional)*
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int, *, dropout: float = 0.0, act: Act = "relu",
                 norm: Norm = "batch_norm", edge_dim: int | None = None,
                 readout: str | Aggregation = "mean", path_lengths: Sequence[int] | None = None,
                 kind: str = "all_simple", distance_encoding: bool | None = None,
                 mlp_layers: int = 2, l2_norm: bool = False, molecular: bool = False,
                 readout_norm: bool = False, act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None,
                 max_paths: int | None = DEFAULT_MAX_PATHS) -> None:
        super().__init__()
        if readout is None:
            raise ValueError("PathNN is graph-level: readout cannot be None")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.path_lengths = _check_path_lengths(path_lengths, num_layers)
        self.num_layers = num_layers
        self.max_length = max(self.path_lengths)
        self.kind = kind
        self.edge_dim = edge_dim
        self.readout = resolve_readout(readout)
        self.distance_encoding = (kind == "all_simple") if distance_encoding is None \
            else distance_encoding
        self.dropout = dropout
        self.l2_norm = l2_norm
        self.molecular = molecular
        # validates kind and is what the training harness applies to the data
        self._transform = AddPaths(self.max_length, kind,
                                   distance_encoding=self.distance_encoding, max_paths=max_paths)
        self.max_paths = max_paths

        if molecular:
            from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder

            self.node_encoder: nn.Module = AtomEncoder(hidden_channels)
            self.edge_encoder: nn.Module | None = BondEncoder(hidden_channels)
            conv_edge_dim: int | None = hidden_channels
        else:
            self.node_encoder = nn.Linear(in_channels, hidden_channels)
            self.edge_encoder = nn.Linear(edge_dim, hidden_channels) if edge_dim else None
            conv_edge_dim = hidden_channels if edge_dim else None
        max_distance = self.max_length if self.distance_encoding else None
        dist_dim = hidden_channels if self.distance_encoding else 0
        self.distance_embedding = nn.Embedding(self.max_length + 1, hidden_channels) \
            if self.distance_encoding else None
        self.encoder = nn.LSTM(hidden_channels + (conv_edge_dim or 0) + dist_dim, hidden_channels,
                               batch_first=True)
        # each PathConv normalises x + sum over paths (node-wise norms only; PathConv says so)
        self.convs = nn.ModuleList(
            PathConv(hidden_channels, edge_dim=conv_edge_dim, max_distance=max_distance,
                     encoder=self.encoder, distance_embedding=self.distance_embedding,
                     norm=norm, mlp_layers=mlp_layers, norm_kwargs=norm_kwargs)
            for _ in self.path_lengths)
        # a separate module (not inside head) keeps the head's state_dict keys unchanged
        self.readout_norm = nn.BatchNorm1d(hidden_channels) if readout_norm else None
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels),
                                  resolve_act(act, act_kwargs), nn.Dropout(dropout),
                                  nn.Linear(hidden_channels, out_channels))
        self.reset_parameters()

    @property
    def transform(self) -> AddPaths:
        """The :class:`~graphlab.transforms.AddPaths` this model's input must be prepared with."""
        return self._transform

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters") \
                    and not isinstance(module, PathConv):
                module.reset_parameters()

    def paths_of(self, data: Data) -> list[tuple[Tensor, Tensor | None, Tensor | None]]:
        """``paths`` for :meth:`forward`: the ``path_*_L`` tensors of ``data`` (transformed by
        :attr:`transform`) for ``L = 1..max_length``."""
        return [get_paths(data, length) for length in range(1, self.max_length + 1)]

    def forward(self, x: Tensor, edge_index: Tensor, paths: Paths, edge_attr: OptTensor = None,
                batch: OptTensor = None, *, num_graphs: int | None = None) -> Tensor:
        """``num_graphs`` (default ``batch.max() + 1``) counts trailing empty graphs."""
        h = self.embed(x, edge_index, paths, edge_attr, batch, num_graphs=num_graphs)
        if self.readout_norm is not None:
            h = self.readout_norm(h)
        return self.head(h)

    def embed(self, x: Tensor, edge_index: Tensor, paths: Paths, edge_attr: OptTensor = None,
              batch: OptTensor = None, *, num_graphs: int | None = None) -> Tensor:
        """Graph embeddings ``[B, hidden_channels]`` before the prediction head (the paper's
        isomorphism tests compare these, ``predict=False`` in its code)."""
        check_model_inputs(x, edge_index, batch, self.in_channels, self.molecular)
        if isinstance(paths, Tensor) or not isinstance(paths, Sequence) \
                or len(paths) < self.max_length:
            got = type(paths).__name__ if not isinstance(paths, Sequence) else \
                f"{len(paths)} entries"
            raise ValueError(f"paths must be a sequence with the (path_index, path_edge, "
                             f"path_dist) of every length 1..{self.max_length}, got {got}")
        size = num_graphs_of(batch, num_graphs)
        h = self.node_encoder(x)
        e = None
        if self.edge_encoder is not None:
            if edge_attr is None:
                raise ValueError("PathNN(edge_dim=...) needs edge_attr")
            if not self.molecular:
                edge_attr = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
                check_edge_features(edge_attr, edge_index.size(1), channels=self.edge_dim)
                edge_attr = edge_attr.to(h.dtype)
            e = self.edge_encoder(edge_attr)
        for length, conv in zip(self.path_lengths, self.convs):
            path_index, path_edge, path_dist = paths[length - 1]
            if self.l2_norm:
                h = nn.functional.normalize(h, dim=-1)
            h = conv(h, path_index, e, path_edge, path_dist)
            h = nn.functional.dropout(h, self.dropout, self.training)
        return self.readout(h, batch_or_zeros(batch, h), dim_size=size)

    def forward_data(self, data: Data) -> Tensor:
        """``forward`` on a (batched) ``Data`` prepared by :attr:`transform`."""
        return self(data.x, data.edge_index, self.paths_of(data), _edge_attr(data),
                    getattr(data, "batch", None), num_graphs=data_num_graphs(data))

    def embed_data(self, data: Data) -> Tensor:
        """:meth:`embed` on a (batched) ``Data`` prepared by :attr:`transform`."""
        return self.embed(data.x, data.edge_index, self.paths_of(data), _edge_attr(data),
                          getattr(data, "batch", None), num_graphs=data_num_graphs(data))

    def __repr__(self) -> str:
        schedule = "" if self.path_lengths == tuple(range(1, self.num_layers + 1)) \
            else f", path_lengths={list(self.path_lengths)}"
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, kind={self.kind!r}"
                f"{schedule}, readout={readout_name(self.readout)})")


def _edge_attr(data: Data) -> Tensor | None:
    return data.edge_attr if "edge_attr" in data else None


def centre_layers(model: PathNN, graphs: list[Data]) -> None:
    """Centre every layer of an untrained ``PathNN(norm="batch_norm")`` on ``graphs``, layer by
    layer: each layer's batch norm (used in eval mode) gets ``running_mean`` = the mean
    pre-activation over all nodes of all graphs and ``running_var = 1 - eps``, so it computes
    ``x - mean`` (and its affine part, which is the identity at initialisation).

    Why: the authors' synthetic model (L2 norm, no BN) sums ~14,000 path states per SR25 node, so
    its pre-activations sit ~2e3 from every ReLU kink while nodes differ by < 1; no ReLU ever
    changes regime across a graph's nodes and the model is nearly linear in the node differences.
    Centring puts the kinks among the nodes. It is a fixed per-channel bias, the same for every
    graph (no batch statistics at embedding time), i.e. one setting of the architecture's
    weights, so the exact refinement's bound (:func:`~graphlab.utils.paths.path_colour_refinement`)
    still applies: pairs it proves inseparable stay at rounding distance. Nothing is divided by a
    variance, so rounding noise on nodes that are equal is not amplified. With
    ``path_lengths=[1, 2, 3, 4, 4]`` and distance encoding this separates all 105 SR25 pairs
    untrained (``benchmarks/pathnn_expressivity.py``).

    Args:
        model (PathNN): built with ``norm="batch_norm"``, no ``edge_dim``, not molecular; its
            batch norms are overwritten in place.
        graphs (list[Data]): the raw graphs (before :attr:`PathNN.transform`) whose nodes define
            the centres.
    """
    if not graphs:
        raise ValueError("centre_layers needs at least one graph")
    if model.molecular or model.edge_encoder is not None:
        raise ValueError("centre_layers supports PathNN without edge features (the synthetic "
                         "isomorphism-test setting)")
    norms = [_batch_norm_of(conv.norm) for conv in model.convs]
    if any(bn is None for bn in norms):
        raise ValueError("centre_layers needs PathNN(norm='batch_norm'), got norms "
                         f"{[type(conv.norm).__name__ for conv in model.convs]}")
    data = [model.transform(g) for g in graphs]
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        hs = [model.node_encoder(d.x.to(dtype)) for d in data]
        for length, conv, bn in zip(model.path_lengths, model.convs, norms):
            pres: list[Tensor] = []  # each layer's own forward, its norm's input recorded
            handle = conv.norm.register_forward_pre_hook(
                lambda _m, args, pres=pres: pres.append(args[0]))
            for d, h in zip(data, hs):
                path_index, path_edge, path_dist = get_paths(d, length)
                conv(h, path_index, None, path_edge, path_dist)
            handle.remove()
            bn.running_mean.copy_(torch.cat(pres).mean(0))
            bn.running_var.fill_(1.0 - bn.eps)
            hs = [conv.mlp(conv.norm(pre)) for pre in pres]


def _batch_norm_of(norm: nn.Module) -> nn.BatchNorm1d | None:
    inner = getattr(norm, "module", norm)  # PyG's BatchNorm wraps a torch BatchNorm1d
    return inner if isinstance(inner, nn.BatchNorm1d) and inner.track_running_stats else None


def _check_path_lengths(path_lengths: Sequence[int] | None, num_layers: int) -> tuple[int, ...]:
    """The per-layer path lengths as a tuple; ValueError unless ``num_layers`` ints >= 1."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral) \
            or num_layers < 1:
        raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
    if path_lengths is None:
        return tuple(range(1, num_layers + 1))
    if isinstance(path_lengths, (str, bytes)) or not isinstance(path_lengths, Sequence) \
            or len(path_lengths) == 0:
        raise ValueError(f"path_lengths must be a non-empty sequence of ints, got {path_lengths!r}")
    bad = [v for v in path_lengths if isinstance(v, bool) or not isinstance(v, numbers.Integral)
           or v < 1]
    if bad:
        raise ValueError(f"path_lengths entries must be ints >= 1, got {list(path_lengths)}")
    if len(path_lengths) != num_layers:
        raise ValueError(f"path_lengths has one entry per layer: {len(path_lengths)} entries "
                         f"for num_layers={num_layers}")
    return tuple(int(v) for v in path_lengths)


def _factory(kind: str):
    def build(spec: TaskSpec, **kw) -> PathNN:
        # defaults: the paper's ogbg-molhiv setting (hidden 128, cutoff 3 = 2 layers,
        # dropout 0.5, mean readout); override with keyword arguments
        kw.setdefault("hidden_channels", 128)
        kw.setdefault("num_layers", 2)
        kw.setdefault("dropout", 0.5)
        kw.setdefault("readout", "mean" if spec.molecular else "sum")
        if spec.level != "graph":
            raise ValueError(f"PathNN is a graph-level model, got a {spec.level}-level task")
        return PathNN(spec.in_channels, out_channels=spec.out_channels, kind=kind,
                      edge_dim=spec.edge_dim, molecular=spec.molecular, **kw)

    return build


register_model("pathnn-sp")(_factory("shortest"))
register_model("pathnn-sp+")(_factory("all_shortest"))
register_model("pathnn-ap")(_factory("all_simple"))
