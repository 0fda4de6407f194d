"""graphlab: drop-in PyTorch Geometric layers for published methods, metanetworks and benchmarks."""

__version__ = "0.1.0"
