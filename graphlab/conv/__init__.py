"""graphlab.conv"""
