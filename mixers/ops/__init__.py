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

OP_VERSION = 2
"""Bumped when the numbers a mixer computes change (the op, its coefficients, a layer's math):
part of every run's identity (runners.schema), so results of older math are rerun.
2: the Triton backend's bf16/fp16 matmuls went from tf32 to 3xTF32 (docs/triton.md)."""

__all__ = ["glr", "BACKENDS", "OP_VERSION", "poisoned_outputs", "check_inputs",
           "validate_index", "mark_checked"]

# An index tensor whose values were checked carries (strict, version counter at the check) in
# this attribute: `strict` for a recurrent pattern (entries < i), else causal (entries <= i).
# An in-place change bumps the version, so the mark then no longer counts.
_MARK = "_glr_index_checked"


def _is_checked(idx: torch.Tensor, strict: bool) -> bool:
    mark = getattr(idx, _MARK, None)
    if mark is None or not (mark[0] or not strict):
        return False
    # torch.compile cannot read the version counter (it becomes a data-dependent symbol): while
    # compiling, the mark alone counts
    return torch.compiler.is_compiling() or mark[1] == idx._version


def mark_checked(idx: torch.Tensor, strict: bool) -> torch.Tensor:
    """Mark idx as checked without looking at it: only for an exact copy (e.g. on another
    device) of a tensor that validate_index passed. Returns idx."""
    setattr(idx, _MARK, (strict, idx._version))
    return idx


def validate_index(idx: torch.Tensor, strict: bool, name: str | None = None) -> torch.Tensor:
    """Check the values of an index tensor [n, K] once, and mark it as checked (returned as is).

    strict=False (a_idx): every entry -1 or in [0, i] (the direct part is causal); strict=True
    (b_idx): -1 or in [0, i-1] (a recurrence reads only the past). On a CUDA tensor the check
    waits for the device (one `bool()`), which is why it is done once per tensor: `glr` skips
    tensors marked here, and patterns build theirs checked on the host
    (`pattern.index_on(n, device)`), so a call of the op makes no device-to-host sync and can be
    captured in a CUDA graph or by torch.compile.
    """
    name = name or ("b_idx" if strict else "a_idx")
    if not _is_checked(idx, strict):
        if idx.is_cuda and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                f"glr: {name} has not been checked, and checking it now would wait for the GPU "
                "inside a CUDA graph capture. Check it before the capture: build it with "
                "pattern.index_on(n, device), or call mixers.ops.validate_index on it once.")
        n = idx.shape[0]
        pos = torch.arange(n, device=idx.device).unsqueeze(1)
        top = pos - 1 if strict else pos
        if idx.numel() and bool(((idx < -1) | (idx > top)).any()):
            what = "[0, i-1] (recurrence reads the past)" if strict else \
                "[0, i] (the direct part is causal)"
            raise ValueError(f"glr: {name}[i] must lie in {{-1}} or {what}")
        mark_checked(idx, strict)
    return idx


def check_inputs(v, alpha, a_idx, beta, b_idx):
    """Raise ValueError naming the argument and the broken constraint. Shapes and dtypes are
    checked on every call (host-side metadata only); index values once per tensor (see
    validate_index)."""
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
    validate_index(a_idx, strict=False)
    validate_index(b_idx, strict=True)


def glr(v, alpha, a_idx, beta, b_idx, backend: str = "auto", chunk_size: int = 64):
    """Y = (I - B)^{-1} A V for one sparse pattern pair. See the module docstring."""
    if backend not in BACKENDS:
        raise ValueError(f"glr: backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"glr: chunk_size must be an integer >= 1, got {chunk_size!r}")
    # checked where they are (a CPU index tensor on the host, without waiting for the GPU), then
    # moved: a no-op for the device tensors of pattern.index_on
    check_inputs(v, alpha, a_idx, beta, b_idx)
    a_idx, b_idx = a_idx.to(v.device).long(), b_idx.to(v.device).long()
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
