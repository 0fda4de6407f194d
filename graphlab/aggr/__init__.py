"""graphlab.aggr"""
