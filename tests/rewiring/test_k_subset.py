"""Exact k-subset marginals against brute-force enumeration."""

import itertools

import pytest
import torch

from graphlab.rewiring import k_subset_marginals


def brute_force_marginals(theta: torch.Tensor, k: int, mask: torch.Tensor) -> torch.Tensor:
    """Enumerate every k-subset of the unmasked entries (differentiable in theta)."""
    idx = [i for i in range(theta.numel()) if bool(mask[i])]
    k = min(k, len(idx))
    subsets = list(itertools.combinations(idx, k))
    onehot = torch.zeros(len(subsets), theta.numel(), dtype=theta.dtype)
    for row, s in enumerate(subsets):
        onehot[row, list(s)] = 1.0
    probs = torch.softmax(onehot @ theta, dim=0)
    return probs @ onehot


def _check_against_brute_force(n: int, k: int, with_mask: bool, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    theta = 3 * torch.randn(3, n, dtype=torch.float64, generator=gen)
    mask = torch.rand(3, n, generator=gen) > 0.3 if with_mask else torch.ones(3, n, dtype=bool)
    t1 = theta.clone().requires_grad_(True)
    t2 = theta.clone().requires_grad_(True)
    mu = k_subset_marginals(t1, k, mask if with_mask else None)
    ref = torch.stack([brute_force_marginals(t2[r], k, mask[r]) for r in range(3)])
    torch.testing.assert_close(mu, ref, atol=1e-10, rtol=1e-8)
    # the vector-Jacobian product is the SIMPLE backward pass
    cot = torch.randn(3, n, dtype=torch.float64, generator=gen)
    (g1,) = torch.autograd.grad((mu * cot).sum(), t1)
    (g2,) = torch.autograd.grad((ref * cot).sum(), t2)
    torch.testing.assert_close(g1, g2, atol=1e-10, rtol=1e-8)
    assert torch.isfinite(g1).all()
    if with_mask:
        assert (mu[~mask] == 0).all() and (g1[~mask] == 0).all()


@pytest.mark.parametrize("n", [1, 2, 5, 8, 12])
def test_marginals_and_gradient_match_brute_force_all_k(n):
    for k in range(n + 1):
        _check_against_brute_force(n, k, with_mask=False, seed=n * 100 + k)


@pytest.mark.parametrize("n", [4, 9, 12])
def test_marginals_with_masks_match_brute_force(n):
    for k in range(n + 1):
        _check_against_brute_force(n, k, with_mask=True, seed=n * 1000 + k)


def test_marginals_sum_to_k_and_lie_in_unit_interval():
    gen = torch.Generator().manual_seed(0)
    theta = 5 * torch.randn(16, 40, generator=gen)
    for k in (1, 7, 20, 33, 40):
        mu = k_subset_marginals(theta, k)
        torch.testing.assert_close(mu.sum(-1), torch.full((16,), float(k)), atol=1e-3, rtol=0)
        assert (mu >= -1e-5).all() and (mu <= 1 + 1e-5).all()  # float32 rounding


def test_per_row_k_and_leading_dims():
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(2, 3, 7, dtype=torch.float64, generator=gen)
    k = torch.tensor([[0, 3, 7], [1, 5, 2]])
    mu = k_subset_marginals(theta, k)
    assert mu.shape == theta.shape
    for i, j in itertools.product(range(2), range(3)):
        ref = brute_force_marginals(theta[i, j], int(k[i, j]), torch.ones(7, dtype=bool))
        torch.testing.assert_close(mu[i, j], ref)


def test_k_is_clipped_to_the_number_of_valid_entries():
    theta = torch.randn(1, 6, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, False, True, False]])
    mu = k_subset_marginals(theta, 5, mask)
    torch.testing.assert_close(mu, mask.double())


def test_simple_gradient_is_nonzero():
    """The authors' README warns that SIMPLE may silently return zero gradients."""
    theta = torch.randn(4, 30, dtype=torch.float64, requires_grad=True)
    mu = k_subset_marginals(theta, 10)
    (mu * torch.arange(30.0, dtype=torch.float64)).sum().backward()
    assert theta.grad.abs().sum() > 1e-3
    # shifting all logits of a row does not change the distribution: gradients sum to 0 per row
    torch.testing.assert_close(theta.grad.sum(-1), torch.zeros(4, dtype=torch.float64))


def test_extreme_logits_stay_finite():
    theta = torch.tensor([[300.0, -300.0, 0.0, 250.0, -1e4, 1e4]], requires_grad=True)
    mu = k_subset_marginals(theta, 3)
    mu.sum().backward()
    assert torch.isfinite(mu).all() and torch.isfinite(theta.grad).all()
    torch.testing.assert_close(mu.sum(), torch.tensor(3.0))


def test_gradcheck_float64():
    theta = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 9, dtype=bool)
    mask[1, 7:] = False
    assert torch.autograd.gradcheck(lambda t: k_subset_marginals(t, 4, mask), (theta,))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"logits": torch.ones(3, 4, dtype=torch.long), "k": 1}, "floating"),
    ({"logits": torch.ones(3, 4), "k": -1}, "non-negative"),
    ({"logits": torch.ones(3, 4), "k": 1.5}, "int"),
    ({"logits": torch.ones(3, 4), "k": torch.ones(2, dtype=torch.long)}, "leading shape"),
    ({"logits": torch.ones(3, 4), "k": 1, "mask": torch.ones(3, 5, dtype=bool)}, "shape"),
    ({"logits": torch.ones(3, 4), "k": 1, "mask": torch.ones(3, 4)}, "bool"),
])
def test_bad_inputs_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        k_subset_marginals(**kwargs)


def test_half_precision_logits_are_computed_in_float32():
    gen = torch.Generator().manual_seed(2)
    theta = 4 * torch.randn(5, 30, generator=gen)
    mu = k_subset_marginals(theta.to(torch.bfloat16), 7)
    assert mu.dtype == torch.bfloat16 and torch.isfinite(mu.float()).all()
    torch.testing.assert_close(mu.float(), k_subset_marginals(theta, 7), atol=1e-2, rtol=0)
