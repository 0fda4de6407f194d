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
    # k larger than a row's unmasked entries is an error: clip it per row
    k_rows = torch.clamp(mask.sum(-1), max=k)
    mu = k_subset_marginals(t1, k_rows, mask if with_mask else None)
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


def test_k_equal_to_the_number_of_valid_entries_selects_all_of_them():
    theta = torch.randn(1, 6, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, False, True, False]])
    mu = k_subset_marginals(theta, 3, mask)
    torch.testing.assert_close(mu, mask.double())


def test_k_larger_than_the_valid_entries_is_an_error():
    """Issue 18: k is no longer clipped silently (all -inf with k=2 returned zeros)."""
    mask = torch.tensor([[True, True, False, False, True, False]])
    with pytest.raises(ValueError, match=r"k = 5 exceeds the number of unmasked entries \(3"):
        k_subset_marginals(torch.randn(1, 6), 5, mask)
    with pytest.raises(ValueError, match="row 1"):
        k_subset_marginals(torch.randn(2, 4), torch.tensor([2, 5]))
    with pytest.raises(ValueError, match="exceeds"):
        k_subset_marginals(torch.full((1, 4), float("-inf")), 2)
    with pytest.raises(ValueError, match="exceeds"):
        k_subset_marginals(torch.empty(3, 0), 1)
    with pytest.raises(ValueError, match="non-negative"):
        k_subset_marginals(torch.randn(2, 4), torch.tensor([2, -1]))


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


# ----------------------------------------------------------------- infinite logits (issue 18)
INF = float("inf")


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_minus_inf_logits_are_exactly_masked_entries(k):
    """-inf is the natural mask: marginal exactly 0, zero gradient, the rest as with ``mask``
    (it returned NaN before)."""
    gen = torch.Generator().manual_seed(k)
    theta = 2 * torch.randn(3, 8, dtype=torch.float64, generator=gen)
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[:, [1, 4]] = False
    mask[2, 6] = False
    t1 = theta.masked_fill(~mask, -INF).requires_grad_(True)
    t2 = theta.clone().requires_grad_(True)
    mu = k_subset_marginals(t1, k)
    ref = k_subset_marginals(t2, k, mask)
    assert (mu[~mask] == 0).all()
    torch.testing.assert_close(mu, ref, atol=1e-12, rtol=0)
    for r in range(3):
        torch.testing.assert_close(mu[r], brute_force_marginals(theta[r], k, mask[r]).detach(),
                                   atol=1e-10, rtol=1e-8)
    cot = torch.randn(3, 8, dtype=torch.float64, generator=gen)
    (g1,) = torch.autograd.grad((mu * cot).sum(), t1)
    (g2,) = torch.autograd.grad((ref * cot).sum(), t2)
    assert torch.isfinite(g1).all() and (g1[~mask] == 0).all()
    torch.testing.assert_close(g1, g2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("k", [2, 3, 6])
def test_plus_inf_logits_are_always_selected_and_count_against_k(k):
    gen = torch.Generator().manual_seed(10 + k)
    theta = torch.randn(2, 9, dtype=torch.float64, generator=gen)
    forced = torch.zeros(2, 9, dtype=torch.bool)
    forced[0, [0, 5]] = True
    forced[1, 8] = True
    absent = torch.zeros(2, 9, dtype=torch.bool)
    absent[1, 2] = True
    logits = theta.masked_fill(forced, INF).masked_fill(absent, -INF).requires_grad_(True)
    mu = k_subset_marginals(logits, k)
    assert (mu[forced] == 1).all() and (mu[absent] == 0).all()
    torch.testing.assert_close(mu.sum(-1), torch.full((2,), float(k), dtype=torch.float64))
    for r in range(2):  # the free entries follow the exactly-(k - #forced) distribution
        free = ~forced[r] & ~absent[r]
        ref = brute_force_marginals(theta[r], k - int(forced[r].sum()), free).detach()
        torch.testing.assert_close(mu[r][free], ref[free], atol=1e-10, rtol=1e-8)
    mu.mul(torch.randn(2, 9, dtype=torch.float64, generator=gen)).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[forced | absent] == 0).all() and logits.grad.abs().sum() > 0


def test_gradcheck_with_infinite_logits():
    """The marginals stay smooth in the finite logits next to masked and forced entries."""
    base = torch.randn(3, 7, dtype=torch.float64)
    inf_part = torch.zeros(3, 7, dtype=torch.float64)
    inf_part[0, 1], inf_part[1, 3], inf_part[2, 0] = -INF, INF, -INF
    inf_part[2, 6] = INF
    finite = torch.isfinite(inf_part)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return k_subset_marginals(torch.where(finite, t, inf_part), 3)

    assert torch.autograd.gradcheck(fn, (base.requires_grad_(True),))


def test_only_masked_entries_and_k_zero_give_zeros():
    mu = k_subset_marginals(torch.full((2, 5), -INF, requires_grad=True), 0)
    assert torch.equal(mu, torch.zeros(2, 5))
    mu = k_subset_marginals(torch.full((1, 3), INF), 3)   # all forced, k = n
    assert torch.equal(mu, torch.ones(1, 3))


@pytest.mark.parametrize(("logits", "k", "match"), [
    ([[INF, INF, 0.0]], 1, r"2 \+inf logits .* k = 1"),
    ([[float("nan"), 1.0, 0.0]], 1, "NaN"),
    ([[0.0, -INF, -INF]], 2, r"exceeds the number of unmasked entries \(1"),
])
def test_infeasible_rows_raise_value_error(logits, k, match):
    with pytest.raises(ValueError, match=match):
        k_subset_marginals(torch.tensor(logits), k)


def test_nan_under_the_mask_is_ignored():
    theta = torch.tensor([[0.3, float("nan"), -0.2]])
    mu = k_subset_marginals(theta, 1, torch.tensor([[True, False, True]]))
    assert torch.isfinite(mu).all() and mu[0, 1] == 0


def test_half_precision_with_infinite_logits():
    theta = torch.tensor([[1.0, -INF, 0.5, INF, -1.0, 2.0]])
    mu = k_subset_marginals(theta.to(torch.bfloat16), 3)
    assert torch.isfinite(mu.float()).all()
    assert mu[0, 1] == 0 and mu[0, 3] == 1


def test_compiled_marginals_skip_the_value_check_and_clip():
    """Under torch.compile the eager-only feasibility check is skipped (no value-dependent
    branch): an int k compiles without graph breaks, and an infeasible k is clipped."""
    import torch._dynamo

    torch._dynamo.reset()
    fn = torch.compile(lambda t: k_subset_marginals(t, 3), backend="eager", fullgraph=True)
    theta = torch.randn(4, 6)
    theta[0, 1] = -INF
    torch.testing.assert_close(fn(theta), k_subset_marginals(theta, 3))
    short = torch.tensor([[0.5, -INF, -INF, -INF, -INF, 1.0]])
    torch.testing.assert_close(fn(short), torch.tensor([[1.0, 0, 0, 0, 0, 1.0]]))
