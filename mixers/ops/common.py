"""Helpers shared by the backends of the glr op: masking of padded indices, output buffers."""

from __future__ import annotations

import contextlib

import torch

_POISON = False


@contextlib.contextmanager
def poisoned_outputs(enabled: bool = True):
    """Fill every buffer a backend allocates for its results with NaN instead of leaving it
    uninitialised, so that a test catches an element a backend forgot to write."""
    global _POISON
    previous, _POISON = _POISON, enabled
    try:
        yield
    finally:
        _POISON = previous


def new_buffer(shape, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An output buffer: uninitialised normally, NaN-filled inside `poisoned_outputs()`."""
    if _POISON:
        return torch.full(shape, float("nan"), dtype=dtype or like.dtype, device=like.device)
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device)


def mask_padding(coef: torch.Tensor, idx: torch.Tensor):
    """Zero the coefficients of padded (-1) entries and point those entries at position 0, so a
    gather or scatter over them is harmless. Returns (coef, idx_clamped, valid)."""
    valid = idx >= 0
    return coef * valid.to(coef.dtype), idx.clamp(min=0), valid
