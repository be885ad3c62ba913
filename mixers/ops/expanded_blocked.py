"""The state-expanded op's CPU training path (docs/design.md 1.4): all chunks at once, matrix
states only where a later chunk reads them.

With the rows cut into chunks of C (the last padded), L_c = I - B_cc the in-chunk recurrence,
A_cc the in-chunk direct part and B_past the chunk's reads of the stored states S_P of earlier
positions:

    [W | G] = L_c^{-1} [A_cc | B_past]          one batched C x C triangular solve, all chunks
    o_i = sum_j W[i, j] (q_i . k_j) v_j         masked attention inside the chunk: two batched
                                                matrix products over all chunks
        + sum_p G[i, p] (q_i^T S_p)             q projected on the states the chunk reads
    S_r = K_c^T diag(W[r]) V_c + sum_p G[r, p] S_p     only at the positions r a later chunk reads

Only the last line runs chunk by chunk, on the few stored states (first: one per chunk; the
pow2 and sq1 lattices: a few per chunk, each state read by every chunk that needs it rather than
recomputed). The work is about n (C (dk + dv) + P dk dv) with P the states a chunk reads, and no
per-row matrix state is ever formed. The index bookkeeping (which state each row reads, in which
column) depends only on the patterns, so it is built once per pair of index tensors and kept on
the recurrent index tensor.

Direct reads that leave their chunk (window, full) are not handled here: `blocked_plan` returns
None for them, and `glr_expanded` runs its per-chunk loop instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["blocked_plan", "expanded_blocked"]

_PLANS = "_glr_expanded_plans"  # attribute of b_idx: {(chunk_size, a_idx versions): plan}


@dataclass
class _Chunk:
    """What chunk c reads and keeps: the states it reads, grouped by the chunk that stored them
    ((owner, local rows) in ascending position order, the order of G's columns); the range of
    stored slots that are its own rows."""

    reads: list  # [(owner chunk, slice or LongTensor of its stored states)]
    keep: tuple[int, int]  # [first, last) slots of `stored` in this chunk


@dataclass
class _Plan:
    n: int
    chunk: int
    num_chunks: int
    num_past: int  # P: columns of B_past (the most states one chunk reads)
    a_col: torch.Tensor  # [n_pad, Ka] column inside the chunk, 0 where invalid
    a_ok: torch.Tensor
    b_in_col: torch.Tensor  # [n_pad, Kb] in-chunk reads
    b_in_ok: torch.Tensor
    b_past_col: torch.Tensor  # [n_pad, Kb] column of B_past
    b_past_ok: torch.Tensor
    stored: torch.Tensor  # ascending positions whose state a later chunk reads
    stored_chunk: torch.Tensor  # chunk of each
    chunks: list


def blocked_plan(a_idx: torch.Tensor, b_idx: torch.Tensor, chunk_size: int) -> _Plan | None:
    """The index bookkeeping of `expanded_blocked`, or None when a direct read leaves its chunk.
    Cached on b_idx (valid while neither index tensor changes in place)."""
    plans = getattr(b_idx, _PLANS, None)
    if plans is None:
        plans = {}
        setattr(b_idx, _PLANS, plans)
    key = (chunk_size, id(a_idx), a_idx._version, b_idx._version)
    hit = plans.get(key)
    if hit is not None and hit[0] is a_idx:
        return hit[1]
    plan = _build_plan(a_idx, b_idx, chunk_size)
    plans.clear()  # one pattern pair per index tensor in practice: keep the latest
    plans[key] = (a_idx, plan)
    return plan


def _build_plan(a_idx, b_idx, C):
    n, dev = b_idx.shape[0], b_idx.device
    nc = -(-n // C)
    pad = nc * C - n
    a_idx = F.pad(a_idx, (0, 0, 0, pad), value=-1)
    b_idx = F.pad(b_idx, (0, 0, 0, pad), value=-1)
    start = (torch.arange(nc * C, device=dev) // C * C).unsqueeze(1)
    a_ok = a_idx >= 0
    if bool((a_ok & (a_idx < start)).any()):
        return None
    b_ok = b_idx >= 0
    b_in_ok = b_ok & (b_idx >= start)
    b_past_ok = b_ok & (b_idx < start)
    stored = torch.unique(b_idx[b_past_ok])  # ascending
    slot = torch.full((max(n, 1),), -1, dtype=torch.long, device=dev)
    slot[stored] = torch.arange(stored.numel(), device=dev)
    stored_chunk = stored // C
    b_past_col = torch.zeros_like(b_idx)
    chunks, num_past = [], 0
    for c in range(nc):
        rows = slice(c * C, (c + 1) * C)
        ok = b_past_ok[rows]
        read_pos = torch.unique(b_idx[rows][ok])
        num_past = max(num_past, read_pos.numel())
        if read_pos.numel():
            b_past_col[rows] = torch.where(
                ok, torch.searchsorted(read_pos, torch.where(ok, b_idx[rows], read_pos[0])), 0)
        slots = slot[read_pos]
        owners = stored_chunk[slots]
        reads = []
        for owner in torch.unique(owners).tolist():  # ascending: G's columns stay in order
            first = int(torch.searchsorted(stored_chunk, torch.tensor(owner, device=dev)))
            local = slots[owners == owner] - first
            lo, hi = int(local[0]), int(local[-1]) + 1
            reads.append((owner, slice(lo, hi) if hi - lo == local.numel() else local))
        keep = torch.searchsorted(stored_chunk, torch.tensor([c, c + 1], device=dev)).tolist()
        chunks.append(_Chunk(reads, (keep[0], keep[1])))
    return _Plan(n, C, nc, num_past, torch.where(a_ok, a_idx - start, 0), a_ok,
                 torch.where(b_in_ok, b_idx - start, 0), b_in_ok, b_past_col, b_past_ok,
                 stored, stored_chunk, chunks)


def _block(coef, col, ok, width):
    """[b, h, n_pad, K] coefficients scattered to [b, h, n_pad, width] at columns col."""
    coef = torch.where(ok, coef, torch.zeros((), dtype=coef.dtype, device=coef.device))
    out = coef.new_zeros(*coef.shape[:-1], width)
    return out.scatter_add(-1, col.expand(coef.shape), coef)


def expanded_blocked(q, k, v, alpha, beta, plan: _Plan):
    """o = ((Q K^T) * M) V by the blocked form of the module docstring. Differentiable by
    autograd; every intermediate is O(n C + stored states) per head."""
    b, h, n, dk = q.shape
    dv = v.shape[-1]
    C, nc = plan.chunk, plan.num_chunks
    pad = nc * C - n
    q, k, v, alpha, beta = (F.pad(t, (0, 0, 0, pad)) if pad else t
                            for t in (q, k, v, alpha, beta))
    A = _block(alpha, plan.a_col, plan.a_ok, C)
    B_in = _block(beta, plan.b_in_col, plan.b_in_ok, C)
    eye = torch.eye(C, dtype=v.dtype, device=v.device)
    system = eye - B_in.view(b, h, nc, C, C)
    rhs = A.view(b, h, nc, C, C)
    P = plan.num_past
    if P:
        B_past = _block(beta, plan.b_past_col, plan.b_past_ok, P)
        rhs = torch.cat([rhs, B_past.view(b, h, nc, C, P)], dim=-1)
    solved = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
    W = solved[..., :C]
    Qc, Kc, Vc = q.view(b, h, nc, C, dk), k.view(b, h, nc, C, dk), v.view(b, h, nc, C, dv)
    o = ((Qc @ Kc.transpose(-1, -2)) * W) @ Vc  # [b, h, nc, C, dv]
    if not P or plan.stored.numel() == 0:
        return o.reshape(b, h, nc * C, dv)[:, :, :n]
    G = solved[..., C:]
    # the direct part of every stored state at once: K_c^T diag(W[r]) V_c
    rows = plan.stored - plan.stored_chunk * C
    W_st = W[:, :, plan.stored_chunk, rows]  # [b, h, Ns, C]
    G_st = G[:, :, plan.stored_chunk, rows]  # [b, h, Ns, P]
    U = ((W_st.unsqueeze(-1) * Kc[:, :, plan.stored_chunk]).transpose(-1, -2)
         @ Vc[:, :, plan.stored_chunk]).flatten(-2)  # [b, h, Ns, dk * dv]
    states: list[torch.Tensor | None] = []  # per chunk: its stored states [b, h, r, dk * dv]
    inter: list[torch.Tensor] = []
    zero = o.new_zeros(b, h, C, dv)
    # Split the full-length tensors per chunk once, before the loop: a slice taken inside it
    # would cost, in the backward, a zero-filled gradient of the whole tensor per chunk (O(n^2 /
    # C) fills and adds: 40% of se_pow2_cache's time at n = 8192); split / unbind backward
    # assembles each gradient once. The keep ranges are contiguous and cover every stored slot.
    sizes = [hi - lo for lo, hi in (chunk.keep for chunk in plan.chunks)]
    U_of, G_st_of = U.split(sizes, dim=2), G_st.split(sizes, dim=2)
    G_of, Q_of = G.unbind(dim=2), Qc.unbind(dim=2)
    for c, chunk in enumerate(plan.chunks):
        S_keep = U_of[c] if sizes[c] else None
        if chunk.reads:
            pieces = [states[owner][:, :, sel] for owner, sel in chunk.reads]
            S_P = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)  # [b, h, p, dk dv]
            p = S_P.shape[2]
            g = G_of[c][..., :p]
            # q_i^T S_p for every row and read state: one product with the states side by side
            S_T = S_P.view(b, h, p, dk, dv).transpose(2, 3).reshape(b, h, dk, p * dv)
            QS = (Q_of[c] @ S_T).view(b, h, C, p, dv)
            inter.append((g.unsqueeze(-1) * QS).sum(-2))  # a batched 1 x p product is slow
            if S_keep is not None:
                S_keep = S_keep + G_st_of[c][..., :p] @ S_P
        else:
            inter.append(zero)
        states.append(S_keep)
    o = o + torch.stack(inter, dim=2)
    return o.reshape(b, h, nc * C, dv)[:, :, :n]
