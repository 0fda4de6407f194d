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
        return _GNPFunction.apply(x, p, q, index, dim_size, self.eps)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(channels={self.channels}, learn={self.learn}, "
                f"signed={self.signed})")


class _GNPFunction(torch.autograd.Function):
    r"""Log-space GNP with a hand-written backward (one log and one exp per input entry).

    Layout: every (row, channel) entry belongs to exactly one branch (positive part if
    :math:`x \ge 0`, negative part otherwise); in the other branch it is
    :math:`\mathrm{ReLU}(\cdot) = 0`, whose term :math:`\epsilon^p` is the same for all such
    entries, so those terms are added in closed form per (segment, branch, channel). Sums run
    over a ``[N * B, C]`` buffer whose row is ``segment * B + branch``.

    With :math:`T = \sum a^p` (shifted), :math:`\pi_e = a_e^p / T` and
    :math:`o = (T / n^q)^{1/p}`: :math:`\partial o / \partial a_e = o\,\pi_e / a_e`,
    :math:`\partial o / \partial p = o\,(\sum \pi \log a - \log o) / p` and
    :math:`\partial o / \partial q = -o \log n / p`; the negative branch enters the output with
    a minus sign, and :math:`a = |x| + \epsilon` has slope :math:`\operatorname{sign}(x)`.
    """

    @staticmethod
    def forward(ctx, x: Tensor, p: Tensor, q: Tensor, index: Tensor, dim_size: int,
                eps: float) -> Tensor:
        branches, c = p.shape
        log_a = torch.log(x.abs() + eps)  # [E, C]
        if branches == 2:
            neg = x < 0
            z = torch.where(neg, p[1], p[0]) * log_a
            row = index.unsqueeze(-1) * 2 + neg  # [E, C] row of the (segment, branch) buffer
        else:
            z = p[0] * log_a
            row = index.unsqueeze(-1).expand_as(z)
        rows = dim_size * branches
        count = torch.bincount(index, minlength=dim_size).view(-1, 1, 1).to(x.dtype)
        ones = torch.ones_like(z)
        in_branch = torch.zeros(rows, c, dtype=x.dtype, device=x.device).scatter_add_(0, row, ones)
        n_eps = count - in_branch.view(dim_size, branches, c)  # ReLU-zero entries of the branch
        z_eps = p * math.log(eps)  # [B, C]
        shift = torch.full((rows, c), -math.inf, dtype=x.dtype, device=x.device)
        shift = shift.scatter_reduce_(0, row, z, "amax").view(dim_size, branches, c)
        shift = torch.maximum(shift, torch.where(n_eps > 0, z_eps, -math.inf))
        nonempty = count > 0
        shift = torch.where(nonempty, shift, torch.zeros_like(shift))
        w = torch.exp(z - shift.view(rows, c).gather(0, row))
        total = torch.zeros(rows, c, dtype=x.dtype, device=x.device).scatter_add_(0, row, w)
        # shift >= z_eps wherever n_eps > 0; the clamp keeps 0 * exp(...) away from 0 * inf
        w_eps = n_eps * torch.exp((z_eps - shift).clamp(max=0))
        total = total.view(dim_size, branches, c) + w_eps
        # Empty segments get harmless stand-ins so that neither the value nor a gradient is NaN.
        total = torch.where(nonempty, total, torch.ones_like(total))
        log_count = torch.log(count.clamp(min=1))
        log_out = (torch.log(total) + shift - q * log_count) / p
        out = torch.where(nonempty, torch.exp(log_out), torch.zeros_like(log_out))  # [N, B, C]
        ctx.save_for_backward(x, p, w, log_a, row, total, out, log_out, w_eps, log_count)
        ctx.eps = eps
        return out[:, 0] - out[:, 1] if branches == 2 else out[:, 0]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, p, w, log_a, row, total, out, log_out, w_eps, log_count = ctx.saved_tensors
        branches, c = p.shape
        signs = torch.tensor([1.0, -1.0][:branches], dtype=grad.dtype, device=grad.device)
        g = grad.unsqueeze(1) * signs.view(1, -1, 1)  # [N, B, C] gradient of each branch output
        go = g * out
        grad_x = grad_p = grad_q = None
        if ctx.needs_input_grad[0]:
            r = (go / total).view(-1, c).gather(0, row)
            grad_x = r * w / (x.abs() + ctx.eps) * x.sign()  # d a / d x = sign(x)
        if ctx.needs_input_grad[1]:
            w_log = torch.zeros_like(total).view(-1, c).scatter_add_(0, row, w * log_a)
            mean_log = (w_log.view_as(total) + w_eps * math.log(ctx.eps)) / total
            grad_p = (go * (mean_log - log_out) / p).sum(0)
        if ctx.needs_input_grad[2]:
            grad_q = (-go * log_count / p).sum(0)
        return grad_x, grad_p, grad_q, None, None, None
