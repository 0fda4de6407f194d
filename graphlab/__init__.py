"""graphlab: drop-in PyTorch Geometric layers for published methods, weight-space metanetworks
and benchmarks."""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

try:
    __version__ = _version("graphlab")
except _NotInstalled:  # running from a source tree that was never installed
    __version__ = "0+unknown"
