"""graphlab.utils"""
