"""Building blocks shared by the layers: orthogonal maps from unconstrained parameters and a
differentiable symmetric inverse square root (used by the sheaf layers)."""

from graphlab.nn.orthogonal import (
    cayley_orthogonal,
    householder_orthogonal,
    num_orthogonal_params,
    orthogonal_from_params,
    sym_inv_sqrt,
)

__all__ = [
    "cayley_orthogonal",
    "householder_orthogonal",
    "num_orthogonal_params",
    "orthogonal_from_params",
    "sym_inv_sqrt",
]
