"""The state-expanded op chunk by chunk: the in-chunk part of M by a small solve, matrix states
only where later chunks read them. Used where a direct read leaves its chunk (window, full);
expanded_blocked.py runs all chunks at once otherwise (mixers/ops/expanded.py).
"""

from __future__ import annotations

import torch

from .common import mask_padding


def crossing_reads(b_idx: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Sorted positions p that some row of a later chunk reads (p < start of the reader's chunk):
    the only positions whose matrix state the chunked form materialises."""
    n = b_idx.shape[0]
    start = (torch.arange(n, device=b_idx.device) // chunk_size * chunk_size).unsqueeze(1)
    crossing = (b_idx >= 0) & (b_idx < start)
    return torch.unique(b_idx[crossing])


def expanded_chunked(q, k, v, alpha, a_idx, beta, b_idx, chunk_size: int = 64):
    """For the rows [s, e) of one chunk, with L = I - B_cc (the in-chunk recurrence, C x C):

        S_c = L^{-1} (A_c X + B_past S_P)      X: the outer products, S_P: the states of the
                                               earlier positions P the chunk reads
        [W | G] = L^{-1} [A_c | B_past]        one batched triangular solve
        o_i = sum_j W[i, j] (q_i . k_j) v_j + q_i^T sum_p G[i, p] S_p

    The first term is masked attention over the chunk's direct span; the matrix states S_p are
    formed only at the positions a later chunk reads (`crossing_reads`), from the same W and G.
    For first, kth and the cache-efficient lattices that is a few states per chunk; for plain
    pow2, sq1 and dense nearly every position. Differentiable by autograd.
    """
    bsz, h, n, dk = q.shape
    dv = v.shape[-1]
    # inputs split once, outputs concatenated once: a slice of a whole tensor per chunk (or a
    # write into a whole-length buffer) costs a whole-length gradient in the backward, O(n^2 / C)
    # over all chunks
    qs, ks_, vs_, alphas, betas = (t.split(chunk_size, dim=2) for t in (q, k, v, alpha, beta))
    outs: list[torch.Tensor] = []
    stored = crossing_reads(b_idx, chunk_size)  # positions whose state is kept, ascending
    slot = torch.full((n,), -1, dtype=torch.long, device=v.device)
    slot[stored] = torch.arange(stored.numel(), device=v.device)
    chunks_of_states: list[torch.Tensor] = []  # [b, h, r, dk * dv] per chunk, in slot order
    first_slot: list[int] = []  # the slot of each of those tensors' first state
    for ci, s in enumerate(range(0, n, chunk_size)):
        e = min(n, s + chunk_size)
        rows = e - s
        # the direct part: a dense block over the span [lo, e) of columns the chunk reads
        a_rows = a_idx[s:e]
        a_valid = a_rows >= 0
        lo = int(a_rows[a_valid].min()) if bool(a_valid.any()) else s
        coef_a, _, _ = mask_padding(alphas[ci], a_rows)
        cols_a = torch.where(a_valid, a_rows - lo, 0)
        block_a = coef_a.new_zeros(bsz, h, rows, e - lo).scatter_add_(
            -1, cols_a.expand(coef_a.shape), coef_a)
        # the recurrence: entries inside the chunk form L, the others read stored states
        b_rows = b_idx[s:e]
        coef_b, _, b_valid = mask_padding(betas[ci], b_rows)
        inside = b_valid & (b_rows >= s)
        past = b_valid & (b_rows < s)
        block_b = coef_b.new_zeros(bsz, h, rows, rows).scatter_add_(
            -1, torch.where(inside, b_rows - s, 0).expand(coef_b.shape),
            coef_b * inside.to(coef_b.dtype))
        system = torch.eye(rows, dtype=v.dtype, device=v.device) - block_b
        read_pos = torch.unique(b_rows[past])
        rhs = block_a
        if read_pos.numel():
            cols_p = torch.searchsorted(read_pos, torch.where(past, b_rows, read_pos[0]))
            block_p = coef_b.new_zeros(bsz, h, rows, read_pos.numel()).scatter_add_(
                -1, cols_p.expand(coef_b.shape), coef_b * past.to(coef_b.dtype))
            rhs = torch.cat([block_a, block_p], dim=-1)
        solved = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
        W = solved[..., :e - lo]
        qc, ks, vs = qs[ci], _span(ks_, lo, ci, chunk_size), _span(vs_, lo, ci, chunk_size)
        o = ((qc @ ks.transpose(-1, -2)) * W) @ vs
        T = None
        if read_pos.numel():
            G = solved[..., e - lo:]
            # T = sum_p G[i, p] S_p  [b, h, rows, dk * dv], over the stored states
            for cols, S_p in _state_pieces(chunks_of_states, first_slot, slot[read_pos]):
                g = G[..., cols] if isinstance(cols, torch.Tensor) else G[..., cols[0]:cols[1]]
                T = g @ S_p if T is None else T + g @ S_p
            o = o + (qc.unsqueeze(-2) @ T.view(bsz, h, rows, dk, dv)).squeeze(-2)
        outs.append(o)
        # the states of this chunk that later chunks read
        keep = stored[(stored >= s) & (stored < e)] - s
        if keep.numel():
            Wk = W[:, :, keep]  # [b, h, r, span]
            S_k = (Wk.unsqueeze(-1) * ks.unsqueeze(2)).transpose(-1, -2) @ vs.unsqueeze(2)
            S_k = S_k.reshape(bsz, h, keep.numel(), dk * dv)
            if T is not None:
                S_k = S_k + T[:, :, keep]
            first_slot.append(int(slot[keep[0] + s]))
            chunks_of_states.append(S_k)
    return torch.cat(outs, dim=2) if outs else v.new_zeros(v.shape)


def _span(pieces, lo: int, ci: int, chunk_size: int):
    """Positions [lo, end of chunk ci) from the split pieces (the direct part's column span)."""
    first = lo // chunk_size
    if first == ci:
        return pieces[ci][:, :, lo - ci * chunk_size:]
    return torch.cat(pieces[first:ci + 1], dim=2)[:, :, lo - first * chunk_size:]


#: a run of at least this many consecutive stored states is read as a view, shorter runs are
#: gathered into one tensor (one matmul for all of them)
_MIN_RUN = 8


def _state_pieces(chunks, first_slot, slots):
    """The stored states at `slots` (ascending) as (columns, [b, h, m, dk*dv]) pieces: each long
    run of consecutive states as a view, (lo, hi) columns (for plain pow2 the far reads of a
    chunk are such runs: a gathered copy of them would be kept for the backward of every chunk);
    the scattered rest (the lattices' reads) gathered into one tensor, its columns a tensor."""
    owner = torch.searchsorted(torch.tensor(first_slot, device=slots.device), slots,
                               right=True) - 1
    local = slots - torch.tensor(first_slot, device=slots.device)[owner]
    # runs: consecutive slots of one owner
    brk = torch.ones_like(slots, dtype=torch.bool)
    brk[1:] = (owner[1:] != owner[:-1]) | (local[1:] != local[:-1] + 1)
    starts = torch.nonzero(brk).flatten().tolist() + [slots.numel()]
    owners, locals_ = owner.tolist(), local.tolist()
    scattered: list[int] = []
    for a, b in zip(starts[:-1], starts[1:]):
        if b - a >= _MIN_RUN:
            c, lo = owners[a], locals_[a]
            yield (a, b), chunks[c][:, :, lo:lo + b - a]
        else:
            scattered.extend(range(a, b))
    if scattered:
        cols = torch.tensor(scattered, device=slots.device)
        pieces, j = [], 0
        while j < len(scattered):  # one gather per chunk that holds some of them
            c, sel = owners[scattered[j]], []
            while j < len(scattered) and owners[scattered[j]] == c:
                sel.append(locals_[scattered[j]])
                j += 1
            pieces.append(chunks[c][:, :, torch.tensor(sel, device=slots.device)])
        yield cols, pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)
