"""SR25: 15 strongly regular graphs srg(25, 12, 5, 6), pairwise non-isomorphic."""

from __future__ import annotations

import os.path as osp

import networkx as nx
import torch
from torch_geometric.data import Data, download_url
from torch_geometric.utils import from_networkx

from graphlab.datasets.safe_load import SafeInMemoryDataset

__all__ = ["SR25Dataset"]


class SR25Dataset(SafeInMemoryDataset):
    r"""The 15 strongly regular graphs with parameters :math:`(25, 12, 5, 6)` from Brendan McKay's
    collection, used by `"Breaking the Limits of Message Passing Graph Neural Networks"
    <https://arxiv.org/abs/2106.04319>`_ as a 3-WL-indistinguishable expressivity test.

    Every graph has 25 nodes of degree 12 and a constant node feature; the label of graph
    :math:`i` is :math:`i` (a model separates the set iff it can fit these 15 classes). The
    processed cache is read weights-only: a file a safe load refuses raises
    :class:`~graphlab.datasets.safe_load.UnsafeFileError` (``get_dataset`` re-processes instead).

    Args:
        root: folder holding ``raw/sr251256.g6`` (graph6 text format).
    """

    url = "https://raw.githubusercontent.com/GraphPKU/PygHO/main/dataset/sr25/raw/sr251256.g6"

    @property
    def raw_file_names(self) -> list[str]:
        return ["sr251256.g6"]

    def download(self) -> None:
        download_url(self.url, self.raw_dir)

    def process(self) -> None:
        graphs = nx.read_graph6(osp.join(self.raw_dir, "sr251256.g6"))
        if isinstance(graphs, nx.Graph):
            graphs = [graphs]
        data_list = []
        for i, g in enumerate(graphs):
            data = from_networkx(g)
            data = Data(x=torch.ones(g.number_of_nodes(), 1), edge_index=data.edge_index,
                        y=torch.tensor([i]), num_nodes=g.number_of_nodes())
            if self.pre_transform is not None:
                data = self.pre_transform(data)
            data_list.append(data)
        self.save(data_list, self.processed_paths[0])
