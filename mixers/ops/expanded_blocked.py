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
recomputed). That loop and the reads of the stored states are one autograd Function
(`_StateReads`) with its backward written out: the stored states live in one tensor, a chunk
reads its states with one `index_select` and its backward adds their gradients back with one
`index_add_`. Left to autograd, the same loop cost a slice (and a slice backward) per owner chunk
read, a number that grows faster than n (4,353 at n = 8192 for the sq1 lattice, the half of its
time that was not arithmetic). The work is about n (C (dk + dv) + P dk dv) with P the states
a chunk reads, and no per-row matrix state is ever formed. The index bookkeeping (which state
each row reads, in which column) depends only on the patterns, so it is built once per pair of
index tensors and kept on the recurrent index tensor.

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
    """What chunk c reads and keeps: the slots (in `stored`) of the states it reads, ascending
    (the order of G's columns); the range of stored slots that are its own rows."""

    reads: torch.Tensor  # LongTensor [p] of slots
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
        keep = torch.searchsorted(stored_chunk, torch.tensor([c, c + 1], device=dev)).tolist()
        chunks.append(_Chunk(slot[read_pos], (keep[0], keep[1])))  # slots ascend with position
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
    o = o + _StateReads.apply(U, G_st, G, Qc, plan)
    return o.reshape(b, h, nc * C, dv)[:, :, :n]


def _transposed(S_P, dk, dv):
    """[b, h, p, dk * dv] states -> [b, h, dk, p * dv]: side by side, so that one product
    projects every row of a chunk on all of them."""
    b, h, p = S_P.shape[:3]
    return S_P.view(b, h, p, dk, dv).transpose(2, 3).reshape(b, h, dk, p * dv)


class _StateReads(torch.autograd.Function):
    """The chunk-by-chunk part of the blocked form. Chunk c, reading the stored states S_P:

        inter[c, i] = sum_p G[c, i, p] (q_i^T S_p)             (S_p as a dk x dv matrix)
        S[r]        = U[r] + sum_p G_st[r, p] S_p              for its own stored rows r

    Inputs U [b, h, Ns, dk dv] (direct parts of the stored states), G_st [b, h, Ns, P], G [b, h,
    nc, C, P], Qc [b, h, nc, C, dk]; output inter [b, h, nc, C, dv]. The backward runs the
    chunks in reverse: a chunk's own states have their whole gradient by then (only later chunks
    read them)."""

    @staticmethod
    def forward(ctx, U, G_st, G, Qc, plan):
        b, h, nc, C, dk = Qc.shape
        dv = U.shape[-1] // dk
        S = torch.empty_like(U)
        inter = Qc.new_zeros(b, h, nc, C, dv)
        for c, chunk in enumerate(plan.chunks):
            (lo, hi), idx = chunk.keep, chunk.reads
            p = idx.numel()
            if p:
                S_P = S.index_select(2, idx)  # written: every owner is an earlier chunk
                QS = (Qc[:, :, c] @ _transposed(S_P, dk, dv)).view(b, h, C, p, dv)
                # a batched 1 x p product is slower than the broadcast sum
                inter[:, :, c] = (G[:, :, c, :, :p].unsqueeze(-1) * QS).sum(-2)
                if hi > lo:
                    S[:, :, lo:hi] = U[:, :, lo:hi] + G_st[:, :, lo:hi, :p] @ S_P
            elif hi > lo:
                S[:, :, lo:hi] = U[:, :, lo:hi]
        ctx.save_for_backward(S, G_st, G, Qc)
        ctx.plan = plan
        return inter

    @staticmethod
    def backward(ctx, d_inter):
        S, G_st, G, Qc = ctx.saved_tensors
        b, h, nc, C, dk = Qc.shape
        dv = S.shape[-1] // dk
        dS = torch.zeros_like(S)  # = dU: a stored state enters S only through U and the reads
        dG_st, dG, dQ = torch.zeros_like(G_st), torch.zeros_like(G), torch.zeros_like(Qc)
        for c in reversed(range(nc)):
            chunk = ctx.plan.chunks[c]
            (lo, hi), idx = chunk.keep, chunk.reads
            p = idx.numel()
            if not p:
                continue
            S_P = S.index_select(2, idx)
            S_T = _transposed(S_P, dk, dv)
            g, D, q = G[:, :, c, :, :p], d_inter[:, :, c], Qc[:, :, c]
            QS = (q @ S_T).view(b, h, C, p, dv)  # recomputed: kept, it would double the memory
            dG[:, :, c, :, :p] = (QS * D.unsqueeze(-2)).sum(-1)
            gD = (g.unsqueeze(-1) * D.unsqueeze(-2)).reshape(b, h, C, p * dv)
            dQ[:, :, c] = gD @ S_T.transpose(-1, -2)
            dS_P = (q.transpose(-1, -2) @ gD).view(b, h, dk, p, dv).transpose(2, 3)
            dS_P = dS_P.reshape(b, h, p, dk * dv)
            if hi > lo:
                dS_own = dS[:, :, lo:hi]  # complete: its readers were the chunks after c
                dG_st[:, :, lo:hi, :p] = dS_own @ S_P.transpose(-1, -2)
                dS_P = dS_P + G_st[:, :, lo:hi, :p].transpose(-1, -2) @ dS_own
            dS.index_add_(2, idx, dS_P)
        return dS, dG_st, dG, dQ, None
