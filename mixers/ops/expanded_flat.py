"""The state-expanded op as `glr` (chunked) over the flattened outer products k_j v_j^T, then the
readout: n * dk * dv floats held for the states and again for their gradient
(mixers/ops/expanded.py).
"""

from __future__ import annotations

from .chunked import glr_chunked


def expanded_flat(q, k, v, alpha, a_idx, beta, b_idx, chunk_size: int = 64):
    b, h, n, dk = q.shape
    dv = v.shape[-1]
    x = (k.unsqueeze(-1) * v.unsqueeze(-2)).reshape(b, h, n, dk * dv)
    S = glr_chunked(x, alpha, a_idx, beta, b_idx, chunk_size).view(b, h, n, dk, dv)
    return (q.unsqueeze(-2) @ S).squeeze(-2)
