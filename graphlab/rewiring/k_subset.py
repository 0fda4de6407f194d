"""Exact marginals of the exactly-k subset distribution, by a log-space dynamic program."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphlab.utils.validation import check_floating

__all__ = ["k_subset_marginals", "log_esp"]


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


def k_subset_marginals(logits: Tensor, k: int | Tensor, mask: Tensor | None = None) -> Tensor:
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

    Args:
        logits (torch.Tensor): scores :math:`\theta` of shape ``[..., n]``.
        k (int or torch.Tensor): subset size; an int or an integer tensor of the leading shape
            ``[...]`` (one ``k`` per row). It is clipped to the number of unmasked entries.
        mask (torch.Tensor, optional): boolean ``[..., n]``, ``True`` for real entries and
            ``False`` for padding; padded entries get marginal ``0`` and zero gradient.

    Returns:
        torch.Tensor: marginals of shape ``[..., n]`` in ``[0, 1]`` whose rows sum to ``k``.
    """
    check_floating(logits, "logits")
    if logits.dim() < 1:
        raise ValueError(f"logits must have at least 1 dimension [..., n], got shape "
                         f"{list(logits.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        # the DP's finite stand-in for log 0 needs the range of float32
        return k_subset_marginals(logits.float(), k, mask).to(logits.dtype)
    shape = logits.shape
    n = shape[-1]
    theta = logits.reshape(-1, n)
    rows = theta.size(0)
    if mask is None:
        mask_flat = torch.ones_like(theta, dtype=torch.bool)
    else:
        if mask.shape != shape:
            raise ValueError(f"mask must have the shape of logits {list(shape)}, got "
                             f"{list(mask.shape)}")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
        mask_flat = mask.reshape(-1, n)
    k_rows = _k_per_row(k, shape[:-1], rows, theta.device)
    if rows == 0 or n == 0:
        return logits * 0
    n_valid = mask_flat.sum(dim=-1)
    k_rows = torch.minimum(k_rows, n_valid)
    flip = (n_valid - k_rows) < k_rows
    k_small = torch.where(flip, n_valid - k_rows, k_rows)
    max_k = int(k_small.max())
    if max_k == 0:
        # every row selects nothing or everything: constant marginals
        const = (flip.unsqueeze(-1) & mask_flat).to(logits.dtype)
        return (const + 0 * theta).reshape(shape)

    neg_inf = torch.tensor(float("-inf"), dtype=theta.dtype, device=theta.device)
    signed = torch.where(flip.unsqueeze(-1), -theta, theta)
    th = torch.where(mask_flat, signed, neg_inf)
    if max_k == 1:
        # exactly-1 is a categorical distribution: the marginals are a masked softmax
        safe = torch.where(mask_flat.any(-1, keepdim=True), th, torch.zeros_like(th))
        mu = torch.where(mask_flat, torch.softmax(safe, dim=-1), torch.zeros_like(theta))
        return _finish(mu, k_small, flip, mask_flat).reshape(shape)
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
    mu = torch.where(mask_flat, torch.exp(log_mu), torch.zeros_like(theta))
    return _finish(mu, k_small, flip, mask_flat).reshape(shape)


def _finish(mu: Tensor, k_small: Tensor, flip: Tensor, mask: Tensor) -> Tensor:
    """Zero the rows with ``k = 0`` and undo the complement of flipped rows."""
    mu = torch.where((k_small == 0).unsqueeze(1), torch.zeros_like(mu), mu)
    return torch.where(flip.unsqueeze(1) & mask, 1.0 - mu, mu)


def _k_per_row(k: int | Tensor, lead: torch.Size, rows: int, device: torch.device) -> Tensor:
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
        k_rows = torch.full((rows,), k, dtype=torch.long, device=device)
    if k_rows.numel() and int(k_rows.min()) < 0:
        raise ValueError(f"k must be non-negative, got {int(k_rows.min())}")
    return k_rows
