"""Exact marginals of the exactly-k subset distribution, by a log-space dynamic program."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphlab.utils.validation import check_floating, value_checks_enabled

__all__ = ["k_subset_marginals", "log_esp", "resolve_infinite"]


def _safe_logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(a) + exp(b))`` whose gradient is 0 (not NaN) where both inputs are ``-inf``.

    ``torch.logaddexp`` back-propagates ``exp(-inf - (-inf)) = NaN`` there, and the DP tables are
    full of exact zeros (``e_j`` of fewer than ``j`` items), so the double-``where`` is required.
    """
    m = torch.maximum(a, b)
    finite = torch.isfinite(m)
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    m0 = torch.where(finite, m, zero).detach()  # the shift does not change the value
    a0 = torch.where(finite, a, zero)
    b0 = torch.where(finite, b, zero)
    out = m0 + torch.log(torch.exp(a0 - m0) + torch.exp(b0 - m0))
    return torch.where(finite, out, torch.full_like(out, float("-inf")))


def _safe_logsumexp(x: Tensor, dim: int) -> Tensor:
    """``logsumexp`` with a zero (not NaN) gradient for all-``-inf`` slices."""
    m = x.amax(dim=dim, keepdim=True)
    finite = torch.isfinite(m)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    m0 = torch.where(finite, m, zero).detach()
    x0 = torch.where(finite, x, zero)
    out = m0 + torch.log(torch.exp(x0 - m0).sum(dim=dim, keepdim=True))
    out = torch.where(finite, out, torch.full_like(out, float("-inf")))
    return out.squeeze(dim)


def _impossible(dtype: torch.dtype) -> float:
    """Finite stand-in for ``log 0`` in the DP tables: ``exp`` of it is exactly 0, sums of a few of
    them stay finite, and ``torch.logaddexp`` / ``torch.logsumexp`` back-propagate exact zeros
    through it (with ``-inf`` they give NaN where both operands are ``-inf``)."""
    return torch.finfo(dtype).min / 16


def log_esp(theta: Tensor, max_k: int) -> Tensor:
    r"""Prefix tables of log elementary symmetric polynomials.

    Returns ``F`` of shape ``[n + 1, B, max_k + 1]`` with
    :math:`F[i, b, j] = \log e_j(\exp\theta_{b,0}, \dots, \exp\theta_{b,i-1})`, using the
    recurrence :math:`e_j^{(i)} = e_j^{(i-1)} + \exp(\theta_i)\, e_{j-1}^{(i-1)}`. The loop runs
    over the ``n`` positions, three fused ops per step, each vectorised over rows and ``j``.
    Entries of ``theta`` equal to ``-inf`` act as absent items; ``log 0`` (e.g. :math:`e_j` of fewer
    than ``j`` items) is stored as a huge negative finite number (see :func:`_impossible`), so
    ``exp`` of it is exactly 0 and gradients stay finite.
    """
    rows, n = theta.shape
    low = _impossible(theta.dtype)
    prev = theta.new_full((rows, max_k + 1), low)
    prev[:, 0] = 0.0
    tables = [prev]
    for i in range(n):
        shifted = nn.functional.pad(prev[:, :-1], (1, 0), value=low) + theta[:, i:i + 1]
        prev = torch.logaddexp(prev, shifted)
        tables.append(prev)
    return torch.stack(tables, dim=0)


def k_subset_marginals(logits: Tensor, k: int | Tensor, mask: Tensor | None = None, *,
                       max_k: int | None = None) -> Tensor:
    r"""Exact marginals of the exactly-:math:`k` distribution over subsets, from the
    `"Probabilistically Rewired Message-Passing Neural Networks"
    <https://arxiv.org/abs/2310.02156>`_ paper (SIMPLE, `Ahmed et al. 2023
    <https://arxiv.org/abs/2210.01941>`_).

    For every row :math:`\theta \in \mathbb{R}^n`,
    :math:`p_\theta(S) \propto \exp(\sum_{i\in S}\theta_i)\,\mathbb{1}[|S| = k]` and

    .. math::
        \mu_i = p_\theta(i \in S) = \exp\big(\theta_i + \log e_{k-1}(\theta_{\setminus i})
        - \log e_k(\theta)\big),

    where :math:`e_j` are elementary symmetric polynomials of :math:`\exp\theta`. Prefix and suffix
    tables are filled in log space in :math:`O(nk)` per row, and
    :math:`e_{k-1}(\theta_{\setminus i}) = \sum_j e_j(\theta_{<i})\,e_{k-1-j}(\theta_{>i})` costs
    :math:`O(k)` per position. Rows with :math:`k > n/2` use the complement identity
    :math:`\mu(\theta, k) = 1 - \mu(-\theta, n - k)`, so the work is :math:`O(n\min(k, n-k))`;
    when that is 1 the distribution is categorical and :math:`\mu` is a masked softmax.
    Everything is ordinary autograd, so the Jacobian of :math:`\mu` (the SIMPLE gradient) is exact.

    **Infinite logits** are the limits of the distribution, handled exactly: an entry with
    :math:`\theta_i = -\infty` (or ``mask`` ``False``) is absent (:math:`\mu_i = 0`), one with
    :math:`\theta_i = +\infty` is in every subset (:math:`\mu_i = 1`, counted against :math:`k`);
    the remaining entries follow the exactly-:math:`(k - n_{+\infty})` distribution. Both kinds get
    zero gradient, and all gradients are finite.

    **Feasibility.** A row with :math:`k` larger than its number of present entries (neither
    masked nor :math:`-\infty`), with more :math:`+\infty` entries than :math:`k`, or with a NaN
    among its present entries raises a ``ValueError``. This value check follows
    :mod:`graphlab.utils.validation`'s policy: it runs in eager mode on CPU, and on accelerators
    only under ``graphlab.utils.validation.debug()``; it is the one host synchronisation of the call
    (it also reads the size of the DP tables). Under :func:`torch.compile` it is skipped (it would
    need a value-dependent branch): :math:`k` is then clipped to the present entries and surplus
    :math:`+\infty` entries all keep :math:`\mu = 1`.

    The DP loops over the :math:`n` positions (vectorised over rows and :math:`k`), so
    :func:`torch.compile` unrolls it and specialises on :math:`n`: pad rows to a fixed width
    (absent entries cost nothing but time) to compile once.

    Args:
        logits (torch.Tensor): scores :math:`\theta` of shape ``[..., n]``.
        k (int or torch.Tensor): subset size; an int or an integer tensor of the leading shape
            ``[...]`` (one ``k`` per row).
        mask (torch.Tensor, optional): boolean ``[..., n]``, ``True`` for real entries and
            ``False`` for padding; padded entries get marginal ``0`` and zero gradient.
        max_k (int, optional): an upper bound on every entry of a tensor ``k``. When the value
            check does not run (under :func:`torch.compile`, or on an accelerator outside debug
            mode) it sizes the DP tables without reading ``k``: no host sync, no graph break. An
            int ``k`` is its own bound.

    Returns:
        torch.Tensor: marginals of shape ``[..., n]`` in ``[0, 1]`` whose rows sum to ``k``.
    """
    check_floating(logits, "logits")
    if logits.dim() < 1:
        raise ValueError(f"logits must have at least 1 dimension [..., n], got shape "
                         f"{list(logits.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        # the DP's finite stand-in for log 0 needs the range of float32
        return k_subset_marginals(logits.float(), k, mask, max_k=max_k).to(logits.dtype)
    shape = logits.shape
    n = shape[-1]
    theta = logits.reshape(shape[:-1].numel(), n)  # (-1 is ambiguous for n = 0)
    rows = theta.size(0)
    mask_flat = _flat_mask(mask, shape, theta)
    k_rows = k_per_row(k, shape[:-1], rows, theta.device)
    if rows == 0 or n == 0:
        if value_checks_enabled(k_rows) and k_rows.numel() and bool((k_rows > 0).any()):
            raise ValueError(f"k = {int(k_rows.max())} exceeds the number of entries per row "
                             f"(0)")
        return logits * 0
    theta, free, forced, k_free, k_max = resolve_infinite(theta, mask_flat, k_rows)
    n_free = free.sum(dim=-1)
    flip = (n_free - k_free) < k_free
    k_small = torch.where(flip, n_free - k_free, k_free)
    if k_max is None:  # no value checks: a static bound, else read it (a sync / graph break)
        bound = k if isinstance(k, int) else max_k
        k_max = min(bound, n // 2) if bound is not None else int(k_small.max())
    else:  # the exact size, read together with the feasibility check
        k_max = min(k_max, n // 2)
    mu = _free_marginals(theta, k_small, flip, free, k_max)
    out = torch.where(forced, torch.ones_like(mu), mu)
    # ``+ 0 * theta`` (finite) keeps ``out`` attached to the graph when no entry is free
    return (out + 0 * theta).reshape(shape)


def _flat_mask(mask: Tensor | None, shape: torch.Size, theta: Tensor) -> Tensor:
    if mask is None:
        return torch.ones_like(theta, dtype=torch.bool)
    if not isinstance(mask, Tensor) or mask.shape != shape:
        got = list(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must have the shape of logits {list(shape)}, got {got}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    return mask.reshape(theta.shape)


def resolve_infinite(theta: Tensor, mask: Tensor, k_rows: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor, int | None]:
    r"""Split ``[B, n]`` logits into absent, forced and free entries.

    Returns ``(theta_free, free, forced, k_free, k_max)``: the logits with every non-free entry
    replaced by 0 (through ``torch.where``, so non-free entries get zero gradient), the masks of
    the free (finite, unmasked) and forced (``+inf``, unmasked) entries, the number of free
    entries to pick per row (:math:`k - n_{+\infty}`), and, in eager mode, the largest
    :math:`\min(k_\text{free}, n_\text{free} - k_\text{free})` (``None`` while compiling).

    When value checks run (:func:`~graphlab.utils.validation.value_checks_enabled`: eager mode,
    CPU or debug) this raises the ``ValueError`` of an infeasible row (see
    :func:`k_subset_marginals`) with one host synchronisation; otherwise it clips instead.
    """
    present = mask & (theta != float("-inf"))
    forced = present & (theta == float("inf"))
    free = present & ~forced
    n_present = present.sum(dim=-1)
    n_forced = forced.sum(dim=-1)
    k_max = None
    if value_checks_enabled(theta):
        nan_rows = (free & torch.isnan(theta)).any(dim=-1)
        bad = (k_rows > n_present) | (n_forced > k_rows) | (k_rows < 0) | nan_rows
        k_free = k_rows - n_forced
        n_free = n_present - n_forced
        k_small = torch.minimum(k_free, n_free - k_free)
        any_bad, k_max = torch.stack([bad.any().long(), k_small.max().clamp(min=0)]).tolist()
        if any_bad:
            _raise_infeasible(k_rows, n_present, n_forced, nan_rows)
    k_free = (torch.minimum(k_rows, n_present) - n_forced).clamp(min=0)
    zero = torch.zeros((), dtype=theta.dtype, device=theta.device)
    return torch.where(free, theta, zero), free, forced, k_free, k_max


def _raise_infeasible(k_rows: Tensor, n_present: Tensor, n_forced: Tensor,
                      nan_rows: Tensor) -> None:
    """The error of the first infeasible row (only called once a problem is known)."""
    if bool(nan_rows.any()):
        row = int(nan_rows.nonzero()[0, 0])
        raise ValueError(f"logits row {row} holds NaN at an unmasked entry")
    if bool((k_rows < 0).any()):
        raise ValueError(f"k must be non-negative, got {int(k_rows.min())}")
    too_many = k_rows > n_present
    if bool(too_many.any()):
        row = int(too_many.nonzero()[0, 0])
        raise ValueError(
            f"k = {int(k_rows[row])} exceeds the number of unmasked entries ({int(n_present[row])}"
            f", neither masked nor -inf) in row {row}; pass a smaller k for that row, e.g. "
            f"torch.minimum(k, mask.sum(-1))")
    row = int((n_forced > k_rows).nonzero()[0, 0])
    raise ValueError(f"row {row} has {int(n_forced[row])} +inf logits (always selected) but "
                     f"k = {int(k_rows[row])}")


def _free_marginals(theta: Tensor, k_small: Tensor, flip: Tensor, free: Tensor,
                    max_k: int) -> Tensor:
    """Marginals of the free entries (finite ``theta``, ``k_small <= max_k``, flipped rows in
    the complement); absent entries get 0."""
    rows, n = theta.shape
    if max_k == 0:
        # every row selects nothing or everything: constant marginals
        return (flip.unsqueeze(-1) & free).to(theta.dtype) + 0 * theta

    neg_inf = torch.tensor(float("-inf"), dtype=theta.dtype, device=theta.device)
    signed = torch.where(flip.unsqueeze(-1), -theta, theta)
    th = torch.where(free, signed, neg_inf)
    if max_k == 1:
        # exactly-1 is a categorical distribution: the marginals are a masked softmax
        safe = torch.where(free.any(-1, keepdim=True), th, torch.zeros_like(th))
        mu = torch.where(free, torch.softmax(safe, dim=-1), torch.zeros_like(theta))
        return _finish(mu, k_small, flip, free)
    # one DP over the rows and their reversals: suffix[i] holds the items i..n-1
    both = log_esp(torch.cat([th, th.flip(-1)]), max_k)         # [n+1, 2B, K+1]
    prefix, suffix = both[:, :rows], both[:, rows:].flip(0)
    # rows with k_small == 0 are evaluated at k = 1 and overwritten below, to keep them finite
    k_eval = k_small.clamp(min=1)
    log_z = prefix[n].gather(1, k_eval.unsqueeze(1)).squeeze(1)   # [B]

    # log e_{k-1}(theta without i) = logsumexp_j prefix[i, j] + suffix[i+1, k-1-j]
    j = torch.arange(max_k, device=theta.device)                  # j = 0 .. K-1
    rev = k_eval.unsqueeze(1) - 1 - j                             # [B, K]
    valid = rev >= 0
    rev = rev.clamp(min=0)
    pre = prefix[:n, :, :max_k]                                   # [n, B, K]
    post = suffix[1:].gather(2, rev.unsqueeze(0).expand(n, -1, -1))
    terms = torch.where(valid.unsqueeze(0), pre + post, _impossible(theta.dtype))
    log_others = torch.logsumexp(terms, dim=-1).transpose(0, 1)   # [B, n]

    log_mu = th + log_others - log_z.unsqueeze(1)
    mu = torch.where(free, torch.exp(log_mu), torch.zeros_like(theta))
    return _finish(mu, k_small, flip, free)


def _finish(mu: Tensor, k_small: Tensor, flip: Tensor, mask: Tensor) -> Tensor:
    """Zero the rows with ``k = 0`` and undo the complement of flipped rows."""
    mu = torch.where((k_small == 0).unsqueeze(1), torch.zeros_like(mu), mu)
    return torch.where(flip.unsqueeze(1) & mask, 1.0 - mu, mu)


def k_per_row(k: int | Tensor, lead: torch.Size, rows: int, device: torch.device) -> Tensor:
    """``k`` (an int, a scalar tensor or one per row of shape ``lead``) validated and flattened
    to one int64 per row (``rows`` of them): shared by the marginals and the sampler."""
    if isinstance(k, Tensor):
        if k.is_floating_point() or k.dtype == torch.bool:
            raise ValueError(f"k must be an int or an integer tensor, got {k.dtype}")
        if k.dim() == 0:
            k = k.expand(lead)
        if k.shape != lead:
            raise ValueError(f"a tensor k must have the leading shape of logits {list(lead)}, "
                             f"got {list(k.shape)}")
        k_rows = k.reshape(-1).to(device=device, dtype=torch.long)
    else:
        if isinstance(k, bool) or not isinstance(k, int):
            raise ValueError(f"k must be an int or an integer tensor, got {type(k).__name__}")
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        k_rows = torch.full((rows,), k, dtype=torch.long, device=device)
    # a negative tensor k is caught by the eager feasibility check of resolve_infinite
    return k_rows
