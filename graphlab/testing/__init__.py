"""Reusable property checks for graph layers (see :mod:`graphlab.testing.conformance`)."""

from graphlab.testing.conformance import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    POS_MUTATIONS,
    TARGET_MUTATIONS,
    LayerCase,
    check_layer,
    conformance_params,
    graph_builder_case,
)
from graphlab.testing.graphs import permute_graph, random_graph
from graphlab.testing.reference_egnn import ReferenceEGCL, copy_egnn_weights

__all__ = [
    "CHECKS",
    "EDGE_INDEX_MUTATIONS",
    "FEATURE_MUTATIONS",
    "INDEX_MUTATIONS",
    "POS_MUTATIONS",
    "TARGET_MUTATIONS",
    "LayerCase",
    "ReferenceEGCL",
    "check_layer",
    "conformance_params",
    "graph_builder_case",
    "copy_egnn_weights",
    "permute_graph",
    "random_graph",
]
