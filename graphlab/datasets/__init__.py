"""graphlab.datasets"""
