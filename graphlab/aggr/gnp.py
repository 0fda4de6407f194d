"""Generalised norm-based pooling (GNP), computed in log space."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch_geometric.nn.aggr import Aggregation

from graphlab.aggr import _gnp_fused
from graphlab.aggr._segment import prepare_inputs
from graphlab.utils.validation import value_checks_enabled

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
    the size exponent :math:`q` lets it express the sum. Empty segments return exactly :math:`0`.

    **Allowed exponents.** Every :math:`p` with :math:`|p| \ge p_{\min}` for any
    :math:`p_{\min} > 0`, of either sign (:math:`p \in (-1, 0)` included); :math:`p = 0` is not
    a power mean and ``p_min <= 0`` is a ``ValueError``. Small :math:`|p|` is evaluated without
    cancellation: in channels with :math:`|p| \max_e D_e \le 1` the segment sums
    :math:`\sum_e (e^{y_e} - 1)` and takes ``log1p``, and the size term
    :math:`(1-q)\log|\mathcal{X}|` is added last, so float32 stays within ~1e-5 of float64 down to
    :math:`p = 10^{-6}`, where GNP with :math:`q = 1` is the geometric mean of
    :math:`x + \epsilon`. With :math:`q \ne 1` the factor :math:`|\mathcal{X}|^{(1-q)/p}` itself
    leaves the floating-point range once :math:`|(1-q)\log|\mathcal{X}|/p| > 88` (float32):
    that value is not representable, which is why the default :math:`p_{\min}` is 1. The
    gradient w.r.t. :math:`p` at small :math:`|p|` is a difference of two means of
    :math:`D` that agree to :math:`O(|p| \operatorname{Var} D)`: float32 keeps about
    :math:`10^{-7} \max D / (|p| \operatorname{Var} D)` of its relative precision (~1% at
    :math:`|p| = 10^{-4}`); use float64 where that matters.

    **Compilation and precision.** While ``torch.compile`` traces the module, GNP runs the pure
    tensor code of its fused kernels (differentiated by autograd, exact per-segment shift, the
    small-channel choice made by ``torch.where``): no value is read on the host, so the graph
    has no break (``fullgraph=True`` works) and a learnable :math:`p` never re-specialises it.
    Pass ``dim_size`` (as :class:`~torch_geometric.nn.conv.MessagePassing` does) or ``ptr``:
    without them PyG's ``Aggregation.__call__`` reads ``index.max()`` on the host, a break.
    float16 / bfloat16 inputs (e.g. under ``torch.autocast``) are computed in float32 (log space
    in 8 mantissa bits is off by percents) and returned in their own dtype.

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
        p_min (float, optional): smallest allowed :math:`|p|`, any number :math:`> 0`. The
            default keeps every special case (sum, mean, max, min, harmonic mean) and avoids the
            :math:`|\mathcal{X}|^{(1-q)/p}` blow-up of small :math:`|p|`, which made stacked GNP
            layers overflow in training; lower it to reach geometric-like means.
            (default: ``1.0``)
        fused (bool, optional): run the per-entry and per-segment arithmetic as kernels fused
            by ``torch.compile`` (compiled on first use, once per channel count, dtype and
            variant, i.e. with or without gradients and either shift: 5-30 s each; needs a C++
            compiler on CPU, else a warning and the eager path). 1.9-2.5x faster than the eager
            path on graphs of 25k-258k edges (fwd+bwd, 32 channels). Not used while the module
            itself is being traced by ``torch.compile``. (default: ``False``)

    Shapes:
        - **input:** rows :math:`(E, F)`, segment index :math:`(E,)` (any order) or ``ptr``
          :math:`(N + 1,)`
        - **output:** :math:`(N, F)`
    """

    def __init__(self, channels: int = 1, p: Pair = 1.0, q: Pair = 1.0, learn: bool = True,
                 signed: bool = True, eps: float = 1e-6, p_min: float = 1.0,
                 fused: bool = False) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if not (isinstance(p_min, (int, float)) and math.isfinite(p_min) and p_min > 0):
            raise ValueError(f"p_min must be a finite number > 0 (p = 0 is not a power mean: "
                             f"use a small p_min such as 1e-3 for geometric-like means), got "
                             f"{p_min!r}")
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        self.channels = channels
        self.learn = learn
        self.signed = signed
        self.eps = float(eps)
        self.p_min = float(p_min)
        self.fused = fused
        self._p_init, self._q_init = _pair(p, "p"), _pair(q, "q")
        for name, values in (("p", self._p_init), ("q", self._q_init)):
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} must be finite, got {p if name == 'p' else q}")
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
        if self.channels != 1 and x.size(-1) != self.channels:
            raise ValueError(f"{self.__class__.__name__} expects x with {self.channels} channels "
                             f"(one p, q each), got shape {list(x.shape)}")
        if not self.signed and x.numel() and value_checks_enabled(x) and bool((x < 0).any()):
            raise ValueError("GNPAggregation(signed=False) needs non-negative inputs; use "
                             "signed=True for real-valued inputs")
        # log space in half precision loses the result (8 mantissa bits of log x ~ 14 give 6%
        # errors): float16 / bfloat16 inputs, e.g. under torch.autocast, are computed in float32
        dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        xc = x.to(dtype)
        branches = self.p_raw.size(0)
        p = self.p.to(dtype).expand(branches, x.size(-1))
        q = self.q.to(dtype).expand(branches, x.size(-1))
        if torch.compiler.is_compiling():
            out = _traced(xc, p.contiguous(), q.contiguous(), index, dim_size, self.eps)
        else:
            # which intermediates the backward pass needs is decided here: inside
            # autograd.Function.forward grad mode is always off
            track = torch.is_grad_enabled()
            grad_x = track and xc.requires_grad
            grad_pq = track and (p.requires_grad or q.requires_grad)
            fused = self.fused and _gnp_fused.available()
            out = _GNPFunction.apply(xc, p, q, index, dim_size, self.eps, grad_x, grad_pq, fused)
        return out.to(x.dtype)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, p_min={self.p_min:g}, "
                f"learn={self.learn}, signed={self.signed}"
                f"{', fused=True' if self.fused else ''})")


def _traced(x: Tensor, p: Tensor, q: Tensor, index: Tensor, dim_size: int, eps: float) -> Tensor:
    """GNP while ``torch.compile`` traces the module: the pure tensor code of the fused kernels,
    differentiated by autograd, with the exact per-segment shift and the small-channel sums
    chosen per channel by ``torch.where``. Nothing reads a value on the host, so the graph has no
    break and a learnable ``p`` never re-specialises it."""
    count = torch.zeros(dim_size, dtype=torch.long, device=x.device)
    count = count.index_add(0, index, torch.ones_like(index))
    # the largest log-distance log(|x| + eps) - log eps, 0 without rows (the pad)
    top = torch.nn.functional.pad(x.detach().abs().reshape(-1), (0, 1)).amax()
    d_max = torch.log(top + eps) - math.log(eps)
    floor = math.log(torch.finfo(x.dtype).tiny) + 1.0
    return _gnp_fused.forward(x, index, count, p, q, d_max, eps, floor, exact=True, grad_x=False,
                              grad_pq=False, small=True)[0]


class _GNPFunction(torch.autograd.Function):
    r"""Log-space GNP with a hand-written backward: one log per entry and channel, one exp per
    entry and branch, one sum scatter (a second one for the :math:`p` statistics) in the
    forward pass, one gather in the backward pass; elementwise passes run over cache-sized,
    contiguous blocks of rows.

    Layout: the branches sit side by side as ``B * C`` channels, so every scatter runs over
    ``[E, B * C]`` with the segment index. One log serves both branches: with
    :math:`d = \operatorname{sign}(x)(\log(|x| + \epsilon) - \log\epsilon)`, branch :math:`b`
    has :math:`\log a = \log\epsilon + D_b`, :math:`D_+ = \mathrm{ReLU}(d)`,
    :math:`D_- = \mathrm{ReLU}(-d)`, and :math:`z = p D` (the constant :math:`p\log\epsilon` is
    added back per segment). With a shift :math:`s \ge \max z` per segment, :math:`w = e^{z - s}`,
    :math:`T = \sum w` and :math:`o = \epsilon\,(e^{s} T / n^q)^{1/p}`:

    .. math::
        \frac{\partial o}{\partial D_e} = \frac{o\,w_e}{T}, \qquad
        \frac{\partial o}{\partial p} = \frac{o}{p}\Big(\log\epsilon
        + \frac{\sum_e w_e z_e}{p T} - \log o\Big), \qquad
        \frac{\partial o}{\partial q} = -\frac{o \log n}{p}.

    The shift: when :math:`|p| \max_e D_e` fits well inside the exponent range, one shift per
    channel (the largest possible :math:`z`) keeps every term in :math:`[e^{-0.7 \cdot 87}, 1]`
    (float32), so no per-segment maximum is needed (one pass); otherwise (large :math:`|p|` or
    widely spread magnitudes) the exact per-segment maximum is taken first (an ``amax`` scatter,
    a second pass), and terms below e times the smallest normal number are raised to it.

    The forward pass keeps only what the backward pass needs: per entry
    :math:`w_e\,\partial D_e / \partial x_e` (:math:`[x > 0] / a` and :math:`-[x < 0] / a`, 0 at
    :math:`x = 0`), per segment :math:`\sum_e w_e z_e`.

    In channels with :math:`|p| \max_e D_e \le` :data:`~graphlab.aggr._gnp_fused.SMALL`, every
    :math:`|z_e - s| \le 1` and the segment sums :math:`e^{z - s} - 1` instead (``log1p`` of
    its mean gives :math:`\log(T/n)` without cancellation; :math:`T` follows from it).

    With ``fused`` (and at least one row), the same arithmetic runs as the compiled kernels of
    :mod:`graphlab.aggr._gnp_fused` instead of the blocked eager passes, both shifts included.
    """

    @staticmethod
    def forward(ctx, x: Tensor, p: Tensor, q: Tensor, index: Tensor, dim_size: int, eps: float,
                grad_x: bool, grad_pq: bool, fused: bool) -> Tensor:
        branches, c = p.shape
        width, num_rows = branches * c, x.size(0)
        log_eps = math.log(eps)
        tiny = torch.finfo(x.dtype).tiny
        # exp(log tiny) rounds to a subnormal number, on which CPU exp is ~50x slower: exp
        # arguments are clamped one above it
        exp_floor = math.log(tiny) + 1.0
        p_flat = p.reshape(1, -1)  # [1, B * C], branch-major
        p_lo, p_hi = (float(v) for v in torch.aminmax(p_flat.abs()))
        d_max, per_channel_shift = shift_plan(x, p_hi, eps)
        small = p_lo * d_max <= _gnp_fused.SMALL  # some channel sums e^y - 1 (see SMALL)
        ctx.fused, ctx.branches, ctx.log_eps = fused and num_rows > 0, branches, log_eps
        if ctx.fused:
            count = torch.bincount(index, minlength=dim_size)
            p, q = p.contiguous(), q.contiguous()
            result, gw, *saved = _gnp_fused.run(
                "forward", x, index, count, p, q, x.new_tensor(d_max), eps, exp_floor,
                not per_channel_shift, grad_x, grad_pq, small)
            ctx.save_for_backward(index, count, p, gw, *saved)
            return result
        # [p+, -p-]: z = [p+ ReLU(d), p- ReLU(-d)] = [p+ clamp(d, min=0), -p- clamp(d, max=0)]
        p_split = torch.cat([p[0], -p[1]]).unsqueeze(0) if branches == 2 else p_flat
        small_mask = p_flat.abs() * d_max <= _gnp_fused.SMALL if small else None  # [1, B * C]
        block = _block_rows(width)
        rows = min(block, num_rows)
        # scratch blocks, reused: fresh per-block temporaries cost measurably more (page faults)
        s_a, s_z, s_w = x.new_empty(rows, c), x.new_empty(rows, width), x.new_empty(rows, width)
        s_g = x.new_empty(rows, c) if grad_x else None
        s_wz = x.new_empty(rows, width) if grad_pq else None
        grad_w = x.new_empty(num_rows, width) if grad_x else None
        total = x.new_zeros(dim_size, width)
        wz = x.new_zeros(dim_size, width) if grad_pq else None

        def split(v: Tensor, out: Tensor) -> Tensor:
            """[ReLU(v), -ReLU(-v)] as [rows, B * C] (just ReLU(v) if unsigned)."""
            if branches == 1:
                return torch.clamp(v, min=0, out=out)
            torch.clamp(v, min=0, out=out[:, :c])
            torch.clamp(v, max=0, out=out[:, c:])
            return out

        def log_terms(r0: int) -> tuple[Tensor, Tensor | None]:
            """z of rows r0 : r0 + block, and sign(x) / a there (if x needs a gradient)."""
            xb = x[r0:r0 + block]
            n = xb.size(0)
            a = torch.abs(xb, out=s_a[:n]).add_(eps)
            g = torch.sign(xb, out=s_g[:n]).div_(a) if grad_x else None
            d = a.log_().sub_(log_eps).copysign_(xb)
            return split(d, s_z[:n]).mul_(p_split), g

        def accumulate(r0: int, z: Tensor, g: Tensor | None, y: Tensor) -> None:
            """Sum the terms w = e^y (e^y - 1 in small channels) of rows r0 : r0 + len(y)."""
            ib = index[r0:r0 + z.size(0)]
            w = y.exp_() if small_mask is None else torch.exp(y)
            total.index_add_(0, ib, w if small_mask is None else torch.where(
                small_mask, _gnp_fused.expm1_from_exp(y, w), w))
            if wz is not None:
                wz.index_add_(0, ib, torch.mul(w, z, out=s_wz[:z.size(0)]))
            if g is not None:  # z is free again: w [ReLU(g), -ReLU(-g)]
                torch.mul(w, split(g, z), out=grad_w[r0:r0 + z.size(0)])

        if per_channel_shift:
            shift = (p_flat.clamp(min=0) * d_max).to(x.dtype)  # [1, B * C]: the largest z
            for r0 in range(0, num_rows, block):
                z, g = log_terms(r0)
                accumulate(r0, z, g, torch.sub(z, shift, out=s_w[:z.size(0)]))
        else:
            shift = x.new_full((dim_size, width), -math.inf)
            for r0 in range(0, num_rows, block):
                z, _ = log_terms(r0)
                ib = index[r0:r0 + z.size(0)]
                shift.scatter_reduce_(0, ib.unsqueeze(-1).expand_as(z), z, "amax")
            shift = shift.nan_to_num_(neginf=0.0)  # empty segments
            # z is recomputed per block rather than stored, so this path also needs no
            # [E, B * C] buffer beyond the one the backward pass keeps
            for r0 in range(0, num_rows, block):
                z, g = log_terms(r0)
                ib = index[r0:r0 + z.size(0)]
                w = torch.index_select(shift, 0, ib, out=s_w[:z.size(0)])
                # exp(z - s) <= 1 and the segment's largest term is 1. Terms below e times the
                # smallest normal number are raised to it: they cannot move T >= 1, and CPU exp
                # is ~50x slower on inputs whose result underflows.
                accumulate(r0, z, g, torch.sub(z, w, out=w).clamp_(min=exp_floor))
        count = torch.bincount(index, minlength=dim_size)
        n_rows = count.clamp(min=1).to(x.dtype).unsqueeze(-1)  # [N, 1]
        log_count = torch.log(n_rows)
        nonempty = (count > 0).unsqueeze(-1)
        # log(T / n), kept apart from the O(1) terms log n until the end: at small |p| it is
        # O(|p|) and adding log n first would round it away. Every non-empty segment has
        # T >= e^(-FAST_RANGE * 87) (float32).
        log_mean = torch.log(total.clamp(min=tiny)).sub_(log_count)
        if small_mask is not None:  # T / n = 1 + mean(e^y - 1), without cancellation
            safe = torch.where(small_mask, total, 0.0)
            log_mean = torch.where(small_mask, torch.log1p(safe / n_rows), log_mean)
        # empty segments: T = 1, so that log o stays finite for every p (their output is 0)
        log_mean = torch.where(nonempty, log_mean, 0.0)
        # T as the backward pass needs it (the direct sum where it holds T)
        if small_mask is not None:
            total = torch.where(small_mask, torch.exp(log_mean).mul_(n_rows), total)
        total = torch.where(nonempty, total, 1.0)
        inv_p = p_flat.reciprocal()
        # log o = (log(T / n) + (s + p log eps) + (1 - q) log n) / p
        shift = shift + p_flat * log_eps if shift.size(0) == 1 else shift.add_(p_flat * log_eps)
        log_out = log_mean.add_(shift).addcmul_(log_count, 1 - q.reshape(1, -1))
        log_out = log_out.mul_(inv_p)
        out = torch.where(nonempty, torch.exp(log_out), 0.0)
        ctx.save_for_backward(grad_w, wz, inv_p, index, total, out, log_out, log_count)
        return out[:, :c] - out[:, c:] if branches == 2 else out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        if ctx.fused:
            need_x, need_p, need_q = ctx.needs_input_grad[:3]
            grad_x, grad_p, grad_q = _gnp_fused.run(
                "backward", grad.contiguous(), *ctx.saved_tensors, need_x=need_x, need_p=need_p,
                need_q=need_q)
            return grad_x, grad_p, grad_q, None, None, None, None, None, None
        grad_w, wz, inv_p, index, total, out, log_out, log_count = ctx.saved_tensors
        branches = ctx.branches
        c = grad.size(-1)
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
                rb = rb.mul_(grad_w[r0:r0 + block])
                if branches == 2:
                    torch.add(rb[:, :c], rb[:, c:], out=grad_x[r0:r0 + block])
                else:
                    grad_x[r0:r0 + block] = rb
        if ctx.needs_input_grad[1]:
            # per segment first (log eps + sum pi z / p - log o), then the channel sum: the
            # terms nearly cancel, and cancelling them before the sum keeps float32 accurate
            mean_log = wz.div(total).mul_(inv_p).add_(ctx.log_eps).sub_(log_out)
            grad_p = mean_log.mul_(go).sum(0, keepdim=True).mul_(inv_p).view(branches, c)
        if ctx.needs_input_grad[2]:
            grad_q = (log_count.t() @ go).mul_(inv_p).neg_().view(branches, c)
        return grad_x, grad_p, grad_q, None, None, None, None, None, None


#: one shift per channel when |p| max D stays below this fraction of the exponent range
#: (-log of the smallest normal number: 87 for float32), i.e. every term within [e^-61, 1]
FAST_RANGE = 0.7

#: bytes of one block of rows (see _block_rows): 1 MiB was ~10% (10k rows) to ~20% (250k rows)
#: faster than unblocked passes on the project's CPU; much smaller blocks pay per-call overhead
BLOCK_BYTES = 2 ** 20


def shift_plan(x: Tensor, p_abs_max: float, eps: float) -> tuple[float, bool]:
    r"""``(d_max, per_channel)``: the largest :math:`\log(|x| + \epsilon) - \log\epsilon` over
    ``x`` (0 if empty), and whether one shift per channel is safe for exponents up to
    ``p_abs_max`` (else the exact per-segment maximum is taken)."""
    d_max = 0.0
    if x.numel():
        lo, hi = torch.aminmax(x)
        d_max = math.log(max(-float(lo), float(hi)) + eps) - math.log(eps)
    return d_max, p_abs_max * d_max <= -FAST_RANGE * math.log(torch.finfo(x.dtype).tiny)


def _block_rows(width: int) -> int:
    """Rows per block: ``BLOCK_BYTES`` of float32 ``[rows, width]``, which stays in cache."""
    return max(64, BLOCK_BYTES // (4 * width))
