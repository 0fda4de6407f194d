"""Per-edge restriction maps predicted from the two endpoint features."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.typing import Adj, PairTensor, Size

from graphlab.conv._adj import adj_sizes, check_pair_features, pair, validated_adj
from graphlab.nn.orthogonal import num_orthogonal_params, orthogonal_from_params
from graphlab.utils.validation import check_input_dtype

__all__ = ["SheafLearner"]

_MAPS = ("diag", "orthogonal", "general")


class SheafLearner(nn.Module):
    r"""The local sheaf learner of the `"Neural Sheaf Diffusion: A Topological Perspective on
    Heterophily and Oversmoothing in GNNs" <https://arxiv.org/abs/2202.04579>`_ paper.

    For a directed edge :math:`k = (u \to v)` of the undirected edge :math:`e = \{u, v\}` it
    predicts both restriction maps of :math:`e`, each from the concatenated endpoint features,
    target first:

    .. math::
        \mathcal{F}_{v \trianglelefteq e} = \Phi\big(\sigma(\mathbf{W} [\mathbf{x}_v \,\|\,
        \mathbf{x}_u])\big), \qquad
        \mathcal{F}_{u \trianglelefteq e} = \Phi\big(\sigma(\mathbf{W} [\mathbf{x}_u \,\|\,
        \mathbf{x}_v])\big),

    where :math:`\sigma` is ``act`` and :math:`\Phi` shapes the output into a diagonal map
    (``"diag"``, :math:`d` numbers), an orthogonal map (``"orthogonal"``, from
    :math:`d(d-1)/2` numbers by Householder reflections or the Cayley map, optionally scaled by
    a learned weight :math:`s = \mathrm{sigmoid}(\mathbf{w}^\top [\mathbf{x}_v \| \mathbf{x}_u])`)
    or a full :math:`d \times d` map (``"general"``). Because both sides are predicted on every
    directed edge, the two directions of an undirected edge carry the same pair of maps and no
    reverse-edge lookup is needed.

    The linear map is split as :math:`\mathbf{W}[\mathbf{x}_v \| \mathbf{x}_u] =
    \mathbf{W}_{\ell}\mathbf{x}_v + \mathbf{W}_r\mathbf{x}_u`: both halves are computed once per
    node (:meth:`node_terms`) and only the small per-node outputs are gathered per edge, so no
    ``[E, 2 F_{in}]`` concatenation is formed or kept for the backward pass.

    Args:
        in_channels (int): node feature width.
        stalk_dim (int): stalk dimension :math:`d`.
        maps (str): ``"diag"``, ``"orthogonal"`` or ``"general"``.
        orthogonal (str): ``"householder"`` or ``"cayley"`` (only for ``maps="orthogonal"``).
        edge_weights (bool): learn the scale :math:`s` of orthogonal maps.
        act (str): ``"tanh"`` (the authors' default), ``"elu"`` or ``"id"``.

    ``edge_index`` may be a ``[2, E]`` tensor, an ``EdgeIndex``, a ``torch.sparse`` ``adj_t``
    (COO/CSR/CSC, row = target; maps then follow its storage order) or a ``SparseTensor``; ``x``
    may be a pair ``(x_src, x_dst)`` of equal width with ``size=(N_src, N_dst)``: the maps of an
    edge only need its two endpoints' features.
    Its output lives on edges, so it is used inside :class:`SheafConv` rather than on its own
    in ``to_hetero`` (which treats a module that is not ``MessagePassing`` as node-level).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` or a source/target pair, edge
          indices :math:`(2, |\mathcal{E}|)` or a sparse ``adj_t``
        - **output:** maps :math:`(|\mathcal{E}|, 2, d)` for ``"diag"``, else
          :math:`(|\mathcal{E}|, 2, d, d)`; index 0 is the target-side map
          :math:`\mathcal{F}_{v \trianglelefteq e}`, index 1 the source-side map.
    """

    def __init__(self, in_channels: int, stalk_dim: int, maps: str = "diag",
                 orthogonal: str = "householder", edge_weights: bool = True,
                 act: str = "tanh") -> None:
        super().__init__()
        if maps not in _MAPS:
            raise ValueError(f"maps must be one of {_MAPS}, got {maps!r}")
        if orthogonal not in ("householder", "cayley"):
            raise ValueError(f"orthogonal must be 'householder' or 'cayley', got {orthogonal!r}")
        if act not in ("tanh", "elu", "id"):
            raise ValueError(f"act must be 'tanh', 'elu' or 'id', got {act!r}")
        if stalk_dim < 1:
            raise ValueError(f"stalk_dim must be positive, got {stalk_dim}")
        self.in_channels = in_channels
        self.stalk_dim = stalk_dim
        self.maps = maps
        self.orthogonal = orthogonal
        self.edge_weights = edge_weights and maps == "orthogonal"
        self.act = act
        d = stalk_dim
        num_out = {"diag": d, "orthogonal": num_orthogonal_params(d), "general": d * d}[maps]
        # no bias, as in the reference learner: zero features give the "neutral" map
        self.lin = nn.Linear(2 * in_channels, num_out, bias=False)
        self.weight_lin = nn.Linear(2 * in_channels, 1) if self.edge_weights else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        if self.weight_lin is not None:
            self.weight_lin.reset_parameters()

    def _activate(self, h: Tensor) -> Tensor:
        if self.act == "tanh":
            return torch.tanh(h)
        if self.act == "elu":
            return torch.nn.functional.elu(h)
        return h

    def node_terms(self, x: Tensor) -> Tensor:
        r"""Per-node halves of the learner's linear maps, ``[N, 2, num_out (+1)]``.

        Row 0 is :math:`\mathbf{W}_{\ell}\mathbf{x}` (the part of
        :math:`\mathbf{W} = [\mathbf{W}_{\ell} \,|\, \mathbf{W}_r]` that multiplies the map's own
        endpoint), row 1 :math:`\mathbf{W}_r \mathbf{x}` (the other endpoint); with edge weights
        the last column holds the same split of :math:`\mathbf{w}`.
        """
        weight = self.lin.weight
        if self.weight_lin is not None:  # one product for the maps and the edge weights
            weight = torch.cat([weight, self.weight_lin.weight], 0)
        k = weight.size(0)
        # [W_l; W_r] applied per node: N products instead of E on [x_v || x_u] pairs
        w = torch.cat([weight[:, :self.in_channels], weight[:, self.in_channels:]], 0)
        return (x @ w.t()).view(x.size(0), 2, k)

    def forward(self, x: Tensor | PairTensor, edge_index: Adj, size: Size = None) -> Tensor:
        x_src, x_dst = pair(x)
        n_src, n_dst = adj_sizes(edge_index, size, x_src.size(0), x_dst.size(0))
        check_pair_features(x_src, x_dst, n_src, n_dst, (self.in_channels, self.in_channels))
        check_input_dtype(x_dst, self.lin.weight, "x")
        edge_index, _ = validated_adj(edge_index, n_src, n_dst)
        src, dst = edge_index[0], edge_index[1]
        t_dst = self.node_terms(x_dst)
        t_src = t_dst if x_src is x_dst else self.node_terms(x_src)
        # W [x_v || x_u] = W_l x_v + W_r x_u: side 0 (target v) takes row 0 of v and row 1 of
        # u, side 1 (source u) row 0 of u and row 1 of v, i.e. the source rows swapped
        h = t_dst.index_select(0, dst) + t_src.index_select(0, src).flip(1)  # [E, 2, k]
        d = self.stalk_dim
        if self.weight_lin is not None:
            h, w = h[..., :-1], h[..., -1:]
        h = self._activate(h)
        if self.maps == "diag":
            return h
        if self.maps == "general":
            return h.reshape(h.size(0), 2, d, d)
        maps = orthogonal_from_params(h, d, self.orthogonal)
        if self.weight_lin is not None:
            scale = torch.sigmoid(w + self.weight_lin.bias)  # [E, 2, 1]
            maps = maps * scale.unsqueeze(-1)
        return maps

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, stalk_dim={self.stalk_dim}, "
                f"maps={self.maps!r})")
