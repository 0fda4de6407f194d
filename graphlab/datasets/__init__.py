"""Benchmark datasets: offline-first loaders with their standard splits and metrics."""

from graphlab.datasets.catalog import (
    DatasetBundle,
    DatasetInfo,
    get_dataset,
    known_datasets,
    locate_raw,
)
from graphlab.datasets.conformers import add_conformers, conformer_positions
from graphlab.datasets.exp import EXPDataset
from graphlab.datasets.nbody import NBody
from graphlab.datasets.spec import TaskSpec
from graphlab.datasets.sr25 import SR25Dataset
from graphlab.datasets.synthetic import tree_or_cycle
from graphlab.datasets.tree_neighbors_match import TreeNeighborsMatch

__all__ = [
    "DatasetBundle",
    "DatasetInfo",
    "EXPDataset",
    "NBody",
    "SR25Dataset",
    "TaskSpec",
    "TreeNeighborsMatch",
    "add_conformers",
    "conformer_positions",
    "get_dataset",
    "known_datasets",
    "locate_raw",
    "tree_or_cycle",
]
