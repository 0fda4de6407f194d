"""The repository's benchmark harness (not installed with graphlab; run it from a checkout).

``python -m benchmarks [--quick] [--list] [--record] [TASK ...]`` runs the registered
reproduction tasks (see ``benchmarks/README.md``); ``python -m benchmarks.NAME [--quick]`` runs
one script. The harness itself (registry, results records, measurement, figures) is
:mod:`benchmarks.common`.
"""
