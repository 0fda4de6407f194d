"""Path Neural Networks (PathNN-SP, -SP+, -AP) as a graph-level model."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from graphlab.conv.path_conv import PathConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models.registry import register_model
from graphlab.transforms.add_paths import AddPaths, get_paths
from graphlab.utils.validation import check_batch_vector, check_edge_index, check_floating

__all__ = ["PathNN"]

_READOUTS = {"sum": global_add_pool, "add": global_add_pool, "mean": global_mean_pool,
             "max": global_max_pool}


class PathNN(nn.Module):
    r"""Path Neural Network from the `"Path Neural Networks: Expressive and Accurate Graph Neural
    Networks" <https://arxiv.org/abs/2306.05955>`_ paper (ICML 2023).

    Layer :math:`\ell = 1, \dots, K` is a :class:`~graphlab.conv.PathConv` over the paths with
    :math:`L_\ell` edges ending at every node; one LSTM (and one distance embedding) is shared by
    all layers, as in the paper:

    .. math::
        \mathbf{h}^{(\ell)}_v = \phi^{(\ell)}\Big(\mathrm{BN}\big(\mathbf{h}^{(\ell-1)}_v +
            \sum_{p \in \mathcal{P}_{L_\ell}(v)} \mathrm{LSTM}(p)\big)\Big), \qquad
        \mathbf{y}_G = \mathrm{MLP}\Big(\mathrm{READOUT}_{v \in G}\, \mathbf{h}^{(K)}_v\Big)

    By default (the paper's schedule) :math:`L_\ell = \ell` and :math:`K` = ``max_length``.
    ``path_lengths`` sets another schedule, e.g. ``[1, 2, 3, 4, 4]``: on SR25 the exact PathNN
    colour refinement (:func:`~graphlab.utils.paths.path_colour_refinement`) proves that the
    paper's 4 layers over 1-4 edges can separate at most 98 of the 105 pairs, while one more
    layer over 4-edge paths separates all 105, without enumerating longer paths.

    The input must be transformed by :class:`~graphlab.transforms.AddPaths` with the same
    ``max_length``, ``kind`` and ``distance_encoding``; :attr:`transform` returns that transform.

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): width of every layer.
        out_channels (int): output width.
        max_length (int): longest path (in edges) that :attr:`transform` enumerates; with the
            default schedule also the number of layers (the paper's cutoff - 1).
        kind (str): ``"shortest"`` (SP), ``"all_shortest"`` (SP+) or ``"all_simple"`` (AP).
            (default: ``"all_simple"``)
        edge_dim (int, optional): edge feature width; edges are embedded to
            ``hidden_channels`` and fed to the LSTM. (default: :obj:`None`)
        readout (str): ``"sum"``, ``"mean"`` or ``"max"``. (default: ``"sum"``)
        distance_encoding (bool, optional): embed shortest-path distances; default ``True`` for
            ``"all_simple"`` (as in the paper) and ``False`` otherwise.
        dropout (float): dropout after every layer and in the head. (default: ``0.0``)
        mlp_layers (int): depth of each layer's MLP :math:`\phi` (0 = ReLU). (default: ``2``)
        l2_norm (bool): L2-normalise node states before each layer (the paper's synthetic
            setting). (default: ``False``)
        norm (bool): batch normalisation after each layer's residual sum; the paper's synthetic
            (isomorphism-test) model has none. (default: ``True``)
        molecular (bool): embed raw OGB atom / bond categories with OGB's encoders.
            (default: ``False``)
        readout_norm (bool): batch-normalise the graph embedding before the head. Sums over
            paths and nodes without normalisation give embeddings of norm ~1e3-1e4 (CSL), whose
            logits can stall training; this standardises the head's input. (default: ``False``)
        path_lengths (Sequence[int], optional): the path length (edges) read by each layer, in
            order; one layer per entry, each in ``1..max_length`` (repeats allowed). :obj:`None`
            is ``range(1, max_length + 1)``. (default: :obj:`None`)

    Shapes:
        - **input:** a (batched) :class:`~graphlab.transforms.add_paths.PathData` with ``x``
          :math:`(|\mathcal{V}|, F_{in})`, ``edge_index``, the ``path_*`` tensors and optional
          ``edge_attr``, ``batch``
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, max_length: int,
                 kind: str = "all_simple", edge_dim: int | None = None, readout: str = "sum",
                 distance_encoding: bool | None = None, dropout: float = 0.0,
                 mlp_layers: int = 2, l2_norm: bool = False, molecular: bool = False,
                 norm: bool = True, readout_norm: bool = False,
                 path_lengths: Sequence[int] | None = None) -> None:
        super().__init__()
        if readout not in _READOUTS:
            raise ValueError(f"readout must be one of {sorted(_READOUTS)}, got {readout!r}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.max_length = max_length
        self.kind = kind
        self.edge_dim = edge_dim
        self.readout = readout
        self.distance_encoding = (kind == "all_simple") if distance_encoding is None \
            else distance_encoding
        self.dropout = dropout
        self.l2_norm = l2_norm
        self.norm = norm
        self.molecular = molecular
        # validates kind / max_length and is what the training harness applies to the data
        self._transform = AddPaths(max_length, kind, distance_encoding=self.distance_encoding)
        self.path_lengths = _check_path_lengths(path_lengths, max_length)

        if molecular:
            from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder

            self.node_encoder: nn.Module = AtomEncoder(hidden_channels)
            self.edge_encoder: nn.Module | None = BondEncoder(hidden_channels)
            conv_edge_dim: int | None = hidden_channels
        else:
            self.node_encoder = nn.Linear(in_channels, hidden_channels)
            self.edge_encoder = nn.Linear(edge_dim, hidden_channels) if edge_dim else None
            conv_edge_dim = hidden_channels if edge_dim else None
        max_distance = max_length if self.distance_encoding else None
        dist_dim = hidden_channels if self.distance_encoding else 0
        self.distance_embedding = nn.Embedding(max_length + 1, hidden_channels) \
            if self.distance_encoding else None
        self.encoder = nn.LSTM(hidden_channels + (conv_edge_dim or 0) + dist_dim, hidden_channels,
                               batch_first=True)
        self.convs = nn.ModuleList(
            PathConv(hidden_channels, edge_dim=conv_edge_dim, max_distance=max_distance,
                     encoder=self.encoder, distance_embedding=self.distance_embedding,
                     norm=norm, mlp_layers=mlp_layers)
            for _ in self.path_lengths)
        # a separate module (not inside head) keeps the head's state_dict keys unchanged
        self.readout_norm = nn.BatchNorm1d(hidden_channels) if readout_norm else None
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden_channels, out_channels))
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

    def forward(self, data: Data) -> Tensor:
        h = self.embed(data)
        if self.readout_norm is not None:
            h = self.readout_norm(h)
        return self.head(h)

    def embed(self, data: Data) -> Tensor:
        """Graph embeddings ``[B, hidden_channels]`` before the prediction head (the paper's
        isomorphism tests compare these, ``predict=False`` in its code)."""
        x, edge_index = data.x, data.edge_index
        num_nodes = x.size(0) if isinstance(x, Tensor) else 0
        check_edge_index(edge_index, num_nodes)
        if not self.molecular:
            check_floating(x, "x")
        batch = data.batch if "batch" in data and data.batch is not None else \
            torch.zeros(num_nodes, dtype=torch.long, device=x.device)
        check_batch_vector(batch, num_nodes)
        if isinstance(data, Batch):
            num_graphs = int(data.num_graphs)
        else:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 1
        h = self.node_encoder(x)
        edge_attr = data.edge_attr if "edge_attr" in data else None
        e = None
        if self.edge_encoder is not None:
            if edge_attr is None:
                raise ValueError("PathNN(edge_dim=...) needs data.edge_attr")
            e = self.edge_encoder(edge_attr if self.molecular else edge_attr.to(h.dtype))
        for length, conv in zip(self.path_lengths, self.convs):
            path_index, path_edge, path_dist = get_paths(data, length)
            if self.l2_norm:
                h = nn.functional.normalize(h, dim=-1)
            h = conv(h, path_index, e, path_edge, path_dist)
            h = nn.functional.dropout(h, self.dropout, self.training)
        return _READOUTS[self.readout](h, batch, size=num_graphs)

    def __repr__(self) -> str:
        schedule = "" if self.path_lengths == tuple(range(1, self.max_length + 1)) \
            else f", path_lengths={list(self.path_lengths)}"
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, max_length={self.max_length}, kind={self.kind!r}"
                f"{schedule})")


def _check_path_lengths(path_lengths: Sequence[int] | None, max_length: int) -> tuple[int, ...]:
    """The per-layer path lengths as a tuple; ValueError unless a non-empty sequence of ints
    in ``1..max_length``."""
    if path_lengths is None:
        return tuple(range(1, max_length + 1))
    if isinstance(path_lengths, (str, bytes)) or not isinstance(path_lengths, Sequence) \
            or len(path_lengths) == 0:
        raise ValueError(f"path_lengths must be a non-empty sequence of ints, got {path_lengths!r}")
    bad = [v for v in path_lengths if isinstance(v, bool) or not isinstance(v, numbers.Integral)
           or not 1 <= v <= max_length]
    if bad:
        raise ValueError(f"path_lengths entries must be ints in 1..max_length={max_length}, "
                         f"got {list(path_lengths)}")
    return tuple(int(v) for v in path_lengths)


def _factory(kind: str):
    def build(spec: TaskSpec, **kw) -> PathNN:
        # defaults: the paper's ogbg-molhiv setting (hidden 128, cutoff 3 = 2 layers,
        # dropout 0.5, mean readout); override with keyword arguments
        kw.setdefault("hidden_channels", 128)
        kw.setdefault("max_length", 2)
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
