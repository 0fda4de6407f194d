"""Weight-space metanetworks: networks as graphs, their symmetries, and encoders over them.

Convert a ``torch.nn.Module`` into a neural, parameter or op graph (:func:`to_graph`), invert it
exactly (:func:`graph_to_state_dict`), evaluate it by message passing (:func:`graph_forward`),
derive its neuron-permutation symmetries (:func:`permutation_spec`, :func:`random_symmetry`),
align two networks (:func:`weight_matching`) and embed them with :class:`GMN`, :class:`EdgeGMN`,
:class:`NeuralGraphEncoder`, :class:`OpGraphEncoder` or the :class:`StatNN` baseline. A zoo of one
architecture is a flat ``[B, P]`` batch for :class:`WeightSpace` (graphs, symmetric twins, probe
features and layer tensors by index gathers), the input of the :class:`FlatMLP` and
:class:`NFNClassifier` baselines.

The modules: :mod:`~graphlab.metanets.spec` (the IR and type vocabularies),
:mod:`~graphlab.metanets.trace` (fx tracing into the IR), :mod:`~graphlab.metanets.views` (the
three graph views), :mod:`~graphlab.metanets.interpreter` (:func:`graph_forward`),
:mod:`~graphlab.metanets.inverse` (:func:`graph_to_state_dict`). Model zoos and the tasks over
them live in :mod:`graphlab.zoo`, which builds on this package (never the other way round).
"""

from graphlab.metanets.baselines import FlatMLP, NFNClassifier
from graphlab.metanets.edge_gmn import EdgeGMN
from graphlab.metanets.gmn import GMN
from graphlab.metanets.init import init_parameters
from graphlab.metanets.interpreter import graph_forward
from graphlab.metanets.inverse import graph_to_state_dict
from graphlab.metanets.matching import interpolation_barrier, weight_matching
from graphlab.metanets.neural_graph_encoder import NeuralGraphEncoder
from graphlab.metanets.op_graph_encoder import OpGraphEncoder
from graphlab.metanets.spec import (
    ACT_TYPES,
    EDGE_TYPES,
    NODE_TYPES,
    OP_TYPES,
    X_COLUMNS,
    UnsupportedModuleError,
)
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
from graphlab.metanets.views import pad_edge_attr, to_graph
from graphlab.metanets.weightspace import WeightSpace

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
    "OpGraphEncoder",
    "StatNN",
    "weight_statistics",
    "weight_matching",
    "interpolation_barrier",
    "init_parameters",
    "WeightSpace",
    "FlatMLP",
    "NFNClassifier",
]
