"""Generalised norm-based pooling (GNP), computed in log space."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch_geometric.nn.aggr import Aggregation

from graphlab.aggr._segment import prepare_inputs

__all__ = ["GNPAggregation"]

Pair = float | tuple[float, float]


def _pair(value: Pair, name: str) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a float or a (positive, negative) pair, got {value}")
        return float(value[0]), float(value[1])
    return float(value), float(value)


class GNPAggregation(Aggregation):
    r"""The generalised norm-based pooling from the `"Learning to Pool in Graph Neural Networks
    for Extrapolation" <https://arxiv.org/abs/2106.06210>`_ paper (Ko et al., 2021), with
    learnable exponents :math:`p` and :math:`q` per channel:

    .. math::
        \mathrm{GNP}_{p,q}(\mathcal{X}) = \left(\frac{1}{|\mathcal{X}|^{q}}
        \sum_{x \in \mathcal{X}} x^{p}\right)^{1/p}, \qquad x \ge 0 .

    Signed inputs are split into parts with their own parameters,
    :math:`\mathrm{GNP}_{p^+,q^+}(\mathrm{ReLU}(\mathcal{X})) -
    \mathrm{GNP}_{p^-,q^-}(\mathrm{ReLU}(-\mathcal{X}))`. Special values: :math:`p=1, q=0` is the
    sum, :math:`p=1, q=1` the mean, :math:`p=-1, q=1` the harmonic mean (positive inputs),
    :math:`(p^+, p^-) \to (+\infty, -\infty)` the maximum and
    :math:`(p^+, p^-) \to (-\infty, +\infty)` the minimum.

    Everything is evaluated in log space with a per-segment shift,

    .. math::
        \log \mathrm{GNP} = \frac{1}{p}\left[\operatorname{logsumexp}_{x}
        \big(p \log(x + \epsilon)\big) - q \log |\mathcal{X}|\right],

    so nothing overflows (:math:`|p| = 100` on inputs of :math:`10^3` is exact and has finite
    gradients), inputs are never clamped, and :math:`|p| \ge p_{\min}` is kept by the
    parametrisation :math:`p = \theta + p_{\min}\operatorname{sign}(\theta)` (the sign bit of
    :math:`\theta`, so :math:`\theta = -0` gives :math:`p = -p_{\min}`). Unlike PyG's
    :class:`~torch_geometric.nn.aggr.PowerMeanAggregation`, negative inputs keep their sign and
    the size exponent :math:`q` lets it express the sum. Empty segments return :math:`0`.

    Args:
        channels (int, optional): number of channels with their own :math:`p, q`; ``1`` shares
            them across all channels. (default: ``1``)
        p (float or (float, float), optional): initial :math:`p` (or :math:`(p^+, p^-)`).
            (default: ``1.0``)
        q (float or (float, float), optional): initial :math:`q` (or :math:`(q^+, q^-)`).
            (default: ``1.0``)
        learn (bool, optional): make :math:`p` and :math:`q` trainable. (default: ``True``)
        signed (bool, optional): handle negative inputs with a second branch; if ``False``,
            inputs must be non-negative. (default: ``True``)
        eps (float, optional): :math:`\epsilon` inside the logarithm. (default: ``1e-6``)
        p_min (float, optional): smallest allowed :math:`|p|`. The default keeps every special
            case (sum, mean, max, min, harmonic mean) and avoids the
            :math:`|\mathcal{X}|^{(1-q)/p}` blow-up of small :math:`|p|`, which made stacked GNP
            layers overflow in training; lower it to reach geometric-like means.
            (default: ``1.0``)

    Shapes:
        - **input:** rows :math:`(E, F)`, segment index :math:`(E,)` (any order) or ``ptr``
          :math:`(N + 1,)`
        - **output:** :math:`(N, F)`
    """

    def __init__(self, channels: int = 1, p: Pair = 1.0, q: Pair = 1.0, learn: bool = True,
                 signed: bool = True, eps: float = 1e-6, p_min: float = 1.0) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.channels = channels
        self.learn = learn
        self.signed = signed
        self.eps = eps
        self.p_min = p_min
        self._p_init, self._q_init = _pair(p, "p"), _pair(q, "q")
        if min(abs(v) for v in self._p_init) < p_min:
            raise ValueError(f"|p| must be at least p_min={p_min}, got p={p}")
        branches = 2 if signed else 1
        p_raw = torch.empty(branches, channels)
        q_par = torch.empty(branches, channels)
        if learn:
            self.p_raw = nn.Parameter(p_raw)
            self.q = nn.Parameter(q_par)
        else:
            self.register_buffer("p_raw", p_raw)
            self.register_buffer("q", q_par)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for branch in range(self.p_raw.size(0)):
                p0 = self._p_init[branch]
                # copysign keeps the sign of p in the sign bit even when |p| == p_min (raw = -0.0)
                self.p_raw[branch].fill_(math.copysign(abs(p0) - self.p_min, p0))
                self.q[branch].fill_(self._q_init[branch])

    @property
    def p(self) -> Tensor:
        """The exponents :math:`p`, shape ``[branches, channels]`` (row 1: negative branch)."""
        negative = torch.signbit(self.p_raw)
        return torch.where(negative, self.p_raw - self.p_min, self.p_raw + self.p_min)

    def forward(self, x: Tensor, index: Tensor | None = None, ptr: Tensor | None = None,
                dim_size: int | None = None, dim: int = -2) -> Tensor:
        index, dim_size = prepare_inputs(x, index, ptr, dim_size, dim)
        c = x.size(-1)
        if self.channels != 1 and c != self.channels:
            raise ValueError(f"x must have {self.channels} channels (one p, q each), got shape "
                             f"{list(x.shape)}")
        if not self.signed and x.numel() and bool((x < 0).any()):
            raise ValueError("GNPAggregation(signed=False) needs non-negative inputs; use "
                             "signed=True for real-valued inputs")
        branches = self.p_raw.size(0)
        p = self.p.to(x.dtype).expand(branches, x.size(-1))
        q = self.q.to(x.dtype).expand(branches, x.size(-1))
        # which intermediates the backward pass needs is decided here: inside
        # autograd.Function.forward grad mode is always off
        track = torch.is_grad_enabled()
        grad_x = track and x.requires_grad
        grad_pq = track and (p.requires_grad or q.requires_grad)
        return _GNPFunction.apply(x, p, q, index, dim_size, self.eps, grad_x, grad_pq)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(channels={self.channels}, learn={self.learn}, "
                f"signed={self.signed})")


class _GNPFunction(torch.autograd.Function):
    r"""Log-space GNP with a hand-written backward: one log, one exp, one ``amax`` scatter and one
    sum scatter per entry in the forward pass (a second sum scatter when :math:`p, q` need
    gradients), one gather in the backward pass; elementwise passes run over cache-sized blocks
    of rows.

    Layout: the branches sit side by side as ``B * C`` channels, ``a = [ReLU(x), ReLU(-x)] + eps``,
    so every scatter runs once over ``[E, B * C]`` with the segment index (no per-entry branch
    selection). With :math:`z = p \log a`, :math:`s = \max_{\text{segment}} z`,
    :math:`w = e^{z - s}`, :math:`T = \sum w` and :math:`o = (e^{s} T / n^q)^{1/p}`:

    .. math::
        \frac{\partial o}{\partial a_e} = \frac{o\,w_e}{T a_e}, \qquad
        \frac{\partial o}{\partial p} = \frac{o}{p}\Big(\frac{\sum_e w_e z_e}{p T}
        - \log o\Big), \qquad
        \frac{\partial o}{\partial q} = -\frac{o \log n}{p}.

    The forward pass keeps only what the backward pass needs: per entry
    :math:`w_e \, (\partial a_e / \partial x_e) / a_e` (the negative branch's minus sign
    included), per segment :math:`\sum_e w_e z_e`.
    """

    @staticmethod
    def forward(ctx, x: Tensor, p: Tensor, q: Tensor, index: Tensor, dim_size: int, eps: float,
                grad_x: bool, grad_pq: bool) -> Tensor:
        # The elementwise work runs over blocks of rows small enough to stay in cache: a dozen
        # passes over one [E, B * C] buffer would otherwise each stream it through memory.
        branches, c = p.shape
        p_flat, q_flat = p.reshape(1, -1), q.reshape(1, -1)  # [1, B * C], branch-major
        num_rows, width = x.size(0), branches * c
        block = _block_rows(width)
        z = x.new_empty(num_rows, width)
        # da/dx / a per entry, the negative branch's sign in the output folded in:
        # [x > 0] / a+ and -[x < 0] / a-
        inv = x.new_empty(num_rows, width) if grad_x else None
        shift = x.new_full((dim_size, width), -math.inf)
        # one scratch block, reused: fresh per-block temporaries cost measurably more (page faults)
        scratch = x.new_empty(min(block, num_rows), width)
        for r0 in range(0, num_rows, block):
            xb, ib = x[r0:r0 + block], index[r0:r0 + block]
            raw = scratch[:xb.size(0)]
            raw[:, :c] = xb
            if branches == 2:
                torch.neg(xb, out=raw[:, c:])  # [x, -x]
            # a = [ReLU(x), ReLU(-x)] + eps
            a = torch.clamp(raw, min=0, out=z[r0:r0 + block]).add_(eps)
            if inv is not None:
                ib_inv = torch.div(raw.sign_().clamp_(min=0), a, out=inv[r0:r0 + block])
                if branches == 2:
                    ib_inv[:, c:].neg_()
            zb = a.log_().mul_(p_flat)
            shift.scatter_reduce_(0, ib.unsqueeze(-1).expand_as(zb), zb, "amax")
        shift = shift.nan_to_num_(neginf=0.0)  # empty segments
        count = torch.bincount(index, minlength=dim_size)
        total = torch.zeros_like(shift)
        wz = torch.zeros_like(shift) if grad_pq else None
        floor = math.log(torch.finfo(x.dtype).tiny)
        for r0 in range(0, num_rows, block):
            zb, ib = z[r0:r0 + block], index[r0:r0 + block]
            wb = torch.index_select(shift, 0, ib, out=scratch[:ib.numel()])
            # exp(z - s) <= 1 and the segment's largest term is 1. Terms below the smallest
            # normal number are raised to it: they cannot move T >= 1, and CPU exp is ~40x
            # slower on inputs whose result underflows.
            wb = torch.sub(zb, wb, out=wb).clamp_(min=floor).exp_()
            total.index_add_(0, ib, wb)
            if wz is not None:
                wz.index_add_(0, ib, zb.mul_(wb))
            if inv is not None:
                inv[r0:r0 + block].mul_(wb)
        # T >= 1 in a non-empty segment, so the clamp only gives empty ones a harmless T = 1
        total = total.clamp_(min=1.0)
        log_count = torch.log(count.clamp(min=1).to(x.dtype)).unsqueeze(-1)  # [N, 1]
        log_out = torch.log(total).add_(shift).addcmul_(log_count, q_flat, value=-1.0)
        log_out = log_out.div_(p_flat)
        out = torch.exp(log_out).mul_((count > 0).unsqueeze(-1).to(x.dtype))  # empty: 0
        ctx.save_for_backward(inv, wz, p_flat, index, total, out, log_out, log_count)
        ctx.branches = branches
        return out[:, :c] - out[:, c:] if branches == 2 else out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        w_inv, wz, p_flat, index, total, out, log_out, log_count = ctx.saved_tensors
        branches = ctx.branches
        c = out.size(-1) // branches
        # gradient of each branch's output o (the negative branch enters with a minus sign)
        go = (torch.cat([grad, -grad], dim=1) if branches == 2 else grad).mul_(out)  # [N, B * C]
        grad_x = grad_p = grad_q = None
        if ctx.needs_input_grad[0]:
            go_t = go.div(total)
            grad_x = grad.new_empty(index.numel(), c)
            block = _block_rows(branches * c)
            scratch = grad.new_empty(min(block, index.numel()), branches * c)
            for r0 in range(0, index.numel(), block):
                ib = index[r0:r0 + block]
                rb = torch.index_select(go_t, 0, ib, out=scratch[:ib.numel()])
                rb = rb.mul_(w_inv[r0:r0 + block])
                if branches == 2:
                    torch.add(rb[:, :c], rb[:, c:], out=grad_x[r0:r0 + block])
                else:
                    grad_x[r0:r0 + block] = rb
        if ctx.needs_input_grad[1]:
            mean_log = wz.div(total).div_(p_flat).sub_(log_out)  # sum pi log a - log o
            grad_p = (mean_log.mul_(go).sum(0, keepdim=True) / p_flat).view(branches, c)
        if ctx.needs_input_grad[2]:
            grad_q = (log_count.t() @ go).div_(p_flat).neg_().view(branches, c)
        return grad_x, grad_p, grad_q, None, None, None, None, None


#: bytes of one block of rows (see _block_rows): 1 MiB was ~10% (10k rows) to ~20% (250k rows)
#: faster than unblocked passes on the project's CPU; much smaller blocks pay per-call overhead
BLOCK_BYTES = 2 ** 20


def _block_rows(width: int) -> int:
    """Rows per block: ``BLOCK_BYTES`` of float32 ``[rows, width]``, which stays in cache."""
    return max(64, BLOCK_BYTES // (4 * width))
