"""One Path Neural Network layer."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.resolver import normalization_resolver

from graphlab.utils.validation import (
    check_edge_features,
    check_index,
    check_input_dtype,
    check_node_features,
)

__all__ = ["PathConv"]


def check_path_tensors(path_index: Tensor, num_nodes: int, path_edge: Tensor | None = None,
                       num_edges: int | None = None, path_dist: Tensor | None = None) -> None:
    """ValueErrors for malformed path tensors (shapes, dtypes, id ranges)."""
    if not isinstance(path_index, Tensor) or path_index.dim() != 2 or path_index.size(1) < 2:
        shape = list(path_index.shape) if isinstance(path_index, Tensor) else type(path_index)
        raise ValueError(f"path_index must have shape [P, L + 1] with L >= 1, got {shape}")
    check_index(path_index.reshape(-1), dim_size=num_nodes, name="path_index")
    length = path_index.size(1) - 1
    if path_edge is not None:
        if path_edge.dim() != 2 or path_edge.shape != (path_index.size(0), length):
            raise ValueError(f"path_edge must have shape [{path_index.size(0)}, {length}], "
                             f"got {list(path_edge.shape)}")
        check_index(path_edge.reshape(-1), dim_size=num_edges, name="path_edge")
    if path_dist is not None:
        if path_dist.shape != path_index.shape:
            raise ValueError(f"path_dist must have the shape of path_index "
                             f"{list(path_index.shape)}, got {list(path_dist.shape)}")
        check_index(path_dist.reshape(-1), name="path_dist")


def _unrollable(lstm: nn.Module) -> bool:
    return isinstance(lstm, nn.LSTM) and not lstm.bidirectional and lstm.proj_size == 0 \
        and lstm.batch_first


LSTMWeights = list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]


def lstm_weights(lstm: nn.LSTM) -> LSTMWeights:
    """``[(weight_ih, weight_hh, bias_ih, bias_hh)]`` per layer of ``lstm``."""
    return [tuple(getattr(lstm, f"{name}_l{k}") if lstm.bias or name.startswith("weight")
                  else None for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            for k in range(lstm.num_layers)]


def lstm_unrolled(weights: LSTMWeights, seq: Tensor, dropout: float = 0.0,
                  training: bool = False) -> Tensor:
    """The last layer's final hidden state of a unidirectional, batch-first LSTM with these
    per-layer ``weights`` (see :func:`lstm_weights`), written out step by step: the same gates in
    the same order (input, forget, cell, output) as ``nn.LSTM``. Used under ``torch.compile``,
    where dynamo does not trace ``nn.LSTM``."""
    num, steps = seq.size(0), seq.size(1)
    hidden = weights[0][1].size(1)
    inp = seq
    h = seq.new_zeros(num, hidden)
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        bias = None if b_ih is None or b_hh is None else b_ih + b_hh
        gates_in = F.linear(inp, w_ih, bias)  # all time steps at once: [P, T, 4H]
        h = gates_in.new_zeros(num, hidden)
        c = gates_in.new_zeros(num, hidden)
        outs = []
        for t in range(steps):  # path length + 1 steps (a handful)
            gates = gates_in[:, t] + F.linear(h, w_hh)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        if layer + 1 < len(weights):
            inp = F.dropout(torch.stack(outs, dim=1), dropout, training)
    return h



def _resolve_norm(norm: str | Callable[..., Any] | bool | None, channels: int,
                  norm_kwargs: dict[str, Any] | None) -> nn.Module:
    """PyG's ``normalization_resolver``, with the former ``norm: bool`` flag still accepted
    (``True``: ``nn.BatchNorm1d``, whose state-dict keys older checkpoints hold)."""
    if norm is True:
        return nn.BatchNorm1d(channels)
    if norm is None or norm is False:
        return nn.Identity()
    layer = normalization_resolver(norm, channels, **(norm_kwargs or {}))
    per_graph = "batch" in inspect.signature(layer.forward).parameters
    if per_graph and getattr(layer, "mode", None) != "node":  # PyG's LayerNorm(mode="node")
        raise ValueError(f"PathConv normalises each node; {norm!r} normalises per graph: use a "
                         f"node-wise norm (e.g. 'batch_norm', or 'layer_norm' with "
                         f"norm_kwargs={{'mode': 'node'}}) or None")
    return layer

class PathConv(nn.Module):
    r"""The path layer from the `"Path Neural Networks: Expressive and Accurate Graph Neural
    Networks" <https://arxiv.org/abs/2306.05955>`_ paper (ICML 2023).

    Every path :math:`p = (u_0 \to \dots \to u_L = v)` of length :math:`L` ending at :math:`v`
    (e.g. from :class:`~graphlab.transforms.AddPaths`) is read by a recurrent encoder from its
    far end towards :math:`v`; the final states are summed per node:

    .. math::
        \mathbf{m}_v = \sum_{p \in \mathcal{P}_L(v)} \mathrm{LSTM}\big(
            [\mathbf{x}_{u_0} \,\|\, \mathbf{0} \,\|\, \mathbf{d}_{d(u_0, v)}], \dots,
            [\mathbf{x}_{u_i} \,\|\, \mathbf{e}_{u_{i-1} u_i} \,\|\, \mathbf{d}_{d(u_i, v)}],
            \dots \big)

    .. math::
        \mathbf{x}^{\prime}_v = \phi\big(\mathrm{Norm}(\mathbf{x}_v + \mathbf{m}_v)\big)

    where :math:`\mathbf{e}` are edge features, :math:`\mathbf{d}` a learned embedding of the
    shortest-path distance to :math:`v` (distance encoding) and :math:`\phi` an MLP.

    Args:
        channels (int): node feature width (input = output; the LSTM's hidden size).
        edge_dim (int, optional): edge feature width, concatenated to the LSTM input.
            (default: :obj:`None`)
        max_distance (int, optional): largest distance embedded for the distance encoding;
            :obj:`None` disables it. (default: :obj:`None`)
        encoder (torch.nn.LSTM, optional): a recurrent encoder to use (and share between layers,
            as in the paper); built when :obj:`None`. (default: :obj:`None`)
        distance_embedding (torch.nn.Embedding, optional): a shared distance embedding.
            (default: :obj:`None`)
        norm (str or Callable, optional): node-wise normalization after the residual sum, by
            PyG's ``normalization_resolver`` (``"batch_norm"``, ``"layer_norm"`` with
            ``norm_kwargs={"mode": "node"}``, ...) as in the other graphlab models; :obj:`None`
            for none. ``True`` (the former flag's default, kept) is ``torch.nn.BatchNorm1d``,
            ``False`` none. Norms that normalise per graph need a batch vector, which a path
            layer does not take, and are refused. (default: ``True``)
        norm_kwargs (dict, optional): passed to the resolver. (default: :obj:`None`)
        mlp_layers (int): depth of :math:`\phi` (0 = ReLU only). (default: :obj:`2`)

    PathConv reads paths, not edges: the PyG adjacency forms (``adj_t``, ``EdgeIndex``) and
    bipartite input do not apply; paths come from :class:`~graphlab.transforms.AddPaths`. Under
    ``torch.compile`` the encoder (a unidirectional batch-first ``nn.LSTM``) is unrolled over the
    ``L + 1`` steps so the layer compiles without graph breaks; under CPU autocast it runs in
    float32 (see :meth:`_final_state`).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, path index :math:`(P, L + 1)`,
          edge features :math:`(|\mathcal{E}|, D)` (optional), path edges :math:`(P, L)`
          (with edge features), path distances :math:`(P, L + 1)` (with distance encoding)
        - **output:** node features :math:`(|\mathcal{V}|, F)`
    """

    def __init__(self, channels: int, edge_dim: int | None = None, max_distance: int | None = None,
                 encoder: nn.LSTM | None = None, distance_embedding: nn.Embedding | None = None,
                 norm: str | Callable[..., Any] | bool | None = True,
                 mlp_layers: int = 2, norm_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.channels = channels
        self.edge_dim = edge_dim
        self.max_distance = max_distance
        self.mlp_layers = mlp_layers
        if max_distance is not None and distance_embedding is None:
            distance_embedding = nn.Embedding(max_distance + 1, channels)
        self.distance_embedding = distance_embedding if max_distance is not None else None
        dist_dim = self.distance_embedding.embedding_dim if self.distance_embedding else 0
        in_size = channels + (edge_dim or 0) + dist_dim
        if encoder is None:
            encoder = nn.LSTM(in_size, channels, batch_first=True)
        if encoder.input_size != in_size or encoder.hidden_size != channels:
            raise ValueError(f"encoder must map {in_size} -> {channels} features, got "
                             f"{encoder.input_size} -> {encoder.hidden_size}")
        self.encoder = encoder
        # Under torch.compile, dynamo stops at any reference to an nn.LSTM module, so the
        # unrolled encoder reads its parameters from this plain list (the same Parameter
        # objects, like nn.LSTM's own _flat_weights; refreshed by _apply and in eager calls).
        # None: not unrollable (e.g. bidirectional), and compiling breaks the graph there.
        self._unroll: LSTMWeights | None = lstm_weights(encoder) if _unrollable(encoder) else None
        self._unroll_dropout = float(encoder.dropout)
        self.norm = _resolve_norm(norm, channels, norm_kwargs)
        layers: list[nn.Module] = []
        for _ in range(mlp_layers):
            layers += [nn.Linear(channels, channels), nn.BatchNorm1d(channels), nn.ReLU()]
        self.mlp = nn.Sequential(*layers) if layers else nn.ReLU()
        self.reset_parameters()

    def _refresh_unroll(self) -> None:
        current = lstm_weights(self.encoder) if _unrollable(self.encoder) else None
        if current is None or self._unroll is None or any(
                a is not b for old, new in zip(self._unroll, current) for a, b in zip(old, new)):
            self._unroll = current
            self._unroll_dropout = float(self.encoder.dropout)

    def _apply(self, fn, recurse=True):  # .to(), .double(), .cuda(): keep the list in step
        out = super()._apply(fn, recurse)
        self._refresh_unroll()
        return out

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        if self.distance_embedding is not None:
            self.distance_embedding.reset_parameters()
        for module in [self.norm, *self.mlp.modules()]:
            if hasattr(module, "reset_parameters") and module is not self.mlp:
                module.reset_parameters()

    def encode(self, x: Tensor, path_index: Tensor, edge_attr: Tensor | None = None,
               path_edge: Tensor | None = None, path_dist: Tensor | None = None) -> Tensor:
        """The encoder's final state for every path, ``[P, channels]``."""
        parts = [x[path_index]]  # [P, L + 1, F], read u_0 -> v
        if self.edge_dim is not None:
            if edge_attr is None or path_edge is None:
                raise ValueError("PathConv(edge_dim=...) needs edge_attr and path_edge")
            ea = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
            e = ea[path_edge].to(x.dtype)  # [P, L, D]: edge u_{i-1} -> u_i enters position i
            parts.append(torch.cat([e.new_zeros(e.size(0), 1, e.size(2)), e], dim=1))
        if self.distance_embedding is not None:
            if path_dist is None:
                raise ValueError("PathConv(max_distance=...) needs path_dist (AddPaths with "
                                 "distance_encoding=True)")
            dist = path_dist.clamp(max=self.max_distance)
            parts.append(self.distance_embedding(dist).to(x.dtype))
        seq = torch.cat(parts, dim=-1)
        return self._final_state(seq)

    def _final_state(self, seq: Tensor) -> Tensor:
        """The encoder's last-layer final hidden state ``[P, H]``, compile- and autocast-safe.

        Under ``torch.compile`` the recurrence is unrolled (:func:`lstm_unrolled`; dynamo stops
        at any reference to an ``nn.LSTM`` module, so its parameters come from a list). Under
        CPU autocast the fused LSTM runs in its parameters' dtype with autocast off: oneDNN has
        no bf16 LSTM for these shapes, and a recurrence accumulates rounding error step after
        step. Eager float32 uses the fused kernel.
        """
        if torch.compiler.is_compiling() and self._unroll is not None:
            return lstm_unrolled(self._unroll, seq, self._unroll_dropout, self.training)
        if self._unroll is not None:  # eager: keep the references current (cheap identity test)
            self._refresh_unroll()
        if seq.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                _, (h, _) = self.encoder(seq.to(self.encoder.weight_ih_l0.dtype))
            return h[-1]
        _, (h, _) = self.encoder(seq)
        return h[-1]

    def forward(self, x: Tensor, path_index: Tensor, edge_attr: Tensor | None = None,
                path_edge: Tensor | None = None, path_dist: Tensor | None = None) -> Tensor:
        check_node_features(x, channels=self.channels)
        check_input_dtype(x, self._unroll[0][0] if self._unroll is not None
                          else self.encoder.weight_ih_l0, "x")
        check_path_tensors(path_index, x.size(0), path_edge,
                           edge_attr.size(0) if edge_attr is not None else None, path_dist)
        if edge_attr is not None:
            check_edge_features(edge_attr, edge_attr.size(0), channels=self.edge_dim)
        h = self.encode(x, path_index, edge_attr, path_edge, path_dist)
        agg = torch.zeros_like(x).index_add_(0, path_index[:, -1], h.to(x.dtype))
        return self.mlp(self.norm(x + agg))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, edge_dim={self.edge_dim}, "
                f"max_distance={self.max_distance})")
