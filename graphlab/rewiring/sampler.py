"""Exactly-k subset sampling with gradient estimators (SIMPLE, I-MLE, Gumbel-softmax)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphlab.rewiring.k_subset import k_per_row, k_subset_marginals, resolve_infinite
from graphlab.utils.validation import check_floating

__all__ = ["KSubsetSampler", "topk_mask"]

ESTIMATORS = ("simple", "imle", "gumbel_softmax")


def topk_mask(scores: Tensor, k: Tensor, mask: Tensor) -> Tensor:
    """Boolean ``[..., n]`` mask of the ``k`` largest unmasked scores of each row.

    ``k`` holds one (already clipped) size per row, shape ``scores.shape[:-1]``. Ties are broken
    by position (stable sort), so the result is deterministic.
    """
    n = scores.size(-1)
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    order = torch.where(mask, scores, neg_inf).argsort(dim=-1, descending=True, stable=True)
    positions = torch.arange(n, device=scores.device).expand_as(order)
    ranks = torch.empty_like(order).scatter_(-1, order, positions)
    return (ranks < k.unsqueeze(-1)) & mask


def _gumbel(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)
    tiny = torch.finfo(like.dtype).tiny
    neg_log_u = (-torch.log(u.clamp(min=tiny))).clamp(min=tiny)
    return -torch.log(neg_log_u)


class _IMLE(torch.autograd.Function):
    """Implicit MLE (Niepert et al. 2021): the gradient is the difference of two MAP states, one
    at the perturbed logits and one at logits moved against the downstream gradient."""

    @staticmethod
    def forward(ctx, logits: Tensor, noise: Tensor, k: Tensor, mask: Tensor,
                lam: float) -> Tensor:
        z = topk_mask(logits.unsqueeze(0) + noise, k, mask).to(logits.dtype)
        ctx.save_for_backward(logits, noise, k, mask, z)
        ctx.lam = lam
        return z

    @staticmethod
    def backward(ctx, grad: Tensor):
        logits, noise, k, mask, z = ctx.saved_tensors
        target = logits.unsqueeze(0) - ctx.lam * grad
        z_target = topk_mask(target + noise, k, mask).to(logits.dtype)
        return ((z - z_target) / ctx.lam).sum(0), None, None, None, None


class KSubsetSampler(nn.Module):
    r"""Samples exactly-:math:`k` subsets of a row of scores with a differentiable surrogate, as in
    `"Probabilistically Rewired Message-Passing Neural Networks"
    <https://arxiv.org/abs/2310.02156>`_.

    The forward pass draws hard samples by Gumbel-top-:math:`k` (perturb-and-MAP):

    .. math::
        z = \mathrm{topk}_k(\theta + g), \qquad g_i \sim \mathrm{Gumbel}(0, 1).

    Backward passes, selected by ``estimator``:

    - ``"simple"`` (SIMPLE, Ahmed et al. 2023): :math:`\partial z / \partial\theta :=
      \partial\mu(\theta)/\partial\theta` with :math:`\mu` the exact marginals of
      :func:`~graphlab.rewiring.k_subset_marginals`, i.e. ``z + mu - mu.detach()``;
    - ``"imle"`` (I-MLE, Niepert et al. 2021): :math:`\nabla_\theta \approx
      (z(\theta + g) - z(\theta - \lambda\nabla_z L + g)) / \lambda` with the same noise;
    - ``"gumbel_softmax"``: straight-through through the relaxed top-:math:`k` of Xie and Ermon
      (2019), :math:`k` successive softmaxes at temperature ``tau``.

    In ``eval()`` mode the sampler returns the deterministic top-:math:`k` (the MAP state) once,
    or, with ``num_eval_samples > 1``, that many hard Gumbel-top-:math:`k` samples (no gradient):
    the paper evaluates with several sampled rewirings per graph and averages the predictions.
    On 1-WL-symmetric inputs (EXP, CSL) many logits tie: samples pick uniformly among tied
    candidates, while the MAP state resolves ties by candidate order.

    Masking follows :func:`~graphlab.rewiring.k_subset_marginals`: an entry with ``mask`` ``False``
    or logit :math:`-\infty` is never sampled, one with logit :math:`+\infty` is always sampled
    (and counts against :math:`k`); every estimator gives them zero, finite gradients. A ``k``
    larger than a row's present entries is a ``ValueError`` (pass a per-row ``k``, e.g.
    ``torch.minimum(k, mask.sum(-1))``, to clip); the check is skipped under
    :func:`torch.compile` (see :func:`~graphlab.rewiring.k_subset_marginals`).

    Args:
        k (int): subset size (may be overridden per call, also per row).
        estimator (str): ``"simple"``, ``"imle"`` or ``"gumbel_softmax"``.
        num_samples (int): samples drawn per row in training mode.
        num_eval_samples (int): samples drawn per row in evaluation mode (``1``: the
            deterministic top-:math:`k`).
        tau (float): Gumbel noise scale for ``"simple"``/``"imle"``, softmax temperature for
            ``"gumbel_softmax"``.
        imle_lambda (float): step size :math:`\lambda` of I-MLE.

    Shapes:
        - **input:** logits :math:`(*, n)`, optional bool mask :math:`(*, n)`
        - **output:** samples :math:`(S, *, n)` with values in :math:`\{0, 1\}`, exactly
          :math:`k` ones per row; :math:`S` is ``num_samples`` in training
          and ``num_eval_samples`` in evaluation.
    """

    def __init__(self, k: int, estimator: str = "simple", num_samples: int = 1,
                 tau: float = 1.0, imle_lambda: float = 10.0, num_eval_samples: int = 1) -> None:
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if num_samples < 1 or num_eval_samples < 1:
            raise ValueError(f"num_samples and num_eval_samples must be >= 1, got {num_samples}, "
                             f"{num_eval_samples}")
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.k = k
        self.estimator = estimator
        self.num_samples = num_samples
        self.num_eval_samples = num_eval_samples
        self.tau = tau
        self.imle_lambda = imle_lambda

    def forward(self, logits: Tensor, mask: Tensor | None = None, k: int | Tensor | None = None,
                generator: torch.Generator | None = None, max_k: int | None = None) -> Tensor:
        """Draw samples (see the class docstring); ``k`` overrides the sampler's ``k`` for this
        call, an int or one per row; ``max_k`` bounds a tensor ``k`` so that no step has to
        read its values (no host sync or graph break to size the tables)."""
        check_floating(logits, "logits")
        if logits.dim() < 1:
            raise ValueError(f"logits must have at least 1 dimension [..., n], got shape "
                             f"{list(logits.shape)}")
        if mask is None:
            mask = torch.ones_like(logits, dtype=torch.bool)
        elif not isinstance(mask, Tensor) or mask.shape != logits.shape \
                or mask.dtype != torch.bool:
            got = f"{mask.dtype} {list(mask.shape)}" if isinstance(mask, Tensor) \
                else type(mask).__name__
            raise ValueError(f"mask must be a bool tensor of shape {list(logits.shape)}, "
                             f"got {got}")
        k = self.k if k is None else k
        lead, n = logits.shape[:-1], logits.size(-1)
        k_rows = k_per_row(k, lead, lead.numel(), logits.device)
        # -inf / masked entries are absent, +inf ones forced; eager mode rejects infeasible k
        rows = lead.numel()
        _, free, forced, k_free, _ = resolve_infinite(logits.detach().reshape(rows, n),
                                                      mask.reshape(rows, n), k_rows)
        present = (free | forced).view(logits.shape)
        free, forced = free.view(logits.shape), forced.view(logits.shape)
        k_rows = (k_free + forced.sum(-1).view(rows)).view(lead)
        k_free = k_free.view(lead)
        # forced entries rank first in every top-k below; absent ones never rank
        finite = torch.where(free, logits, torch.zeros((), dtype=logits.dtype,
                                                       device=logits.device))
        inf = torch.tensor(float("inf"), dtype=logits.dtype, device=logits.device)

        if not self.training:
            if self.num_eval_samples == 1:
                scores = torch.where(forced, inf, finite.detach())
                return topk_mask(scores, k_rows, present).to(logits.dtype).unsqueeze(0)
            noise = _gumbel(torch.Size((self.num_eval_samples, *logits.shape)), logits, generator)
            scores = torch.where(forced, inf, finite.detach().unsqueeze(0) + self.tau * noise)
            return topk_mask(scores, k_rows, present).to(logits.dtype)

        bound = k if isinstance(k, int) else max_k
        shape = torch.Size((self.num_samples, *logits.shape))
        noise = _gumbel(shape, logits, generator)
        if self.estimator == "imle":
            noise = torch.where(forced, inf, self.tau * noise.detach())
            return _IMLE.apply(finite, noise, k_rows, present, self.imle_lambda)
        if self.estimator == "simple":
            scores = torch.where(forced, inf, finite.detach().unsqueeze(0) + self.tau * noise)
            z = topk_mask(scores, k_rows, present)
            mu = k_subset_marginals(logits, k_rows, mask, max_k=bound)
            return z.to(logits.dtype) + (mu - mu.detach()).unsqueeze(0)
        soft = self._relaxed_topk(finite.unsqueeze(0) + noise, k_free, free, bound)
        soft = torch.where(forced, torch.ones_like(soft), soft)
        z = topk_mask(torch.where(forced, inf, soft.detach()), k_rows, present).to(logits.dtype)
        return z + (soft - soft.detach())  # exactly z in the forward pass

    def _relaxed_topk(self, scores: Tensor, k_rows: Tensor, mask: Tensor,
                      bound: int | None = None) -> Tensor:
        # Xie & Ermon (2019): k rounds of softmax, each damping what was already taken.
        neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
        tiny = torch.finfo(scores.dtype).tiny
        # rows without any valid entry get finite dummy scores (their output is masked to 0)
        w = torch.where(mask, scores, neg_inf)
        w = torch.where(mask.any(-1, keepdim=True), w, torch.zeros_like(w))
        soft = torch.zeros_like(scores)
        # an int k bounds the rounds without reading k_rows (no host sync, no graph break)
        if bound is None:
            bound = int(k_rows.max()) if k_rows.numel() else 0
        for t in range(bound):
            alpha = torch.softmax(w / self.tau, dim=-1)
            active = (k_rows > t).unsqueeze(-1).to(scores.dtype)
            soft = soft + active * alpha
            w = w + torch.log((1.0 - alpha).clamp(min=tiny))
        return torch.where(mask, soft, torch.zeros_like(soft))

    def extra_repr(self) -> str:
        return (f"k={self.k}, estimator={self.estimator!r}, num_samples={self.num_samples}, "
                f"num_eval_samples={self.num_eval_samples}, tau={self.tau}")
