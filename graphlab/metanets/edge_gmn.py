r"""Edge-level graph metanetwork: one prediction per parameter (e.g. pruning importance)."""

from __future__ import annotations

from torch import Tensor
from torch_geometric.data import Data

from graphlab.metanets._encoding import GatherMLP
from graphlab.metanets.gmn import GMN

__all__ = ["EdgeGMN"]


class EdgeGMN(GMN):
    r"""A :class:`~graphlab.metanets.GMN` with an edge-level head: on the parameter view of
    :func:`~graphlab.metanets.to_graph` every edge is one parameter of the network, so predicting
    a per-parameter quantity (magnitude or SNIP pruning importance, Lee et al., ICLR 2019) is edge
    labelling, as in the pruning recast of "Graph Metanetworks" (Lim et al., ICLR 2024).

    After the GMN's message passing (see :class:`~graphlab.metanets.GMN`),

    .. math::
        \hat{y}_{ij} = \rho\left(\mathbf{h}_i, \mathbf{h}_j, \mathbf{e}_{ij}\right)

    with :math:`\rho` a two-layer MLP. Node and edge inputs are invariant under the network's
    neuron permutations, so the edge outputs are *equivariant*: permuting hidden neurons permutes
    the predictions with the parameters.

    Args:
        out_channels (int): Outputs per edge.
        hidden_channels (int): Hidden size. (default: :obj:`64`)
        num_layers (int): Message-passing layers. (default: :obj:`3`)
        edge_dim (int): Width of ``edge_attr``. (default: :obj:`1`)
        x_dim (int): Width of the float node features ``x`` (``0``: none). (default: :obj:`0`)
        use_pos (bool): Embed ``edge_pos`` (kernel position). (default: :obj:`True`)

    Shapes:
        - **input:** a (batched) metanet graph, as for :class:`~graphlab.metanets.GMN`
        - **output:** edge predictions :math:`(|\mathcal{E}|, F_{out})`
    """

    def __init__(self, out_channels: int, hidden_channels: int = 64, num_layers: int = 3,
                 edge_dim: int = 1, x_dim: int = 0, use_pos: bool = True) -> None:
        super().__init__(out_channels, hidden_channels, num_layers, edge_dim, x_dim, use_pos)
        # replaces the graph readout: an edge head over (source node, target node, edge)
        self.readout = GatherMLP(2, hidden_channels, hidden_channels, out_channels)
        self.reset_parameters()

    def forward(self, batch: Data) -> Tensor:
        h, e, _, _ = self.embed(batch)
        return self.readout(h, [batch.edge_index[0], batch.edge_index[1]], e)
