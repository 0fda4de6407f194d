"""graphlab.transforms"""

from graphlab.transforms.add_paths import AddPaths
from graphlab.transforms.connection_sheaf import ConnectionSheaf
from graphlab.transforms.knn_graph import KNNGraph
from graphlab.transforms.radius_graph import RadiusGraph

__all__ = [
    "AddPaths",
    "ConnectionSheaf",
    "KNNGraph",
    "RadiusGraph",
]
