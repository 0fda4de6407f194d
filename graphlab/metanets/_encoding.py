"""Shared pieces of the metanetworks: input encoders, validation, MLPs and readouts.

Every node feature used here is invariant under the network's neuron permutations (node and
activation type, layer depth, the index of *input/output* neurons only, and parameter values), so
any message-passing network built on them is invariant by construction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from graphlab.metanets.spec import ACT_TYPES, EDGE_TYPES, NODE_TYPES
from graphlab.utils.validation import (
    check_batch_vector,
    check_edge_features,
    check_edge_index,
    check_node_features,
    value_checks_enabled,
)

NODE_ATTRS = ("x", "node_type", "layer", "io_id", "node_act")
EDGE_ATTRS = ("edge_attr", "edge_type", "edge_layer", "edge_pos")


def mlp(in_channels: int, hidden: int, out_channels: int, act: nn.Module | None = None
        ) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_channels, hidden), act if act is not None else nn.SiLU(),
                         nn.Linear(hidden, out_channels))


class GatherMLP(nn.Module):
    """``mlp(cat([h[idx_1], ..., h[idx_k], e]))`` computed as ``sum_k (W_k h)[idx_k] + W_e e``.

    The node projections run once per node instead of once per edge, and no ``[E, (k+1) h]``
    concatenation is materialised; the function is the same two-layer MLP.
    """

    def __init__(self, num_gathered: int, hidden: int, edge_in: int, out_channels: int,
                 act: nn.Module | None = None) -> None:
        super().__init__()
        self.act = act if act is not None else nn.SiLU()
        self.node_lins = nn.ModuleList([nn.Linear(hidden, hidden, bias=False)
                                        for _ in range(num_gathered)])
        self.edge_lin = nn.Linear(edge_in, hidden)
        self.out = nn.Linear(hidden, out_channels)

    def forward(self, h: Tensor, indices: list[Tensor], e: Tensor) -> Tensor:
        z = self.edge_lin(e)
        for lin, idx in zip(self.node_lins, indices):
            z = z + lin(h)[idx]
        return self.out(self.act(z))


def check_contract(in_channels: int, hidden_channels: int, out_channels: int, num_layers: int,
                   dropout: float) -> None:
    """The argument checks every metanet constructor runs (one clear ``ValueError`` each)."""
    if in_channels < 0 or hidden_channels < 1 or out_channels < 1:
        raise ValueError(f"need in_channels >= 0, hidden_channels >= 1 and out_channels >= 1, "
                         f"got {in_channels}, {hidden_channels}, {out_channels}")
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")


def row_norm_kwargs(norm: object, norm_kwargs: dict | None) -> dict:
    """PyG's ``LayerNorm`` normalises over a whole graph by default; metanets normalise each node
    / edge row (as ``torch.nn.LayerNorm``) unless ``norm_kwargs`` says otherwise."""
    kwargs = dict(norm_kwargs or {})
    if isinstance(norm, str) and norm.replace("_", "").lower() in ("layernorm", "layer"):
        kwargs.setdefault("mode", "node")
    return kwargs


def reset(module: nn.Module) -> None:
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()


def _check_ints(t: Tensor | None, name: str, low: int, high: int | None, n: int) -> None:
    if t is None:
        raise ValueError(f"graph is missing {name!r}; build it with graphlab.metanets.to_graph")
    if t.dtype != torch.long or t.shape != (n,):
        raise ValueError(f"{name} must be a LongTensor of shape [{n}], got {t.dtype} "
                         f"{list(t.shape)}")
    # value checks sync with the host: skipped under torch.compile / on accelerators unless
    # graphlab's debug mode is on (graphlab.utils.validation's policy)
    if n and value_checks_enabled(t) and (int(t.min()) < low
                                          or (high is not None and int(t.max()) >= high)):
        raise ValueError(f"{name} values must lie in [{low}, {high}), got "
                         f"[{int(t.min())}, {int(t.max())}]")


def validate(batch: Data, x_dim: int, edge_dim: int, use_pos: bool) -> tuple[int, Tensor, int]:
    """Check a (batched) metanet input; returns ``(num_nodes, batch_vector, num_graphs)``."""
    if getattr(batch, "node_type", None) is None:
        raise ValueError("graph is missing 'node_type'; build it with graphlab.metanets.to_graph")
    # the node count from a tensor, not Data.num_nodes (a property torch.compile cannot trace)
    n = batch.node_type.size(0)
    check_edge_index(batch.edge_index, n)
    e = batch.edge_index.size(1)
    check_edge_features(batch.edge_attr, e, channels=edge_dim, name="edge_attr")
    if batch.edge_attr.dim() != 2:
        raise ValueError(f"edge_attr must be [E, {edge_dim}], got shape "
                         f"{list(batch.edge_attr.shape)}")
    if x_dim:
        check_node_features(batch.x, "x", channels=x_dim, num_nodes=n)
    _check_ints(batch.node_type, "node_type", 0, len(NODE_TYPES), n)
    _check_ints(batch.node_act, "node_act", 0, len(ACT_TYPES), n)
    _check_ints(batch.layer, "layer", 0, None, n)
    _check_ints(batch.io_id, "io_id", -1, None, n)
    _check_ints(batch.edge_type, "edge_type", 0, len(EDGE_TYPES), e)
    if use_pos:
        _check_ints(batch.edge_pos, "edge_pos", -1, None, e)
    vec = getattr(batch, "batch", None)
    if vec is None:
        vec = torch.zeros(n, dtype=torch.long, device=batch.edge_index.device)
    check_batch_vector(vec, n)
    num_graphs = int(getattr(batch, "num_graphs", 1) or 1)
    return n, vec, num_graphs


class NodeEncoder(nn.Module):
    """Embeds node type, activation, layer depth, input/output index and float node features."""

    def __init__(self, hidden: int, x_dim: int, max_layers: int = 64, io_freqs: int = 8) -> None:
        super().__init__()
        self.max_layers, self.io_freqs = max_layers, io_freqs
        self.type_emb = nn.Embedding(len(NODE_TYPES), hidden)
        self.act_emb = nn.Embedding(len(ACT_TYPES), hidden)
        self.layer_emb = nn.Embedding(max_layers, hidden)
        self.io_lin = nn.Linear(2 * io_freqs + 1, hidden)
        self.x_lin = nn.Linear(x_dim, hidden) if x_dim else None
        self.register_buffer("freqs", torch.exp(-math.log(1000.0) *
                                                torch.arange(io_freqs) / io_freqs))

    def forward(self, batch: Data, dtype: torch.dtype) -> Tensor:
        io = batch.io_id.to(dtype)
        is_io = (batch.io_id >= 0).to(dtype).unsqueeze(-1)
        ang = (io + 1).unsqueeze(-1) * self.freqs.to(dtype)
        io_feat = torch.cat([torch.sin(ang) * is_io, torch.cos(ang) * is_io, is_io], dim=-1)
        h = (self.type_emb(batch.node_type) + self.act_emb(batch.node_act)
             + self.layer_emb(batch.layer.clamp(max=self.max_layers - 1)) + self.io_lin(io_feat))
        if self.x_lin is not None:
            h = h + self.x_lin(batch.x)
        return h


class EdgeEncoder(nn.Module):
    """Embeds edge values (weights / kernels), edge type and, optionally, kernel position."""

    def __init__(self, hidden: int, edge_dim: int, use_pos: bool, max_pos: int = 64,
                 num_freqs: int = 6) -> None:
        super().__init__()
        self.max_pos = max_pos
        self.lin = nn.Linear(edge_dim, hidden)
        # sinusoidal features of every weight (as in GMN): small weight differences become
        # visible to the network instead of vanishing next to the type embeddings
        self.register_buffer("freqs", 2.0 ** torch.arange(num_freqs))
        self.fourier = nn.Linear(2 * num_freqs * edge_dim, hidden)
        self.type_emb = nn.Embedding(len(EDGE_TYPES), hidden)
        self.pos_emb = nn.Embedding(max_pos, hidden) if use_pos else None

    def forward(self, batch: Data) -> Tensor:
        a = batch.edge_attr
        ang = (a.unsqueeze(-1) * self.freqs.to(a.dtype)).flatten(1)
        e = self.lin(a) + self.fourier(torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)) + \
            self.type_emb(batch.edge_type)
        if self.pos_emb is not None:
            e = e + self.pos_emb((batch.edge_pos + 1).clamp(max=self.max_pos - 1))
        return e


def graph_pool(h: Tensor, index: Tensor, num_graphs: int) -> Tensor:
    """Mean and max over each graph's rows (zeros for empty graphs)."""
    return torch.cat([scatter(h, index, 0, dim_size=num_graphs, reduce="mean"),
                      scatter(h, index, 0, dim_size=num_graphs, reduce="max")], dim=-1)
