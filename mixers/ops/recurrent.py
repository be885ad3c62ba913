"""Token by token: y_i from the inputs and past outputs that pattern reads, nothing else.

The decoding form of the op (the layers' `step` follows the same recurrence with a bounded
cache). Differentiable by autograd; slow (a Python loop over positions), used as a check.
"""

from __future__ import annotations

import torch


def glr_recurrent(v, alpha, a_idx, beta, b_idx):
    n = v.shape[-2]
    a_rows, b_rows = a_idx.tolist(), b_idx.tolist()
    ys: list[torch.Tensor] = []
    for i in range(n):
        a_cols = [m for m, j in enumerate(a_rows[i]) if j >= 0]
        y = v.new_zeros(v.shape[:-2] + v.shape[-1:])
        if a_cols:
            src = v[..., [a_rows[i][m] for m in a_cols], :]
            y = y + (alpha[..., i, a_cols].unsqueeze(-1) * src).sum(-2)
        b_cols = [m for m, j in enumerate(b_rows[i]) if j >= 0]
        if b_cols:
            past = torch.stack([ys[b_rows[i][m]] for m in b_cols], dim=-2)
            y = y + (beta[..., i, b_cols].unsqueeze(-1) * past).sum(-2)
        ys.append(y)
    if not ys:
        return v.new_zeros(v.shape)
    return torch.stack(ys, dim=-2)
