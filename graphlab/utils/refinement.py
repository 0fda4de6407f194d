r"""PathNN colour refinement one graph at a time, for path families too large to batch.

:func:`~graphlab.utils.paths.path_colour_refinement` refines a whole batch at once, which needs
every path of the batch in memory (SR25 with 5-edge simple paths: 47M paths for 15 graphs).
:func:`path_colour_refinement_per_graph` computes the same ``schedule="layers"`` refinement
with the paths of one graph in memory at a time (3.1M for one SR25 graph); colours stay
comparable across graphs because every path's colour sequence is packed into one exact int64
code rather than ranked within a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from graphlab.utils.paths import enumerate_paths, multiset_ids

__all__ = ["path_colour_refinement_per_graph"]


def path_colour_refinement_per_graph(graphs: Sequence[Data], max_length: int) -> list[Tensor]:
    r"""The injective PathNN-AP refinement with distance encoding, layer by layer, per graph.

    Iteration :math:`\ell = 1, \dots,` ``max_length`` gives node :math:`v` the colour

    .. math::
        c_\ell(v) = \mathrm{ID}\Big(c_{\ell-1}(v),\ \big\{\!\!\big\{ \big((c_{\ell-1}(u_0),
            d_0), \dots, (c_{\ell-1}(u_\ell), d_\ell)\big) : p = (u_0 \to \dots \to u_\ell = v)
            \in \mathcal{P}_\ell(v) \big\}\!\!\big\}\Big)

    over the simple paths :math:`\mathcal{P}_\ell(v)` of :math:`\ell` edges ending at :math:`v`,
    with :math:`d_i` the shortest-path distance from :math:`u_i` to :math:`v`, starting from
    equal colours. The node partitions equal those of
    ``path_colour_refinement(edge_index, N, max_length, schedule="layers")`` on the disjoint
    union of the graphs (colour ids may differ); graphs with equal multisets of final colours get
    equal embeddings from every PathNN-AP with distance encoding and ``max_length`` layers.

    A path's sequence of (colour, distance) tokens is packed into one int64, exact while
    :math:`(\ell + 1) \lceil \log_2 ((C + 1)(\ell + 1)) \rceil \le 62` for :math:`C` colours;
    beyond that the function raises instead of hashing.

    Args:
        graphs (Sequence[Data]): graphs with ``edge_index`` and ``num_nodes``.
        max_length (int): the longest path, in edges (the number of iterations).

    Returns:
        The colours of all nodes (graphs concatenated in order, shape :math:`(\sum_g N_g,)`,
        dense int64 ids) after every iteration: ``max_length`` tensors.

    Raises:
        ValueError: ``max_length < 1``, or the packed codes would need more than 62 bits (use
            :func:`~graphlab.utils.paths.path_colour_refinement`).
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    sizes = [int(g.num_nodes) for g in graphs]
    offsets = [0, *torch.tensor(sizes, dtype=torch.long).cumsum(0).tolist()]
    colour = torch.zeros(offsets[-1], dtype=torch.long)
    if offsets[-1] == 0:  # no nodes: nothing to refine
        return [colour.clone() for _ in range(max_length)]
    history = []
    for length in range(1, max_length + 1):
        num_colours = int(colour.max()) + 1
        base = num_colours * (length + 1)  # token = colour * (length + 1) + distance
        bits = (base - 1).bit_length() * (length + 1)
        if bits > 62:
            raise ValueError(f"paths of {length} edges over {num_colours} colours need {bits}-bit "
                             f"codes (at most 62); use path_colour_refinement")
        owners, values = [], []
        for g, off in zip(graphs, offsets):
            paths = enumerate_paths(g.edge_index, int(g.num_nodes), length, "all_simple",
                                    distance_encoding=True)
            nodes, dists = paths.nodes[-1] + off, paths.dists[-1]
            code = torch.zeros(nodes.size(0), dtype=torch.long)
            for i in range(length + 1):
                code = code * base + colour[nodes[:, i]] * (length + 1) + dists[:, i]
            # pre-aggregate per (node, code): multiset_ids then sees each pair once
            pair, count = torch.unique(torch.stack([nodes[:, -1], code], 1), dim=0,
                                       return_counts=True)
            owners.append(pair[:, 0])
            values.append(torch.stack([pair[:, 1], count], 1))
        value = torch.unique(torch.cat(values), dim=0, return_inverse=True)[1]
        colour = multiset_ids(torch.cat(owners), value, offsets[-1], prefix=colour)
        history.append(colour)
    return history
