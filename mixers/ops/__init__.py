"""The core op of glmix: y_i = sum_m alpha[i,m] v[a_idx[i,m]] + sum_m beta[i,m] y[b_idx[i,m]].

    glr(v, alpha, a_idx, beta, b_idx, backend="auto", chunk_size=64) -> y

v: [batch, heads, n, d]; alpha: [batch, heads, n, Ka]; a_idx: [n, Ka]; beta: [batch, heads, n,
Kb]; b_idx: [n, Kb]. Index tensors hold absolute positions, -1 for none; a_idx[i] <= i (causal),
b_idx[i] < i (strictly: a recurrence reads only the past). Backends, side by side:

    reference  dense A and B, one triangular solve (the ground truth, small n)
    recurrent  token by token, reading only what the pattern reads
    chunked    chunked solve with an explicit backward (CPU training path)
    triton     the chunked algorithm as GPU kernels
    auto       triton for CUDA tensors, chunked otherwise
"""

from __future__ import annotations

import torch

from .chunked import glr_chunked
from .common import poisoned_outputs
from .expanded import glr_expanded as glr_expanded
from .recurrent import glr_recurrent
from .reference import glr_reference

BACKENDS = ("auto", "reference", "recurrent", "chunked", "triton")

__all__ = ["glr", "BACKENDS", "poisoned_outputs", "check_inputs"]


def check_inputs(v, alpha, a_idx, beta, b_idx):
    """Raise ValueError naming the argument and the broken constraint."""
    if v.dim() != 4:
        raise ValueError(f"glr: v must be [batch, heads, n, d], got shape {tuple(v.shape)}")
    b, h, n, _ = v.shape
    for name, coef, idx in (("alpha", alpha, a_idx), ("beta", beta, b_idx)):
        idx_name = "a_idx" if name == "alpha" else "b_idx"
        if idx.dim() != 2 or idx.shape[0] != n:
            raise ValueError(f"glr: {idx_name} must be [n={n}, K], got {tuple(idx.shape)}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"glr: {idx_name} must be an integer tensor, got {idx.dtype}")
        if tuple(coef.shape) != (b, h, n, idx.shape[1]):
            raise ValueError(f"glr: {name} must be [batch, heads, n, K] = "
                             f"{(b, h, n, idx.shape[1])} to match v and {idx_name}, "
                             f"got {tuple(coef.shape)}")
        if coef.dtype != v.dtype:
            raise ValueError(f"glr: {name} has dtype {coef.dtype}, v has {v.dtype}")
    pos = torch.arange(n, device=a_idx.device).unsqueeze(1)
    if a_idx.numel() and bool(((a_idx < -1) | (a_idx > pos)).any()):
        raise ValueError("glr: a_idx[i] must lie in {-1} or [0, i] (the direct part is causal)")
    pos = pos.to(b_idx.device)
    if b_idx.numel() and bool(((b_idx < -1) | (b_idx >= pos)).any()):
        raise ValueError("glr: b_idx[i] must lie in {-1} or [0, i-1] (recurrence reads the past)")


def glr(v, alpha, a_idx, beta, b_idx, backend: str = "auto", chunk_size: int = 64):
    """Y = (I - B)^{-1} A V for one sparse pattern pair. See the module docstring."""
    if backend not in BACKENDS:
        raise ValueError(f"glr: backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"glr: chunk_size must be an integer >= 1, got {chunk_size!r}")
    a_idx, b_idx = a_idx.to(v.device), b_idx.to(v.device)
    check_inputs(v, alpha, a_idx, beta, b_idx)
    a_idx, b_idx = a_idx.long(), b_idx.long()
    if backend == "auto":
        backend = "triton" if v.is_cuda else "chunked"
    if backend == "reference":
        return glr_reference(v, alpha, a_idx, beta, b_idx)
    if backend == "recurrent":
        return glr_recurrent(v, alpha, a_idx, beta, b_idx)
    if backend == "chunked":
        return glr_chunked(v, alpha, a_idx, beta, b_idx, chunk_size)
    from .triton_glr import glr_triton  # imported lazily: Triton is optional on the CPU

    return glr_triton(v, alpha, a_idx, beta, b_idx, chunk_size)
