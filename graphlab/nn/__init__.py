"""graphlab.nn"""
