"""The chunked algorithm of DESIGN.md 2 in PyTorch: the CPU training path.

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


class _Chunks:
    """Per-call bookkeeping: padded entries masked once, reads split into past / in-chunk."""

    def __init__(self, alpha, a_idx, beta, b_idx, chunk_size):
        n = a_idx.shape[0]
        self.n, self.size = n, chunk_size
        self.alpha, self.a_cols, self.a_valid = mask_padding(alpha, a_idx)
        beta, self.b_cols, self.b_valid = mask_padding(beta, b_idx)
        self.beta = beta
        start = (torch.arange(n, device=b_idx.device) // chunk_size * chunk_size).unsqueeze(1)
        in_chunk = b_idx >= start
        # a past read goes through the gather; an in-chunk read is an entry of B_cc
        self.beta_past = beta * (~in_chunk).to(beta.dtype)
        self.beta_in = beta * in_chunk.to(beta.dtype)
        self.b_local = torch.where(in_chunk, b_idx - start, 0)
        self.b_past_cols = torch.where(in_chunk, 0, self.b_cols)  # in range for a span of s

    def bounds(self):
        for s in range(0, self.n, self.size):
            yield s, min(self.n, s + self.size)

    def in_chunk_matrix(self, s, e):
        """I - B_cc for rows [s, e): [B, H, L, L], unit lower triangular."""
        coef = self.beta_in[:, :, s:e]
        block = _dense_block(coef, self.b_local[s:e], e - s)
        eye = torch.eye(e - s, dtype=coef.dtype, device=coef.device)
        return eye - block


class ChunkedGLR(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, alpha, a_idx, beta, b_idx, chunk_size):
        ch = _Chunks(alpha, a_idx, beta, b_idx, chunk_size)
        y = new_buffer(v.shape, v)
        for s, e in ch.bounds():
            r = gather_sum(ch.alpha[:, :, s:e], ch.a_cols[s:e], v, e)
            r = r + gather_sum(ch.beta_past[:, :, s:e], ch.b_past_cols[s:e], y, s)
            y[:, :, s:e] = torch.linalg.solve_triangular(
                ch.in_chunk_matrix(s, e), r, upper=False, unitriangular=True)
        ctx.save_for_backward(v, alpha, a_idx, beta, b_idx, y)
        ctx.chunk_size = chunk_size
        return y

    @staticmethod
    def backward(ctx, grad_y):
        v, alpha, a_idx, beta, b_idx, y = ctx.saved_tensors
        ch = _Chunks(alpha, a_idx, beta, b_idx, ctx.chunk_size)
        g = grad_y.contiguous().clone()  # accumulates what later chunks send back in time
        dv = torch.zeros_like(v)
        dalpha = new_buffer(alpha.shape, alpha)
        dbeta = new_buffer(beta.shape, beta)
        a_valid, b_valid = ch.a_valid.to(v.dtype), ch.b_valid.to(v.dtype)
        for s, e in reversed(list(ch.bounds())):
            z = torch.linalg.solve_triangular(
                ch.in_chunk_matrix(s, e).transpose(-1, -2), g[:, :, s:e],
                upper=True, unitriangular=True)
            scatter_add(g, ch.beta_past[:, :, s:e], ch.b_past_cols[s:e], z, s)
            scatter_add(dv, ch.alpha[:, :, s:e], ch.a_cols[s:e], z, e)
            dalpha[:, :, s:e] = gather_dot(z, ch.a_cols[s:e], v, e) * a_valid[s:e]
            dbeta[:, :, s:e] = gather_dot(z, ch.b_cols[s:e], y, e) * b_valid[s:e]
        return dv, dalpha, None, dbeta, None, None


def glr_chunked(v, alpha, a_idx, beta, b_idx, chunk_size: int = 64):
    return ChunkedGLR.apply(v, alpha, a_idx, beta, b_idx, chunk_size)
