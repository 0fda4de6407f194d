"""Orthogonal parametrisations and the safe symmetric inverse square root."""

from __future__ import annotations

import pytest
import torch

from graphlab.nn.orthogonal import (
    cayley_orthogonal,
    householder_orthogonal,
    num_orthogonal_params,
    orthogonal_from_params,
    small_matmul,
    sym_inv_sqrt,
)

DT = torch.float64


@pytest.mark.parametrize("fn", [householder_orthogonal, cayley_orthogonal])
@pytest.mark.parametrize("dim", [1, 2, 3, 5])
def test_orthogonal_and_gradcheck(fn, dim):
    params = torch.randn(6, num_orthogonal_params(dim), dtype=DT,
                         generator=torch.Generator().manual_seed(dim))
    q = fn(params, dim)
    assert q.shape == (6, dim, dim)
    assert (q @ q.mT - torch.eye(dim, dtype=DT)).abs().max() < 1e-12
    if dim > 1:
        assert torch.autograd.gradcheck(lambda p: fn(p, dim), (params.requires_grad_(True),))


def test_parametrisations_reach_their_groups():
    # Cayley: rotations (det +1); Householder with d reflections: det (-1)^d
    p = torch.randn(50, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.linalg.det(cayley_orthogonal(p, 3)), torch.ones(50, dtype=DT))
    torch.testing.assert_close(torch.linalg.det(householder_orthogonal(p, 3)),
                               -torch.ones(50, dtype=DT))
    with pytest.raises(ValueError, match="householder"):
        orthogonal_from_params(p, 3, "euler")


def test_gradients_finite_where_all_singular_values_coincide():
    # params = 0: every map is +-I, all singular values equal 1
    params = torch.zeros(4, 3, dtype=DT, requires_grad=True)
    for fn in (householder_orthogonal, cayley_orthogonal):
        fn(params, 3).sum().backward()
        assert bool(torch.isfinite(params.grad).all())
        params.grad = None


@pytest.mark.parametrize("case", ["generic", "repeated", "scalar_identity"])
def test_sym_inv_sqrt(case):
    gen = torch.Generator().manual_seed(0)
    if case == "generic":
        a = torch.randn(5, 3, 3, dtype=DT, generator=gen)
        a = a @ a.mT + 0.5 * torch.eye(3, dtype=DT)
    elif case == "repeated":  # eigenvalues (2, 2, 5)
        q, _ = torch.linalg.qr(torch.randn(5, 3, 3, dtype=DT, generator=gen))
        a = q @ torch.diag(torch.tensor([2.0, 2.0, 5.0], dtype=DT)) @ q.mT
    else:
        a = 3 * torch.eye(3, dtype=DT).repeat(5, 1, 1)
    y = sym_inv_sqrt(a)
    torch.testing.assert_close(y @ a @ y, torch.eye(3, dtype=DT).expand(5, 3, 3))
    a = a.clone().requires_grad_(True)
    # gradcheck on symmetric perturbations, including at coinciding eigenvalues
    assert torch.autograd.gradcheck(lambda m: sym_inv_sqrt(0.5 * (m + m.mT)), (a,))
    assert sym_inv_sqrt(torch.empty(0, 3, 3)).shape == (0, 3, 3)


# ------------------------------------------------------------------ mixed precision (issue 17)
@pytest.mark.parametrize("fn", [householder_orthogonal, cayley_orthogonal])
def test_half_precision_params_are_computed_in_float32(fn):
    """Regression: ``cayley_orthogonal`` raised ``"lu_cpu" not implemented for 'BFloat16'``."""
    params = torch.randn(8, num_orthogonal_params(4), generator=torch.Generator().manual_seed(0))
    ref = fn(params, 4)
    for dtype in (torch.bfloat16, torch.float16):
        q = fn(params.to(dtype), 4)
        assert q.dtype == dtype
        # the only error left is the final rounding of each entry to the half format
        tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
        torch.testing.assert_close(q.float(), fn(params.to(dtype).float(), 4), atol=tol, rtol=0)
        assert (q.float() - ref).abs().max() < 5 * tol


def test_sym_inv_sqrt_under_autocast_forward_and_backward():
    """Regression: ``SheafConv(maps="general")`` under bf16 autocast failed in the backward of
    the inverse square root (orthogonal.py:106, ``expected scalar type Float but found BFloat16``)."""
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(5, 3, 3, generator=gen)
    a = (a @ a.mT + torch.eye(3)).requires_grad_(True)
    lin = torch.nn.Linear(3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lin(sym_inv_sqrt(lin(a).mT @ lin(a)))   # bf16 matrices in, bf16 gradient back
    out.float().sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(lin.weight.grad).all()
    b = a.detach().bfloat16()
    r = sym_inv_sqrt(b)
    assert r.dtype == torch.bfloat16
    torch.testing.assert_close(r.float(), sym_inv_sqrt(b.float()), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_householder_equals_lapack_householder_product(dim):
    """The elementwise product of reflections equals LAPACK's orgqr (``householder_product``
    with tau = 2 / |v|^2 on the unit-diagonal reflectors) in values and gradients."""
    params = torch.randn(7, 2, num_orthogonal_params(dim), dtype=DT,
                         generator=torch.Generator().manual_seed(dim), requires_grad=True)
    rows, cols = torch.tril_indices(dim, dim, offset=-1)
    low = params.new_zeros(7, 2, dim, dim)
    low[..., rows, cols] = params
    vecs = low + torch.eye(dim, dtype=DT)
    expected = torch.linalg.householder_product(vecs, 2.0 / (vecs * vecs).sum(-2))
    q = householder_orthogonal(params, dim)
    torch.testing.assert_close(q, expected, rtol=1e-12, atol=1e-13)
    weight = torch.randn_like(q)
    torch.testing.assert_close(torch.autograd.grad((q * weight).sum(), params)[0],
                               torch.autograd.grad((expected * weight).sum(), params)[0],
                               rtol=1e-11, atol=1e-12)


def test_small_matmul_is_matmul_with_broadcasting():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, 3, dtype=DT, generator=gen), torch.randn(5, 3, 7, dtype=DT, generator=gen)
    torch.testing.assert_close(small_matmul(a, b), a @ b, rtol=1e-14, atol=1e-14)
    w = torch.randn(3, 3, dtype=DT, generator=gen)  # one matrix applied to a batch
    torch.testing.assert_close(small_matmul(w, b), w @ b, rtol=1e-14, atol=1e-14)
