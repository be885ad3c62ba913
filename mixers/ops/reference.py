"""The ground truth: dense A and B, one triangular solve. O(n^2) memory: small n only."""

from __future__ import annotations

import torch

from .common import mask_padding


def dense_matrix(coef: torch.Tensor, idx: torch.Tensor, n: int) -> torch.Tensor:
    """[..., n, K] coefficients at absolute columns idx [n, K] (-1 = none) -> [..., n, n].
    Repeated columns in a row add up, as in the sum that defines the op."""
    coef, cols, _ = mask_padding(coef, idx)
    out = coef.new_zeros(*coef.shape[:-1], n)
    return out.scatter_add(-1, cols.expand(coef.shape), coef)


def glr_reference(v, alpha, a_idx, beta, b_idx):
    n = v.shape[-2]
    A = dense_matrix(alpha, a_idx, n)
    B = dense_matrix(beta, b_idx, n)
    eye = torch.eye(n, dtype=v.dtype, device=v.device)
    # I - B is unit lower triangular: always invertible, Y = (I - B)^{-1} A V
    return torch.linalg.solve_triangular(eye - B, A @ v, upper=False, unitriangular=True)
