"""The state-expanded op token by token with matrix states: reads only the pattern's reads and
drops each state after its last reader (the decoding path; mixers/ops/expanded.py).
"""

from __future__ import annotations

import torch


def last_reads(b_idx: torch.Tensor) -> list[int]:
    """last[p] = the last row that reads position p through the recurrence (-1: never read).
    A decoder drops state p after that row: what remains is the pattern's live set."""
    n = b_idx.shape[0]
    rows = torch.arange(n, device=b_idx.device).unsqueeze(1).expand_as(b_idx)
    last = torch.full((n,), -1, dtype=torch.long, device=b_idx.device)
    valid = b_idx >= 0
    if valid.any():
        last = last.scatter_reduce(0, b_idx[valid], rows[valid], reduce="amax")
    return last.tolist()


def expanded_recurrent(q, k, v, alpha, a_idx, beta, b_idx, max_live: list | None = None):
    """Token by token: S_i from the outer products and the states the pattern reads, nothing else.
    States are dropped after their last reader; `max_live`, when a list, receives the largest
    number of states held at once (the decoding cache of docs/design.md 1.4)."""
    n = v.shape[-2]
    a_rows, b_rows = a_idx.tolist(), b_idx.tolist()
    last = last_reads(b_idx)
    states: dict[int, torch.Tensor] = {}
    largest = 0
    outs: list[torch.Tensor] = []
    for i in range(n):
        a_cols = [m for m, j in enumerate(a_rows[i]) if j >= 0]
        S = q.new_zeros(q.shape[:-2] + (q.shape[-1], v.shape[-1]))
        if a_cols:
            src = [a_rows[i][m] for m in a_cols]
            weighted_k = alpha[..., i, a_cols].unsqueeze(-1) * k[..., src, :]  # [b, h, m, dk]
            S = S + weighted_k.transpose(-1, -2) @ v[..., src, :]
        b_cols = [m for m, j in enumerate(b_rows[i]) if j >= 0]
        if b_cols:
            past = torch.stack([states[b_rows[i][m]] for m in b_cols], dim=-3)
            S = S + (beta[..., i, b_cols, None, None] * past).sum(-3)
        outs.append((q[..., i, :].unsqueeze(-2) @ S).squeeze(-2))
        if last[i] > i:
            states[i] = S
        for j in set(b_rows[i]):
            if j >= 0 and last[j] == i:
                del states[j]
        largest = max(largest, len(states))
    if isinstance(max_live, list):
        max_live.append(largest)
    if not outs:
        return v.new_zeros(v.shape)
    return torch.stack(outs, dim=-2)
