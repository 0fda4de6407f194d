"""graphlab.utils"""

from graphlab.utils.geometry import knn_graph, radius_graph
from graphlab.utils.paths import enumerate_paths

__all__ = [
    "enumerate_paths",
    "knn_graph",
    "radius_graph",
]
