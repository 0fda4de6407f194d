"""One discrete step of neural sheaf diffusion as an ordinary (inductive, batchable) layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj
from torch_geometric.utils import scatter

from graphlab.conv._adj import validated_adj
from graphlab.conv.sheaf_learner import SheafLearner
from graphlab.nn.orthogonal import small_matmul, sym_inv_sqrt
from graphlab.utils.validation import check_finite, check_input_dtype, check_node_features

__all__ = ["SheafConv"]

_MAPS = ("diag", "orthogonal", "general", "given")


def _apply_blocks(block: Tensor, x: Tensor) -> Tensor:
    """``block @ x`` for per-edge diagonal ``[E, d]`` or full ``[E, d, d]`` blocks, ``x`` ``[E, d, c]``."""
    if block.dim() == 2:
        return block.unsqueeze(-1) * x
    return small_matmul(block, x)


class _EdgeBlockSum(torch.autograd.Function):
    r"""``out[v] = sum_{e=(u->v)} B_e y[u]``: the off-diagonal part of the sheaf Laplacian.

    Autograd through ``index_select`` / multiply / ``index_add_`` would keep the gathered
    ``[E, d, c]`` features of every layer for the backward pass; this keeps only ``B`` and ``y``
    and gathers again in the backward, so the saved memory per layer is ``O(N d c + E d^2)``.
    """

    @staticmethod
    def forward(ctx, block: Tensor, y: Tensor, src: Tensor, dst: Tensor,  # type: ignore[override]
                num_nodes: int) -> Tensor:
        ctx.dtypes = block.dtype, y.dtype
        # explicit promotion instead of autocast's per-op casts (bf16 inputs stay bf16)
        dtype = torch.promote_types(block.dtype, y.dtype)
        block, y = block.to(dtype), y.to(dtype)
        ctx.save_for_backward(block, y, src, dst)
        with torch.autocast(y.device.type, enabled=False):
            msg = _apply_blocks(block, y.index_select(0, src))
            return msg.new_zeros((num_nodes,) + msg.shape[1:]).index_add_(0, dst, msg)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        block, y, src, dst = ctx.saved_tensors
        grad_block = grad_y = None
        with torch.autocast(y.device.type, enabled=False):
            g = grad.to(y.dtype).index_select(0, dst)  # [E, d, c]
            if ctx.needs_input_grad[0]:
                y_src = y.index_select(0, src)
                grad_block = (g * y_src).sum(-1) if block.dim() == 2 else g @ y_src.mT
                grad_block = grad_block.to(ctx.dtypes[0])
            if ctx.needs_input_grad[1]:
                back = _apply_blocks(block.mT if block.dim() == 3 else block, g)
                grad_y = back.new_zeros(y.shape).index_add_(0, src, back).to(ctx.dtypes[1])
        return grad_block, grad_y, None, None, None


class SheafConv(MessagePassing):
    r"""The sheaf diffusion layer from the `"Neural Sheaf Diffusion: A Topological Perspective on
    Heterophily and Oversmoothing in GNNs" <https://arxiv.org/abs/2202.04579>`_ paper, which with
    fixed orthogonal maps is the connection-Laplacian layer of `"Sheaf Neural Networks with
    Connection Laplacians" <https://arxiv.org/abs/2206.08702>`_.

    Node features hold :math:`d` stalks of ``channels`` numbers each,
    :math:`\mathbf{X} \in \mathbb{R}^{nd \times c}`. One step is

    .. math::
        \mathbf{X} \leftarrow (1 + \tanh \boldsymbol{\varepsilon}) \odot \mathbf{X}
        - \sigma\big(\Delta_{\mathcal{F}} (\mathbf{I}_n \otimes \mathbf{W}_1)
        \mathbf{X} \mathbf{W}_2\big),
        \qquad
        \Delta_{\mathcal{F}} = \tilde{\mathbf{D}}^{-1/2} \mathbf{L}_{\mathcal{F}}
        \tilde{\mathbf{D}}^{-1/2},

    with the sheaf Laplacian blocks
    :math:`\mathbf{L}_{vv} = \sum_{e \ni v} \mathcal{F}_{v \trianglelefteq e}^\top
    \mathcal{F}_{v \trianglelefteq e}`,
    :math:`\mathbf{L}_{vu} = -\mathcal{F}_{v \trianglelefteq e}^\top
    \mathcal{F}_{u \trianglelefteq e}` and :math:`\tilde{\mathbf{D}} = \mathrm{blockdiag}
    (\mathbf{L}) + \mathbf{I}` (``augmented``; without it :math:`\tilde{\mathbf{D}}` is the
    block diagonal itself). :math:`\Delta_{\mathcal{F}}` is applied edge-wise with one
    :math:`d \times d` block (or :math:`d` numbers) per edge, gathered, multiplied and summed in
    one fused step whose backward keeps no per-edge features; the :math:`nd \times nd` matrix is
    never formed. For general maps :math:`\tilde{\mathbf{D}}_v^{-1/2}` is an eigen-decomposition
    with a backward that stays finite at repeated eigenvalues (no jitter, no clamping of the maps).

    Each directed edge :math:`(u \to v)` contributes the :math:`v`-row of the Laplacian, so for
    :math:`\Delta_{\mathcal{F}}` to be the symmetric sheaf Laplacian ``edge_index`` must contain
    both directions of every edge with the same pair of maps (what :class:`SheafLearner` and
    :class:`~graphlab.transforms.ConnectionSheaf` produce).

    Args:
        channels (int): channels per stalk :math:`c`.
        stalk_dim (int): stalk dimension :math:`d`; features have :math:`d \cdot c` columns.
        maps (str): ``"diag"``, ``"orthogonal"``, ``"general"`` (learned by a
            :class:`SheafLearner`) or ``"given"`` (passed to :meth:`forward`).
        orthogonal (str): ``"householder"`` or ``"cayley"`` parametrisation of orthogonal maps.
        edge_weights (bool): learn a scale for orthogonal maps.
        learner_act (str): activation of the sheaf learner (``"tanh"``).
        act (str | None): :math:`\sigma`, ``"elu"`` (default) or ``None``.
        left_weights (bool): use :math:`\mathbf{W}_1` (:math:`d \times d`, identity at init).
        right_weights (bool): use :math:`\mathbf{W}_2` (:math:`c \times c`, orthogonal at init).
        add_eps (bool): learn :math:`\boldsymbol{\varepsilon} \in \mathbb{R}^d` (zero at init).
        normalised (bool): use :math:`\Delta_{\mathcal{F}}`; otherwise :math:`\mathbf{L}`.
        augmented (bool): add :math:`\mathbf{I}` to the normaliser (keeps isolated nodes finite).
        dropout (float): dropout on the diffusion branch (learner and Laplacian inputs) in
            training; the residual term :math:`\mathbf{X}` is not dropped, as in the reference.
        given_orthogonal (bool): with ``maps="given"``, promise that the maps are orthogonal
            up to a scale (e.g. :class:`~graphlab.transforms.ConnectionSheaf`'s), so the
            normaliser blocks are multiples of :math:`\mathbf{I}` (a scalar per node) and no
            eigen-decomposition runs, as for learned orthogonal maps.

    ``edge_index`` may be a ``[2, E]`` tensor, an ``EdgeIndex``, a ``torch.sparse`` ``adj_t``
    (COO/CSR/CSC, row = target; given ``maps`` then follow its storage order, and its values are
    not used) or a ``SparseTensor``. The layer is not bipartite: the Laplacian's diagonal blocks
    and normaliser live on one node set, so ``x`` is a single tensor (a pair is refused).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, d \cdot c)`, edge indices
          :math:`(2, |\mathcal{E}|)` or a sparse ``adj_t``, optional maps
          :math:`(|\mathcal{E}|, 2, d)` (diagonal) or :math:`(|\mathcal{E}|, 2, d, d)`
          (target-side map first)
        - **output:** node features :math:`(|\mathcal{V}|, d \cdot c)`
    """

    def __init__(self, channels: int, stalk_dim: int, maps: str = "diag",
                 orthogonal: str = "householder", edge_weights: bool = True,
                 learner_act: str = "tanh", act: str | None = "elu", left_weights: bool = True,
                 right_weights: bool = True, add_eps: bool = True, normalised: bool = True,
                 augmented: bool = True, dropout: float = 0.0,
                 given_orthogonal: bool = False) -> None:
        super().__init__(aggr="add", node_dim=0)
        if maps not in _MAPS:
            raise ValueError(f"maps must be one of {_MAPS}, got {maps!r}")
        if act not in ("elu", None):
            raise ValueError(f"act must be 'elu' or None, got {act!r}")
        self.channels = channels
        self.stalk_dim = stalk_dim
        self.maps = maps
        self.act = act
        self.normalised = normalised
        self.augmented = augmented
        self.dropout = dropout
        if given_orthogonal and maps != "given":
            raise ValueError("given_orthogonal applies to maps='given' only (learned orthogonal "
                             "maps use the scalar normaliser already)")
        self.given_orthogonal = given_orthogonal
        d = stalk_dim
        self.learner = None if maps == "given" else SheafLearner(
            d * channels, d, maps, orthogonal=orthogonal, edge_weights=edge_weights,
            act=learner_act)
        self.left = nn.Linear(d, d, bias=False) if left_weights else None
        self.right = nn.Linear(channels, channels, bias=False) if right_weights else None
        self.eps = nn.Parameter(torch.zeros(d, 1)) if add_eps else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.learner is not None:
            self.learner.reset_parameters()
        if self.left is not None:
            nn.init.eye_(self.left.weight)
        if self.right is not None:
            nn.init.orthogonal_(self.right.weight)
        if self.eps is not None:
            nn.init.zeros_(self.eps)

    # ------------------------------------------------------------------ Laplacian
    def _check_maps(self, maps: Tensor, num_edges: int, dtype: torch.dtype) -> None:
        d = self.stalk_dim
        if not isinstance(maps, Tensor) or not maps.is_floating_point():
            raise ValueError(f"maps must be a floating-point tensor, got {type(maps).__name__}"
                             f"{'' if not isinstance(maps, Tensor) else ' of ' + str(maps.dtype)}")
        check_finite(maps, "maps")
        ok = maps.dim() in (3, 4) and maps.shape[:3] == (num_edges, 2, d) and (
            maps.dim() == 3 or maps.size(3) == d)
        if not ok:
            raise ValueError(f"maps must have shape [E, 2, d] or [E, 2, d, d] with E={num_edges}, "
                             f"d={d}, got {list(maps.shape)}")
        if maps.dtype != dtype and not torch.is_autocast_enabled(maps.device.type):
            raise ValueError(f"maps must have the dtype of x ({dtype}), got {maps.dtype}")

    def laplacian(self, x: Tensor, edge_index: Tensor, maps: Tensor,
                  scaled_orthogonal: bool = False) -> Tensor:
        r"""Apply :math:`\Delta_{\mathcal{F}}` (or :math:`\mathbf{L}_{\mathcal{F}}` when not
        ``normalised``) to stalk features ``x`` of shape ``[N, d, c]`` (any ``c``).

        ``maps`` as returned by :class:`SheafLearner`: ``[E, 2, d]`` or ``[E, 2, d, d]``. With
        ``scaled_orthogonal`` (the caller promises maps :math:`s\mathbf{Q}`, :math:`\mathbf{Q}`
        orthogonal) the diagonal blocks are :math:`(\sum_e s_e^2)\mathbf{I}` with
        :math:`s_e^2 = \|\mathcal{F}\|_F^2 / d`, a scalar per node: no eigen-decomposition and
        no :math:`d \times d` products with them run.

        The off-diagonal part is one fused gather / block product / ``index_add_`` whose
        backward gathers again instead of keeping the ``[E, d, c]`` messages.
        """
        num_nodes, d = x.size(0), self.stalk_dim
        dst = edge_index[1]
        tgt, srcm = maps[:, 0], maps[:, 1]
        if maps.dim() == 3:  # diagonal maps: everything is elementwise
            diag = scatter(tgt * tgt, dst, 0, dim_size=num_nodes, reduce="sum")  # [N, d]
            block = tgt * srcm  # [E, d] = F_v^T F_u
            if self.normalised:
                norm = diag + 1.0 if self.augmented else diag
                inv = norm.clamp_min(1e-12).rsqrt() * (norm > 0)
                y = x * inv.unsqueeze(-1)
            else:
                y = x
            agg = _EdgeBlockSum.apply(block, y, edge_index[0], dst, num_nodes)
            out = diag.unsqueeze(-1) * y - agg
            return out * inv.unsqueeze(-1) if self.normalised else out
        if self.normalised and scaled_orthogonal:
            # F = sQ with Q orthogonal: F^T F = s^2 I = (|F|_F^2 / d) I, so D_v is a scalar per
            # node and neither the d x d diagonal blocks nor their product with y are formed
            sq = (tgt * tgt).sum((-1, -2)) / d  # [E] = s^2
            diag = scatter(sq, dst, 0, dim_size=num_nodes, reduce="sum")  # [N]
            scale = diag + (1.0 if self.augmented else 0.0)
            inv = (scale.clamp_min(1e-12).rsqrt() * (scale > 0))[:, None, None]
            y = inv * x
            block = small_matmul(tgt.transpose(-1, -2), srcm)  # [E, d, d] = F_v^T F_u
            agg = _EdgeBlockSum.apply(block, y, edge_index[0], dst, num_nodes)
            return inv * (diag[:, None, None] * y - agg)
        tgt_t = tgt.transpose(-1, -2)
        diag = scatter(small_matmul(tgt_t, tgt), dst, 0, dim_size=num_nodes, reduce="sum")
        block = small_matmul(tgt_t, srcm)  # [E, d, d] = F_v^T F_u
        if self.normalised:
            norm = diag + torch.eye(d, dtype=x.dtype, device=x.device) if self.augmented else diag
            inv = sym_inv_sqrt(0.5 * (norm + norm.transpose(-1, -2)))
            y = small_matmul(inv, x)
        else:
            y = x
        agg = _EdgeBlockSum.apply(block, y, edge_index[0], dst, num_nodes)
        out = small_matmul(diag, y) - agg
        return small_matmul(inv, out) if self.normalised else out

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, edge_index: Adj, maps: Tensor | None = None) -> Tensor:
        d, c = self.stalk_dim, self.channels
        if isinstance(x, (tuple, list)):
            raise ValueError("SheafConv is not bipartite: the sheaf Laplacian is an operator on "
                             "one node set (its diagonal blocks and normaliser need every edge "
                             "at both endpoints), so x must be one tensor")
        check_node_features(x, "x", channels=d * c)
        check_input_dtype(x, self, "x")
        n = x.size(0)
        edge_index, _ = validated_adj(edge_index, n, n)
        if maps is not None:
            self._check_maps(maps, edge_index.size(1), x.dtype)
        elif self.learner is None:
            raise ValueError("SheafConv(maps='given') needs the maps argument in forward")
        h = F.dropout(x, self.dropout, self.training)
        learned = maps is None
        if learned:
            maps = self.learner(h, edge_index)
        h = h.reshape(n, d, c)
        if self.left is not None:  # (I_n (x) W1): mixes the d stalk coordinates of each node
            h = small_matmul(self.left.weight, h)
        if self.right is not None:
            h = self.right(h)
        scaled_orthogonal = (self.given_orthogonal if not learned else self.maps == "orthogonal")
        h = self.laplacian(h, edge_index, maps, scaled_orthogonal)
        if self.act == "elu":
            h = F.elu(h)
        x0 = x.reshape(n, d, c)
        if self.eps is not None:
            x0 = (1.0 + torch.tanh(self.eps)) * x0
        return (x0 - h).reshape(n, d * c)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, stalk_dim={self.stalk_dim}, "
                f"maps={self.maps!r})")
