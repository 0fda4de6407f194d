"""A tiny generated graph-regression task with the harness's ``DatasetBundle`` interface.

Used by tests of the training harness, the distributed trainer and the benchmark scripts when no
real data is needed (it trains in well under a second per epoch).
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from graphlab.datasets import DatasetBundle, TaskSpec
from graphlab.utils.metrics import rmse

__all__ = ["tiny_regression_bundle"]


def tiny_regression_bundle(seed: int = 0) -> DatasetBundle:
    """46 random graphs of 3-8 nodes with 4 features; the target is a smooth graph function.

    The 30/7/9 split has odd valid/test sizes, so that evaluation shards over 2 ranks need
    padding. Metric: RMSE.
    """
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(46):
        n = int(torch.randint(3, 9, (1,), generator=gen))
        x = torch.randn(n, 4, generator=gen)
        src = torch.randint(0, n, (2 * n,), generator=gen)
        dst = torch.randint(0, n, (2 * n,), generator=gen)
        keep = src != dst
        edge_index = torch.stack([torch.cat([src[keep], dst[keep]]),
                                  torch.cat([dst[keep], src[keep]])])
        y = torch.tensor([[float(x[:, 0].sum() + 0.1 * edge_index.size(1))]])
        graphs.append(Data(x=x, edge_index=edge_index, y=y, num_nodes=n))
    split = {"train": torch.arange(30), "valid": torch.arange(30, 37),
             "test": torch.arange(37, 46)}
    spec = TaskSpec("graph", 4, 1, "mse", "rmse")
    return DatasetBundle("tiny", graphs, [split], spec, "generated 30/7/9", "generated", rmse)
