"""graphlab.models"""
