"""Pure-PyTorch parametrisations of orthogonal matrices and a safe symmetric inverse square root.

These replace the compiled ``torch_householder`` extra and the SVD-with-jitter normalisation of
the Neural Sheaf Diffusion reference code. Everything is batched over a leading dimension (one
matrix per edge or per node) and differentiable everywhere, including at repeated eigenvalues.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["num_orthogonal_params", "householder_orthogonal", "cayley_orthogonal",
           "orthogonal_from_params", "sym_inv_sqrt", "small_matmul"]


def small_matmul(a: Tensor, b: Tensor) -> Tensor:
    r"""``a @ b`` for large batches of small matrices, ``a`` ``[..., m, k]``, ``b`` ``[..., k, n]``.

    Sums ``k`` broadcast products instead of calling ``bmm``: on CPU a batched ``matmul`` of
    ``3 x 3`` blocks spends most of its time in per-matrix overhead (4-5x slower on a sheaf's
    ``[E, 3, 3] @ [E, 3, 20]``). ``k`` is a stalk dimension (a handful), not a graph size.
    """
    out = a[..., :, 0, None] * b[..., None, 0, :]
    for j in range(1, a.size(-1)):
        # in place: no [..., m, n] temporary per term (autograd saves the factors, not out)
        out = out.addcmul_(a[..., :, j, None], b[..., None, j, :])
    return out


def num_orthogonal_params(dim: int) -> int:
    """Number of free parameters of a ``dim x dim`` orthogonal map: ``dim * (dim - 1) / 2``."""
    return dim * (dim - 1) // 2


def _strict_lower(params: Tensor, dim: int) -> Tensor:
    """Scatter ``[B, dim*(dim-1)/2]`` parameters into the strict lower triangle of ``[B, d, d]``."""
    rows, cols = torch.tril_indices(dim, dim, offset=-1, device=params.device)
    out = params.new_zeros(params.shape[:-1] + (dim, dim))
    out[..., rows, cols] = params
    return out


def householder_orthogonal(params: Tensor, dim: int) -> Tensor:
    r"""Orthogonal matrices as products of ``dim`` Householder reflections.

    Column :math:`i` of the reflector matrix is :math:`v_i = e_i + (\text{params below row } i)`,
    so :math:`\|v_i\| \ge 1` and the product
    :math:`Q = \prod_i (I - 2 v_i v_i^\top / \|v_i\|^2)` is smooth in ``params`` everywhere.
    ``params = 0`` gives :math:`\mathrm{diag}(-1, \dots, -1)`, an element of :math:`O(d)`.

    Args:
        params: ``[..., dim * (dim - 1) / 2]``.
        dim: matrix size ``d``.

    Returns:
        ``[..., dim, dim]`` orthogonal matrices, in the dtype of ``params`` (half precision is
        computed in float32, see :func:`orthogonal_from_params`).
    """
    if params.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(
            params.device.type):
        with torch.autocast(params.device.type, enabled=False):
            return householder_orthogonal(params.to(_work_dtype(params.dtype)), dim).to(params.dtype)
    eye = torch.eye(dim, dtype=params.dtype, device=params.device)
    vecs = _strict_lower(params, dim) + eye  # column i is v_i
    q = None
    # a loop over the stalk dimension (d <= ~5), not over edges; elementwise products instead
    # of batched [d, d] @ [d, 1] matmuls (per-matrix overhead dominates those on CPU)
    for i in range(dim):
        v = vecs[..., :, i]
        qv = v if q is None else (q * v.unsqueeze(-2)).sum(-1)  # I v = v: skip the product
        step = (2.0 / (v * v).sum(-1, keepdim=True)).unsqueeze(-1) * qv.unsqueeze(-1) \
            * v.unsqueeze(-2)
        q = eye - step if q is None else q - step
    return q if q is not None else eye.expand(params.shape[:-1] + (dim, dim))


def cayley_orthogonal(params: Tensor, dim: int) -> Tensor:
    r"""Special-orthogonal matrices by the Cayley map :math:`Q = (I - S)(I + S)^{-1}`.

    :math:`S` is the skew-symmetric matrix built from ``params``; :math:`I + S` is always
    invertible (its eigenvalues are :math:`1 + i\mu`), so the map and its gradient are finite.

    Args:
        params: ``[..., dim * (dim - 1) / 2]``.
        dim: matrix size ``d``.
    """
    if params.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(
            params.device.type):
        with torch.autocast(params.device.type, enabled=False):
            return cayley_orthogonal(params.to(_work_dtype(params.dtype)), dim).to(params.dtype)
    low = _strict_lower(params, dim)
    skew = low - low.transpose(-1, -2)
    eye = torch.eye(dim, dtype=params.dtype, device=params.device).expand_as(skew)
    # (I - S)(I + S)^{-1} = ((I + S)^{-T} (I - S)^T)^T and (I+S)^T = I - S, (I-S)^T = I + S
    return torch.linalg.solve(eye - skew, eye + skew).transpose(-1, -2)


def orthogonal_from_params(params: Tensor, dim: int, method: str = "householder") -> Tensor:
    """Dispatch to :func:`householder_orthogonal` or :func:`cayley_orthogonal`.

    Mixed precision: with bf16/fp16 ``params`` or under ``torch.autocast`` both parametrisations
    run in float32 with autocast off (a chain of ``d`` bf16 reflections is orthogonal only to
    ~1e-2, and ``linalg.solve`` has no half kernels) and return the dtype of ``params``.
    """
    if method == "householder":
        return householder_orthogonal(params, dim)
    if method == "cayley":
        return cayley_orthogonal(params, dim)
    raise ValueError(f"orthogonal method must be 'householder' or 'cayley', got {method!r}")


class _SymInvSqrt(torch.autograd.Function):
    r"""``A^{-1/2}`` of symmetric positive-definite matrices with a stable backward.

    Backward uses the Daleckii-Krein formula with the divided differences of
    :math:`f(\lambda) = \lambda^{-1/2}` in the closed form
    :math:`-1 / (\sqrt{\lambda_i}\sqrt{\lambda_j}(\sqrt{\lambda_i} + \sqrt{\lambda_j}))`,
    which has no :math:`1 / (\lambda_i - \lambda_j)` term: the gradient stays finite (and exact)
    when eigenvalues coincide, where the plain ``eigh``/``svd`` backward returns ``inf``/``nan``.
    """

    @staticmethod
    def forward(ctx, a: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        ctx.in_dtype = a.dtype
        with torch.autocast(a.device.type, enabled=False):
            evals, evecs = torch.linalg.eigh(a.to(_work_dtype(a.dtype)))
            root = evals.clamp_min(eps).sqrt()
            out = (evecs / root.unsqueeze(-2)) @ evecs.transpose(-1, -2)
        ctx.save_for_backward(evecs, root)
        return out.to(a.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        evecs, root = ctx.saved_tensors
        # under autocast the incoming gradient may be bf16/fp16: work in the eigenbasis' dtype
        with torch.autocast(grad.device.type, enabled=False):
            grad = grad.to(evecs.dtype)
            ri, rj = root.unsqueeze(-1), root.unsqueeze(-2)
            kernel = -1.0 / (ri * rj * (ri + rj))
            g = evecs.transpose(-1, -2) @ (0.5 * (grad + grad.transpose(-1, -2))) @ evecs
            out = evecs @ (g * kernel) @ evecs.transpose(-1, -2)
        return out.to(ctx.in_dtype), None


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """``eigh`` has no half-precision kernels, and d x d eigenproblems are cheap: use float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def sym_inv_sqrt(a: Tensor, eps: float = 1e-8) -> Tensor:
    r"""Inverse square root of a batch of symmetric positive semi-definite matrices.

    Eigenvalues below ``eps`` are clamped to ``eps`` (a sheaf Laplacian has no component along
    those directions, so the clamp never reaches the output). The gradient is finite at repeated
    eigenvalues (see :class:`_SymInvSqrt`). Half-precision input (bf16/fp16, e.g. under
    ``torch.autocast``) is decomposed in float32 with autocast off (``eigh`` has no half kernels
    and the ``d x d`` problems are tiny) and returned in the input dtype.

    Args:
        a: ``[..., d, d]`` symmetric matrices.
        eps: eigenvalue floor.
    """
    if a.numel() == 0:
        return a.clone()
    return _SymInvSqrt.apply(a, eps)
