"""Euclidean-equivariance checks (the ``e3nn.util.test.assert_equivariant`` idea).

Random group elements are drawn from a seeded generator in float64: orthogonal matrices from the
QR decomposition of a Gaussian matrix (sign-corrected so the distribution is Haar), with the
determinant forced to -1 or +1 on request so reflections are always exercised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["random_orthogonal", "assert_e_n_equivariant"]


def random_orthogonal(n: int, generator: torch.Generator, reflection: bool | None = None,
                      dtype: torch.dtype = torch.float64) -> Tensor:
    """A Haar-random ``n x n`` orthogonal matrix; ``reflection`` forces ``det = -1`` (or +1)."""
    a = torch.randn(n, n, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if reflection is not None:
        want = -1.0 if reflection else 1.0
        if float(torch.linalg.det(q)) * want < 0:
            q = q.clone()
            q[:, 0] = -q[:, 0]
    return q


def assert_e_n_equivariant(
    fn: Callable[[Tensor, Sequence[Tensor]], tuple[Tensor, Tensor | None, Sequence[Tensor]]],
    pos: Tensor,
    vectors: Sequence[Tensor] = (),
    num_trials: int = 3,
    seed: int = 0,
    atol: float = 1e-10,
) -> None:
    """Check ``fn`` under random rotations/reflections ``Q`` and translations ``t``.

    ``fn(pos, vectors) -> (invariant, pos_out, vectors_out)``: the invariant output must not
    change, ``pos_out`` must map to ``pos_out @ Q.T + t`` (``None`` to skip) and every vector
    output (velocities: rotated, never translated) to ``v @ Q.T``. Trials alternate proper
    rotations and reflections.
    """
    gen = torch.Generator().manual_seed(seed)
    n = pos.size(1)
    inv, pos_out, vec_out = fn(pos, vectors)
    for trial in range(num_trials):
        q = random_orthogonal(n, gen, reflection=(trial % 2 == 0) if n > 1 else None,
                              dtype=pos.dtype)
        if n == 1:
            q = -torch.ones(1, 1, dtype=pos.dtype) if trial % 2 == 0 else q
        t = torch.randn(n, generator=gen, dtype=pos.dtype) * 3
        inv2, pos2, vec2 = fn(pos @ q.T + t, [v @ q.T for v in vectors])
        kind = f"trial {trial} (det {float(torch.linalg.det(q)):+.0f}, n={n})"
        _assert_close(inv2, inv, atol, f"invariant output changed, {kind}")
        if pos_out is not None:
            _assert_close(pos2, pos_out @ q.T + t, atol, f"positions not equivariant, {kind}")
        for k, (a, b) in enumerate(zip(vec2, vec_out)):
            _assert_close(a, b @ q.T, atol, f"vector output {k} not equivariant, {kind}")


def _assert_close(a: Tensor, b: Tensor, atol: float, what: str) -> None:
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shape {list(a.shape)} != {list(b.shape)}")
    if a.numel() and not torch.allclose(a, b, atol=atol, rtol=0):
        raise AssertionError(f"{what}: max abs difference {(a - b).abs().max().item():.3g}")
