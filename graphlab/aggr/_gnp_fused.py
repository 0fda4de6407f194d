"""Fused kernels of :class:`~graphlab.aggr.GNPAggregation` (``GNPAggregation(..., fused=True)``).

The eager path of ``_GNPFunction`` runs ~20 elementwise passes over ``[E, 2C]`` blocks besides its
unavoidable log, exp, scatter and gather. Here the same arithmetic is written as pure tensor
functions, compiled lazily by ``torch.compile`` (Inductor) into a few fused loops: the number of
rows ``E`` and segments ``N`` are dynamic, the channel count is static (it lets Inductor vectorise
the channel loop without tails and keep per-channel accumulators), so there is one compilation
per channel count, dtype and variant.

Beyond fusion, three exact savings (notation of ``_GNPFunction``):

- each entry is active in at most one branch (``x > 0``: positive, ``x < 0``: negative); its term
  in the other branch is :math:`e^{0 - s}`, a per-channel (or per-segment) constant, so one exp
  per entry and channel serves both branches;
- the x gradient keeps one ``[E, C]`` tensor :math:`w\\,\\partial D / \\partial x` (its sign tells
  the branch) instead of ``[E, 2C]``;
- the forward pass keeps per segment :math:`o / T` (x gradient) and
  :math:`o\\,(\\log\\epsilon + \\sum_e w_e z_e / (p T) - \\log o)` (p gradient) instead of
  ``total``, ``wz`` and ``log_out``, so the backward pass reads three ``[N, C]`` tensors per
  branch.

If compilation fails (e.g. no C++ compiler), :func:`run` warns once and runs the same functions
eagerly; :func:`available` then tells ``GNPAggregation`` to use its blocked eager path.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["SMALL", "available", "backward", "expm1_from_exp", "forward", "run"]


#: a channel is "small" when |p| times the largest log-distance d_max is at most this: all its
#: terms e^y have |y| <= SMALL, so log(T / n) = log1p(sum(e^y - 1) / n) is accurate, while
#: log(T / n) of T computed directly loses |p| d_max / 6e-8 of its relative precision (13% at
#: p = 1e-6 in float32)
SMALL = 1.0


def expm1_from_exp(y: Tensor, e: Tensor) -> Tensor:
    """:math:`e^y - 1` given ``e = exp(y)``, without a second transcendental: the Taylor
    polynomial for :math:`|y| < 0.1` (relative error below 2e-8), ``e - 1`` elsewhere (where it
    loses at most a factor 11 of ``e``'s relative precision)."""
    poly = y * (1 + y / 2 * (1 + y / 3 * (1 + y / 4 * (1 + y / 5))))
    return torch.where(y.abs() < 0.1, poly, e - 1)


def forward(x: Tensor, index: Tensor, count: Tensor, p: Tensor, q: Tensor, d_max: Tensor, eps: float,
            floor: float, exact: bool, grad_x: bool, grad_pq: bool,
            small: bool = False) -> tuple[Tensor, ...]:
    """GNP forward. ``p``, ``q``: ``[B, C]`` (row 1: negative branch); ``count``: ``[N]`` rows per
    segment; ``d_max``: 0-d, the largest :math:`\\log(|x| + \\epsilon) - \\log\\epsilon`;
    ``exact``: per-segment shift (else one per channel); ``small``: some channel may have
    :math:`|p|\\,d_{\\max} \\le` :data:`SMALL` (those channels then sum :math:`e^y - 1`, see
    :data:`SMALL`; with ``False`` that code is left out).

    Pure tensor code: besides the compiled kernels it is what ``GNPAggregation`` runs (with
    autograd) while ``torch.compile`` traces it, so the shift is detached (it cancels exactly).

    Returns ``(result, gw, out_b, ratio_b, pstat_b for each branch b)``; ``gw`` ``[E, C]`` is
    ``None`` without ``grad_x``, ``pstat_b`` without ``grad_pq``.
    """
    n, branches, c = count.size(0), p.size(0), x.size(1)
    log_eps = math.log(eps)
    a = x.abs() + eps
    d = torch.log(a) - log_eps  # log(|x| + eps) - log eps >= 0
    pos = neg = None
    if branches == 2:
        pos, neg = x > 0, x < 0
        z = d * torch.where(pos, p[0], p[1])  # z of the active branch
        z_b = [torch.where(pos, z, 0.0), torch.where(neg, z, 0.0)]
    else:
        z = d * p[0]
        z_b = [z]
    if exact:  # per-segment maximum of z per branch (inactive entries have z = 0); empty: 0
        rows = index.unsqueeze(-1).expand(-1, c)
        shift = [x.new_zeros(n, c).scatter_reduce(0, rows, zb.detach(), "amax", include_self=False)
                 for zb in z_b]
        s_rows = [s[index] for s in shift]
    else:  # one shift per channel: the largest possible z
        shift = s_rows = [pb.clamp(min=0) * d_max for pb in p]
    active_shift = torch.where(pos, s_rows[0], s_rows[1]) if branches == 2 else s_rows[0]
    y = (z - active_shift).clamp(min=floor)
    e = torch.exp(y)
    small_b = [pb.abs() * d_max <= SMALL for pb in p] if small else None  # [C] per branch
    if small_b is not None:
        active_small = torch.where(pos, small_b[0], small_b[1]) if branches == 2 else small_b[0]
        v = torch.where(active_small, expm1_from_exp(y, e), e)
    else:
        v = e
    # v is what each branch sums per segment: e^y, or e^y - 1 in small channels
    if branches == 2 and exact:
        # an entry's term in its inactive branch: exp(0 - s), floored like the active one (at
        # x = 0, e is the negative branch's); Inductor would recompute a per-segment exp per
        # entry anyway, so one exp per entry for the one inactive branch
        yk = (-torch.where(pos, s_rows[1], s_rows[0])).clamp(min=floor)
        k = torch.exp(yk)
        kv = k
        if small_b is not None:
            kv = torch.where(torch.where(pos, small_b[1], small_b[0]), expm1_from_exp(yk, k), k)
        w_b = [torch.where(pos, e, k), torch.where(pos, k, e)]
        v_b = [torch.where(pos, v, kv), torch.where(pos, kv, v)]
    elif branches == 2:  # the same, per channel
        yk = [(-s).clamp(min=floor) for s in shift]
        k = [torch.exp(t) for t in yk]
        kv = k
        if small_b is not None:
            kv = [torch.where(sb, expm1_from_exp(t, kb), kb) for sb, t, kb in zip(small_b, yk, k)]
        w_b = [torch.where(pos, e, k[0]), torch.where(neg, e, k[1])]
        v_b = [torch.where(pos, v, kv[0]), torch.where(neg, v, kv[1])]
    else:
        w_b, v_b = [e], [v]
    sums = [x.new_zeros(n, c).index_add(0, index, vb) for vb in v_b]
    wz = [x.new_zeros(n, c).index_add(0, index, w * zb) for w, zb in zip(w_b, z_b)] if grad_pq \
        else [None] * branches
    # w dD/dx of the active branch: sign(x) / a (0 at x = 0); its sign tells the branch
    gw = e * torch.sign(x) / a if grad_x else None
    n_rows = count.clamp(min=1).to(x.dtype).unsqueeze(-1)  # [N, 1]
    log_count = torch.log(n_rows)
    nonempty = (count > 0).unsqueeze(-1)
    saved = []
    for b in range(branches):
        # log(T / n), kept apart from the O(1) terms log n until the end: at small |p| it is
        # O(|p|) and adding log n first would round it away
        log_mean = torch.log(sums[b].clamp(min=torch.finfo(x.dtype).tiny)) - log_count
        if small_b is not None:  # the safe operand keeps autograd free of inf * 0
            log_mean = torch.where(small_b[b], torch.log1p(
                torch.where(small_b[b], sums[b], 0.0) / n_rows), log_mean)
        # empty segments: T = 1, so that log o stays finite for every p (their output is 0)
        log_mean = torch.where(nonempty, log_mean, 0.0)
        t = sums[b] if small_b is None else torch.where(small_b[b], n_rows * torch.exp(log_mean),
                                                        sums[b])
        t = torch.where(nonempty, t, 1.0)
        inv_t, inv_p = 1.0 / t, 1.0 / p[b]  # one division per segment, not two
        # log o = (log(T / n) + s + p log eps + (1 - q) log n) / p
        log_out = (log_mean + (shift[b] + p[b] * log_eps) + log_count * (1 - q[b])) * inv_p
        out = torch.where(nonempty, torch.exp(log_out), 0.0)
        pstat = out * (wz[b] * inv_t * inv_p + log_eps - log_out) if grad_pq else None
        saved += [out, out * inv_t, pstat]
    result = saved[0] - saved[3] if branches == 2 else saved[0]
    return (result, gw, *saved)


def backward(grad: Tensor, index: Tensor, count: Tensor, p: Tensor, gw: Tensor | None,
             *saved: Tensor | None, need_x: bool, need_p: bool, need_q: bool) -> tuple[Tensor | None, ...]:
    """Gradients of :func:`forward`'s ``result`` w.r.t. ``x``, ``p`` and ``q`` from its saved
    ``gw, out_b, ratio_b, pstat_b``:

    .. math::
        \\frac{\\partial o}{\\partial x_e} = \\frac{o}{T}\\, w_e \\frac{\\partial D_e}{\\partial x_e},
        \\qquad \\frac{\\partial o}{\\partial p} = \\frac{\\mathrm{pstat}}{p}, \\qquad
        \\frac{\\partial o}{\\partial q} = -\\frac{o \\log n}{p}.
    """
    branches = p.size(0)
    grad_x = grad_p = grad_q = None
    outs, ratios, pstats = saved[0::3], saved[1::3], saved[2::3]
    if need_x:
        g_rows = grad[index]
        if branches == 2:  # the negative branch enters the result with a minus sign
            grad_x = gw * g_rows * torch.where(gw > 0, ratios[0][index], -ratios[1][index])
        else:
            grad_x = gw * g_rows * ratios[0][index]
    signs = [1.0, -1.0][:branches]
    if need_p:
        grad_p = torch.stack([sb * (grad * ps).sum(0) for sb, ps in zip(signs, pstats)]) / p
    if need_q:
        log_count = torch.log(count.clamp(min=1).to(grad.dtype)).unsqueeze(-1)  # [N, 1]
        grad_q = torch.stack([-sb * (grad * o * log_count).sum(0) for sb, o in zip(signs, outs)]) / p
    return grad_x, grad_p, grad_q


_COMPILED: dict[str, Callable[..., Any]] = {}
_FAILED: list[str] = []
_FUNCTIONS = {"forward": forward, "backward": backward}


def available() -> bool:
    """Whether the fused path can be used: no compilation failed in this process, and this call
    is not itself being traced by ``torch.compile`` (which then compiles the eager path)."""
    return not _FAILED and not torch.compiler.is_compiling()


def run(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call :func:`forward` or :func:`backward` compiled (on first use); if compilation fails,
    warn once and run it eagerly. Dimension 0 of every tensor argument (rows or segments) is
    marked dynamic, so other graphs of the same channel count reuse the compiled code."""
    fn = _COMPILED.get(name)
    if fn is None:
        fn = _COMPILED[name] = torch.compile(_FUNCTIONS[name], dynamic=None)
    if not _FAILED:
        # the marks go on aliases: the caller's tensors stay unmarked for its own compiles
        args = tuple(_dynamic_rows(arg) if isinstance(arg, Tensor) else arg for arg in args)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: eager still works
            _FAILED.append(f"{type(exc).__name__}: {exc}")
            warnings.warn(f"GNPAggregation(fused=True): torch.compile failed "
                          f"({_FAILED[0][:300]}); using the eager path", RuntimeWarning,
                          stacklevel=3)
    return _FUNCTIONS[name](*args, **kwargs)


def _dynamic_rows(t: Tensor) -> Tensor:
    """An alias of ``t`` with dimension 0 marked dynamic (sizes 0-2 are specialised anyway)."""
    if t.dim() == 0 or t.size(0) <= 2:
        return t
    alias = t.view(t.shape)
    torch._dynamo.maybe_mark_dynamic(alias, 0)
    return alias
