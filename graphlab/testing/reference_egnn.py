r"""A reference EGNN layer written directly from the paper's equations.

:class:`ReferenceEGCL` is the straightforward implementation of the E(n)-equivariant graph
convolutional layer of Satorras, Hoogeboom and Welling (`"E(n) Equivariant Graph Neural
Networks" <https://arxiv.org/abs/2102.09844>`_, ICML 2021, Eqs. 3-7): gather both end points'
features by ``edge_index``, concatenate
:math:`[\mathbf{h}_i, \mathbf{h}_j, \|\mathbf{x}_i - \mathbf{x}_j\|^2, \mathbf{a}_{ij}]`, run the
edge MLP on the concatenation and sum messages with ``index_add_``, the way the official code does
(but with PyG's edge direction, :math:`j \to i` for ``edge_index[:, e] = (j, i)``). It has no
validation, no fused first layer and no memory savings: it is the baseline that
:class:`~graphlab.conv.EGNNConv` is checked against (the tests compare both to 1e-12 in float64)
and timed against (``benchmarks/egnn_speed.py``)::

    conv = EGNNConv(16, 16, hidden_channels=32).double()
    ref = ReferenceEGCL(16, 16, 32).double()
    copy_egnn_weights(conv, ref)
    torch.testing.assert_close(conv(x, pos, edge_index), ref(x, pos, edge_index))
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ReferenceEGCL", "copy_egnn_weights"]


class ReferenceEGCL(nn.Module):
    r"""EGNN layer written from the paper's equations, with :math:`C = 1/|\mathcal{N}(i)|`
    (``pos_aggr="mean"``) or :math:`C = 1` (``"sum"``):

    .. math::
        \mathbf{m}_{ij} &= \phi_e\big(\mathbf{h}_i, \mathbf{h}_j,
            \|\mathbf{x}_i - \mathbf{x}_j\|^2, \mathbf{a}_{ij}\big)

        \mathbf{x}_i' &= \mathbf{x}_i + C \sum_{j \in \mathcal{N}(i)}
            (\mathbf{x}_i - \mathbf{x}_j)\, \phi_x(\mathbf{m}_{ij})

        \mathbf{h}_i' &= \mathbf{h}_i + \phi_h\Big(\mathbf{h}_i,
            \sum_{j \in \mathcal{N}(i)} \mathbf{m}_{ij}\Big)

    and, with velocities (Eq. 7), :math:`\mathbf{v}_i' = \phi_v(\mathbf{h}_i)\mathbf{v}_i + C
    \sum_j (\mathbf{x}_i - \mathbf{x}_j)\phi_x(\mathbf{m}_{ij})`,
    :math:`\mathbf{x}_i' = \mathbf{x}_i + \mathbf{v}_i'`.

    Same options, parameter shapes and outputs as :class:`graphlab.conv.EGNNConv` with its
    default SiLU activation; :func:`copy_egnn_weights` gives it a layer's parameters.

    Args:
        in_channels (int): Size of each input node feature.
        out_channels (int): Size of each output node feature (must equal ``in_channels`` when
            ``residual=True``: the reference adds the input as is).
        hidden_channels (int): Width of the MLPs and of the messages.
        edge_dim (int): Size of the edge features :math:`\mathbf{a}_{ij}`; 0 for none.
        update_pos (bool): Update coordinates (else ``pos`` is returned unchanged).
        pos_aggr (str): ``"mean"`` or ``"sum"`` for the coordinate update.
        normalize (bool): Divide :math:`\mathbf{x}_i - \mathbf{x}_j` by its detached norm
            plus :math:`10^{-8}`.
        tanh (bool): Squash :math:`\phi_x` to ``coords_range * tanh(.)`` (scale 1 if unset).
        coords_range (float, optional): The tanh scale, or a clamp of :math:`\phi_x` without tanh.
        attention (bool): Gate messages by :math:`\sigma(\mathbf{w}^\top \mathbf{m}_{ij})`.
        residual (bool): Add the input features to :math:`\phi_h`'s output.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, positions
          :math:`(|\mathcal{V}|, n)`, edge indices :math:`(2, |\mathcal{E}|)`, optional edge
          features :math:`(|\mathcal{E}|, D)` and velocities :math:`(|\mathcal{V}|, n)`
        - **output:** ``(h, pos)`` of shapes :math:`(|\mathcal{V}|, F_{out})` and
          :math:`(|\mathcal{V}|, n)`, plus the new velocities when ``vel`` is given
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int,
                 edge_dim: int = 0, update_pos: bool = True, pos_aggr: str = "mean",
                 normalize: bool = False, tanh: bool = False, coords_range: float | None = None,
                 attention: bool = False, residual: bool = True) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError(f"the reference's residual adds the input as is: in_channels "
                             f"({in_channels}) must equal out_channels ({out_channels})")
        if pos_aggr not in ("mean", "sum"):
            raise ValueError(f"pos_aggr must be 'mean' or 'sum', got {pos_aggr!r}")
        act = nn.SiLU()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.update_pos, self.pos_aggr, self.normalize = update_pos, pos_aggr, normalize
        self.tanh, self.coords_range, self.residual = tanh, coords_range, residual
        self.edge_mlp = nn.Sequential(nn.Linear(2 * in_channels + 1 + edge_dim, hidden_channels),
                                      act, nn.Linear(hidden_channels, hidden_channels), act)
        self.att_mlp = nn.Linear(hidden_channels, 1) if attention else None
        self.node_mlp = nn.Sequential(nn.Linear(in_channels + hidden_channels, hidden_channels),
                                      act, nn.Linear(hidden_channels, out_channels))
        self.coord_mlp = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), act,
                                       nn.Linear(hidden_channels, 1, bias=False))
        self.vel_mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), act,
                                     nn.Linear(hidden_channels, 1))

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                vel: Tensor | None = None) -> tuple[Tensor, ...]:
        src, dst = edge_index
        diff = pos[dst] - pos[src]
        radial = (diff * diff).sum(dim=-1, keepdim=True)
        parts = [x[dst], x[src], radial] + ([edge_attr] if edge_attr is not None else [])
        m = self.edge_mlp(torch.cat(parts, dim=-1))
        if self.att_mlp is not None:
            m = m * torch.sigmoid(self.att_mlp(m))
        agg = m.new_zeros(x.size(0), m.size(1)).index_add_(0, dst, m)
        h = self.node_mlp(torch.cat([x, agg], dim=-1))
        if self.residual:
            h = h + x
        if not self.update_pos:
            return h, pos
        if self.normalize:
            diff = diff / (torch.sqrt(radial).detach() + 1e-8)
        phi = self.coord_mlp(m)
        if self.tanh:
            phi = torch.tanh(phi) * (1.0 if self.coords_range is None else self.coords_range)
        elif self.coords_range is not None:
            phi = phi.clamp(-self.coords_range, self.coords_range)
        shift = torch.zeros_like(pos).index_add_(0, dst, diff * phi)
        if self.pos_aggr == "mean":
            count = pos.new_zeros(x.size(0)).index_add_(0, dst, torch.ones_like(radial[:, 0]))
            shift = shift / count.clamp(min=1).unsqueeze(-1)
        if vel is None:
            return h, pos + shift
        vel_out = self.vel_mlp(x) * vel + shift
        return h, pos + vel_out, vel_out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"


def copy_egnn_weights(conv: nn.Module, ref: ReferenceEGCL) -> None:
    """Give ``ref`` the parameters of a :class:`graphlab.conv.EGNNConv` built with the same
    options (the two keep the paper's parameter layout, so the copy is one to one)."""
    pairs = [(conv.edge_lin1, ref.edge_mlp[0]), (conv.edge_lin2, ref.edge_mlp[2]),
             (conv.node_lin1, ref.node_mlp[0]), (conv.node_lin2, ref.node_mlp[2])]
    if (conv.att_lin is None) != (ref.att_mlp is None):
        raise ValueError("conv and ref disagree on attention")
    if conv.att_lin is not None:
        pairs.append((conv.att_lin, ref.att_mlp))
    if conv.update_pos:
        pairs += [(conv.coord_lin1, ref.coord_mlp[0]), (conv.coord_lin2, ref.coord_mlp[2]),
                  (conv.vel_lin1, ref.vel_mlp[0]), (conv.vel_lin2, ref.vel_mlp[2])]
    with torch.no_grad():
        for a, b in pairs:
            if a.weight.shape != b.weight.shape:
                raise ValueError(f"parameter shapes differ: {tuple(a.weight.shape)} in conv, "
                                 f"{tuple(b.weight.shape)} in ref (build both with the same "
                                 f"channels and options)")
            b.weight.copy_(a.weight)
            if a.bias is not None:
                b.bias.copy_(a.bias)
