"""Trees-NeighborsMatch, the over-squashing benchmark of Alon & Yahav (2021)."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

__all__ = ["TreeNeighborsMatch", "binary_tree"]


def binary_tree(depth: int) -> tuple[Tensor, Tensor]:
    """A complete binary tree of ``depth`` in pre-order numbering (root 0, left subtree first).

    Returns ``edge_index`` (child -> parent, towards the root) and the ids of the ``2**depth``
    leaves from left to right.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    children, parents, leaves = [], [], []

    def build(node: int, level: int) -> int:
        """Number the subtree rooted at ``node``; return the next free id."""
        if level == depth:
            leaves.append(node)
            return node + 1
        nxt = node + 1
        for _ in range(2):
            children.append(nxt)
            parents.append(node)
            nxt = build(nxt, level + 1)
        return nxt

    build(0, 0)  # recursion over the depth of one template tree, not over data
    return torch.tensor([children, parents]), torch.tensor(leaves)


class TreeNeighborsMatch(InMemoryDataset):
    r"""The Trees-NeighborsMatch problem from `"On the Bottleneck of Graph Neural Networks and its
    Practical Implications" <https://arxiv.org/abs/2006.05205>`_ (Alon & Yahav, ICLR 2021).

    Each example is a complete binary tree of ``depth``. Leaf :math:`\ell` carries a key
    :math:`\ell \in \{1..L\}` (:math:`L = 2^{depth}`) and a value from a random permutation of
    :math:`\{1..L\}`; the root carries a query key and the label is the value of the leaf with that
    key. Edges point from children to parents (plus self-loops), so information must travel
    ``depth`` hops into the root, and a 1-layer MPNN without rewiring cannot solve it.

    Node features ``x`` are integer pairs ``[key, value]`` (0 = empty); ``root_mask`` marks the
    root; ``y`` is the class ``value - 1``.

    Args:
        depth (int): tree depth (2..8 are typical).
        num_permutations (int): random leaf-value permutations; each is paired with every query
            key, so the dataset has ``num_permutations * 2**depth`` graphs.
        seed (int): seed of the permutations.
        self_loops (bool): add a self-loop to every node, as in the original code.
    """

    def __init__(self, depth: int, num_permutations: int = 100, seed: int = 0,
                 self_loops: bool = True, transform=None) -> None:
        for name, value in (("depth", depth), ("num_permutations", num_permutations)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.depth = depth
        self.num_permutations = num_permutations
        self.seed = seed
        self.self_loops = self_loops
        super().__init__(None, transform)
        self.data, self.slices = self.collate(self._generate())

    @property
    def num_leaves(self) -> int:
        return 2 ** self.depth

    def _generate(self) -> list[Data]:
        edge_index, leaves = binary_tree(self.depth)
        num_nodes = 2 ** (self.depth + 1) - 1
        if self.self_loops:
            loops = torch.arange(num_nodes).repeat(2, 1)
            edge_index = torch.cat([edge_index, loops], dim=1)
        L = self.num_leaves
        gen = torch.Generator().manual_seed(self.seed)
        values = torch.rand(self.num_permutations, L, generator=gen).argsort(-1) + 1  # [P, L]
        # every permutation with every query key
        values = values.repeat_interleave(L, dim=0)                                   # [P*L, L]
        keys = torch.arange(1, L + 1).repeat(self.num_permutations)                    # [P*L]
        x = torch.zeros(values.size(0), num_nodes, 2, dtype=torch.long)
        x[:, 0, 0] = keys
        x[:, leaves, 0] = torch.arange(1, L + 1)
        x[:, leaves, 1] = values
        y = values.gather(1, (keys - 1).unsqueeze(1)).squeeze(1) - 1
        root_mask = torch.zeros(num_nodes, dtype=torch.bool)
        root_mask[0] = True
        return [Data(x=x[i], edge_index=edge_index, y=y[i:i + 1], root_mask=root_mask)
                for i in range(values.size(0))]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(depth={self.depth}, {len(self)} graphs)"
