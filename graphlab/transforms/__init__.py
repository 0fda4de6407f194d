"""graphlab.transforms"""
