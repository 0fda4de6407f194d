r"""Weight matching (Git Re-Basin) over the permutation group derived by
:func:`~graphlab.metanets.permutation_spec`, and linear-interpolation loss barriers.

`"Git Re-Basin: Merging Models modulo Permutation Symmetries"
<https://arxiv.org/abs/2209.04836>`_ (Ainsworth et al., ICLR 2023) hand-writes a permutation spec
per architecture; here it comes from the traced graph, so any supported module can be matched.
Coordinate descent: for each free permutation group in random order, build
:math:`A = \sum_\ell W^{(a)}_\ell \, \big(P W^{(b)}_\ell\big)^\top` over every weight axis the
group touches (the other axes already permuted by the current estimates) and solve the linear
assignment :math:`\max_\pi \operatorname{tr}(A P_\pi)`, until no group improves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphlab.metanets.symmetry import PermutationSpec, permutation_spec, permute_module

__all__ = ["weight_matching", "interpolation_barrier", "interpolate_state_dicts"]


def _axes_of(spec: PermutationSpec, sd: dict[str, Tensor]) -> dict[int, list[tuple[str, int]]]:
    """Group index -> (parameter, axis) pairs, adding each layer's bias (and norm affine
    parameters of the same width) next to its weight's output axis, which the spec omits."""
    out: dict[int, list[tuple[str, int]]] = {}
    for gi, g in enumerate(spec.groups):
        lst = list(g.params)
        for name, ax in g.params:
            if ax == 0 and name.endswith(".weight"):
                bias = name[: -len("weight")] + "bias"
                if bias in sd and sd[bias].dim() == 1 and (bias, 0) not in lst:
                    lst.append((bias, 0))
        out[gi] = lst
    return out


def _expand(rel_inv: Tensor, length: int, size: int) -> Tensor:
    """Index along an axis of ``length`` entries whose entry ``i`` belongs to neuron ``i // r``."""
    r = length // size
    return (rel_inv.view(-1, 1) * r + torch.arange(r)).reshape(-1)


def weight_matching(model_a: nn.Module, model_b: nn.Module, example_input: Tensor | None = None,
                    max_iter: int = 100, seed: int = 0, return_perm: bool = False
                    ) -> nn.Module | tuple[nn.Module, Tensor]:
    """Permute ``model_b``'s hidden neurons to align its weights with ``model_a``.

    Args:
        model_a, model_b: two networks of the same architecture.
        example_input: an input batch for tracing (guessed if ``None``).
        max_iter: maximum sweeps of coordinate descent.
        seed: order in which groups are visited.
        return_perm: also return the node permutation (``perm[old] = new``) applied to ``b``.

    Returns:
        a copy of ``model_b`` computing the same function, with permuted weights (and the
        permutation if ``return_perm``).
    """
    sd_a = {k: v.detach().double() for k, v in model_a.state_dict().items()}
    sd_b = {k: v.detach().double() for k, v in model_b.state_dict().items()}
    if sd_a.keys() != sd_b.keys() or any(sd_a[k].shape != sd_b[k].shape for k in sd_a):
        raise ValueError("weight_matching needs two models of the same architecture")
    spec = permutation_spec(model_b, example_input)
    axes = _axes_of(spec, sd_b)
    free = [gi for gi, g in enumerate(spec.groups)
            if not g.fixed and g.num_blocks == 1 and axes[gi]]
    # (param, axis) -> group, to permute the *other* axes of a weight by their current estimate
    owner = {pa: gi for gi, lst in axes.items() for pa in lst}
    rel = {gi: torch.arange(spec.groups[gi].size) for gi in free}  # rel[old] = new

    def permuted_b(name: str, skip_axis: int) -> Tensor:
        w = sd_b[name]
        for ax in range(w.dim()):
            gi = owner.get((name, ax))
            if ax == skip_axis or gi not in rel:
                continue
            inv = torch.empty_like(rel[gi])
            inv[rel[gi]] = torch.arange(rel[gi].numel())
            w = w.index_select(ax, _expand(inv, w.size(ax), spec.groups[gi].size))
        return w

    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        improved = False
        for gi in rng.permutation(free):
            gi = int(gi)
            n = spec.groups[gi].size
            cost = torch.zeros(n, n, dtype=torch.float64)
            for name, ax in axes[gi]:
                wa = sd_a[name].movedim(ax, 0).reshape(n, -1)
                wb = permuted_b(name, ax).movedim(ax, 0).reshape(n, -1)
                cost += wa @ wb.T
            row, col = linear_sum_assignment(cost.numpy(), maximize=True)
            new_rel = torch.empty(n, dtype=torch.long)
            new_rel[torch.as_tensor(col)] = torch.as_tensor(row)  # b's neuron col -> slot row
            old_score = float(cost[rel[gi], torch.arange(n)].sum())
            new_score = float(cost[new_rel, torch.arange(n)].sum())
            if new_score > old_score + 1e-12:
                rel[gi] = new_rel
                improved = True
        if not improved:
            break
    perm = spec.identity()
    for gi, r in rel.items():
        for s in spec.groups[gi].starts:
            perm[s:s + r.numel()] = s + r
    out = permute_module(model_b, perm, example_input)
    return (out, perm) if return_perm else out


def interpolate_state_dicts(sd_a: dict[str, Tensor], sd_b: dict[str, Tensor], alpha: float
                            ) -> dict[str, Tensor]:
    """``(1 - alpha) * a + alpha * b`` for floating tensors (integer buffers are taken from a)."""
    return {k: (1 - alpha) * v + alpha * sd_b[k] if v.is_floating_point() else v
            for k, v in sd_a.items()}


def interpolation_barrier(model_a: nn.Module, model_b: nn.Module,
                          data: tuple[Tensor, Tensor], num_points: int = 11,
                          loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
                          alphas: Sequence[float] | None = None) -> dict[str, object]:
    r"""Loss barrier along the straight line between two networks' weights:

    .. math::
        B = \max_{\alpha \in [0, 1]} \mathcal{L}\big((1-\alpha)\theta_a + \alpha\theta_b\big)
            - \big((1-\alpha)\mathcal{L}(\theta_a) + \alpha\mathcal{L}(\theta_b)\big)

    Args:
        model_a, model_b: networks of the same architecture (evaluated in eval mode).
        data: ``(x, y)`` evaluation batch.
        num_points: grid points on :math:`[0, 1]` (ignored if ``alphas`` is given).
        loss_fn: defaults to cross-entropy.

    Returns:
        ``{"barrier": float, "alphas": list, "losses": list}``.
    """
    x, y = data
    loss_fn = loss_fn or F.cross_entropy
    alphas = list(np.linspace(0.0, 1.0, num_points)) if alphas is None else list(alphas)
    sd_a, sd_b = model_a.state_dict(), model_b.state_dict()
    probe = copy.deepcopy(model_a).eval()
    losses = []
    with torch.no_grad():
        for a in alphas:
            probe.load_state_dict(interpolate_state_dicts(sd_a, sd_b, float(a)))
            losses.append(float(loss_fn(probe(x), y)))
    la, lb = losses[0], losses[-1]
    if alphas[0] != 0.0 or alphas[-1] != 1.0:
        with torch.no_grad():
            la = float(loss_fn(model_a.eval()(x), y))
            lb = float(loss_fn(model_b.eval()(x), y))
    barrier = max(loss - ((1 - a) * la + a * lb) for a, loss in zip(alphas, losses))
    return {"barrier": float(barrier), "alphas": [float(a) for a in alphas], "losses": losses}
