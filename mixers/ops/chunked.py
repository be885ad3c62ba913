"""The chunked algorithm of docs/design.md 2 in PyTorch: the CPU training path.

Forward, for each chunk [s, e) in order:

    R_c = sum_m alpha[i,m] v[a_idx[i,m]]  +  sum_{m: b_idx[i,m] < s} beta[i,m] y[b_idx[i,m]]
    (I - B_cc) Y_c = R_c          (an L x L unit lower-triangular solve, batched over B, H)

Backward, with G = dL/dY and Z = (I - B)^{-T} G, for each chunk in reverse order:

    (I - B_cc)^T Z_c = G_c + (what later chunks scattered into these positions)
    scatter beta[i,m] Z_i into position b_idx[i,m] for every read that leaves the chunk
    d alpha[i,m] = Z_i . v[a_idx[i,m]],  d beta[i,m] = Z_i . y[b_idx[i,m]],
    d v[j] += alpha[i,m] Z_i for every a_idx[i,m] = j.

Forward and backward write into preallocated buffers, so the work is ~ n (L + K) d and the
memory ~ n d + one chunk's intermediates, with no autograd graph growing with n. Reads of many
positions (full attention's direct part, dense recurrences) go through a dense row block and a
matmul instead of a gather, which would materialise [L, K, d] per chunk.
"""

from __future__ import annotations

import torch

from .common import mask_padding, new_buffer


def _use_dense(num_reads: int, span: int, d: int) -> bool:
    # a gather materialises L*K*d values, a dense row block L*span: take the smaller
    return num_reads * d >= span


def _dense_block(coef, idx, span):
    out = coef.new_zeros(*coef.shape[:-1], span)
    return out.scatter_add_(-1, idx.expand(coef.shape), coef)


def gather_sum(coef, idx, src, span):
    """sum_m coef[..., i, m] * src[..., idx[i, m], :], every idx < span (padding has coef 0)."""
    if coef.shape[-1] == 0 or span == 0:
        return coef.new_zeros(*coef.shape[:-1], src.shape[-1])
    if _use_dense(coef.shape[-1], span, src.shape[-1]):
        return _dense_block(coef, idx, span) @ src[..., :span, :]
    return torch.einsum("bhik,bhikd->bhid", coef, src[:, :, idx])


def scatter_add(dst, coef, idx, vals, span):
    """dst[..., idx[i, m], :] += coef[..., i, m] * vals[..., i, :] (in place)."""
    if coef.shape[-1] == 0 or span == 0:
        return
    if _use_dense(coef.shape[-1], span, vals.shape[-1]):
        dst[..., :span, :] += _dense_block(coef, idx, span).transpose(-1, -2) @ vals
        return
    b, h, rows, k = coef.shape
    contrib = coef.unsqueeze(-1) * vals.unsqueeze(-2)  # [b, h, rows, k, d]
    dst.index_add_(2, idx.reshape(-1), contrib.reshape(b, h, rows * k, -1))


def gather_dot(z, idx, src, span):
    """out[..., i, m] = z[..., i, :] . src[..., idx[i, m], :]."""
    if idx.shape[-1] == 0 or span == 0:
        return z.new_zeros(*z.shape[:-1], idx.shape[-1])
    if _use_dense(idx.shape[-1], span, z.shape[-1]):
        scores = z @ src[..., :span, :].transpose(-1, -2)
        return scores.gather(-1, idx.expand(*z.shape[:-1], idx.shape[-1]))
    return torch.einsum("bhid,bhikd->bhik", z, src[:, :, idx])


class _Chunk:
    """The rows [s, e) of one call: padding masked, recurrent reads split into the ones that leave
    the chunk (gathered from finished outputs) and the ones inside it (entries of B_cc).
    Built per chunk, so no [n, K]-sized temporaries are made for dense patterns."""

    def __init__(self, s, e, alpha, a_idx, beta, b_idx):
        self.s, self.e = s, e
        self.alpha, self.a_cols, a_valid = mask_padding(alpha[:, :, s:e], a_idx[s:e])
        beta, self.b_cols, b_valid = mask_padding(beta[:, :, s:e], b_idx[s:e])
        self.a_valid, self.b_valid = a_valid.to(alpha.dtype), b_valid.to(beta.dtype)
        in_chunk = b_idx[s:e] >= s
        self.beta_past = beta * (~in_chunk).to(beta.dtype)
        self.b_past_cols = torch.where(in_chunk, 0, self.b_cols)  # all < s: in range of span s
        block = _dense_block(beta * in_chunk.to(beta.dtype),
                             torch.where(in_chunk, b_idx[s:e] - s, 0), e - s)
        # I - B_cc: unit lower triangular, [B, H, L, L]
        self.system = torch.eye(e - s, dtype=beta.dtype, device=beta.device) - block


def _chunks(alpha, a_idx, beta, b_idx, size, reverse=False):
    n = a_idx.shape[0]
    starts = range(0, n, size)
    for s in reversed(starts) if reverse else starts:
        yield _Chunk(s, min(n, s + size), alpha, a_idx, beta, b_idx)


class ChunkedGLR(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, alpha, a_idx, beta, b_idx, chunk_size):
        y = new_buffer(v.shape, v)
        for c in _chunks(alpha, a_idx, beta, b_idx, chunk_size):
            r = gather_sum(c.alpha, c.a_cols, v, c.e)
            r = r + gather_sum(c.beta_past, c.b_past_cols, y, c.s)
            y[:, :, c.s:c.e] = torch.linalg.solve_triangular(
                c.system, r, upper=False, unitriangular=True)
        ctx.save_for_backward(v, alpha, a_idx, beta, b_idx, y)
        ctx.chunk_size = chunk_size
        return y

    @staticmethod
    def backward(ctx, grad_y):
        v, alpha, a_idx, beta, b_idx, y = ctx.saved_tensors
        g = grad_y.contiguous().clone()  # accumulates what later chunks send back in time
        dv = torch.zeros_like(v)
        dalpha = new_buffer(alpha.shape, alpha)
        dbeta = new_buffer(beta.shape, beta)
        for c in _chunks(alpha, a_idx, beta, b_idx, ctx.chunk_size, reverse=True):
            s, e = c.s, c.e
            z = torch.linalg.solve_triangular(
                c.system.transpose(-1, -2), g[:, :, s:e], upper=True, unitriangular=True)
            scatter_add(g, c.beta_past, c.b_past_cols, z, s)
            scatter_add(dv, c.alpha, c.a_cols, z, e)
            dalpha[:, :, s:e] = gather_dot(z, c.a_cols, v, e) * c.a_valid
            dbeta[:, :, s:e] = gather_dot(z, c.b_cols, y, e) * c.b_valid
        return dv, dalpha, None, dbeta, None, None


def glr_chunked(v, alpha, a_idx, beta, b_idx, chunk_size: int = 64):
    return ChunkedGLR.apply(v, alpha, a_idx, beta, b_idx, chunk_size)
