"""Weight-space metanetworks: networks as graphs, their symmetries, and encoders over them.

Convert a ``torch.nn.Module`` into a neural, parameter or op graph (:func:`to_graph`), invert it
exactly (:func:`graph_to_state_dict`), evaluate it by message passing (:func:`graph_forward`),
derive its neuron-permutation symmetries (:func:`permutation_spec`, :func:`random_symmetry`) and
embed it with :class:`GMN`, :class:`NeuralGraphEncoder` or the :class:`StatNN` baseline.
"""

from graphlab.metanets.convert import (
    ACT_TYPES,
    EDGE_TYPES,
    NODE_TYPES,
    OP_TYPES,
    X_COLUMNS,
    UnsupportedModuleError,
    graph_forward,
    graph_to_state_dict,
    pad_edge_attr,
    to_graph,
)
from graphlab.metanets.edge_gmn import EdgeGMN
from graphlab.metanets.gmn import GMN
from graphlab.metanets.io import load_state_dict_safe, save_state_dict_safe
from graphlab.metanets.matching import interpolation_barrier, weight_matching
from graphlab.metanets.neural_graph_encoder import NeuralGraphEncoder
from graphlab.metanets.op_graph_encoder import OpGraphEncoder
from graphlab.metanets.statnn import StatNN, weight_statistics
from graphlab.metanets.symmetry import (
    PermGroup,
    PermutationSpec,
    is_automorphism,
    permutation_spec,
    permute_graph_nodes,
    permute_module,
    random_symmetry,
)
from graphlab.metanets.tasks import edge_importance, layer_collapse, predict, predict_edges
from graphlab.metanets.zoo import PRESETS, Zoo, build_zoo, load_zoo
from graphlab.metanets.zoo_graph import zoo_graph

__all__ = [
    "to_graph",
    "graph_to_state_dict",
    "graph_forward",
    "pad_edge_attr",
    "UnsupportedModuleError",
    "NODE_TYPES",
    "EDGE_TYPES",
    "OP_TYPES",
    "ACT_TYPES",
    "X_COLUMNS",
    "permutation_spec",
    "random_symmetry",
    "permute_graph_nodes",
    "permute_module",
    "is_automorphism",
    "PermGroup",
    "PermutationSpec",
    "GMN",
    "EdgeGMN",
    "NeuralGraphEncoder",
    "StatNN",
    "weight_statistics",
    "load_state_dict_safe",
    "save_state_dict_safe",
    "build_zoo",
    "load_zoo",
    "Zoo",
    "PRESETS",
    "predict",
    "edge_importance",
    "predict_edges",
    "layer_collapse",
    "weight_matching",
    "interpolation_barrier",
    "zoo_graph",
    "OpGraphEncoder",
]
