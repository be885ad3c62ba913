"""The state-expanded op's ground truth: M = (I - B)^{-1} A materialised by one triangular
solve, then ((Q K^T) * M) V. O(n^2) memory (mixers/ops/expanded.py).
"""

from __future__ import annotations

import torch

from .reference import dense_matrix


def expanded_reference(q, k, v, alpha, a_idx, beta, b_idx):
    n = v.shape[-2]
    A = dense_matrix(alpha, a_idx, n)
    B = dense_matrix(beta, b_idx, n)
    eye = torch.eye(n, dtype=v.dtype, device=v.device)
    # I - B is unit lower triangular (docs/design.md 1): M = (I - B)^{-1} A by one solve
    M = torch.linalg.solve_triangular(eye - B, A, upper=False, unitriangular=True)
    return ((q @ k.transpose(-1, -2)) * M) @ v
