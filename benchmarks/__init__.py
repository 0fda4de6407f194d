"""Runnable benchmark and reproduction scripts (``python -m benchmarks.NAME`` or ``graphlab bench``)."""
