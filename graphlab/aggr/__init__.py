"""graphlab.aggr"""

from graphlab.aggr.gnp import GNPAggregation
from graphlab.aggr.lcm import LCMAggregation
from graphlab.aggr.recurrent import RecurrentAggregation

__all__ = ["GNPAggregation", "LCMAggregation", "RecurrentAggregation"]
