"""graphlab.rewiring"""
