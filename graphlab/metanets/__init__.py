"""graphlab.metanets"""
