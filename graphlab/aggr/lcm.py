"""Learnable commutative monoid aggregation, reduced segment by segment (no padding)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch_geometric.nn.aggr import Aggregation

from graphlab.aggr import _lcm_fused
from graphlab.aggr._segment import Workspace, WorkspaceMixin, prepare_inputs, sort_segments
from graphlab.utils.validation import check_input_dtype

__all__ = ["LCMAggregation", "TreePlan", "tree_plan", "tree_reduce"]

Combine = Callable[[Tensor, Tensor], Tensor]


#: pairs per block: a block's gate tensors ([2 x BLOCK, 3C]) stay in cache, and no temporary is
#: large enough for the allocator to map fresh (page-faulting) memory on every call
BLOCK = 2048


class TreePlan(NamedTuple):
    """Which rows every level of the segment trees combines, built with tensor ops.

    Rows are numbered in one buffer: ``0..E-1`` are the input rows (in input order), then each
    level appends its combined rows. ``left[l]`` and ``right[l]`` name the operands of level
    ``l``'s pairs, whose results are rows ``offsets[l]`` onwards. Every row is the operand of
    exactly one pair or the root of its segment, so the backward pass needs no accumulation: the
    gradients of a block's operands are written contiguously into one buffer (segment roots
    first, then, pair after pair of every level in order, its left and its right operand's) and
    ``source`` says where each row's gradient lies in it.
    """

    left: list[Tensor]
    right: list[Tensor]
    offsets: list[int]
    root: Tensor  # [dim_size] root row of each segment; num_rows (a zero row) for empty ones
    empty: Tensor  # [dim_size] bool
    steps: Tensor  # [dim_size] levels each segment takes part in (ceil(log2 count))
    source: Tensor  # [num_rows] position of each row's gradient in the gradient buffer
    num_rows: int  # input rows + combined rows


def tree_plan(index: Tensor, dim_size: int, key: Tensor | None = None) -> TreePlan:
    r"""Plan the balanced trees of :func:`tree_reduce`: at every level, ranks :math:`(2j, 2j+1)`
    of a segment pair up and an odd last element is carried up unchanged.

    Segments are visited by decreasing size, so the segments still alive at level :math:`l`
    (size :math:`> 2^l`) are a prefix and level :math:`l` costs only what is left of the tree,
    :math:`\mathcal{O}(E)` over all levels. Two host reads in all (the depth, then every level's
    size), whatever the depth. On the CPU the same plan is built with NumPy
    (:mod:`graphlab.aggr._tree_plan_cpu`), where torch's per-op overhead dominates.
    """
    if index.device.type == "cpu":
        # imported here: that module imports TreePlan from this one
        from graphlab.aggr._tree_plan_cpu import tree_plan_cpu

        return tree_plan_cpu(index, dim_size, key)
    return _tree_plan_torch(index, dim_size, key)


def _tree_plan_torch(index: Tensor, dim_size: int, key: Tensor | None = None) -> TreePlan:
    """:func:`tree_plan` with torch ops, on any device."""
    seg = sort_segments(index, dim_size, key)
    device = index.device
    num_rows = index.numel()
    empty = seg.count == 0
    if num_rows == 0:
        zeros = torch.zeros(dim_size, dtype=torch.long, device=device)
        return TreePlan([], [], [], zeros, empty, zeros, zeros[:0], 0)
    order = torch.argsort(seg.count, descending=True, stable=True)
    deg, first = seg.count[order], seg.start[order]
    depth = (int(deg[0]) - 1).bit_length()  # ceil(log2 max degree)
    shift = torch.arange(depth, device=device)
    multi = deg[:int((deg > 1).sum())] if depth else deg[:0]
    # size of every surviving segment at every level, ceil(d / 2^l), and its pairs (half of it)
    size = (multi[None, :] + (1 << shift)[:, None] - 1) >> shift[:, None]
    sizes = torch.cat([(size >> 1).sum(1), (size > 1).sum(1)]).tolist()
    pairs, alive = sizes[:depth], sizes[depth:]
    perm = seg.perm
    last = perm[first[:multi.numel()] + multi - 1]  # row of each segment's last element
    root = perm[first.clamp(max=num_rows - 1)]  # a segment of one row is its own root
    steps = torch.zeros(dim_size, dtype=torch.long, device=device)
    lefts, rights, offsets = [], [], []
    offset, prev_base, prev_pairs = num_rows, None, None
    for level in range(depth):
        n, count = alive[level], pairs[level]
        m = size[level, :n]
        p = m >> 1
        pstart = torch.cumsum(p, 0) - p
        owner = torch.repeat_interleave(torch.arange(n, device=device), p, output_size=count)
        twice_j = 2 * (torch.arange(count, device=device) - pstart[owner])
        if level == 0:
            pos = first[owner] + twice_j
            left, right = perm[pos], perm[pos + 1]
        else:  # a left operand is always a combined row; a right one may have been carried
            left = prev_base[owner] + twice_j
            right = torch.where(twice_j + 1 < prev_pairs[owner], left + 1, last[owner])
        base = offset + pstart
        last = torch.where(m % 2 == 1, last[:n], base + p - 1)
        root[:n] = torch.where(m == 2, base, root[:n])
        steps[:n] += 1
        lefts.append(left)
        rights.append(right)
        offsets.append(offset)
        prev_base, prev_pairs = base, p
        offset += count
    unsort = torch.empty_like(order)
    unsort[order] = torch.arange(dim_size, device=device)
    root = torch.where(empty, offset, root[unsort])
    # gradient buffer: [roots (dim_size); per pair (of all levels, in order): its left operand's
    # gradient, its right operand's] (the operands as interleaved in a block of the operator)
    source = torch.empty(offset, dtype=torch.long, device=device)
    source[root[~empty]] = torch.arange(dim_size, device=device)[~empty]
    if depth:
        pos = torch.arange(dim_size, dim_size + 2 * (offset - num_rows), 2, device=device)
        source[torch.cat(lefts)] = pos
        source[torch.cat(rights)] = pos + 1
    return TreePlan(lefts, rights, offsets, root, empty, steps[unsort], source, offset)


def _flat(buf: Tensor, at: int, rows: int, cols: int) -> Tensor:
    """A contiguous ``[rows, cols]`` view of ``buf``'s memory from element ``at`` on."""
    return buf.view(-1)[at:at + rows * cols].view(rows, cols)


class _GRUPairs:
    r"""The symmetrised GRU operator on a block of pairs, with a hand-written backward.

    The forward pass gathers a block of :math:`h` pairs as rows
    :math:`a_0, b_0, b_0, a_0, a_1, b_1, \ldots` (``x``, :math:`[4h, C]`). Viewed
    :math:`[2h, 2C]`, its rows are the inputs of the two orders, :math:`[a_j | b_j]` and
    :math:`[b_j | a_j]`, and their first halves are the operands :math:`a_j, b_j`. So

    * the r and z gates of both orders are one matrix product whose inner dimension does the
      input-plus-hidden sum, :math:`\sigma([a | b] [W_{i,rz}, W_{h,rz}]^\top + b_{i,rz} +
      b_{h,rz})` (per pair :math:`[r_a, z_a, r_b, z_b]`);
    * :math:`[W_{in}; W_{hn}]` of the operands is another (per pair :math:`[i_a, g_a, i_b, g_b]`,
      :math:`g` being the hidden-side :math:`W_{hn} h + b_{hn}`), and
      :math:`n_a = \tanh(i_a + r_a \odot g_b)` is written over :math:`i_a`, likewise
      :math:`n_b`;

    both straight into the stored activations, :math:`8C` values per pair
    (:math:`[r_a, z_a, r_b, z_b]` and :math:`[n_a, 2 g_a, n_b, 2 g_b]`): every term of pair
    :math:`j` lies in row :math:`j` of a product, and nothing is copied between rows. The tanh is
    :math:`2 \sigma(2 y) - 1` (a CPU sigmoid is ~4x faster than a tanh), the factor 2 of its
    argument folded into the second product's weights (exact: a power of two).

    Swapping :math:`a_j` and :math:`b_j` swaps rows of the two products and the two orders of the
    elementwise work, whose results are summed, so :math:`a \oplus b = b \oplus a` holds bit for
    bit wherever the BLAS gives a row the same result at every position of the matrix (MKL here:
    8 to 64 channels in float32 and float64, not 3 or 5 channels in float32).
    A single product of :math:`[a | b]` with both orders' weight columns would never be: the
    inner sums of the two orders would add the same terms in different orders.

    The backward pass gathers the operands as ``a, b`` (``[2h, C]``) and is four matrix
    products around a dozen elementwise passes; the parameters' gradients accumulate in the
    products' layout and are mapped back to the GRU's weight and bias once per call
    (:meth:`param_grads`).
    """

    def __init__(self, weight: Tensor, bias: Tensor, fused: bool = False) -> None:
        self.c = weight.size(1)
        self.weight, self.bias = weight, bias
        self.fused = fused  # elementwise work as the compiled kernels of _lcm_fused
        self.params = (weight, bias)
        self.saved: Tensor | None = None
        self.grads: list[Tensor] = []

    def level_ids(self, left: Tensor, right: Tensor, backward: bool = False) -> Tensor:
        """A level's operand rows in the order its blocks gather them (built once per level, not
        per block): ``a, b, b, a`` per pair for the forward pass, ``a, b`` for the backward."""
        return torch.stack([left, right] if backward else [left, right, right, left], 1).view(-1)

    def gather(self, rows: Tensor, ids: Tensor, lo: int, width: int, buf: Tensor,
               backward: bool = False) -> Tensor:
        """The operands of the level's pairs ``lo .. lo + width - 1`` into ``buf``."""
        k = 2 if backward else 4
        return torch.index_select(rows, 0, ids[k * lo:k * (lo + width)], out=buf[:k * width])

    def level_grad_ids(self, source: Tensor) -> Tensor:
        """The gradients of a level's results, each row twice (once per order): the backward's
        elementwise passes then run on plain row-strided views (TensorIterator runs a broadcast
        over the two orders as a loop per pair, 2-4x slower)."""
        return torch.stack([source, source], 1).view(-1)

    def gather_grad(self, grad: Tensor, ids: Tensor, lo: int, width: int, buf: Tensor) -> Tensor:
        return torch.index_select(grad, 0, ids[2 * lo:2 * (lo + width)], out=buf[:2 * width])

    def _weights(self) -> None:
        """The products' weights, built once per call from the GRU's ``[6C, C]`` weight
        ``[W_ir; W_iz; W_in; W_hr; W_hz; W_hn]`` and its bias."""
        c, w, b = self.c, self.weight.detach(), self.bias.detach()
        w_i, w_h = w[:2 * c], w[3 * c:5 * c]  # the r and z rows
        # [a | b] @ w_rz + b_rz: the r and z pre-activations of GRU(a, b)
        self.w_rz = torch.cat([w_i, w_h], 1).t()  # [2C, 2C]
        self.b_rz = b[:2 * c] + b[3 * c:5 * c]
        w_n = torch.cat([w[2 * c:3 * c], w[5 * c:]])  # [2C, C]: [W_in; W_hn]
        self.w_n2, self.b_n2 = 2 * w_n, 2 * torch.cat([b[2 * c:3 * c], b[5 * c:]])
        self.w_n2_t = self.w_n2.t()
        self.minus_one = b.new_full((), -1.0)
        self.one_half = b.new_full((), 0.5)  # a 0-dim tensor: a Python scalar costs ~3 us per op
        # backward: [d a | d b] of a pair from the gradients of [r_a, z_a, r_b, z_b] (as
        # [b | a] @ w_rz gives GRU(b, a)'s) and of [i, g]; scaled as those (see backward)
        self.w_rz_back = torch.cat([torch.cat([w_i, w_h], 1), torch.cat([w_h, w_i], 1)])
        self.w_rz_back.view(4, c, 2 * c).mul_(self._gate_scale().view(4, 1, 1))
        self.w_n_half = 0.5 * w_n

    def _gate_scale(self) -> Tensor:
        """Per gate row ``[r_a, z_a, r_b, z_b]``, the backward's gradients of the gates are
        ``1 / scale`` times the true ones: 4 for r (its ``d r = d s 2 g``), 2 for z."""
        return self.bias.new_tensor([0.25, 0.5, 0.25, 0.5])

    def start(self, operand_rows: int, store: bool, like: Tensor, ws: Workspace) -> None:
        """Before the forward pass: ``store`` keeps the activations of ``operand_rows`` rows.
        The per-block temporaries are workspace buffers too: a fresh multi-megabyte temporary
        per block is page-faulted anew (as costly as the block's matrix product)."""
        self._weights()
        # rows [r_a, z_a, r_b, z_b] of every pair, then rows [n_a, 2 g_a, n_b, 2 g_b]
        self.saved = ws.empty("saved", operand_rows, 4 * self.c, like) if store else None
        self.pair_tmp = ws.empty("pair_tmp", 2 * BLOCK, self.c, like)
        # without a backward pass the gates of one block at a time suffice
        self.gates = None if store else ws.empty("gates", 2 * BLOCK, 4 * self.c, like)

    def finish(self) -> Tensor | None:
        """After the forward pass: hand the stored activations to the caller (which saves them
        for backward) and drop every workspace view, so that the buffers are free again once
        the graph is (e.g. while a training loop still holds the previous loss)."""
        saved, self.saved = self.saved, None
        self.pair_tmp = self.gates = None
        return saved

    def reset(self) -> None:
        self.grads = []

    def _activations(self, at: int, half: int) -> tuple[Tensor, Tensor]:
        """``[r_a, z_a, r_b, z_b]`` and ``[n_a, 2 g_a, n_b, 2 g_b]`` (``[h, 4C]`` each) of the
        block of ``half`` pairs whose first operand row is ``at``."""
        if self.saved is None:
            return self.gates[:half], self.gates[BLOCK:BLOCK + half]
        pairs, first = self.saved.size(0) // 2, at // 2
        return (self.saved[first:first + half],
                self.saved[pairs + first:pairs + first + half])

    def forward(self, x: Tensor, out: Tensor, at: int) -> None:
        c, half = self.c, out.size(0)
        rz, ng = self._activations(at, half)
        # every view in as few Python calls as possible: at 10k edges a block's Python overhead
        # (~40 calls at 2-4 us) is a third of its elementwise time
        pairs = x.view(2 * half, 2 * c)  # rows [a | b], [b | a]
        rz2, ng2 = rz.view(2 * half, 2 * c), ng.view(2 * half, 2 * c)
        # both products straight into the stored activations
        torch.addmm(self.b_rz, pairs, self.w_rz, out=rz2)
        operand, partner = pairs.split(c, 1)
        torch.addmm(self.b_n2, operand, self.w_n2_t, out=ng2)  # 2 [i, g]
        if self.fused:  # one compiled loop, in place
            _lcm_fused.run("forward", x, rz, ng, out)
            return
        rz2.sigmoid_()
        r_a, _, r_b, _ = rz.view(half, 4, c).unbind(1)
        n_a, g_a, n_b, g_b = ng.view(half, 4, c).unbind(1)
        # 2 (i + r g'), g' being the partner's (in the other order's row)
        torch.addcmul(n_a, r_a, g_b, out=n_a)
        torch.addcmul(n_b, r_b, g_a, out=n_b)
        n, _ = ng2.split(c, 1)
        torch.add(self.minus_one, n.sigmoid_(), alpha=2, out=n)  # tanh(y) = 2 sigmoid(2 y) - 1
        # (1 - z) n + z h of both orders, h being the partner row
        y = torch.lerp(n, partner, rz2.split(c, 1)[1], out=self.pair_tmp[:2 * half])
        torch.add(y[::2], y[1::2], out=out).mul_(self.one_half)

    def backward(self, x: Tensor, grad: Tensor, out: Tensor, at: int, work: Tensor) -> None:
        """Write the gradient of the operands (``[2h, C]``, interleaved ``a_j, b_j``) into
        ``out`` and accumulate the parameter gradients, from ``grad`` (:meth:`gather_grad`);
        ``work`` is scratch space of at least ``10 h C`` elements.

        Both orders contribute half of the result, but the passes start from ``grad`` itself
        (no halving pass), and ``d r`` is computed from the stored ``2 g``: the gradients are
        twice the true ones, four times for r, and the factors are folded into the products'
        weights, the direct terms' ``alpha`` and :meth:`param_grads` (exact: powers of two)."""
        c, half = self.c, out.size(0) // 2
        rz, ng = self._activations(at, half)
        if not self.grads:  # in the products' layout, mapped back by param_grads
            self.grads = [self.weight.new_zeros(2 * c, 4 * c), self.weight.new_zeros(c, 2 * c),
                          self.bias.new_zeros(2 * c), self.bias.new_zeros(2 * c)]
            # the scratch of every block of this pass: gradients of the pre-activations [r, z]
            # and of [i, g] ([2h, 2C], rows as the orders), and z g ([2h, C])
            rows = work.numel() // (10 * c)
            self.scratch = (_flat(work, 0, 2 * rows, 2 * c), _flat(work, 4 * rows * c, 2 * rows,
                                                                   2 * c),
                            _flat(work, 8 * rows * c, 2 * rows, c))
        d_rz, d_ng, zg = (t[:2 * half] for t in self.scratch)
        if self.fused:  # the elementwise work in one compiled loop, then the same products
            _lcm_fused.run("backward", grad, x, rz, ng, d_rz, d_ng, zg)
        else:
            self._backward_terms(x, grad, rz, ng, d_rz, d_ng, zg)
        self.grads[0].addmm_(x.view(half, 2 * c).t(), d_rz.view(half, 4 * c))
        self.grads[1].addmm_(x.t(), d_ng)
        # (torch's cascade sum: a BLAS product with a vector of ones, one op fewer, sums each
        # column in one running sum, with a few times the round-off)
        self.grads[2].add_(d_rz.sum(0))
        self.grads[3].add_(d_ng.sum(0))
        out2 = out.view(half, 2 * c)  # [d a | d b] of pair j: through both orders' gates
        torch.mm(d_rz.view(half, 4 * c), self.w_rz_back, out=out2)
        out.addmm_(d_ng, self.w_n_half)  # and through i and g
        out_a, out_b = out.view(half, 2, c).unbind(1)
        zg_a, zg_b = zg.view(half, 2, c).unbind(1)
        out_a.add_(zg_b, alpha=0.5)  # and directly, through the partner's z h
        out_b.add_(zg_a, alpha=0.5)

    def _backward_terms(self, x: Tensor, grad: Tensor, rz: Tensor, ng: Tensor, d_rz: Tensor,
                        d_ng: Tensor, zg: Tensor) -> None:
        """The backward's elementwise work, in place (:func:`graphlab.aggr._lcm_fused.backward`
        in eager ops): the gradients of the gates' pre-activations into ``d_rz``, of
        ``[i, g]`` into ``d_ng``, and ``z grad`` into ``zg``. In the ``[2h, 2C]`` views, row
        ``2j`` is order ``(a_j, b_j)`` and row ``2j + 1`` order ``(b_j, a_j)``."""
        c, half = self.c, grad.size(0) // 2
        rz2, ng2 = rz.view(2 * half, 2 * c), ng.view(2 * half, 2 * c)
        r_a, _, r_b, _ = rz.view(half, 4, c).unbind(1)
        n_a, g_a, n_b, g_b = ng.view(half, 4, c).unbind(1)
        dr_a, dz_a, dr_b, dz_b = d_rz.view(half, 4, c).unbind(1)
        ds_a, dg_a, ds_b, dg_b = d_ng.view(half, 4, c).unbind(1)
        x_a, x_b = x.view(half, 2, c).unbind(1)
        n, d_s = ng2.split(c, 1)[0], d_ng.split(c, 1)[0]
        # d z = g (h - n), h being the partner row
        torch.sub(x_b, n_a, out=dz_a)
        torch.sub(x_a, n_b, out=dz_b)
        d_rz.split(c, 1)[1].mul_(grad)
        torch.mul(rz2.split(c, 1)[1], grad, out=zg)  # d h through z h
        torch.sub(grad, zg, out=d_s)  # d n = (1 - z) g, then through the tanh
        torch.ops.aten.tanh_backward.grad_input(d_s, n, grad_input=d_s)
        # the partner's g of order (a, b) is in order (b, a)'s row, and conversely
        torch.mul(ds_a, g_b, out=dr_a)  # d r = d s g'
        torch.mul(ds_b, g_a, out=dr_b)
        torch.ops.aten.sigmoid_backward.grad_input(d_rz, rz2, grad_input=d_rz)
        torch.mul(ds_a, r_a, out=dg_b)  # d g' = r d s
        torch.mul(ds_b, r_b, out=dg_a)

    def param_grads(self) -> list[Tensor | None]:
        """The gradients of the GRU's weight ``[6C, C]`` and bias ``[6C]``, after the backward
        pass (whose workspace views are dropped here)."""
        self.scratch = ()
        if not self.grads:
            return [None, None]
        c = self.c
        scale = self._gate_scale().repeat_interleave(c)  # see backward
        g_pairs, g_n, g_brz, g_bn = self.grads
        g_pairs = g_pairs * scale
        g_brz = g_brz * scale[:2 * c]
        # [a | b]^T d [rz_a | rz_b]: W_i,rz meets a in order (a, b) and b in order (b, a)
        g_i = g_pairs[:c, :2 * c] + g_pairs[c:, 2 * c:]
        g_h = g_pairs[c:, :2 * c] + g_pairs[:c, 2 * c:]
        grad_w = torch.cat([g_i.t(), 0.5 * g_n[:, :c].t(), g_h.t(), 0.5 * g_n[:, c:].t()])
        grad_b = torch.cat([g_brz, 0.5 * g_bn[:c], g_brz, 0.5 * g_bn[c:]])
        return [grad_w, grad_b]


class _CallablePairs:
    """Any ``combine(a, b)`` on a block of pairs: forward without autograd, backward by
    recomputing the block with autograd, so memory stays one block of activations."""

    def __init__(self, combine: Combine, params: tuple[Tensor, ...]) -> None:
        self.combine = combine
        self.params = params
        self.reset()

    def start(self, operand_rows: int, store: bool, like: Tensor, ws: Workspace) -> None:
        pass  # the backward pass recomputes its block

    def finish(self) -> None:
        return None

    def reset(self) -> None:
        self.grads: list[Tensor | None] = [None] * len(self.params)

    def level_ids(self, left: Tensor, right: Tensor,
                  backward: bool = False) -> tuple[Tensor, Tensor]:
        return left, right

    def gather(self, rows: Tensor, ids: tuple[Tensor, Tensor], lo: int, width: int, buf: Tensor,
               backward: bool = False) -> Tensor:
        """The block's operands as ``[a; b]`` (contiguous inputs for ``combine``)."""
        block = torch.cat([ids[0][lo:lo + width], ids[1][lo:lo + width]])
        return torch.index_select(rows, 0, block, out=buf[:2 * width])

    def level_grad_ids(self, source: Tensor) -> Tensor:
        return source

    def gather_grad(self, grad: Tensor, ids: Tensor, lo: int, width: int, buf: Tensor) -> Tensor:
        """The gradients of the block's results."""
        return torch.index_select(grad, 0, ids[lo:lo + width], out=buf[:width])

    def forward(self, x: Tensor, out: Tensor, at: int) -> None:
        half = out.size(0)
        out.copy_(self.combine(x[:half], x[half:]))

    def backward(self, x: Tensor, grad: Tensor, out: Tensor, at: int, work: Tensor) -> None:
        half = grad.size(0)
        wanted = [i for i, p in enumerate(self.params) if p.requires_grad]
        with torch.enable_grad():
            a, b = x[:half].detach().requires_grad_(), x[half:].detach().requires_grad_()
            grads = torch.autograd.grad(self.combine(a, b),
                                        [a, b, *(self.params[i] for i in wanted)], grad,
                                        allow_unused=True)
        for i, g in zip(wanted, grads[2:]):
            if g is not None:
                self.grads[i] = g if self.grads[i] is None else self.grads[i] + g
        # the gradient buffer holds a pair's operands interleaved: a_j, b_j
        for part, g in zip(out.view(half, 2, -1).unbind(1), grads[:2]):
            part.copy_(g) if g is not None else part.zero_()

    def param_grads(self) -> list[Tensor | None]:
        return self.grads


class _TreeReduce(torch.autograd.Function):
    """Runs a :class:`TreePlan` level by level in blocks of pairs, on a buffer whose first
    ``E`` rows the caller filled with the (projected) input. Inputs ``x``, ``identity``, then
    (with ``project``) the projection's weight and bias, then the operator's parameters; the
    backward pass also goes through the projection,
    :math:`\\mathrm{ReLU}(\\mathbf{W}\\mathbf{x} + \\mathbf{b})`, in blocks of rows.
    """

    @staticmethod
    def forward(ctx, x: Tensor, identity: Tensor, rows: Tensor, plan: TreePlan, op,
                project: bool, store: bool, ws: Workspace, *params: Tensor) -> Tensor:
        rows[plan.num_rows] = identity  # the root of every empty segment
        num_x = x.size(0)
        # two rows of stored activations per pair; a block passes twice its first pair's index
        # (pair p is combined row p + E), which is also where its operands' gradients go
        op.start(2 * (plan.num_rows - num_x), store, rows, ws)
        gathered = ws.empty("gather", 4 * BLOCK, rows.size(1), rows)
        for left, right, offset in zip(plan.left, plan.right, plan.offsets):
            ids = op.level_ids(left, right)
            for lo in range(0, left.numel(), BLOCK):
                width = min(BLOCK, left.numel() - lo)
                op.forward(op.gather(rows, ids, lo, width, gathered),
                           rows[offset + lo:offset + lo + width], 2 * (offset - num_x + lo))
        del gathered
        ctx.plan, ctx.op, ctx.project, ctx.ws = plan, op, project, ws
        # the workspace views go through save_for_backward (not ctx attributes), so autograd
        # frees them after a backward pass that does not retain the graph
        ctx.save_for_backward(x, rows, op.finish(), *params[:2 if project else 0])
        return rows.index_select(0, plan.root)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        plan, op = ctx.plan, ctx.op
        x, rows, op.saved, *lin = ctx.saved_tensors
        dim_size, num_x = grad_out.size(0), x.size(0)
        op.reset()  # a retained graph may run backward again
        with torch.autocast(rows.device.type, enabled=False):
            grad_out = grad_out.to(rows.dtype)
            grad_identity = grad_out.t() @ plan.empty.to(rows.dtype)
            grad = ctx.ws.empty("grad", dim_size + 2 * (plan.num_rows - num_x), rows.size(1),
                                rows)
            grad[:dim_size] = grad_out
            work = ctx.ws.empty("work", BLOCK, 10 * rows.size(1), rows)  # operator scratch
            gathered = ctx.ws.empty("gather", 4 * BLOCK, rows.size(1), rows)
            gathered_grad = ctx.ws.empty("gather_grad", 8 * BLOCK, rows.size(1), rows)
            for left, right, offset in zip(reversed(plan.left), reversed(plan.right),
                                           reversed(plan.offsets)):
                start = dim_size + 2 * (offset - num_x)
                ids = op.level_ids(left, right, backward=True)
                grad_ids = op.level_grad_ids(plan.source[offset:offset + left.numel()])
                for lo in range(0, left.numel(), BLOCK):
                    width = min(BLOCK, left.numel() - lo)
                    op.backward(op.gather(rows, ids, lo, width, gathered, backward=True),
                                op.gather_grad(grad, grad_ids, lo, width, gathered_grad),
                                grad[start + 2 * lo:start + 2 * (lo + width)],
                                start - dim_size + 2 * lo, work)
            lin_grads: list[Tensor | None] = []
            if not ctx.project:
                grad_x = grad.index_select(0, plan.source[:num_x]).to(x.dtype)
            else:  # through the ReLU and the linear map, in blocks of rows (no [E, C] temporary)
                weight, _ = lin
                grad_x = x.new_empty(x.shape) if ctx.needs_input_grad[0] else None
                grad_w, grad_b = torch.zeros_like(weight), weight.new_zeros(weight.size(0))
                step, h, source = 8 * BLOCK, rows[:num_x], plan.source[:num_x]
                for lo in range(0, num_x, step):
                    g = torch.index_select(grad, 0, source[lo:lo + step],
                                           out=gathered_grad[:min(step, num_x - lo)])
                    torch.ops.aten.threshold_backward.grad_input(g, h[lo:lo + step], 0,
                                                                 grad_input=g)
                    grad_w.addmm_(g.t(), x[lo:lo + step].to(g.dtype))
                    grad_b.add_(g.sum(0))
                    if grad_x is not None and grad_x.dtype == g.dtype:
                        torch.mm(g, weight, out=grad_x[lo:lo + step])
                    elif grad_x is not None:  # x in another dtype (autocast)
                        grad_x[lo:lo + step] = g @ weight
                lin_grads = [grad_w, grad_b]
        param_grads = op.param_grads()
        op.saved = None  # the graph (if retained) keeps its own reference
        return (grad_x, grad_identity, None, None, None, None, None, None, *lin_grads,
                *param_grads)


def _reduce(x: Tensor, index: Tensor, dim_size: int, op, identity: Tensor,
            lin: nn.Linear | None = None, order_key: Tensor | None = None,
            key: Tensor | None = None, ws: Workspace | None = None
            ) -> tuple[Tensor, Tensor, Tensor]:
    """``(out, steps, h)``: the tree of ``op`` over ``h = ReLU(lin(x))`` (``x`` without
    ``lin``), keyed by ``key`` or by ``h @ order_key``; ``h`` carries no gradient."""
    # the tree runs in its parameters' dtype (x's without any), also under torch.autocast
    dtype = op.params[0].dtype if op.params else x.dtype
    num_x = x.size(0)
    with torch.autocast(x.device.type, enabled=False):
        # sized for the largest tree (E - 1 combined rows) so that the projection can be written
        # in place before the key and the plan exist; pages past the real tree are never touched
        ws = ws or Workspace()
        rows = ws.empty("rows", 2 * num_x + 1, identity.numel(), x, dtype)
        with torch.no_grad():
            if lin is not None:
                torch.addmm(lin.bias, x.to(dtype), lin.weight.t(), out=rows[:num_x]).relu_()
            else:
                rows[:num_x] = x
        h = rows[:num_x]
        if order_key is not None:
            key = h @ order_key.to(dtype)
        plan = tree_plan(index, dim_size, key)
        params = (lin.weight, lin.bias) if lin is not None else ()
        # keep the operator's activations only when a backward pass can follow
        store = torch.is_grad_enabled() and any(
            t.requires_grad for t in (x, identity, *params, *op.params))
        out = _TreeReduce.apply(x, identity, rows, plan, op, lin is not None, store, ws,
                                *params, *op.params)
    return out.to(x.dtype), plan.steps, h


@torch.compiler.disable(reason="the tree's depth and per-level sizes depend on the degrees")
def tree_reduce(x: Tensor, index: Tensor, dim_size: int, combine: Combine, identity: Tensor,
                key: Tensor | None = None, return_steps: bool = False,
                params: tuple[Tensor, ...] = ()) -> Tensor | tuple[Tensor, Tensor]:
    r"""Reduce each segment of ``x`` with a balanced binary tree of ``combine`` calls.

    Rows are stably sorted by ``(index, key)``; at every level, ranks :math:`(2j, 2j+1)` *of the
    same segment* are combined and an unpaired last row is carried up unchanged, so a segment of
    :math:`d` rows is finished after exactly :math:`\lceil \log_2 d \rceil` sequential combine
    steps and its result depends on its own rows only. Empty segments get ``identity``.

    The levels run in blocks of pairs gathered from one buffer that holds the input rows and every
    combined row (:func:`tree_plan`), under a custom autograd function whose backward pass
    recomputes each block and writes every row's gradient once: no level allocates or zero-fills
    a full-size gradient, and time and memory are :math:`\mathcal{O}(E)`.

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
        params (tuple of torch.Tensor): the tensors ``combine`` reads that need gradients (e.g.
            its module's parameters); ``x`` always gets its gradient.
    """
    out, steps, _ = _reduce(x, index, dim_size, _CallablePairs(combine, tuple(params)),
                            identity, key=key)
    return (out, steps) if return_steps else out


class LCMAggregation(WorkspaceMixin, Aggregation):
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

    The projection and the tree run under one autograd function (:func:`tree_reduce`): levels
    in blocks of pairs gathered from one buffer, the symmetrised GRU with a hand-written
    backward, no full-size zero-filled gradients, time and memory linear in :math:`|\mathcal{E}|`.
    With gradients, the forward pass keeps every pair's gates (:math:`8C` values per pair) so
    that the backward pass recomputes nothing. On the CPU the large buffers (rows, gates,
    gradients) stay allocated between calls and are reused, since mapping fresh memory costs as
    much as several passes over it; the module thus holds about one call's working set (~250 MB
    at 250k edges and 32 channels), freed with the module, by :meth:`release_workspace`, or never
    kept with ``keep_workspace=False``.
    With ``fused=True`` (``combine="gru"``) on an accelerator, each block's elementwise GRU
    work and its backward run as two loops compiled by ``torch.compile`` (Inductor; see
    :mod:`graphlab.aggr._lcm_fused`) between the BLAS products, with the same values and
    gradients; on the CPU the eager passes are faster and run instead.
    Under ``torch.compile`` that function (its depth and level sizes depend on the degrees) runs
    eagerly: the one graph break, with shape-polymorphic graphs around it. Under
    ``torch.autocast`` it runs in the parameters' dtype and returns ``x``'s dtype.

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
        fused (bool, optional): on an accelerator, run the GRU operator's elementwise work
            (gates, state update and their backward) as two kernels fused by
            ``torch.compile`` instead of ~20 kernel launches per block. Opt-in, as for
            :class:`~graphlab.aggr.GNPAggregation`: the first call compiles (once per channel
            count and dtype); if compilation fails it warns once and runs the eager path.
            Ignored on the CPU, where the eager passes are faster (the compiled forward takes
            ~1.8x their time, see :func:`graphlab.aggr._lcm_fused.pays`), and with
            ``combine="mlp"``. (default: ``False``)
        keep_workspace (bool, optional): keep the CPU scratch buffers between calls (faster:
            no fresh pages to fault in); ``False`` allocates them per call and holds nothing
            between calls. (default: ``True``)

    Shapes:
        - **input:** rows :math:`(E, F_{in})`, segment index :math:`(E,)` (any order) or
          ``ptr`` :math:`(N + 1,)`
        - **output:** :math:`(N, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, project: bool = True,
                 combine: str = "gru", identity: str = "learned", order: str = "value",
                 fused: bool = False, keep_workspace: bool = True) -> None:
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
        self.fused = fused
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
        self._workspace = Workspace(keep_workspace)  # CPU buffers reused between calls
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
        return self._tree(x, index, dim_size)

    @torch.compiler.disable(reason="the tree's depth and per-level sizes depend on the degrees")
    def _tree(self, x: Tensor, index: Tensor, dim_size: int) -> Tensor:
        """The projection and the tree, under one autograd function (see :func:`tree_reduce`)."""
        if self.combine_type == "gru":
            op = _GRUPairs(self.gru.weight, self.gru.bias,
                           fused=(self.fused and _lcm_fused.available()
                                  and _lcm_fused.pays(x.device)))
        else:
            op = _CallablePairs(self.combine, tuple(self.mlp.parameters()))
        self._last = None  # a view of the workspace: drop it so that the buffer can be reused
        out, _, h = _reduce(x, index, dim_size, op, self.identity, self.lin,
                            self.order_key if self.order == "value" else None,
                            ws=self._workspace)
        if self.training:
            self._last = h
        return out

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
                f"identity={self.identity_type!r}, order={self.order!r}"
                f"{', fused=True' if self.fused else ''})")
