"""PR-MPNN: an upstream scorer rewires each graph, a downstream weighted GINE reads it."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_add_pool, global_mean_pool
from torch_geometric.nn.models import MLP

from graphlab.conv.weighted_gine_conv import WeightedGINEConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models.registry import register_model
from graphlab.rewiring.candidates import EdgeCandidates
from graphlab.rewiring.rewirer import ProbabilisticRewirer
from graphlab.rewiring.scorer import EdgeScorer
from graphlab.utils.validation import check_batch_vector, check_edge_index, check_node_features

__all__ = ["PRMPNN"]

READOUTS = ("mean", "add", "sum", "root", "node")


class PRMPNN(nn.Module):
    r"""Probabilistically Rewired MPNN from `"Probabilistically Rewired Message-Passing Neural
    Networks" <https://arxiv.org/abs/2310.02156>`_ (Qian et al., ICLR 2024).

    Node (and edge) features are embedded; an :class:`~graphlab.rewiring.EdgeScorer` scores
    candidate non-edges and existing edges; a :class:`~graphlab.rewiring.ProbabilisticRewirer`
    samples :math:`k_{+}` additions and :math:`k_{-}` deletions per graph and sample; a
    :class:`~graphlab.conv.WeightedGINEConv` stack runs on all rewired copies at once, and the
    graph readouts are averaged over the :math:`S` samples:

    .. math::
        \hat{y}_G = \mathrm{MLP}\Big(\frac{1}{S}\sum_{s=1}^{S}
        \mathrm{READOUT}\big(\mathrm{MPNN}(X, \tilde{A}^{(s)})\big)\Big),\qquad
        \tilde{A}^{(s)} \sim p_\theta(\cdot \mid A).

    Added edges carry a learned "new edge" embedding instead of edge features.

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): width of the embeddings and layers.
        out_channels (int): prediction width.
        num_layers (int): downstream layers.
        k_add (int): pairs added per graph. k_delete (int): pairs deleted per graph.
        num_samples (int): rewired copies per graph in training.
        num_eval_samples (int): rewired copies per graph in evaluation (``1``: deterministic
            top-:math:`k`; more: sampled rewirings whose readouts are averaged, the paper's
            evaluation).
        upstream_layers (int): GINE layers of the scorer.
        edge_dim (int, optional): edge feature width (non-molecular data).
        num_candidates (int, optional): candidate pairs per graph (when ``data.cand_index`` is
            absent they are computed on the fly by :func:`~graphlab.rewiring.edge_candidates`).
        heuristic (str): candidate heuristic, ``"all"``, ``"distance"``,
            ``"reachable_distance"`` or ``"component_distance"`` (see
            :func:`~graphlab.rewiring.edge_candidates`).
        estimator (str): ``"simple"``, ``"imle"`` or ``"gumbel_softmax"``.
        readout (str): ``"mean"``, ``"add"`` (or ``"sum"``), ``"root"`` (the node flagged by
            ``data.root_mask``) or ``"node"`` (node-level outputs).
        dropout (float): dropout of the downstream layers.
        molecular (bool): embed OGB atom/bond categories.
        rewire (bool): ``False`` gives the same downstream MPNN on the original graph.
        norm (str, optional): normalization inside the downstream GINE MLPs (``None`` to
            disable: on near-regular graphs such as CSL, batch statistics differ between
            training and evaluation by more than the small class signal).
        upstream_candidates (bool): the scorer also passes messages along the candidate pairs
            (see :class:`~graphlab.rewiring.EdgeScorer`), so its scores can go beyond 1-WL.
        readout_norm (bool): batch-normalise the graph embedding before the head (sum readouts
            of near-regular graphs reach large, nearly equal norms that stall training).

    Shapes:
        - **input:** a batched ``Data`` with ``x``, ``edge_index``, optional ``edge_attr``,
          ``batch`` and ``cand_index``
        - **output:** :math:`(B, F_{out})` (or :math:`(|\mathcal{V}|, F_{out})` for ``"node"``)
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 4, k_add: int = 10, k_delete: int = 0, num_samples: int = 2,
                 upstream_layers: int = 2, edge_dim: int | None = None,
                 num_candidates: int | None = 100, heuristic: str = "distance",
                 estimator: str = "simple", readout: str = "mean", dropout: float = 0.0,
                 molecular: bool = False, rewire: bool = True, num_eval_samples: int = 1,
                 norm: str | None = "batch_norm", upstream_candidates: bool = False,
                 readout_norm: bool = False) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.readout = "add" if readout == "sum" else readout
        self.dropout = dropout
        self.molecular = molecular
        self.edge_dim = edge_dim
        if molecular:
            from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder

            self.node_encoder: nn.Module = AtomEncoder(hidden_channels)
            self.edge_encoder: nn.Module | None = BondEncoder(hidden_channels)
        else:
            self.node_encoder = nn.Linear(in_channels, hidden_channels)
            self.edge_encoder = nn.Linear(edge_dim, hidden_channels) if edge_dim else None
        # learned features of original edges (when the data has none) and of added edges
        self.edge_type = nn.Embedding(2, hidden_channels)
        self.rewirer = None
        #: candidate pre-transform, applied once per dataset by ``graphlab train``; without it
        #: candidates are computed per batch on the fly
        self.transform = EdgeCandidates(num_candidates, heuristic) if rewire else None
        if rewire:
            scorer = EdgeScorer(hidden_channels, hidden_channels, upstream_layers,
                                edge_dim=None, candidate_messages=upstream_candidates)
            self.rewirer = ProbabilisticRewirer(scorer, k_add, k_delete, num_samples, estimator,
                                                num_candidates=num_candidates,
                                                heuristic=heuristic,
                                                num_eval_samples=num_eval_samples)
        self.convs = nn.ModuleList(
            WeightedGINEConv(MLP([hidden_channels, 2 * hidden_channels, hidden_channels],
                                 norm=norm), train_eps=True)
            for _ in range(num_layers))
        self.readout_norm = nn.BatchNorm1d(hidden_channels) if readout_norm else None
        self.head = MLP([hidden_channels, hidden_channels, out_channels], norm=None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, data: Data, generator: torch.Generator | None = None) -> Tensor:
        x, edge_index = data.x, data.edge_index
        num_nodes = x.size(0)
        check_edge_index(edge_index, num_nodes)
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(num_nodes, dtype=torch.long, device=x.device)
        check_batch_vector(batch, num_nodes)
        num_graphs = int(getattr(data, "num_graphs", 0) or (int(batch.max()) + 1
                                                             if num_nodes else 1))
        if self.molecular:
            if x.is_floating_point():
                raise ValueError(f"molecular=True expects integer OGB atom features, got {x.dtype}")
        else:
            check_node_features(x, "x", channels=self.in_channels)
        h0 = self.node_encoder(x)
        edge_attr = getattr(data, "edge_attr", None)
        if self.edge_encoder is not None and edge_attr is not None:
            if not self.molecular and edge_attr.dim() == 1:
                edge_attr = edge_attr.unsqueeze(-1)
            e0 = self.edge_encoder(edge_attr if self.molecular else edge_attr.float())
        else:
            e0 = self.edge_type.weight[0].expand(edge_index.size(1), -1)

        if self.rewirer is None:
            h, ei, ew, e, b, S = h0, edge_index, None, e0, batch, 1
        else:
            rew = self.rewirer(h0, edge_index, batch, e0, getattr(data, "cand_index", None),
                               num_graphs, generator)
            h, ei, ew, b, S = h0[rew.node_index], rew.edge_index, rew.edge_weight, rew.batch, \
                rew.num_samples
            # row E of the table is the learned embedding of an added edge
            table = torch.cat([e0, self.edge_type.weight[1:2]], dim=0)
            origin = rew.edge_origin
            e = table[torch.where(origin < 0, torch.full_like(origin, e0.size(0)), origin)]
        for conv in self.convs:
            h = conv(h, ei, e, ew).relu()
            h = nn.functional.dropout(h, self.dropout, self.training)

        if self.readout == "node":
            out = h.view(S, num_nodes, h.size(-1)).mean(0)
        elif self.readout == "root":
            root = data.root_mask.repeat(S)
            out = h[root].view(S, num_graphs, h.size(-1)).mean(0)
        else:
            pool = global_mean_pool if self.readout == "mean" else global_add_pool
            out = pool(h, b, size=S * num_graphs).view(S, num_graphs, h.size(-1)).mean(0)
        if self.readout_norm is not None:
            out = self.readout_norm(out)
        return self.head(out)

    def __repr__(self) -> str:
        rw = "none" if self.rewirer is None else repr(self.rewirer)
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, rewirer={rw})")


@register_model("prmpnn")
def _prmpnn(spec: TaskSpec, **kw) -> nn.Module:
    hidden = kw.pop("hidden_channels", 64)
    kw.setdefault("readout", "node" if spec.level == "node" else "mean")
    return PRMPNN(spec.in_channels, hidden, spec.out_channels, edge_dim=spec.edge_dim,
                  molecular=spec.molecular, **kw)
