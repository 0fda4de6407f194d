"""Learnable commutative monoid aggregation, reduced segment by segment (no padding)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.nn.aggr import Aggregation

from graphlab.aggr._segment import prepare_inputs, sort_segments
from graphlab.utils.validation import check_input_dtype

__all__ = ["LCMAggregation", "tree_reduce"]

Combine = Callable[[Tensor, Tensor], Tensor]


@torch.compiler.disable(reason="the tree's depth and per-level sizes depend on the degrees")
def tree_reduce(x: Tensor, index: Tensor, dim_size: int, combine: Combine, identity: Tensor,
                key: Tensor | None = None, return_steps: bool = False
                ) -> Tensor | tuple[Tensor, Tensor]:
    r"""Reduce each segment of ``x`` with a balanced binary tree of ``combine`` calls.

    Rows are stably sorted by ``(index, key)``; at every level, ranks :math:`(2j, 2j+1)` *of the
    same segment* are combined and an unpaired last row is carried up unchanged, so a segment of
    :math:`d` rows is finished after exactly :math:`\lceil \log_2 d \rceil` sequential combine
    steps and its result depends on its own rows only. Empty segments get ``identity``.

    The number of levels and the size of every level depend on the degrees, so under
    ``torch.compile`` this function runs eagerly (``torch.compiler.disable``): one graph break,
    with shape-polymorphic graphs around it, instead of a graph per depth and batch size.

    Args:
        x (torch.Tensor): rows :math:`(E, C)`.
        index (torch.Tensor): segment of each row :math:`(E,)`, any order.
        dim_size (int): number of segments.
        combine (callable): ``combine(a, b) -> Tensor`` on row batches of equal length.
        identity (torch.Tensor): :math:`(C,)` output of empty segments.
        key (torch.Tensor, optional): secondary sort key inside each segment.
        return_steps (bool): also return the number of combine levels each segment went through.
    """
    seg = sort_segments(index, dim_size, key)
    y, sid, rank = x[seg.perm], seg.index, seg.rank
    size = seg.count[sid]  # current size of the row's segment at this tree level
    steps = torch.zeros(dim_size, dtype=torch.long, device=x.device) if return_steps else None
    max_count = int(seg.count.max()) if seg.count.numel() else 0
    done_vals, done_ids = [], []
    for _ in range(math.ceil(math.log2(max_count)) if max_count > 1 else 0):
        # Finished segments leave the working set so that later levels cost only what is left.
        fin = size == 1
        done_vals.append(y[fin])
        done_ids.append(sid[fin])
        live = ~fin
        y, sid, rank, size = y[live], sid[live], rank[live], size[live]
        even = torch.nonzero(rank % 2 == 0).squeeze(-1)  # each even rank starts a new row
        paired = torch.nonzero(rank[even] + 1 < size[even]).squeeze(-1)
        left = even[paired]
        merged = combine(y[left], y[left + 1]).to(y.dtype)  # autocast may change the dtype
        y = torch.index_put(y[even], (paired,), merged)
        if steps is not None:
            # count levels, not combines: a segment takes part in this level once
            steps = steps + torch.zeros_like(steps).index_fill(0, sid[left], 1)
        sid, rank, size = sid[even], rank[even] // 2, (size[even] + 1) // 2
    done_vals.append(y)
    done_ids.append(sid)
    out = identity.to(x.dtype).expand(dim_size, x.size(-1)).contiguous()
    out = torch.index_put(out, (torch.cat(done_ids),), torch.cat(done_vals))
    return (out, steps) if return_steps else out


class LCMAggregation(Aggregation):
    r"""The learnable commutative monoid aggregation from the `"Learnable Commutative Monoids
    for Graph Neural Networks" <https://arxiv.org/abs/2212.08541>`_ paper (Ong & Veličković,
    LoG 2022), reduced *within each segment* by a balanced binary tree.

    Rows are projected, :math:`\mathbf{h}_j = \mathrm{ReLU}(\mathbf{W}\mathbf{x}_j + \mathbf{b})`
    (as in PyG, unless ``project=False``, which combines the rows :math:`\mathbf{x}_j` as they
    are), and combined with a binary operator that is commutative by construction,

    .. math::
        a \oplus b = \tfrac{1}{2}\left[\mathrm{GRU}(a, b) + \mathrm{GRU}(b, a)\right]
        \quad\text{or}\quad
        a \oplus b = \mathrm{MLP}\left([\,a + b \,\|\, a \odot b\,]\right),

    where each operand's linear projections are computed separately and every later operation is
    elementwise and symmetric, so :math:`a \oplus b = b \oplus a` holds bit for bit. A
    neighbourhood of size :math:`d` is reduced by a balanced tree of depth
    :math:`\lceil \log_2 d \rceil`, pairing ranks :math:`(2j, 2j+1)` of the *same* neighbourhood
    (an odd last element is carried up), so, unlike PyG's
    :class:`~torch_geometric.nn.aggr.LCMAggregation`, nothing is padded to the largest degree of
    the batch: the output depends on the node's own multiset only and memory is
    :math:`\mathcal{O}(|\mathcal{E}| C)`. An empty neighbourhood returns a learned identity
    element :math:`e`. :meth:`aux_loss` returns the associativity and identity regulariser

    .. math::
        \mathbb{E}\,\|(a \oplus b) \oplus c - a \oplus (b \oplus c)\|^2
        + \mathbb{E}\,\|e \oplus a - a\|^2

    on random triples of recently aggregated rows, to be added to the training loss.

    Under ``torch.compile`` the tree reduction (its depth and level sizes depend on the degrees)
    is the one graph break: the projection compiles shape-polymorphically (``dynamic=True``
    compiles it once for all batch sizes) and the tree runs eagerly.

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Size of each output sample.
        project (bool, optional): apply the linear projection and ReLU before aggregating, as
            PyG's ``LCMAggregation(in_channels, out_channels, project=True)``; ``False``
            requires ``in_channels == out_channels``. (default: ``True``)
        combine (str, optional): ``"gru"`` (symmetrised GRU cell, as in the paper) or ``"mlp"``
            (an MLP of the symmetric features :math:`a+b, a \odot b`). (default: ``"gru"``)
        identity (str, optional): ``"learned"`` (a trainable identity element) or ``"zeros"``.
            (default: ``"learned"``)
        order (str, optional): order of the leaves inside a neighbourhood: ``"value"`` sorts by
            a fixed random projection of the projected rows, which makes the output invariant
            to the order of the input rows even though :math:`\oplus` is only approximately
            associative; ``"input"`` keeps the input order (stable). (default: ``"value"``)

    Shapes:
        - **input:** rows :math:`(E, F_{in})`, segment index :math:`(E,)` (any order) or
          ``ptr`` :math:`(N + 1,)`
        - **output:** :math:`(N, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, project: bool = True,
                 combine: str = "gru", identity: str = "learned", order: str = "value") -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if in_channels != out_channels and not project:
            raise ValueError(f"Inputs of '{self.__class__.__name__}' must be projected if "
                             f"`in_channels != out_channels` (got {in_channels} and "
                             f"{out_channels} with project=False)")
        if combine not in ("gru", "mlp"):
            raise ValueError(f"combine must be 'gru' or 'mlp', got {combine!r}")
        if identity not in ("learned", "zeros"):
            raise ValueError(f"identity must be 'learned' or 'zeros', got {identity!r}")
        if order not in ("value", "input"):
            raise ValueError(f"order must be 'value' or 'input', got {order!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.project = project
        self.combine_type = combine
        self.identity_type = identity
        self.order = order
        self.lin = nn.Linear(in_channels, out_channels) if project else None
        if combine == "gru":
            # One matrix gives both GRU projections of an operand: [W_ih; W_hh] x + [b_ih; b_hh].
            self.gru = nn.Linear(out_channels, 6 * out_channels)
        else:
            self.mlp = nn.Sequential(nn.Linear(2 * out_channels, 2 * out_channels), nn.ReLU(),
                                     nn.Linear(2 * out_channels, out_channels))
        if identity == "learned":
            self.identity = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_buffer("identity", torch.zeros(out_channels))
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("order_key", torch.randn(out_channels, generator=gen))
        self._last: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.lin is not None:
            self.lin.reset_parameters()
        if self.combine_type == "gru":
            bound = 1.0 / math.sqrt(self.out_channels)  # nn.GRUCell's initialisation
            nn.init.uniform_(self.gru.weight, -bound, bound)
            nn.init.uniform_(self.gru.bias, -bound, bound)
        else:
            for layer in self.mlp:
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        if isinstance(self.identity, nn.Parameter):
            nn.init.zeros_(self.identity)

    # ------------------------------------------------------------------ the binary operator
    def _gru(self, a: Tensor, pa: Tensor, b: Tensor, pb: Tensor) -> Tensor:
        """``GRUCell(input=a, hidden=b)`` from precomputed projections (PyTorch's gate order)."""
        c = self.out_channels
        ir, iz, in_ = pa[:, :c], pa[:, c:2 * c], pa[:, 2 * c:3 * c]
        hr, hz, hn = pb[:, 3 * c:4 * c], pb[:, 4 * c:5 * c], pb[:, 5 * c:]
        r = torch.sigmoid(ir + hr)
        z = torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * b

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        r"""The commutative operator :math:`a \oplus b` on row batches :math:`(n, C)`."""
        if self.combine_type == "mlp":
            return self.mlp(torch.cat([a + b, a * b], dim=-1))
        # Each operand is projected on its own (same shapes, same kernel), and what follows is
        # elementwise with a commutative sum, so swapping a and b gives identical bits.
        pa, pb = self.gru(a), self.gru(b)
        return 0.5 * (self._gru(a, pa, b, pb) + self._gru(b, pb, a, pa))

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, index: Tensor | None = None, ptr: Tensor | None = None,
                dim_size: int | None = None, dim: int = -2) -> Tensor:
        index, dim_size = prepare_inputs(x, index, ptr, dim_size, dim)
        if x.size(-1) != self.in_channels:
            raise ValueError(f"{self.__class__.__name__} expects x with in_channels="
                             f"{self.in_channels} channels, got shape {list(x.shape)}")
        check_input_dtype(x, self.identity)
        h = self._project(x)
        if self.training:
            self._last = h.detach()
        key = h.detach() @ self.order_key.to(h.dtype) if self.order == "value" else None
        return tree_reduce(h, index, dim_size, self.combine, self.identity, key=key)

    def _project(self, x: Tensor) -> Tensor:
        r""":math:`\mathrm{ReLU}(\mathbf{W}\mathbf{x} + \mathbf{b})`, or ``x`` itself without
        ``project``."""
        return self.lin(x).relu() if self.lin is not None else x

    def aux_loss(self, x: Tensor | None = None, num_triples: int = 256,
                 generator: torch.Generator | None = None) -> Tensor:
        r"""Associativity (and, for a learned identity, identity) regulariser.

        Args:
            x (torch.Tensor, optional): raw rows :math:`(E, F_{in})` to draw triples from; by
                default the projected rows of the last forward pass in training mode.
            num_triples (int): number of random triples :math:`(a, b, c)`.
            generator (torch.Generator, optional): source of the random triples.
        """
        h = self._project(x).detach() if x is not None else self._last
        if h is None or h.size(0) == 0:
            return self.identity.sum() * 0.0
        idx = torch.randint(0, h.size(0), (3, num_triples), generator=generator).to(h.device)
        a, b, c = h[idx[0]], h[idx[1]], h[idx[2]]
        left = self.combine(self.combine(a, b), c)
        right = self.combine(a, self.combine(b, c))
        loss = (left - right).pow(2).sum(-1).mean()
        if self.identity_type == "learned":
            e = self.identity.to(h.dtype).expand_as(a)
            loss = loss + (self.combine(e, a) - a).pow(2).sum(-1).mean()
        return loss

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"project={self.project}, combine={self.combine_type!r}, "
                f"identity={self.identity_type!r}, order={self.order!r})")
