"""Fused kernels of :class:`~graphlab.aggr.LCMAggregation` (``LCMAggregation(..., fused=True)``).

Per block of ``h`` pairs, the eager GRU combine of ``_GRUPairs`` is one matrix product
:math:`P = [W_i; W_h] x + [b_i; b_h]` (``[2h, 6C]``) and ~10 elementwise passes (gate sums,
sigmoids, the candidate's tanh, the two state updates); its backward pass is two matrix products
and another ~10 passes. Here each is one pure tensor function, products included, compiled lazily
by ``torch.compile`` (Inductor): the elementwise work becomes one flat loop over the pairs
between the BLAS calls, the number of pairs ``h`` is dynamic and the channel count static
(Inductor vectorises the channel loop without tails), so there is one compilation per channel
count, dtype and function.

Notation (rows ``0..h-1`` are the left operands ``a``, ``h..2h-1`` the right operands ``b``; a
row's *partner* is the other operand of its pair): for every operand row, as input of a GRU step
whose hidden state is its partner,

.. math::
    r = \\sigma(P_{ir} + P'_{hr}),\\quad z = \\sigma(P_{iz} + P'_{hz}),\\quad
    n = \\tanh(P_{in} + r \\odot P'_{hn}),\\quad
    a \\oplus b = \\tfrac12\\left[(1 - z_a) n_a + z_a b + (1 - z_b) n_b + z_b a\\right],

primes denoting the partner's row of :math:`P`. The forward pass writes the result and, for the
backward pass, ``[r, z, n, P'_hn]`` per operand row (``4C`` values) into the caller's buffers.

What it saves is bounded: the block is dominated by its transcendentals (``6C`` sigmoids per
pair, the tanh computed as :math:`2\\sigma(2y) - 1` as in the eager path) and its three matrix
products, not by memory passes, and each compiled call adds ~0.1 ms of dispatch: on one CPU
thread the whole call takes 0.96-1.03x the eager path's time (``benchmarks/aggr_speed.py``).

If compilation fails (e.g. no C++ compiler), :func:`run` warns once and runs the same functions
eagerly; :func:`available` then tells ``LCMAggregation`` to use its in-place eager path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from graphlab.aggr._gnp_fused import _dynamic_rows

__all__ = ["available", "backward", "forward", "run"]


def forward(x: Tensor, weight: Tensor, bias: Tensor, out: Tensor, saved: Tensor | None) -> None:
    """Write ``a ⊕ b`` of the block into ``out`` ``[h, C]`` and, unless ``saved`` is ``None``,
    ``[r, z, n, P'_hn]`` into ``saved`` ``[2h, 4C]``, from the stacked operands ``x = [a; b]``
    ``[2h, C]`` and the GRU's ``weight = [W_i; W_h]`` ``[6C, C]`` and ``bias``."""
    c, h = x.size(1), out.size(0)
    p = torch.addmm(bias, x, weight.t())  # [2h, 6C]: [W_i x + b_i | W_h x + b_h]
    # the two halves as separate row ranges: every term of pair j sits in row j of one of them,
    # so Inductor emits one flat loop over the pairs (a [2, h] view with a flip does not fuse)
    p_a, p_b, x_a, x_b = p[:h], p[h:], x[:h], x[h:]

    def step(p: Tensor, q: Tensor, partner: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rz = torch.sigmoid(p[:, :2 * c] + q[:, 3 * c:5 * c])
        # tanh(y) = 2 sigmoid(2 y) - 1, as in the eager path: Inductor's vectorised tanh costs
        # ~2.3 times its sigmoid here (the block is bound by transcendentals, not memory)
        n = 2 * torch.sigmoid(2 * (p[:, 2 * c:3 * c] + rz[:, :c] * q[:, 5 * c:])) - 1
        return n + rz[:, c:] * (partner - n), rz, n  # (1 - z) n + z h, h being the partner

    y_a, rz_a, n_a = step(p_a, p_b, x_b)
    y_b, rz_b, n_b = step(p_b, p_a, x_a)
    out.copy_(0.5 * (y_a + y_b))
    if saved is not None:
        saved[:h].copy_(torch.cat([rz_a, n_a, p_b[:, 5 * c:]], dim=1))
        saved[h:].copy_(torch.cat([rz_b, n_b, p_a[:, 5 * c:]], dim=1))


def backward(grad: Tensor, x: Tensor, saved: Tensor, weight: Tensor, grad_weight_t: Tensor,
             grad_bias: Tensor, out: Tensor) -> None:
    r"""From ``grad`` ``[h, C]`` (of ``a ⊕ b``) and the forward's ``saved`` ``[2h, 4C]``, write the
    gradient of the stacked operands ``x`` into ``out`` ``[2h, C]`` and add the parameters'
    gradients to ``grad_weight_t`` (transposed, ``[C, 6C]``: :math:`x^\top \partial P` is the
    faster product here) and ``grad_bias``."""
    c, h = x.size(1), grad.size(0)
    gg = 0.5 * grad  # both orders contribute half

    def terms(s: Tensor, partner: Tensor) -> tuple[Tensor, ...]:
        r, z, n, hn = s[:, :c], s[:, c:2 * c], s[:, 2 * c:3 * c], s[:, 3 * c:]
        d_z = gg * (partner - n) * z * (1 - z)
        d_n = gg * (1 - z) * (1 - n * n)
        d_r = d_n * hn * r * (1 - r)
        return d_r, d_z, d_n, r * d_n, z * gg

    t_a, t_b = terms(saved[:h], x[h:]), terms(saved[h:], x[:h])
    # the gradient of P; the hidden-side gradients ([d r, d z, r d n] of a row) and the direct
    # term z gg belong to its partner
    d_p = torch.cat([torch.cat([*t_a[:3], t_b[0], t_b[1], t_b[3]], dim=1),
                     torch.cat([*t_b[:3], t_a[0], t_a[1], t_a[3]], dim=1)])
    grad_weight_t.add_(x.t() @ d_p)
    grad_bias.add_(d_p.sum(0))
    out.copy_(torch.cat([t_b[4], t_a[4]]) + d_p @ weight)


_COMPILED: dict[str, Callable[..., Any]] = {}
_FAILED: list[str] = []
_FUNCTIONS = {"forward": forward, "backward": backward}


def available() -> bool:
    """Whether the fused path can be used: no compilation failed in this process."""
    return not _FAILED


def run(name: str, *args: Any) -> None:
    """Call :func:`forward` or :func:`backward` compiled (on first use); if compilation fails,
    warn once and run it eagerly. Dimension 0 of every tensor argument (rows) is marked dynamic,
    so every block size and graph of the same channel count reuses the compiled code."""
    fn = _COMPILED.get(name)
    if fn is None:
        fn = _COMPILED[name] = torch.compile(_FUNCTIONS[name], dynamic=None)
    if not _FAILED:
        args = tuple(_dynamic_rows(a) if isinstance(a, Tensor) else a for a in args)
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: eager still works
            _FAILED.append(f"{type(exc).__name__}: {exc}")
            warnings.warn(f"LCMAggregation(fused=True): torch.compile failed "
                          f"({_FAILED[0][:300]}); using the eager path", RuntimeWarning,
                          stacklevel=3)
    return _FUNCTIONS[name](*args)

