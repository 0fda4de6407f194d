"""PR-MPNN: an upstream scorer rewires each graph, a downstream weighted GINE reads it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.models import MLP
from torch_geometric.typing import OptTensor

from graphlab.conv.weighted_gine_conv import WeightedGINEConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models._common import (
    Act,
    Norm,
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
from graphlab.rewiring.candidates import EdgeCandidates
from graphlab.rewiring.rewirer import ProbabilisticRewirer
from graphlab.rewiring.scorer import EdgeScorer
from graphlab.utils.validation import check_edge_features

__all__ = ["PRMPNN"]


class PRMPNN(nn.Module):
    r"""Probabilistically Rewired MPNN from `"Probabilistically Rewired Message-Passing Neural
    Networks" <https://arxiv.org/abs/2310.02156>`_ (Qian et al., ICLR 2024).

    Node (and edge) features are embedded; an :class:`~graphlab.rewiring.EdgeScorer` scores
    candidate non-edges and existing edges; a :class:`~graphlab.rewiring.ProbabilisticRewirer`
    samples :math:`k_{+}` additions and :math:`k_{-}` deletions per graph and sample; a
    :class:`~graphlab.conv.WeightedGINEConv` stack runs on all rewired copies at once, and the
    copies are combined by averaging:

    .. math::
        \hat{y}_G = \mathrm{MLP}_{\mathrm{inter}}\Big(\frac{1}{PS}\sum_{p=1}^{P}
        \sum_{s=1}^{S} \mathrm{MLP}_{\mathrm{intra}}\big(\mathrm{READOUT}
        (\mathrm{MPNN}(X, \tilde{A}^{(p,s)}))\big)\Big),\qquad
        \tilde{A}^{(p,s)} \sim p_{\theta_p}(\cdot \mid A),

    or, with ``average="logits"``, :math:`\hat{y}_G = \frac{1}{PS}\sum_{p,s}
    \mathrm{MLP}_{\mathrm{inter}}(\mathrm{MLP}_{\mathrm{intra}}(\dots))`: every copy predicts
    and the logits are averaged, the ensemble prediction of the authors' trainer
    (``pred.reshape(-1, num_graphs, C).mean`` over the copies in ``Trainer.inference``, the
    ``val_metric_ensemble`` their TU configs select on). :math:`P` is ``num_priors`` (the
    authors' ``ensemble``: the upstream emits :math:`P` logits per pair, each prior is
    sampled :math:`S` times), :math:`\mathrm{MLP}_{\mathrm{intra}}` has ``intra_layers``
    layers (``0``: identity) and :math:`\mathrm{MLP}_{\mathrm{inter}}` ``inter_layers``
    layers (the authors' ``mlp_layers_intragraph`` / ``mlp_layers_intergraph``). All
    :math:`P S` copies of every graph run as one disjoint batch, in one downstream pass.
    The authors' training loss averages the per-copy losses; here the loss sees the averaged
    prediction (one output per graph, as every graphlab model).

    Added edges carry a learned "new edge" embedding instead of edge features.

    Args:
        in_channels (int): node feature width (ignored with ``molecular=True``).
        hidden_channels (int): width of the embeddings and layers.
        out_channels (int): prediction width.
        num_layers (int): downstream layers. (default: ``4``)
        dropout (float): dropout of the downstream layers. (default: ``0.0``)
        act (str or Callable): activation of the downstream layers and their GINE MLPs (PyG's
            ``activation_resolver``). (default: ``"relu"``)
        norm (str or Callable, optional): node-wise normalization inside the downstream GINE
            MLPs (PyG's ``normalization_resolver``; :obj:`None` to disable: on near-regular
            graphs such as CSL, batch statistics differ between training and evaluation by more
            than the small class signal). (default: ``"batch_norm"``)
        edge_dim (int, optional): edge feature width (non-molecular data); without
            ``edge_attr`` original edges get a learned embedding.
        readout (str or Aggregation, optional): graph readout (PyG's ``aggregation_resolver``:
            ``"mean"``, ``"sum"``, ``"max"``, an ``Aggregation``), ``"root"`` (the node flagged by
            ``root_mask``) or :obj:`None` (node-level outputs). (default: ``"mean"``)
        k_add (int): pairs added per graph. k_delete (int): pairs deleted per graph.
        num_samples (int): rewired copies per graph in training.
        num_eval_samples (int): rewired copies per graph in evaluation (``1``: deterministic
            top-:math:`k`; more: sampled rewirings whose readouts are averaged, the paper's
            evaluation).
        upstream_layers (int): GINE layers of the scorer.
        num_candidates (int, optional): candidate pairs per graph (when ``cand_index`` is
            absent they are computed on the fly by :func:`~graphlab.rewiring.edge_candidates`).
        heuristic (str): candidate heuristic, ``"all"``, ``"distance"``,
            ``"reachable_distance"`` or ``"component_distance"`` (see
            :func:`~graphlab.rewiring.edge_candidates`).
        estimator (str): ``"simple"``, ``"imle"`` or ``"gumbel_softmax"``.
        rewire (bool): ``False`` gives the same downstream MPNN on the original graph.
        upstream_candidates (bool): the scorer also passes messages along the candidate pairs
            (see :class:`~graphlab.rewiring.EdgeScorer`), so its scores can go beyond 1-WL.
        readout_norm (bool): batch-normalise the graph embedding before the head (sum readouts
            of near-regular graphs reach large, nearly equal norms that stall training).
        molecular (bool): embed OGB atom/bond categories.
        num_priors (int): independent priors of the upstream (each is sampled ``num_samples`` /
            ``num_eval_samples`` times). (default: ``1``)
        intra_layers (int): layers of the per-copy MLP after the readout (``0``: none; its last
            layer is linear). (default: ``0``)
        inter_layers (int): layers of the MLP that maps the combined copies to the output.
            (default: ``2``)
        average (str): where the copies are averaged: ``"readout"`` (before
            :math:`\mathrm{MLP}_{\mathrm{inter}}`) or ``"logits"`` (after it). (default:
            ``"readout"``)
        last_bias (bool): bias of the last layer of the intra- and inter-graph MLPs (the
            authors' TU code has none). (default: ``True``)
        add_weight (str): message weight of a sampled added edge, ``"sample"`` (1) or
            ``"marginal"`` (its marginal probability, the authors' ``weight_edges: marginals``;
            see :class:`~graphlab.rewiring.ProbabilisticRewirer`). (default: ``"sample"``)
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge features :math:`(|\mathcal{E}|, D)` *(optional)*,
          batch vector :math:`(|\mathcal{V}|)` *(optional)*, candidate pairs ``cand_index``
          :math:`(2, C)` from :class:`~graphlab.rewiring.EdgeCandidates` *(optional)*,
          ``root_mask`` :math:`(|\mathcal{V}|)` bool *(for ``readout="root"``)*
        - **output:** :math:`(B, F_{out})` (or :math:`(|\mathcal{V}|, F_{out})` without readout)
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 4, *, dropout: float = 0.0, act: Act = "relu",
                 norm: Norm = "batch_norm", edge_dim: int | None = None,
                 readout: Readout = "mean", k_add: int = 10, k_delete: int = 0,
                 num_samples: int = 2, num_eval_samples: int = 1, upstream_layers: int = 2,
                 num_candidates: int | None = 100, heuristic: str = "distance",
                 estimator: str = "simple", rewire: bool = True,
                 upstream_candidates: bool = False, readout_norm: bool = False,
                 molecular: bool = False, num_priors: int = 1, intra_layers: int = 0,
                 inter_layers: int = 2, average: str = "readout", last_bias: bool = True,
                 add_weight: str = "sample",
                 act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if num_priors < 1 or intra_layers < 0 or inter_layers < 1:
            raise ValueError(f"need num_priors >= 1, intra_layers >= 0 and inter_layers >= 1, "
                             f"got {num_priors}, {intra_layers}, {inter_layers}")
        if average not in ("readout", "logits"):
            raise ValueError(f"average must be 'readout' or 'logits', got {average!r}")
        self.num_priors = num_priors
        self.average = average
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.root_readout = readout == "root"
        self.readout = None if self.root_readout else resolve_readout(readout)
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
                                edge_dim=None, candidate_messages=upstream_candidates,
                                num_priors=num_priors)
            self.rewirer = ProbabilisticRewirer(scorer, k_add, k_delete, num_samples, estimator,
                                                num_candidates=num_candidates,
                                                heuristic=heuristic,
                                                num_eval_samples=num_eval_samples,
                                                num_priors=num_priors, add_weight=add_weight)
        self.convs = nn.ModuleList(
            WeightedGINEConv(MLP([hidden_channels, 2 * hidden_channels, hidden_channels],
                                 act=act, act_kwargs=act_kwargs, norm=norm,
                                 norm_kwargs=norm_kwargs), train_eps=True)
            for _ in range(num_layers))
        self.act = resolve_act(act, act_kwargs)
        self.readout_norm = nn.BatchNorm1d(hidden_channels) if readout_norm else None
        # the authors' MLPs: linear layers with the activation between them, no normalisation
        self.intra = MLP([hidden_channels] * (intra_layers + 1), act=act, act_kwargs=act_kwargs,
                         norm=None, bias=[True] * (intra_layers - 1) + [last_bias]) \
            if intra_layers else None
        self.head = MLP([hidden_channels] * inter_layers + [out_channels], act=act,
                        act_kwargs=act_kwargs, norm=None,
                        bias=[True] * (inter_layers - 1) + [last_bias])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: OptTensor = None,
                batch: OptTensor = None, *, cand_index: OptTensor = None,
                root_mask: OptTensor = None, num_graphs: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """``num_graphs`` (default ``batch.max() + 1``) counts trailing empty graphs;
        ``generator`` seeds the rewiring samples."""
        check_model_inputs(x, edge_index, batch, self.in_channels, self.molecular)
        num_nodes = x.size(0)
        num_graphs = num_graphs_of(batch, num_graphs)
        batch = batch_or_zeros(batch, x)
        if self.root_readout:
            if root_mask is None:
                raise ValueError("PRMPNN(readout='root') needs root_mask (one flagged node per "
                                 "graph)")
            if root_mask.dtype != torch.bool or root_mask.shape != (num_nodes,):
                raise ValueError(f"root_mask must be a bool tensor of shape [{num_nodes}], got "
                                 f"{root_mask.dtype} {list(root_mask.shape)}")
        h0 = self.node_encoder(x)
        if self.edge_encoder is not None and edge_attr is not None:
            if not self.molecular:
                edge_attr = edge_attr.unsqueeze(-1) if edge_attr.dim() == 1 else edge_attr
                check_edge_features(edge_attr, edge_index.size(1), channels=self.edge_dim)
                edge_attr = edge_attr.to(h0.dtype)
            e0 = self.edge_encoder(edge_attr)
        else:
            e0 = self.edge_type.weight[0].expand(edge_index.size(1), -1)

        if self.rewirer is None:
            h, ei, ew, e, b, S = h0, edge_index, None, e0, batch, 1
        else:
            rew = self.rewirer(h0, edge_index, batch, e0, cand_index, num_graphs, generator)
            h, ei, ew, b, S = h0[rew.node_index], rew.edge_index, rew.edge_weight, rew.batch, \
                rew.num_samples
            # row E of the table is the learned embedding of an added edge
            table = torch.cat([e0, self.edge_type.weight[1:2]], dim=0)
            origin = rew.edge_origin
            e = table[torch.where(origin < 0, torch.full_like(origin, e0.size(0)), origin)]
        for conv in self.convs:
            h = self.act(conv(h, ei, e, ew))
            h = nn.functional.dropout(h, self.dropout, self.training)

        if self.root_readout:
            out = h[root_mask.repeat(S)]
        elif self.readout is None:
            out = h
        else:
            out = self.readout(h, b, dim_size=S * num_graphs)
        if self.intra is not None:
            out = self.intra(out)                       # per copy
        out = out.view(S, -1, out.size(-1))             # [copies, graphs (or nodes), C]
        if self.average == "logits":
            return self.head(self._norm(out.flatten(0, 1))).view(S, -1, self.out_channels) \
                .mean(0)
        return self.head(self._norm(out.mean(0)))

    def _norm(self, out: Tensor) -> Tensor:
        return out if self.readout_norm is None else self.readout_norm(out)

    def forward_data(self, data: Data, generator: torch.Generator | None = None) -> Tensor:
        """``forward`` on a (batched) ``Data`` (``x``, ``edge_index``, ``edge_attr``, ``batch``,
        ``cand_index``, ``root_mask`` when present)."""
        return self(data.x, data.edge_index, getattr(data, "edge_attr", None),
                    getattr(data, "batch", None), cand_index=getattr(data, "cand_index", None),
                    root_mask=getattr(data, "root_mask", None),
                    num_graphs=data_num_graphs(data), generator=generator)

    def __repr__(self) -> str:
        rw = "none" if self.rewirer is None else repr(self.rewirer)
        readout = "root" if self.root_readout else readout_name(self.readout)
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, readout={readout}, "
                f"num_priors={self.num_priors}, average={self.average!r}, rewirer={rw})")


@register_model("prmpnn")
def _prmpnn(spec: TaskSpec, **kw) -> nn.Module:
    hidden = kw.pop("hidden_channels", 64)
    kw.setdefault("readout", None if spec.level == "node" else "mean")
    return PRMPNN(spec.in_channels, hidden, spec.out_channels, edge_dim=spec.edge_dim,
                  molecular=spec.molecular, **kw)
