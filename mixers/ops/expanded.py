"""The state-expanded op of docs/design.md 1.4: every position carries a dk x dv matrix state

    S_i = sum_m alpha[i,m] k_j v_j^T  (j = a_idx[i,m])  +  sum_m beta[i,m] S_j  (j = b_idx[i,m])
    o_i = S_i^T q_i

and since the coefficients never depend on S, o = ((Q K^T) * M) V with M = (I - B)^{-1} A:
masked linear attention whose mask is the GLR of the patterns.

    glr_expanded(q, k, v, alpha, a_idx, beta, b_idx, backend="auto", chunk_size=64) -> o

q, k: [batch, heads, n, dk]; v: [batch, heads, n, dv]; alpha, a_idx, beta, b_idx exactly as for
`glr` (absolute positions, -1 = none). No 1/sqrt(d) inside: the caller scales q. Backends:

    reference  M by one triangular solve, then ((Q K^T) * M) V. O(n^2) memory; the ground truth
    recurrent  token by token with matrix states, reading only the pattern's reads and dropping
               each state after its last reader (the decoding path)
    flat       `glr` (chunked) over the flattened outer products k_j v_j^T, then the readout:
               n * dk * dv floats held for the states and again for their gradient
    chunked    all chunks at once when every direct read stays in its chunk (expanded_blocked.py:
               one batched C x C solve, batched products, matrix states only at the positions a
               later chunk reads); otherwise chunk by chunk (window, full direct parts)
    auto       reference up to n = 256 (one n x n product beats the chunks), except where the
               chunks read at most AUTO_BLOCKED_PAST past states (first); then chunked, or flat
               where the chunks read many past states (`auto_backend`; docs/benchmarks.md)
"""

from __future__ import annotations

import torch

from .common import mask_padding
from .expanded_blocked import blocked_plan, expanded_blocked
from .reference import dense_matrix

BACKENDS_EXPANDED = ("auto", "reference", "recurrent", "chunked", "flat")

__all__ = ["glr_expanded", "BACKENDS_EXPANDED"]


def _check(q, k, v, alpha, a_idx, beta, b_idx):
    from . import check_inputs  # the glr checks of alpha, beta and the index tensors

    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"glr_expanded: q, k, v must be [batch, heads, n, d], got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape != k.shape:
        raise ValueError(f"glr_expanded: q and k must have one shape [batch, heads, n, dk], got "
                         f"{tuple(q.shape)} and {tuple(k.shape)}")
    if q.shape[:3] != v.shape[:3]:
        raise ValueError(f"glr_expanded: v must be [batch, heads, n, dv] with the batch, heads "
                         f"and n of q {tuple(q.shape[:3])}, got {tuple(v.shape)}")
    if q.dtype != v.dtype or k.dtype != v.dtype:
        raise ValueError(f"glr_expanded: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, "
                         f"{v.dtype}")
    check_inputs(v, alpha, a_idx, beta, b_idx)


def glr_expanded(q, k, v, alpha, a_idx, beta, b_idx, backend: str = "auto",
                 chunk_size: int = 64):
    """o_i = sum_j M[i, j] (q_i . k_j) v_j with M = (I - B)^{-1} A. See the module docstring."""
    if backend not in BACKENDS_EXPANDED:
        raise ValueError(f"glr_expanded: backend must be one of {BACKENDS_EXPANDED}, "
                         f"got {backend!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"glr_expanded: chunk_size must be an integer >= 1, got {chunk_size!r}")
    a_idx, b_idx = a_idx.to(v.device), b_idx.to(v.device)
    _check(q, k, v, alpha, a_idx, beta, b_idx)
    a_idx, b_idx = a_idx.long(), b_idx.long()
    if backend == "auto":
        backend = auto_backend(b_idx, chunk_size, a_idx)
    if backend == "reference":
        return expanded_reference(q, k, v, alpha, a_idx, beta, b_idx)
    if backend == "recurrent":
        return expanded_recurrent(q, k, v, alpha, a_idx, beta, b_idx)
    if backend == "flat":
        return expanded_flat(q, k, v, alpha, a_idx, beta, b_idx, chunk_size)
    plan = blocked_plan(a_idx, b_idx, chunk_size)
    if plan is not None:  # every direct read inside its chunk: all chunks at once
        return expanded_blocked(q, k, v, alpha, beta, plan)
    return expanded_chunked(q, k, v, alpha, a_idx, beta, b_idx, chunk_size)


#: `auto` takes `reference` up to this length: measured (docs/mixers.md, bench/expanded.py,
#: dk = dv = 64, C = 64) reference / chunked = 0.23-0.32 at n = 128, 0.36-0.57 at n = 256,
#: 0.81-1.2 at n = 512 for se_first and se_pow2_cache (0.085-0.16 for se_dense). A length, not a
#: number of chunks: the reference's n x n memory must not grow with chunk_size.
AUTO_REFERENCE_MAX_N = 256

#: `auto` takes `flat` when the chunks read more past states than this many chunk sizes on
#: average: measured crossover (docs/mixers.md, bench/expanded.py, dk = dv = 32, C = 64) between
#: plain pow2 (about 5 C at n = 4096, chunked faster) and plain sq1 (about 27 C, flat faster)
AUTO_FLAT_ABOVE = 8

#: below AUTO_REFERENCE_MAX_N, `auto` still takes the blocked `chunked` form when every chunk
#: reads at most this many past states: measured (fwd + bwd, batch 16, one head, dk = dv = 64,
#: C = 64, CPU time; docs/benchmarks.md) at n = 256: se_first 46 ms blocked
#: against 110 ms reference; the lattices (9-16 past states) 121-185 ms against 108-115 ms
AUTO_BLOCKED_PAST = 2


def mean_past_reads(b_idx: torch.Tensor, chunk_size: int) -> float:
    """The mean over chunks of |P_c|, the distinct earlier-chunk positions a chunk reads: the
    chunked form's work is about n * (C + |P_c|) * dk * dv, the flat form's about n * dk * dv
    times a constant that hardly depends on the pattern."""
    n = b_idx.shape[0]
    if n == 0 or b_idx.numel() == 0:
        return 0.0
    chunk = (torch.arange(n, device=b_idx.device) // chunk_size).unsqueeze(1).expand_as(b_idx)
    crossing = (b_idx >= 0) & (b_idx < chunk * chunk_size)
    keys = chunk[crossing] * n + b_idx[crossing]
    return torch.unique(keys).numel() / -(-n // chunk_size)


def auto_backend(b_idx: torch.Tensor, chunk_size: int, a_idx: torch.Tensor | None = None) -> str:
    """`reference` for short sequences (n <= AUTO_REFERENCE_MAX_N: its O(n^2) memory is small
    there) unless the chunks read at most AUTO_BLOCKED_PAST states (first, kth: the blocked form
    is faster from n = 256), else `chunked` unless its states are read too widely (plain sq1,
    dense at long n): `flat`."""
    n = b_idx.shape[0]
    if n <= AUTO_REFERENCE_MAX_N:
        plan = blocked_plan(a_idx, b_idx, chunk_size) if a_idx is not None and n > 128 else None
        return "chunked" if plan is not None and plan.num_past <= AUTO_BLOCKED_PAST else \
            "reference"
    if mean_past_reads(b_idx, chunk_size) > AUTO_FLAT_ABOVE * chunk_size:
        return "flat"
    return "chunked"


# ----------------------------------------------------------------------------------------------
# reference: the masked form with M materialised


def expanded_reference(q, k, v, alpha, a_idx, beta, b_idx):
    n = v.shape[-2]
    A = dense_matrix(alpha, a_idx, n)
    B = dense_matrix(beta, b_idx, n)
    eye = torch.eye(n, dtype=v.dtype, device=v.device)
    # I - B is unit lower triangular (docs/design.md 1): M = (I - B)^{-1} A by one solve
    M = torch.linalg.solve_triangular(eye - B, A, upper=False, unitriangular=True)
    return ((q @ k.transpose(-1, -2)) * M) @ v


# ----------------------------------------------------------------------------------------------
# recurrent: matrix states token by token


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


# ----------------------------------------------------------------------------------------------
# flat: glr over the flattened outer products


def expanded_flat(q, k, v, alpha, a_idx, beta, b_idx, chunk_size: int = 64):
    from .chunked import glr_chunked

    b, h, n, dk = q.shape
    dv = v.shape[-1]
    x = (k.unsqueeze(-1) * v.unsqueeze(-2)).reshape(b, h, n, dk * dv)
    S = glr_chunked(x, alpha, a_idx, beta, b_idx, chunk_size).view(b, h, n, dk, dv)
    return (q.unsqueeze(-2) @ S).squeeze(-2)


# ----------------------------------------------------------------------------------------------
# chunked: the in-chunk part of M by a small solve, states only where later chunks read them


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
