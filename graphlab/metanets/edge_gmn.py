r"""Edge-level graph metanetwork: one prediction per parameter (e.g. pruning importance)."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch_geometric.data import Data

from graphlab.metanets._encoding import GatherMLP
from graphlab.metanets.gmn import GMN
from graphlab.models._common import resolve_act

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
        in_channels (int): Width of the float node features ``x`` (``0``: none).
        hidden_channels (int): Hidden size.
        out_channels (int): Outputs per edge.
        num_layers (int): Message-passing layers. (default: :obj:`3`)
        **kwargs: ``edge_dim``, ``dropout``, ``act``, ``norm``, ``use_pos``, ``act_kwargs``,
            ``norm_kwargs`` as for :class:`~graphlab.metanets.GMN`.

    Shapes:
        - **input:** a (batched) metanet graph, as for :class:`~graphlab.metanets.GMN`
        - **output:** edge predictions :math:`(|\mathcal{E}|, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 3, **kwargs: Any) -> None:
        super().__init__(in_channels, hidden_channels, out_channels, num_layers, **kwargs)
        # replaces the graph readout: an edge head over (source node, target node, edge)
        self.readout = GatherMLP(2, hidden_channels, hidden_channels, out_channels,
                                 resolve_act(kwargs.get("act", "silu"), kwargs.get("act_kwargs")))
        self.reset_parameters()

    def forward(self, batch: Data) -> Tensor:
        h, e, _, _ = self.embed(batch)
        return self.readout(h, [batch.edge_index[0], batch.edge_index[1]], e)
