"""graphlab.utils"""

from graphlab.utils.geometry import knn_graph, radius_graph
from graphlab.utils.paths import enumerate_paths
from graphlab.utils.refinement import path_colour_refinement_per_graph
from graphlab.utils.safe_globals import graphlab_safe_globals, register_safe_globals

__all__ = [
    "enumerate_paths",
    "graphlab_safe_globals",
    "knn_graph",
    "path_colour_refinement_per_graph",
    "radius_graph",
    "register_safe_globals",
]
