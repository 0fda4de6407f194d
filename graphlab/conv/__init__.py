"""graphlab.conv"""

from graphlab.conv.egnn_conv import EGNNConv
from graphlab.conv.path_conv import PathConv
from graphlab.conv.sheaf_conv import SheafConv
from graphlab.conv.sheaf_learner import SheafLearner
from graphlab.conv.weighted_gine_conv import WeightedGINEConv

__all__ = [
    "EGNNConv",
    "PathConv",
    "SheafConv",
    "SheafLearner",
    "WeightedGINEConv",
]
