"""The EXP expressivity dataset (Abboud et al., 2021) from plain numpy arrays."""

from __future__ import annotations

import os.path as osp

import numpy as np
import torch
from torch_geometric.data import Data

from graphlab.datasets.safe_load import SafeInMemoryDataset

__all__ = ["EXPDataset"]


class EXPDataset(SafeInMemoryDataset):
    r"""EXP from `"The Surprising Power of Graph Neural Networks with Random Node
    Initialization" <https://arxiv.org/abs/2010.01179>`_: 1,200 graphs in 600 pairs
    :math:`(2i, 2i+1)` that 1-WL cannot tell apart but that differ in satisfiability (the label).

    The original release is a Python pickle; graphlab never unpickles downloaded files, so this
    loader reads ``raw/exp.npz`` with arrays ``x`` (node features, concatenated), ``edge_index``
    (per-graph local ids, concatenated), ``y``, ``num_nodes`` and ``num_edges``. The processed
    cache is read weights-only: a file a safe load refuses raises
    :class:`~graphlab.datasets.safe_load.UnsafeFileError` (``get_dataset`` re-processes instead).

    Args:
        root: folder holding ``raw/exp.npz``.
        transform / pre_transform: as in :class:`~torch_geometric.data.InMemoryDataset`.
    """

    @property
    def raw_file_names(self) -> list[str]:
        return ["exp.npz"]

    def download(self) -> None:
        raise RuntimeError(
            f"EXP is published only as a Python pickle, which graphlab does not unpickle. Place "
            f"a converted 'exp.npz' (arrays x, edge_index, y, num_nodes, num_edges) in "
            f"{self.raw_dir}, or set GRAPHLAB_DATA_DIR to a mirror holding exp/exp.npz.")

    def process(self) -> None:
        arrays = np.load(osp.join(self.raw_dir, "exp.npz"), allow_pickle=False)
        x = torch.from_numpy(arrays["x"]).float()
        if x.dim() == 1:
            x = x.unsqueeze(-1)
        edge_index = torch.from_numpy(arrays["edge_index"]).long()
        if edge_index.size(0) != 2:
            edge_index = edge_index.t()
        y = torch.from_numpy(arrays["y"]).long().view(-1)
        num_nodes = torch.from_numpy(arrays["num_nodes"]).long().view(-1)
        num_edges = torch.from_numpy(arrays["num_edges"]).long().view(-1)
        node_ptr = torch.cat([num_nodes.new_zeros(1), num_nodes.cumsum(0)])
        edge_ptr = torch.cat([num_edges.new_zeros(1), num_edges.cumsum(0)])
        data_list = []
        for i in range(num_nodes.numel()):
            ei = edge_index[:, edge_ptr[i]:edge_ptr[i + 1]]
            data = Data(x=x[node_ptr[i]:node_ptr[i + 1]], edge_index=ei, y=y[i:i + 1],
                        num_nodes=int(num_nodes[i]))
            if self.pre_transform is not None:
                data = self.pre_transform(data)
            data_list.append(data)
        self.save(data_list, self.processed_paths[0])
