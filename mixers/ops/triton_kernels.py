"""Triton kernels of the glr op (the chunked algorithm of docs/design.md 2; see docs/triton.md).

Layout: every tensor is contiguous, batch and heads flattened into one axis `bh`:
v, y, u, z, dv [BH, n, D]; alpha, dalpha [BH, n, KA]; beta, dbeta [BH, n, KB]; a_idx [n, KA],
b_idx [n, KB] (absolute positions, -1 = none); tinv [BH, NC, C, C] (the in-chunk inverses).

Four kernels, one chunk of C = BLOCK_C rows at a time:

    _glr_fwd_prep   grid (NC * BH,), parallel over chunks (program id = bh * NC + c):
                    N = B_cc (the in-chunk part of beta as a dense C x C block),
                    T = (I - N)^{-1} = (I + N)(I + N^2)(I + N^4)...  (log2 C steps of tl.dot),
                    U = T @ (sum_m alpha[i,m] v[a_idx[i,m]])      (the direct part, solved)
    _glr_fwd_scan   grid (BH, ND), sequential over chunks in order (ND: blocks of D columns,
                    which are independent):
                    Y_c = U_c + T_c @ (sum_{m: b_idx < s} beta[i,m] y[b_idx[i,m]])
    _glr_bwd_scan   grid (BH, ND), sequential over chunks in reverse:
                    Z_c = T_c^T @ (G_c + S_c), then S[b_idx[i,m]] += beta[i,m] Z_i (atomic) for
                    every read that leaves the chunk; Z is written over S (S_c is complete once
                    chunk c is reached: only later chunks send into it). Also zeroes dv.
    _glr_bwd_grads  grid (NC * BH,), parallel over chunks:
                    dalpha[i,m] = Z_i . v[a_idx[i,m]], dbeta[i,m] = Z_i . y[b_idx[i,m]],
                    dv[a_idx[i,m]] += alpha[i,m] Z_i (atomic).

Only pointer arithmetic (no block pointers), no autotuning: block sizes are constexpr chosen in
Python (mixers/ops/triton_glr.py). Accumulation in ACC (float32, or float64 for float64 inputs).

Offsets: every tensor offset is 64-bit. The row index of a chunk is cast to int64 before it
is multiplied by D or K, the in-chunk offsets of TINV are int64 too, and each pointer is
advanced once by a whole offset (`P + (a + b)`, not `P + a + b`, which would add a 32-bit
column offset as a second step), so no product of a row and a row width wraps at 2^31
elements (a [BH, n, D] tensor with n * D >= 2^31 is legal) and the compile-ahead test can
check that no pointer is advanced by a 32-bit offset tensor.
The parallel kernels run on a 1-D grid (grid axis 0 allows 2^31 - 1 programs; axes 1 and 2
only 65535), so no axis limit falls on batch x heads.
"""

from __future__ import annotations

import triton
import triton.language as tl

# The kernels inline their gathers, reduce with tl.reduce(x, axis, _add) rather than tl.sum and
# build zeros with tl.full rather than tl.zeros: in the interpreter every call of a nested
# @triton.jit function (tl.sum, tl.max and tl.zeros are ones) costs milliseconds, as it
# re-patches triton.language. On the GPU both forms compile alike; the interpreter recognises
# this combine function and sums with numpy.
_add = getattr(tl.standard, "_sum_combine", None)
if _add is None:  # pragma: no cover - a Triton without it: same kernels, slower interpreter

    @triton.jit
    def _add(a, b):
        return a + b


# Integer arguments other than D are not specialised (on 1 or on divisibility by 16): one
# compiled kernel serves every length and pattern width. D keeps its divisibility, which lets
# row gathers vectorise.
_INTS = ("n", "KA", "KB", "NC")


def _jit(fn):
    names = fn.__code__.co_varnames[:fn.__code__.co_argcount]
    return triton.jit(fn, do_not_specialize=[a for a in _INTS if a in names])


@_jit
def _glr_fwd_prep(V, ALPHA, AIDX, BETA, BIDX, U, TINV,
                  n, KA, KB, D, NC,
                  ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
                  D_PAD: tl.constexpr, BLOCK_KA: tl.constexpr, BLOCK_KB: tl.constexpr,
                  LOG_C: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0)
    c = pid % NC
    bh = (pid // NC).to(tl.int64)
    s = c * BLOCK_C
    r = tl.arange(0, BLOCK_C)
    rows = (s + r).to(tl.int64)  # 64-bit: rows * D and rows * K must not wrap
    rmask = rows < n

    # N = B_cc: beta[i, m] at column b_idx[i, m] - s, for the reads inside the chunk
    nil = tl.full([BLOCK_C, BLOCK_C], 0.0, ACC)
    kb = tl.arange(0, BLOCK_KB)
    for k0 in range(0, KB, BLOCK_KB):
        m = rmask[:, None] & (k0 + kb < KB)[None, :]
        off = rows[:, None] * KB + (k0 + kb)[None, :]
        idx = tl.load(BIDX + off, mask=m, other=-1)
        inside = m & (idx >= s)
        # patterns list their nearest reads first: the blocks further right are skipped
        if tl.reduce(inside.to(tl.int32), None, _add) > 0:
            coef = tl.load(BETA + bh * n * KB + off, mask=inside, other=0.0).to(ACC)
            hit = ((idx - s)[:, :, None] == r[None, None, :]) & inside[:, :, None]
            nil += tl.reduce(tl.where(hit, coef[:, :, None], 0.0), 1, _add)

    # T = (I - N)^{-1} = sum_{t < C} N^t = prod_{k < log2 C} (I + N^(2^k)): N is nilpotent
    t = (r[:, None] == r[None, :]).to(ACC) + nil
    p = nil
    for _ in tl.static_range(LOG_C - 1):
        p = tl.dot(p, p, input_precision=PREC)
        t = t + tl.dot(t, p, input_precision=PREC)
    t_off = (r[:, None] * BLOCK_C + r[None, :]).to(tl.int64)
    tl.store(TINV + (bh * NC + c) * BLOCK_C * BLOCK_C + t_off, t)

    # U = T @ (sum_m alpha[i, m] v[a_idx[i, m]]), one block of D columns at a time
    ka = tl.arange(0, BLOCK_KA)
    for d0 in tl.static_range(0, D_PAD, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        cmask = cols < D
        acc = tl.full([BLOCK_C, BLOCK_D], 0.0, ACC)
        for k0 in range(0, KA, BLOCK_KA):
            m = rmask[:, None] & (k0 + ka < KA)[None, :]
            off = rows[:, None] * KA + (k0 + ka)[None, :]
            idx = tl.load(AIDX + off, mask=m, other=-1)
            valid = m & (idx >= 0)
            coef = tl.load(ALPHA + bh * n * KA + off, mask=valid, other=0.0).to(ACC)
            x = tl.load(V + (bh * n * D + idx[:, :, None] * D + cols[None, None, :]),
                        mask=valid[:, :, None] & cmask[None, None, :], other=0.0)
            acc += tl.reduce(coef[:, :, None] * x.to(ACC), 1, _add)
        u = tl.dot(t, acc, input_precision=PREC)
        tl.store(U + (bh * n * D + rows[:, None] * D + cols[None, :]), u,
                 mask=rmask[:, None] & cmask[None, :])


@_jit
def _glr_fwd_scan(Y, U, TINV, BETA, BIDX,
                  n, KB, D, NC,
                  ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
                  BLOCK_KB: tl.constexpr, PREC: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    cmask = cols < D
    r = tl.arange(0, BLOCK_C)
    kb = tl.arange(0, BLOCK_KB)
    Yb = Y + bh * n * D
    t_off = (r[:, None] * BLOCK_C + r[None, :]).to(tl.int64)
    for c in range(0, NC):
        s = c * BLOCK_C
        rows = (s + r).to(tl.int64)  # 64-bit: rows * D must not wrap
        rmask = rows < n
        omask = rmask[:, None] & cmask[None, :]
        off = rows[:, None] * D + cols[None, :]
        # issued first: these do not depend on the previous chunk, so their latency overlaps
        # with the gathers below, which do
        t = tl.load(TINV + (bh * NC + c) * BLOCK_C * BLOCK_C + t_off)
        y = tl.load(U + bh * n * D + off, mask=omask, other=0.0)
        # reads of outputs of earlier chunks, which this very program stored in earlier steps
        acc = tl.full([BLOCK_C, BLOCK_D], 0.0, ACC)
        for k0 in range(0, KB, BLOCK_KB):
            m = rmask[:, None] & (k0 + kb < KB)[None, :]
            off_k = rows[:, None] * KB + (k0 + kb)[None, :]
            idx = tl.load(BIDX + off_k, mask=m, other=-1)
            valid = m & (idx >= 0) & (idx < s)
            coef = tl.load(BETA + bh * n * KB + off_k, mask=valid, other=0.0).to(ACC)
            x = tl.load(Yb + (idx[:, :, None] * D + cols[None, None, :]),
                        mask=valid[:, :, None] & cmask[None, None, :], other=0.0,
                        cache_modifier=".cg")
            acc += tl.reduce(coef[:, :, None] * x.to(ACC), 1, _add)
        y += tl.dot(t, acc, input_precision=PREC)
        tl.store(Yb + off, y.to(Y.dtype.element_ty), mask=omask)
        tl.debug_barrier()  # chunk c's stores before chunk c + 1's loads, across warps


@_jit
def _glr_bwd_scan(Z, G, TINV, BETA, BIDX, DV,
                  n, KB, D, NC,
                  ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
                  BLOCK_KB: tl.constexpr, PREC: tl.constexpr):
    # One program owns every chunk of one (batch-head, column block) and walks them in reverse.
    # That ownership is what makes the plain stores, the relaxed atomics and the CTA barriers
    # below enough: every element of Z this program reads was written only by this program
    # (chunk c's atomics land in rows < s, which only this program reads, in a later
    # iteration). Splitting the chunks of one (batch-head, columns) over several programs would
    # need release/acquire atomics and a grid-wide wait, not a barrier.
    bh = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    cmask = cols < D
    r = tl.arange(0, BLOCK_C)
    kb = tl.arange(0, BLOCK_KB)
    Zb = Z + bh * n * D
    Bb = BETA + bh * n * KB
    Tb = TINV + bh * NC * BLOCK_C * BLOCK_C
    tt_off = (r[None, :] * BLOCK_C + r[:, None]).to(tl.int64)  # T_c transposed, by its pointers
    tt = tl.load(Tb + (NC - 1).to(tl.int64) * BLOCK_C * BLOCK_C + tt_off)
    for cc in range(0, NC):
        c = NC - 1 - cc
        s = c * BLOCK_C
        rows = (s + r).to(tl.int64)  # 64-bit: rows * D must not wrap
        rmask = rows < n
        omask = rmask[:, None] & cmask[None, :]
        off = rows[:, None] * D + cols[None, :]
        # Issued first, none of them waits on Z: the first block of this chunk's reads (index
        # and coefficient side by side, the coefficient masked by the row only, so the two loads
        # do not wait on each other; the atomics are masked by `valid`) and the next chunk's
        # inverse (chunk 0 again on the last step: always in bounds). Their latency overlaps the
        # G and S loads and the dot, rather than following the Z store in a chain.
        m0 = rmask[:, None] & (kb < KB)[None, :]
        off0 = rows[:, None] * KB + kb[None, :]
        idx0 = tl.load(BIDX + off0, mask=m0, other=-1)
        coef0 = tl.load(Bb + off0, mask=m0, other=0.0).to(ACC)
        tt_next = tl.load(Tb + tl.maximum(c - 1, 0).to(tl.int64) * BLOCK_C * BLOCK_C + tt_off)
        x = tl.load(G + bh * n * D + off, mask=omask, other=0.0).to(ACC)
        # Z holds S_c: what later chunks sent back into these rows, complete by now
        x += tl.load(Zb + off, mask=omask, other=0.0, cache_modifier=".cg")
        z = tl.dot(tt, x, input_precision=PREC)
        # Z_c is stored over S_c in place: every warp's load of S_c before any warp's store.
        # Without this barrier the order holds only because the compiler stages x through
        # shared memory for the dot, which has a barrier of its own; nothing guarantees that.
        tl.debug_barrier()
        tl.store(Zb + off, z, mask=omask)
        tl.store(DV + bh * n * D + off, tl.full([BLOCK_C, BLOCK_D], 0.0, ACC), mask=omask)
        # send beta[i, m] z_i back to the earlier positions this chunk read from. Relaxed
        # atomics: several rows of the chunk can hit one position, so they must be atomic, but
        # no other program reads these rows (see the top), so no ordering beyond the barrier.
        valid0 = m0 & (idx0 >= 0) & (idx0 < s)
        tl.atomic_add(Zb + (idx0[:, :, None] * D + cols[None, None, :]),
                      coef0[:, :, None] * z[:, None, :],
                      mask=valid0[:, :, None] & cmask[None, None, :], sem="relaxed")
        for k0 in range(BLOCK_KB, KB, BLOCK_KB):  # wide patterns (dense, sq1 at large n)
            m = rmask[:, None] & (k0 + kb < KB)[None, :]
            off_k = rows[:, None] * KB + (k0 + kb)[None, :]
            idx = tl.load(BIDX + off_k, mask=m, other=-1)
            coef = tl.load(Bb + off_k, mask=m, other=0.0).to(ACC)
            valid = m & (idx >= 0) & (idx < s)
            tl.atomic_add(Zb + (idx[:, :, None] * D + cols[None, None, :]),
                          coef[:, :, None] * z[:, None, :],
                          mask=valid[:, :, None] & cmask[None, None, :], sem="relaxed")
        # chunk c's atomics before chunk c - 1's loads, across warps: bar.sync orders this
        # CTA's global memory operations for its own threads, and the loads of Z bypass L1
        tl.debug_barrier()
        tt = tt_next


@_jit
def _glr_bwd_grads(Z, V, Y, ALPHA, AIDX, BETA, BIDX, DALPHA, DBETA, DV,
                   n, KA, KB, D, NC,
                   ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
                   D_PAD: tl.constexpr, BLOCK_KA: tl.constexpr, BLOCK_KB: tl.constexpr):
    pid = tl.program_id(0)
    c = pid % NC
    bh = (pid // NC).to(tl.int64)
    rows = (c * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)  # 64-bit: rows * D must not wrap
    rmask = rows < n
    base = bh * n * D

    # dalpha[i, m] = z_i . v[a_idx[i, m]];  dv[a_idx[i, m]] += alpha[i, m] z_i
    ka = tl.arange(0, BLOCK_KA)
    for k0 in range(0, KA, BLOCK_KA):
        m = rmask[:, None] & (k0 + ka < KA)[None, :]
        off = rows[:, None] * KA + (k0 + ka)[None, :]
        idx = tl.load(AIDX + off, mask=m, other=-1)
        valid = m & (idx >= 0)
        coef = tl.load(ALPHA + bh * n * KA + off, mask=valid, other=0.0).to(ACC)
        dots = tl.full([BLOCK_C, BLOCK_KA], 0.0, ACC)
        for d0 in tl.static_range(0, D_PAD, BLOCK_D):
            cols = d0 + tl.arange(0, BLOCK_D)
            cmask = cols < D
            z = tl.load(Z + (base + rows[:, None] * D + cols[None, :]),
                        mask=rmask[:, None] & cmask[None, :], other=0.0)
            gmask = valid[:, :, None] & cmask[None, None, :]
            gptr = base + idx[:, :, None] * D + cols[None, None, :]
            x = tl.load(V + gptr, mask=gmask, other=0.0).to(ACC)
            dots += tl.reduce(z[:, None, :] * x, 2, _add)
            # read only after the kernel: relaxed suffices
            tl.atomic_add(DV + gptr, coef[:, :, None] * z[:, None, :], mask=gmask,
                          sem="relaxed")
        tl.store(DALPHA + bh * n * KA + off, dots.to(DALPHA.dtype.element_ty), mask=m)

    # dbeta[i, m] = z_i . y[b_idx[i, m]]
    kb = tl.arange(0, BLOCK_KB)
    for k0 in range(0, KB, BLOCK_KB):
        m = rmask[:, None] & (k0 + kb < KB)[None, :]
        off = rows[:, None] * KB + (k0 + kb)[None, :]
        idx = tl.load(BIDX + off, mask=m, other=-1)
        valid = m & (idx >= 0)
        dots = tl.full([BLOCK_C, BLOCK_KB], 0.0, ACC)
        for d0 in tl.static_range(0, D_PAD, BLOCK_D):
            cols = d0 + tl.arange(0, BLOCK_D)
            cmask = cols < D
            z = tl.load(Z + (base + rows[:, None] * D + cols[None, :]),
                        mask=rmask[:, None] & cmask[None, :], other=0.0)
            x = tl.load(Y + (base + idx[:, :, None] * D + cols[None, None, :]),
                        mask=valid[:, :, None] & cmask[None, None, :], other=0.0).to(ACC)
            dots += tl.reduce(z[:, None, :] * x, 2, _add)
        tl.store(DBETA + bh * n * KB + off, dots.to(DBETA.dtype.element_ty), mask=m)
