"""The E(n)-equivariant graph convolution (EGNN)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.typing import Adj, OptTensor, PairTensor, Size

from graphlab.conv._adj import adj_sizes, check_pair_features, pair, unpack_adj
from graphlab.utils.validation import (
    check_adj,
    check_edge_features,
    check_input_dtype,
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
        in_channels (int or tuple): Size of each input node feature :math:`\mathbf{h}_i`, or
            ``(source, target)`` sizes for bipartite message passing.
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

    Inputs follow PyG's contract: ``edge_index`` may be a ``[2, E]`` tensor, an ``EdgeIndex``, a
    ``torch.sparse`` ``adj_t`` (COO/CSR/CSC, row = target) or a ``SparseTensor``; 2-D values of a
    sparse ``adj_t`` are taken as ``edge_attr`` (1-D values, edge weights, are not used by this
    layer), and per-edge inputs given beside an ``adj_t`` are read in its storage order.
    Bipartite message passing takes ``x=(x_src, x_dst)`` *and* ``pos=(pos_src, pos_dst)``: the
    messages need the positions of both endpoints, so a feature pair with a single ``pos`` is an
    error. ``size=(N_src, N_dst)`` may be given. Outputs (and ``vel``) are the target nodes'.
    PyG's ``to_hetero`` does not apply: it sums a module's single output over relations, while
    this layer returns ``(x, pos)`` and summing positions would count ``pos`` once per relation;
    a heterogeneous EGNN layer sums the bipartite feature outputs of one layer per relation.

    Mixed precision: under ``torch.autocast`` the MLPs run in the autocast dtype while
    coordinates (differences, squared distances, the position and velocity updates) stay in
    ``pos``'s dtype (keep ``pos`` float32): a bf16 difference of two nearby points keeps only a
    few significant digits and equivariance would degrade. ``x`` may then be bf16/fp16 (from an
    earlier layer) while ``pos`` is float32; outside autocast they must share a dtype.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` (or a source/target pair),
          positions :math:`(|\mathcal{V}|, n)` (or a pair), edge indices
          :math:`(2, |\mathcal{E}|)` or a sparse ``adj_t`` :math:`(|\mathcal{V}_t|,
          |\mathcal{V}_s|)`, edge features :math:`(|\mathcal{E}|, D)` *(optional)*, velocities
          :math:`(|\mathcal{V}_t|, n)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}_t|, F_{out})`, positions
          :math:`(|\mathcal{V}_t|, n)`, and velocities :math:`(|\mathcal{V}_t|, n)` if given
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
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
        f_src, f_dst = (in_channels, in_channels) if isinstance(in_channels, int) else in_channels
        self._in_pair = (f_src, f_dst)
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
        self.edge_lin1 = nn.Linear(f_dst + f_src + 1 + edge_dim, hidden_channels)
        self.edge_lin2 = nn.Linear(hidden_channels, hidden_channels)
        self.att_lin = nn.Linear(hidden_channels, 1) if attention else None
        self.node_lin1 = nn.Linear(f_dst + hidden_channels, hidden_channels)
        self.node_lin2 = nn.Linear(hidden_channels, out_channels)
        self.skip = (nn.Linear(f_dst, out_channels, bias=False)
                     if residual and f_dst != out_channels else None)
        if update_pos:
            self.coord_lin1 = nn.Linear(hidden_channels, hidden_channels)
            self.coord_lin2 = nn.Linear(hidden_channels, 1, bias=False)
            self.vel_lin1 = nn.Linear(f_dst, hidden_channels)
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
        x: Tensor | PairTensor,
        pos: Tensor | PairTensor,
        edge_index: Adj,
        edge_attr: OptTensor = None,
        vel: OptTensor = None,
        size: Size = None,
    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
        """Returns ``(x_out, pos_out)``, or ``(x_out, pos_out, vel_out)`` when ``vel`` is given.

        For bipartite input (``x=(x_src, x_dst)``, ``pos=(pos_src, pos_dst)``) the outputs and
        ``vel`` belong to the target nodes.
        """
        x_src, x_dst = pair(x)
        pos_src, pos_dst = pair(pos, "pos")
        n_src, n_dst = adj_sizes(edge_index, size, x_src.size(0), x_dst.size(0))
        edge_index, edge_attr = self._validate(x, pos, x_src, x_dst, pos_src, pos_dst, edge_index,
                                               edge_attr, vel, n_src, n_dst)

        src, dst = edge_index[0], edge_index[1]
        # Coordinates stay in pos's dtype (float32 under autocast): the geometry is what the
        # equivariance rests on, and a bf16 difference of nearby points loses most of its digits.
        diff = pos_dst.index_select(0, dst) - pos_src.index_select(0, src)  # x_i - x_j
        radial = (diff * diff).sum(dim=-1, keepdim=True)
        m = self.edge_messages((x_src, x_dst), edge_index, radial, edge_attr)
        msg = self.propagate(edge_index, m=m, size=(n_src, n_dst))

        h = self.node_lin2(self.act(self.node_lin1(torch.cat([x_dst, msg.to(x_dst.dtype)], -1))))
        if self.residual:
            h = h + (x_dst if self.skip is None else self.skip(x_dst))
        if not self.update_pos:
            return h, pos_dst

        phi = self.coord_lin2(self.act(self.coord_lin1(m)))
        if self.tanh:
            phi = torch.tanh(phi) * (1.0 if self.coords_range is None else self.coords_range)
        elif self.coords_range is not None:
            phi = phi.clamp(-self.coords_range, self.coords_range)
        if self.normalize:
            # Detached norm + eps (as the authors do): no infinite gradient of sqrt at 0.
            diff = diff / (radial.detach().sqrt() + self.eps)
        shift = pos_dst.new_zeros(pos_dst.shape).index_add(0, dst, diff * phi.to(diff.dtype))
        if self.pos_aggr == "mean":
            deg = pos_dst.new_zeros(n_dst).index_add(0, dst, radial.new_ones(dst.numel()))
            shift = shift / deg.clamp(min=1).unsqueeze(-1)
        if vel is not None:
            scale = self.vel_lin2(self.act(self.vel_lin1(x_dst))).to(vel.dtype)
            vel_out = scale * vel + shift
            return h, pos_dst + vel_out, vel_out
        return h, pos_dst + shift

    def edge_messages(self, x: Tensor | PairTensor, edge_index: Tensor, radial: Tensor,
                      edge_attr: OptTensor = None) -> Tensor:
        r"""The messages :math:`\mathbf{m}_{ij}`, one row per edge.

        The first layer of :math:`\phi_e` is split by blocks of its input: node features are
        projected once per node and then gathered, and the other terms are added in place into
        the gathered buffer (none of these buffers is saved for backward), so no
        :math:`|\mathcal{E}| \times (2F + 1 + D)` concatenation is ever built. ``x`` is the node
        features or the pair ``(x_src, x_dst)``.
        """
        x_src, x_dst = pair(x)
        f_src, f_dst = self._in_pair
        hidden = self.hidden_channels
        w = self.edge_lin1.weight
        if x_src is x_dst:
            # One matmul gives both halves W_i h and W_j h; the bias rides on the target half.
            proj = x_dst @ torch.cat([w[:, :f_dst], w[:, f_dst: f_dst + f_src]], dim=0).t()
            proj_dst, proj_src = proj[:, :hidden], proj[:, hidden:]
        else:
            proj_dst = x_dst @ w[:, :f_dst].t()
            proj_src = x_src @ w[:, f_dst: f_dst + f_src].t()
        pre = (proj_dst + self.edge_lin1.bias).index_select(0, edge_index[1])
        pre = pre.add_(proj_src.index_select(0, edge_index[0]))
        # under autocast the projections are low precision; the in-place updates keep that dtype
        pre = pre.addcmul_(radial.to(pre.dtype), w[:, f_dst + f_src].to(pre.dtype))
        if edge_attr is not None:
            pre = pre.addmm_(edge_attr.to(pre.dtype), w[:, f_dst + f_src + 1:].t().to(pre.dtype))
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

    def _validate(self, x: Tensor | PairTensor, pos: Tensor | PairTensor, x_src: Tensor,
                  x_dst: Tensor, pos_src: Tensor, pos_dst: Tensor, edge_index: Adj,
                  edge_attr: OptTensor, vel: OptTensor, n_src: int, n_dst: int
                  ) -> tuple[Tensor, OptTensor]:
        if isinstance(x, (tuple, list)) != isinstance(pos, (tuple, list)):
            raise ValueError("x and pos must both be tensors or both be (source, target) pairs: "
                             "messages need the features and the positions of both endpoints")
        f_src, f_dst = self._in_pair
        check_pair_features(x_src, x_dst, n_src, n_dst, channels=(f_src, f_dst))
        sides = ((pos_dst, n_dst, ""),) if pos_src is pos_dst else \
            ((pos_src, n_src, "source "), (pos_dst, n_dst, "target "))
        for p, n, what in sides:
            check_node_features(p, "pos")
            if p.size(0) != n:
                raise ValueError(f"pos must have one row per {what}node of x ({n}), got shape "
                                 f"{list(p.shape)}")
        if pos_src.size(1) != pos_dst.size(1):
            raise ValueError(f"pos[0] and pos[1] must have the same spatial dimension, got "
                             f"{pos_src.size(1)} and {pos_dst.size(1)}")
        if pos_dst.size(1) < 1:
            raise ValueError(f"pos must have at least one spatial dimension, got shape "
                             f"{list(pos_dst.shape)}")
        # under autocast x may arrive in bf16/fp16 from an earlier layer while pos stays float32
        if pos_dst.dtype != x_dst.dtype and not torch.is_autocast_enabled(x_dst.device.type):
            raise ValueError(f"pos and x must have the same dtype outside torch.autocast, got "
                             f"{pos_dst.dtype} and {x_dst.dtype}")
        check_input_dtype(x_dst, self.edge_lin1.weight, "x")
        check_adj(edge_index, (n_src, n_dst))
        edge_index, values = unpack_adj(edge_index)
        if values is not None and values.dim() == 2 and edge_attr is None:
            edge_attr = values  # PyG's convention: 2-D sparse values are edge features
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
            if vel.shape != pos_dst.shape:
                raise ValueError(f"vel must have the shape of pos {list(pos_dst.shape)}, got "
                                 f"{list(vel.shape)}")
        return edge_index, edge_attr

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"hidden_channels={self.hidden_channels}, edge_dim={self.edge_dim}, "
                f"update_pos={self.update_pos})")
