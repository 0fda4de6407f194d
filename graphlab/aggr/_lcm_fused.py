"""Fused kernels of :class:`~graphlab.aggr.LCMAggregation` (``LCMAggregation(..., fused=True)``).

Per block of ``h`` pairs, the GRU combine of ``_GRUPairs`` is two matrix products (the r and z
gates of both orders from the rows :math:`[a_j | b_j]` and :math:`[b_j | a_j]`, and
:math:`2 [W_{in}; W_{hn}]` of the operands), written straight into the stored activations,
then ~8 elementwise passes; its backward pass is ~12 elementwise passes, then four matrix
products. Here each group of elementwise passes is one pure tensor function, compiled lazily by
``torch.compile`` (Inductor) into a few flat loops over the pairs, working in place on the
caller's buffers; the number of pairs ``h`` is dynamic and the channel count static, so there
is one compilation per channel count, dtype and function.

Notation: in the ``[2h, 2C]`` views, row ``2j`` is the order :math:`(a_j, b_j)` (input
:math:`a_j`, hidden state :math:`b_j`) and row ``2j + 1`` the order :math:`(b_j, a_j)`; a row's
*partner* row is the other one of its pair. Per order,

.. math::
    r, z = \\sigma([x | h] W_{rz} + b_{rz}),\\quad
    n = \\tanh(i + r \\odot g'),\\quad
    a \\oplus b = \\tfrac12\\left[(1 - z_a) n_a + z_a b + (1 - z_b) n_b + z_b a\\right],

with :math:`[i, g] = [W_{in}; W_{hn}] x + [b_{in}; b_{hn}]` of the order's input :math:`x` and
:math:`g'` the partner's :math:`g`. The forward pass writes the result and, for the backward
pass, ``[r, z]`` and ``[n, 2 g]`` per order (``4C`` values) over the products in the caller's
buffers. The backward's terms carry the scale factors of ``_GRUPairs.backward`` (twice the true
gradients, four times for r).

They are used on accelerators only (:func:`pays`): on the CPU the block is bound by its
sigmoids and products, and the eager passes are faster.

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

__all__ = ["available", "backward", "forward", "pays", "run"]


def _swap(t: Tensor) -> Tensor:
    """``[2h, k]`` rows swapped within each pair: every order's row gets its partner's."""
    return t.view(-1, 2, t.size(-1)).flip(1).reshape(t.shape)


def forward(x: Tensor, rz: Tensor, ng: Tensor, out: Tensor) -> None:
    """From the products the caller wrote into ``rz`` (the gates' pre-activations) and ``ng``
    (``2 [i, g]``), ``[h, 4C]`` each, and the operands gathered as rows ``a, b, b, a`` per pair
    (``x``, ``[4h, C]``): write ``a ⊕ b`` into ``out`` ``[h, C]`` and the activations ``[r, z]``
    and ``[n, 2 g]`` over ``rz`` and ``ng``, in place."""
    c, h = x.size(1), out.size(0)
    pairs = x.view(2 * h, 2 * c)  # rows [a | b], [b | a]
    rz2, ng2 = rz.view(2 * h, 2 * c), ng.view(2 * h, 2 * c)
    gates = torch.sigmoid(rz2)  # [r, z] per order
    # tanh(y) = 2 sigmoid(2 y) - 1, as in the eager path: Inductor's vectorised tanh costs
    # ~2.3 times its sigmoid here (the block is bound by transcendentals, not memory)
    n = 2 * torch.sigmoid(ng2[:, :c] + gates[:, :c] * _swap(ng2[:, c:])) - 1
    y = n + gates[:, c:] * (pairs[:, c:] - n)  # (1 - z) n + z h, h being the partner
    out.copy_(0.5 * (y[::2] + y[1::2]))
    rz2.copy_(gates)
    ng2[:, :c].copy_(n)


def backward(grad: Tensor, x: Tensor, rz: Tensor, ng: Tensor, d_rz: Tensor, d_ng: Tensor,
             zg: Tensor) -> None:
    r"""From ``grad`` ``[2h, C]`` (the gradient of ``a ⊕ b``, each row twice), the operands
    ``x`` (rows ``a, b``, ``[2h, C]``) and the forward's ``rz`` and ``ng``, write the
    (scaled, see ``_GRUPairs.backward``) gradients of the gates' pre-activations into ``d_rz``,
    of ``[i, g]`` into ``d_ng`` (``[2h, 2C]`` each) and :math:`z \odot` ``grad`` into ``zg``;
    the caller's matrix products take it from there."""
    c, h2 = x.size(1), grad.size(0)
    rz2, ng2 = rz.view(h2, 2 * c), ng.view(h2, 2 * c)
    r, z, n = rz2[:, :c], rz2[:, c:], ng2[:, :c]
    d_z = grad * (_swap(x) - n) * z * (1 - z)
    z_grad = z * grad
    d_s = (grad - z_grad) * (1 - n * n)
    d_rz.copy_(torch.cat([d_s * _swap(ng2[:, c:]) * r * (1 - r), d_z], dim=1))
    d_ng.copy_(torch.cat([d_s, _swap(r * d_s)], dim=1))  # d g' = r d s belongs to the partner
    zg.copy_(z_grad)


_COMPILED: dict[str, Callable[..., Any]] = {}
_FAILED: list[str] = []
_FUNCTIONS = {"forward": forward, "backward": backward}


def pays(device: torch.device) -> bool:
    """Whether the compiled functions are used on ``device``: not on the CPU, where the eager
    passes are faster (one 2,048-pair block on one thread, forward 0.79 ms eager against 1.43
    ms compiled, where the partner swap defeats Inductor's vectorisation and the eager
    products write straight into the stored activations; backward 0.47 against 0.49 ms, plus
    ~0.1 ms dispatch per compiled call). On accelerators they fuse ~10 and ~12 kernel
    launches per block into one each."""
    return device.type != "cpu"


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

