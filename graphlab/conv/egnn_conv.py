"""The E(n)-equivariant graph convolution (EGNN)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.typing import OptTensor

from graphlab.utils.validation import (
    check_edge_features,
    check_edge_index,
    check_node_features,
)

__all__ = ["EGNNConv"]


class EGNNConv(MessagePassing):
    r"""The E(n)-equivariant graph convolution from the `"E(n) Equivariant Graph Neural
    Networks" <https://arxiv.org/abs/2102.09844>`_ paper (Satorras, Hoogeboom, Welling, ICML 2021).

    Node features :math:`\mathbf{h}_i` are updated invariantly and coordinates
    :math:`\mathbf{x}_i \in \mathbb{R}^n` (``pos``) equivariantly under rotations, reflections,
    translations and node permutations, for any spatial dimension :math:`n \ge 1`. For an edge
    :math:`j \to i` (``edge_index[:, e] = (j, i)``):

    .. math::
        \mathbf{m}_{ij} &= \phi_e\big(\mathbf{h}_i, \mathbf{h}_j,
            \|\mathbf{x}_i - \mathbf{x}_j\|^2, \mathbf{a}_{ij}\big)

        \mathbf{x}_i' &= \mathbf{x}_i + C \sum_{j \in \mathcal{N}(i)}
            (\mathbf{x}_i - \mathbf{x}_j)\, \phi_x(\mathbf{m}_{ij})

        \mathbf{h}_i' &= \mathbf{h}_i + \phi_h\Big(\mathbf{h}_i,
            \sum_{j \in \mathcal{N}(i)} \mathbf{m}_{ij}\Big)

    with :math:`C = 1/|\mathcal{N}(i)|` (``pos_aggr="mean"``) or :math:`C = 1` (``"sum"``). With
    ``attention=True`` messages are gated, :math:`\mathbf{m}_{ij} \leftarrow \mathbf{m}_{ij}
    \sigma(\mathbf{w}^\top \mathbf{m}_{ij})`. When velocities :math:`\mathbf{v}_i` are given (the
    paper's N-body model, Eq. 7):

    .. math::
        \mathbf{v}_i' = \phi_v(\mathbf{h}_i)\, \mathbf{v}_i + C \sum_{j \in \mathcal{N}(i)}
            (\mathbf{x}_i - \mathbf{x}_j)\, \phi_x(\mathbf{m}_{ij}), \qquad
        \mathbf{x}_i' = \mathbf{x}_i + \mathbf{v}_i'.

    :math:`\phi_e` is ``Linear-act-Linear-act``, :math:`\phi_x` is ``Linear-act-Linear(->1)``
    whose last layer starts near zero (Xavier gain 0.001, as in the official code), and
    :math:`\phi_h`, :math:`\phi_v` are ``Linear-act-Linear``. Messages flow from
    ``edge_index[0]`` to ``edge_index[1]`` (PyG convention; the official code aggregates at
    ``edge_index[0]``).

    Implementation notes: the first layer of :math:`\phi_e` is applied to node features before
    gathering (:math:`W[\mathbf{h}_i; \mathbf{h}_j] = W_1\mathbf{h}_i + W_2\mathbf{h}_j`), which
    avoids materialising the :math:`|\mathcal{E}| \times 2F` concatenation; the parameters keep the
    paper's layout. No square root is taken of a distance that autograd differentiates, so
    coincident points give finite values and gradients; ``normalize`` divides by the detached
    norm plus :math:`10^{-8}` as the authors do. Nothing is updated in place.

    Args:
        in_channels (int): Size of each input node feature :math:`\mathbf{h}_i`.
        out_channels (int): Size of each output node feature.
        hidden_channels (int, optional): Width of the MLPs and of the messages
            (default: ``out_channels``).
        edge_dim (int): Size of the edge features :math:`\mathbf{a}_{ij}`; 0 for none.
            (default: :obj:`0`)
        act (str or Callable): Activation. (default: :obj:`"silu"`)
        update_pos (bool): Update coordinates; :obj:`False` gives the invariant (QM9) mode, in
            which ``pos`` is returned unchanged. (default: :obj:`True`)
        pos_aggr (str): ``"mean"`` or ``"sum"`` for the coordinate update. (default: ``"mean"``)
        normalize (bool): Use :math:`(\mathbf{x}_i-\mathbf{x}_j)/(\|\mathbf{x}_i-\mathbf{x}_j\|
            + \epsilon)` (norm detached) in the coordinate update. (default: :obj:`False`)
        tanh (bool): Squash :math:`\phi_x` to ``coords_range * tanh(.)``. (default: :obj:`False`)
        coords_range (float, optional): Bound on :math:`|\phi_x|`: the tanh scale if ``tanh``
            (default 1.0), otherwise a clamp. Both act on the scalar, so equivariance holds.
        attention (bool): Gate messages with a learned sigmoid. (default: :obj:`False`)
        residual (bool): Add the input features to :math:`\phi_h`'s output (through a bias-free
            linear map when ``in_channels != out_channels``). (default: :obj:`True`)
        **kwargs: Passed to :class:`~torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, positions
          :math:`(|\mathcal{V}|, n)`, edge indices :math:`(2, |\mathcal{E}|)`, edge features
          :math:`(|\mathcal{E}|, D)` *(optional)*, velocities :math:`(|\mathcal{V}|, n)`
          *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`, positions
          :math:`(|\mathcal{V}|, n)`, and velocities :math:`(|\mathcal{V}|, n)` if given
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int | None = None,
        edge_dim: int = 0,
        act: str | nn.Module = "silu",
        update_pos: bool = True,
        pos_aggr: str = "mean",
        normalize: bool = False,
        tanh: bool = False,
        coords_range: float | None = None,
        attention: bool = False,
        residual: bool = True,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "sum")
        super().__init__(**kwargs)
        if pos_aggr not in ("mean", "sum"):
            raise ValueError(f"pos_aggr must be 'mean' or 'sum', got {pos_aggr!r}")
        if edge_dim is None or edge_dim < 0:
            raise ValueError(f"edge_dim must be a non-negative int, got {edge_dim}")
        if coords_range is not None and not coords_range > 0:
            raise ValueError(f"coords_range must be positive, got {coords_range}")
        hidden_channels = out_channels if hidden_channels is None else hidden_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.edge_dim = edge_dim
        self.update_pos = update_pos
        self.pos_aggr = pos_aggr
        self.normalize = normalize
        self.tanh = tanh
        self.coords_range = coords_range
        self.attention = attention
        self.residual = residual
        self.eps = 1e-8
        self.act = activation_resolver(act)

        # phi_e's first layer acts on [h_i, h_j, |x_i - x_j|^2, a_ij], in the paper's order.
        self.edge_lin1 = nn.Linear(2 * in_channels + 1 + edge_dim, hidden_channels)
        self.edge_lin2 = nn.Linear(hidden_channels, hidden_channels)
        self.att_lin = nn.Linear(hidden_channels, 1) if attention else None
        self.node_lin1 = nn.Linear(in_channels + hidden_channels, hidden_channels)
        self.node_lin2 = nn.Linear(hidden_channels, out_channels)
        self.skip = (nn.Linear(in_channels, out_channels, bias=False)
                     if residual and in_channels != out_channels else None)
        if update_pos:
            self.coord_lin1 = nn.Linear(hidden_channels, hidden_channels)
            self.coord_lin2 = nn.Linear(hidden_channels, 1, bias=False)
            self.vel_lin1 = nn.Linear(in_channels, hidden_channels)
            self.vel_lin2 = nn.Linear(hidden_channels, 1)
        else:
            self.coord_lin1 = self.coord_lin2 = self.vel_lin1 = self.vel_lin2 = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for module in self.children():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        if self.coord_lin2 is not None:
            # A near-zero last layer makes every layer start close to the identity on pos,
            # which the authors found necessary for stable training.
            nn.init.xavier_uniform_(self.coord_lin2.weight, gain=0.001)

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        edge_attr: OptTensor = None,
        vel: OptTensor = None,
    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
        """Returns ``(x_out, pos_out)``, or ``(x_out, pos_out, vel_out)`` when ``vel`` is given."""
        edge_attr = self._validate(x, pos, edge_index, edge_attr, vel)
        num_nodes = x.size(0)

        src, dst = edge_index[0], edge_index[1]
        diff = pos.index_select(0, dst) - pos.index_select(0, src)  # x_i - x_j
        radial = (diff * diff).sum(dim=-1, keepdim=True)
        m = self.edge_messages(x, edge_index, radial, edge_attr)
        msg = self.propagate(edge_index, m=m, size=(num_nodes, num_nodes))

        h = self.node_lin2(self.act(self.node_lin1(torch.cat([x, msg], dim=-1))))
        if self.residual:
            h = h + (x if self.skip is None else self.skip(x))
        if not self.update_pos:
            return h, pos

        phi = self.coord_lin2(self.act(self.coord_lin1(m)))
        if self.tanh:
            phi = torch.tanh(phi) * (1.0 if self.coords_range is None else self.coords_range)
        elif self.coords_range is not None:
            phi = phi.clamp(-self.coords_range, self.coords_range)
        if self.normalize:
            # Detached norm + eps (as the authors do): no infinite gradient of sqrt at 0.
            diff = diff / (radial.detach().sqrt() + self.eps)
        shift = pos.new_zeros(pos.shape).index_add(0, dst, diff * phi)
        if self.pos_aggr == "mean":
            deg = pos.new_zeros(num_nodes).index_add(0, dst, radial.new_ones(dst.numel()))
            shift = shift / deg.clamp(min=1).unsqueeze(-1)
        if vel is not None:
            vel_out = self.vel_lin2(self.act(self.vel_lin1(x))) * vel + shift
            return h, pos + vel_out, vel_out
        return h, pos + shift

    def edge_messages(self, x: Tensor, edge_index: Tensor, radial: Tensor,
                      edge_attr: OptTensor = None) -> Tensor:
        r"""The messages :math:`\mathbf{m}_{ij}`, one row per edge.

        The first layer of :math:`\phi_e` is split by blocks of its input: node features are
        projected once per node and then gathered, and the other terms are added in place into
        the gathered buffer (none of these buffers is saved for backward), so no
        :math:`|\mathcal{E}| \times (2F + 1 + D)` concatenation is ever built.
        """
        f, hidden = self.in_channels, self.hidden_channels
        w = self.edge_lin1.weight
        # One matmul gives both halves W_i h and W_j h; the bias rides on the target half.
        proj = x @ torch.cat([w[:, :f], w[:, f: 2 * f]], dim=0).t()
        pre = (proj[:, :hidden] + self.edge_lin1.bias).index_select(0, edge_index[1])
        pre = pre.add_(proj[:, hidden:].index_select(0, edge_index[0]))
        pre = pre.addcmul_(radial, w[:, 2 * f])
        if edge_attr is not None:
            pre = pre.addmm_(edge_attr, w[:, 2 * f + 1:].t())
        m = self.act(self.edge_lin2(self.act(pre)))
        if self.att_lin is not None:
            m = m * torch.sigmoid(self.att_lin(m))
        return m

    def message(self, m: Tensor) -> Tensor:
        return m

    def aggregate(self, inputs: Tensor, index: Tensor, ptr: OptTensor = None,
                  dim_size: int | None = None) -> Tensor:
        # A plain sum: ``index_add`` is markedly faster on CPU than the broadcast
        # ``scatter_add_`` behind the generic aggregation, and its backward is a gather.
        if self.aggr != "sum":
            return super().aggregate(inputs, index, ptr=ptr, dim_size=dim_size)
        out = inputs.new_zeros(dim_size, inputs.size(-1))
        return out.index_add(0, index, inputs)

    def _validate(self, x: Tensor, pos: Tensor, edge_index: Tensor, edge_attr: OptTensor,
                  vel: OptTensor) -> OptTensor:
        check_node_features(x, "x", channels=self.in_channels)
        check_node_features(pos, "pos")
        if pos.size(0) != x.size(0):
            raise ValueError(f"pos must have one row per node of x ({x.size(0)}), got shape "
                             f"{list(pos.shape)}")
        if pos.dtype != x.dtype:
            raise ValueError(f"pos and x must have the same dtype, got {pos.dtype} and {x.dtype}")
        if pos.size(1) < 1:
            raise ValueError(f"pos must have at least one spatial dimension, got shape "
                             f"{list(pos.shape)}")
        check_edge_index(edge_index, x.size(0))
        num_edges = edge_index.size(1)
        if self.edge_dim == 0:
            if edge_attr is not None:
                raise ValueError(f"edge_attr was given (shape {list(edge_attr.shape)}) but the "
                                 f"layer was built with edge_dim=0")
        else:
            if edge_attr is None:
                raise ValueError(f"edge_attr is required: the layer was built with "
                                 f"edge_dim={self.edge_dim}")
            check_edge_features(edge_attr, num_edges, self.edge_dim)
            if edge_attr.dim() == 1:
                edge_attr = edge_attr.unsqueeze(-1)
            elif edge_attr.dim() != 2:
                raise ValueError(f"edge_attr must be 1- or 2-dimensional, got shape "
                                 f"{list(edge_attr.shape)}")
        if vel is not None:
            if not self.update_pos:
                raise ValueError("vel requires update_pos=True (velocities move the positions)")
            check_node_features(vel, "vel")
            if vel.shape != pos.shape:
                raise ValueError(f"vel must have the shape of pos {list(pos.shape)}, got "
                                 f"{list(vel.shape)}")
        return edge_attr

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"hidden_channels={self.hidden_channels}, edge_dim={self.edge_dim}, "
                f"update_pos={self.update_pos})")
