"""Probabilistic rewiring of a whole batch: sample edges to add and delete, emit one big graph."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from graphlab.rewiring.candidates import HEURISTICS, edge_candidates
from graphlab.rewiring.k_subset import k_subset_marginals
from graphlab.rewiring.sampler import KSubsetSampler
from graphlab.utils.validation import (
    check_batch_vector,
    check_edge_index,
    check_node_features,
)

__all__ = ["ProbabilisticRewirer", "RewiredGraph"]


class RewiredGraph(NamedTuple):
    """The rewired batch: ``num_samples`` copies of every graph, as one disjoint union.

    Copy ``s`` of graph ``g`` is graph ``s * G + g``; its node ``i`` is ``s * N + i``. With
    several priors, copy ``s = p * S + j`` is sample ``j`` of prior ``p`` (``num_samples`` is
    then priors times samples per prior).
    """

    edge_index: Tensor      #: ``[2, E']`` over ``num_samples * N`` nodes
    edge_weight: Tensor     #: ``[E']``: 0/1 forward values, straight-through gradients
    node_index: Tensor      #: ``[S * N]``: the original node of each node (``x[node_index]``)
    batch: Tensor           #: ``[S * N]``: graph id ``s * G + g``
    edge_origin: Tensor     #: ``[E']``: id of the original edge, or ``-1`` for an added edge
    num_graphs: int         #: ``S * G``
    num_samples: int        #: ``S`` (all priors' samples)


def _dense_rows(group: Tensor, num_groups: int) -> tuple[Tensor, Tensor, int]:
    """Row/column of each item in a padded ``[num_groups, max_count]`` layout (items of a group
    keep their order)."""
    order = torch.argsort(group, stable=True)
    # a fixed-size scatter, not bincount, whose output shape depends on the data (graph break)
    counts = group.new_zeros(num_groups).scatter_add_(0, group, torch.ones_like(group))
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    col = torch.empty_like(group)
    col[order] = torch.arange(group.numel(), device=group.device) - ptr[group[order]]
    width = int(counts.max()) if counts.numel() else 0
    return group, col, width


class ProbabilisticRewirer(nn.Module):
    r"""Adds and deletes edges by sampling from exactly-:math:`k` distributions, following
    `"Probabilistically Rewired Message-Passing Neural Networks"
    <https://arxiv.org/abs/2310.02156>`_.

    For every graph, an upstream ``scorer`` gives logits :math:`\theta^{+}` for candidate
    non-edges and :math:`\theta^{-}` for existing (undirected) pairs. Per graph and sample,

    .. math::
        A^{+} \sim p_{\theta^{+}}(\cdot \mid |A^{+}| = k_{+}), \qquad
        A^{-} \sim p_{\theta^{-}}(\cdot \mid |A^{-}| = k_{-}),

    With ``num_priors`` :math:`P > 1` the scorer returns :math:`P` logits per pair (the
    authors' ``ensemble``), each prior is sampled independently, and the batch holds
    :math:`P \cdot S` rewired copies per graph, prior-major.

    The rewired graph has edge weights :math:`1 - A^{-}_{uv}` on existing and
    :math:`A^{+}_{uv}` on added pairs (both directions); with ``add_weight="marginal"`` an
    added pair weighs :math:`\mu^{+}_{uv} A^{+}_{uv}`, its exact marginal
    :math:`p_{\theta^{+}}(uv \in A^{+})` where sampled (the authors' ``weight_edges:
    marginals`` with ``marginals_mask``; gradients flow through both factors). Samples and gradients come from
    :class:`KSubsetSampler`. All graphs and samples are laid out by index arithmetic in one
    disjoint union, never by (un)collating ``Data`` objects. Variable candidate counts per graph
    are handled by masks. In training every candidate and existing edge is kept (weights 0 or 1,
    so gradients reach all logits); in ``eval()`` mode zero-weight edges are dropped, and the
    rewiring is the deterministic top-:math:`k` (``num_eval_samples=1``) or ``num_eval_samples``
    sampled copies per graph, as in the paper's evaluation.

    Args:
        scorer (torch.nn.Module): ``scorer(x, edge_index, edge_attr, add_pairs, delete_pairs)``
            returning add logits ``[C]`` and delete logits ``[P]`` (e.g.
            :class:`~graphlab.rewiring.EdgeScorer`).
        k_add (int): pairs added per graph (clipped to the number of candidates whose logit is
            not :math:`-\infty`; a :math:`+\infty` logit forces a pair in).
        k_delete (int): existing pairs deleted per graph (``0``: no deletion; clipped like
            ``k_add``).
        num_samples (int): rewired copies per graph in training.
        num_eval_samples (int): rewired copies per graph in evaluation (``1``: deterministic
            top-:math:`k`; more: Gumbel-top-:math:`k` samples).
        estimator (str): gradient estimator of :class:`KSubsetSampler`.
        tau (float): noise scale / temperature of :class:`KSubsetSampler`.
        num_candidates (int, optional): candidates per graph when ``cand_index`` is not given.
        heuristic (str): candidate heuristic when ``cand_index`` is not given.
        num_priors (int): logits per pair returned by ``scorer`` (``1``: flat ``[C]`` /
            ``[P]`` logits; more: ``[C, num_priors]`` / ``[P, num_priors]``).
        add_weight (str): weight of a sampled added pair, ``"sample"`` (1) or ``"marginal"``
            (its marginal, one more exact-marginal pass over the add logits).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)`, batch :math:`(|\mathcal{V}|)` *(optional; need not be
          sorted)*, edge features
          *(optional)*, candidate pairs :math:`(2, C)` *(optional)*
        - **output:** a :class:`RewiredGraph` over :math:`P S |\mathcal{V}|` nodes
    """

    def __init__(self, scorer: nn.Module, k_add: int, k_delete: int, num_samples: int = 1,
                 estimator: str = "simple", tau: float = 1.0, num_candidates: int | None = None,
                 heuristic: str = "all", num_eval_samples: int = 1,
                 num_priors: int = 1, add_weight: str = "sample") -> None:
        super().__init__()
        if num_priors < 1:
            raise ValueError(f"num_priors must be >= 1, got {num_priors}")
        if add_weight not in ("sample", "marginal"):
            raise ValueError(f"add_weight must be 'sample' or 'marginal', got {add_weight!r}")
        self.add_weight = add_weight
        if k_add < 0 or k_delete < 0:
            raise ValueError(f"k_add and k_delete must be non-negative, got {k_add}, {k_delete}")
        if heuristic not in HEURISTICS:
            raise ValueError(f"heuristic must be one of {HEURISTICS}, got {heuristic!r}")
        self.scorer = scorer
        self.k_add = k_add
        self.k_delete = k_delete
        self.num_samples = num_samples
        self.num_eval_samples = num_eval_samples
        self.num_candidates = num_candidates
        self.heuristic = heuristic
        self.num_priors = num_priors
        self.add_sampler = KSubsetSampler(k_add, estimator, num_samples, tau,
                                          num_eval_samples=num_eval_samples)
        self.delete_sampler = KSubsetSampler(k_delete, estimator, num_samples, tau,
                                             num_eval_samples=num_eval_samples)

    def reset_parameters(self) -> None:
        if hasattr(self.scorer, "reset_parameters"):
            self.scorer.reset_parameters()

    def _sample(self, sampler: KSubsetSampler, logits: Tensor, group: Tensor, num_graphs: int,
                generator: torch.Generator | None, marginal: bool = False) -> Tensor:
        """Per-graph exactly-k samples of ``logits`` (``[len]``, or ``[len, P]`` for ``P``
        priors) grouped by ``group``: ``[P * S, len]``, prior-major; ``marginal`` multiplies
        each sample by the exact marginals."""
        row, col, width = _dense_rows(group, num_graphs)
        mask = torch.zeros(num_graphs, width, dtype=torch.bool, device=logits.device)
        mask[row, col] = True
        if logits.dim() == 1:
            dense = logits.new_zeros(num_graphs, width).index_put((row, col), logits)
        else:  # every prior is one more leading row of the sampler: [P, G, W]
            dense = logits.new_zeros(num_graphs, width, logits.size(1))
            dense = dense.index_put((row, col), logits).permute(2, 0, 1)
            mask = mask.expand_as(dense)
        # k is clipped per graph to its candidates (a -inf logit removes a candidate)
        present = mask & (dense != float("-inf"))
        k = torch.clamp(present.sum(-1), max=sampler.k)
        samples = sampler(dense, mask, k=k, generator=generator, max_k=sampler.k)
        if marginal:
            samples = samples * k_subset_marginals(dense, k, mask, max_k=sampler.k)
        if logits.dim() == 1:
            return samples[:, row, col]                                  # [S, len]
        samples = samples[:, :, row, col]                                # [S, P, len]
        return samples.transpose(0, 1).reshape(-1, logits.size(0))

    def _check_logits(self, logits: Tensor, count: int, name: str) -> None:
        want = [count] if self.num_priors == 1 else [count, self.num_priors]
        if list(logits.shape) != want:
            raise ValueError(f"the scorer's {name} logits must have shape {want} "
                             f"(num_priors={self.num_priors}), got {list(logits.shape)}")

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None,
                edge_attr: Tensor | None = None, cand_index: Tensor | None = None,
                num_graphs: int | None = None,
                generator: torch.Generator | None = None) -> RewiredGraph:
        check_node_features(x)
        num_nodes = x.size(0)
        check_edge_index(edge_index, num_nodes)
        device = x.device
        if batch is None:
            batch = torch.zeros(num_nodes, dtype=torch.long, device=device)
        check_batch_vector(batch, num_nodes)
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if num_nodes else 0
        if cand_index is None:
            cand_index = edge_candidates(edge_index, num_nodes, batch, self.num_candidates,
                                         self.heuristic)
        else:
            check_edge_index(cand_index, num_nodes, name="cand_index")

        # existing edges as unordered pairs: deleting a pair removes both directions
        lo = torch.minimum(edge_index[0], edge_index[1])
        hi = torch.maximum(edge_index[0], edge_index[1])
        pair_key, pair_of_edge = torch.unique(lo * max(num_nodes, 1) + hi, return_inverse=True)
        delete_pairs = torch.stack([pair_key // max(num_nodes, 1), pair_key % max(num_nodes, 1)])

        add_logits, delete_logits = self.scorer(x, edge_index, edge_attr, cand_index,
                                                delete_pairs)
        num_edges, num_cand = edge_index.size(1), cand_index.size(1)
        self._check_logits(add_logits, num_cand, "add")
        self._check_logits(delete_logits, delete_pairs.size(1), "delete")
        S = self.num_priors * (self.num_samples if self.training else self.num_eval_samples)

        if self.k_add > 0 and num_cand > 0:
            add = self._sample(self.add_sampler, add_logits, batch[cand_index[0]], num_graphs,
                               generator, marginal=self.add_weight == "marginal")
        else:
            add = add_logits.new_zeros(S, num_cand) + 0 * add_logits.sum()
        if self.k_delete > 0 and delete_pairs.size(1) > 0:
            dele = self._sample(self.delete_sampler, delete_logits, batch[delete_pairs[0]],
                                num_graphs, generator)
        else:
            dele = delete_logits.new_zeros(S, delete_pairs.size(1)) + 0 * delete_logits.sum()
        keep = 1.0 - dele[:, pair_of_edge]                          # [S, E]

        offsets = torch.arange(S, device=device) * num_nodes          # [S]
        both = torch.cat([cand_index, cand_index.flip(0)], dim=1)    # [2, 2C]
        ei = torch.cat([edge_index.unsqueeze(0).expand(S, 2, num_edges),
                        both.unsqueeze(0).expand(S, 2, 2 * num_cand)], dim=2)
        ei = ei + offsets.view(S, 1, 1)
        weight = torch.cat([keep, add.repeat(1, 2)], dim=1)           # [S, E + 2C]
        origin = torch.cat([torch.arange(num_edges, device=device),
                            torch.full((2 * num_cand,), -1, dtype=torch.long, device=device)])
        origin = origin.unsqueeze(0).expand(S, -1)
        ei = ei.permute(1, 0, 2).reshape(2, -1)
        weight, origin = weight.reshape(-1), origin.reshape(-1)
        if not self.training:
            nonzero = weight != 0
            ei, weight, origin = ei[:, nonzero], weight[nonzero], origin[nonzero]

        node_index = torch.arange(num_nodes, device=device).repeat(S)
        new_batch = (batch.unsqueeze(0) + num_graphs * torch.arange(S, device=device)
                     .unsqueeze(1)).reshape(-1)
        return RewiredGraph(ei, weight, node_index, new_batch, origin, S * num_graphs, S)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(k_add={self.k_add}, k_delete={self.k_delete}, "
                f"num_samples={self.num_samples}, num_eval_samples={self.num_eval_samples}, "
                f"num_priors={self.num_priors}, add_weight={self.add_weight!r}, "
                f"estimator={self.add_sampler.estimator!r})")
