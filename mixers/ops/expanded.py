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
    triton     the flat form on the GPU: the glr Triton kernels (mixers/ops/triton_glr.py) over
               the dk * dv columns of the flattened states; every pattern; CUDA tensors (or CPU
               tensors under TRITON_INTERPRET=1, as the tests run it)
    auto       triton for CUDA tensors; on the CPU reference up to n = 256 (one n x n product
               beats the chunks), except where the chunks read at most AUTO_BLOCKED_PAST past
               states (first); then chunked, or flat where the chunks read many past states
               (`auto_backend`; docs/benchmarks.md)
"""

from __future__ import annotations

import torch

from .expanded_blocked import blocked_plan, expanded_blocked
from .expanded_chunked import crossing_reads, expanded_chunked
from .expanded_flat import expanded_flat
from .expanded_recurrent import expanded_recurrent, last_reads
from .expanded_reference import expanded_reference

BACKENDS_EXPANDED = ("auto", "reference", "recurrent", "chunked", "flat", "triton")

__all__ = ["glr_expanded", "BACKENDS_EXPANDED", "auto_backend", "mean_past_reads",
           "crossing_reads",
           "last_reads", "expanded_reference", "expanded_recurrent", "expanded_flat",
           "expanded_chunked", "expanded_blocked"]


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
        backend = "triton" if v.is_cuda else auto_backend(b_idx, chunk_size, a_idx)
    if backend == "reference":
        return expanded_reference(q, k, v, alpha, a_idx, beta, b_idx)
    if backend == "recurrent":
        return expanded_recurrent(q, k, v, alpha, a_idx, beta, b_idx)
    if backend in ("flat", "triton"):
        glr_backend = "triton" if backend == "triton" else "chunked"
        return expanded_flat(q, k, v, alpha, a_idx, beta, b_idx, chunk_size, glr_backend)
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
#: average. The blocked `chunked` form projects every row on every state its chunk reads (C |P_c|
#: dk dv per chunk), so it wins only where few are read. Measured (docs/benchmarks.md, op fwd +
#: bwd at the training shape: batch 8, one head, dk = dv = 64, C = 64, 2 threads): plain pow2
#: (2.1 C at n = 512, 3.1 C at 1024) 1.26 s blocked against 1.47 s flat at 512, 3.7 against
#: 4.6 s at 1024; plain sq1 (3.5 C at 512, 7.5 C at 1024) 1.43 against 1.50 s at 512, 9.5
#: against 4.9 s at 1024. So flat from 5 C: plain sq1 from n = 1024, plain pow2 from 4096 (5.0
#: C), dense; the lattices (at most 0.7 C to n = 8192), first and kth stay blocked
AUTO_FLAT_ABOVE = 5

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
