"""Probabilistic graph rewiring (PR-MPNN): exact k-subset marginals, samplers, candidates."""

from graphlab.rewiring.candidates import EdgeCandidates, edge_candidates
from graphlab.rewiring.k_subset import k_subset_marginals
from graphlab.rewiring.rewirer import ProbabilisticRewirer, RewiredGraph
from graphlab.rewiring.sampler import KSubsetSampler
from graphlab.rewiring.scorer import EdgeScorer

__all__ = [
    "EdgeCandidates",
    "EdgeScorer",
    "KSubsetSampler",
    "ProbabilisticRewirer",
    "RewiredGraph",
    "edge_candidates",
    "k_subset_marginals",
]
