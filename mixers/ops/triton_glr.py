"""The `triton` backend of the glr op: the chunked algorithm of mixers/ops/chunked.py as Triton
kernels with an explicit backward (kernels in mixers/ops/triton_kernels.py, design in
docs/triton.md).

    glr_triton(v, alpha, a_idx, beta, b_idx, chunk_size=64) -> y

Runs on CUDA tensors, or on CPU tensors when TRITON_INTERPRET=1 was set before Triton was first
imported (the tests do that, tests/conftest.py). float32 and bfloat16 (and float16) inputs on the
GPU, float32 and float64 in the interpreter; accumulation in float32 (float64 for float64
inputs), outputs and gradients in the input dtype.

The kernel chunk is `chunk_size` rounded up to a power of two in [16, 64] (tl.dot needs 16 rows,
a 64 x 64 float32 block is what a program keeps in registers comfortably); the result does not
depend on it beyond rounding.
"""

from __future__ import annotations

import math
import os

import torch
from torch.autograd.function import once_differentiable

from .common import new_buffer
from .triton_scan_regs import SCAN_REGS, SCAN_REGS_TRITON

try:  # Triton is optional: the CPU paths of the project never import this module
    import triton

    from . import triton_kernels as _k

    _IMPORT_ERROR: Exception | None = None
except Exception as e:  # pragma: no cover - exercised only where Triton is missing or broken
    triton = None
    _k = None
    _IMPORT_ERROR = e

__all__ = ["glr_triton", "GLRTriton", "kernel_config", "launch_params", "interpreted",
           "SCAN_REGS", "SCAN_REGS_TRITON"]

MAX_CHUNK = 64
# columns per program of the scans, at most: a [C, 128] float32 tile is 32 registers per thread
# at 8 warps besides the C x C inverse; wider heads split into several column blocks
MAX_SCAN_BLOCK_D = 128
# num_warps per kernel, and the size of the [C, BLOCK_K, BLOCK_D] gather tiles a program holds
# at once (with their 64-bit pointers these set the register use): 32 elements per thread of
# _TILE_WARPS warps on a GPU. The scans' num_warps is chosen per call by kernel_config (4 or 8,
# from the occupancy the registers allow); the others are fixed. Large tiles in the
# interpreter, where every op costs about the same whatever its size.
_WARPS = {"prep": 4, "grads": 8}
SCAN_WARPS = (8, 4)  # the candidates, in order of preference when they tie
_TILE_WARPS = {"prep": 4, "scan": 8, "bscan": 4, "grads": 8}
_GPU_TILE = 32 * 32  # elements per warp
_INTERPRETER_TILE = 1 << 16
_MAX_BLOCK_K = {"gpu": 16, "interpreter": 64}

# Registers per thread of the two scans (SCAN_REGS, keyed by input dtype kind, BLOCK_C, BLOCK_D,
# num_warps) live in the generated module triton_scan_regs; a missing key counts as 255.
_REGS_PER_SM, _MAX_WARPS_PER_SM, _MAX_BLOCKS_PER_SM = 65536, 64, 32


def interpreted() -> bool:
    """Whether Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def _kernel_chunk(chunk_size: int) -> int:
    """The kernel chunk C: chunk_size rounded up to a power of two in [16, MAX_CHUNK]."""
    return min(MAX_CHUNK, max(16, _pow2(chunk_size)))


def _dtype_kind(dtype) -> str:
    return {torch.float64: "fp64", torch.float32: "fp32"}.get(dtype, "fp16")  # bf16 too


def scan_programs_per_sm(dtype, block_c: int, block_d: int, num_warps: int) -> int:
    """How many scan programs one SM holds at once: registers (allocated per warp in units of
    256) and warp slots; the scans' shared memory (up to 96 KiB) binds before these in no
    variant (checked over all of them with `--usage`)."""
    regs = SCAN_REGS.get((_dtype_kind(dtype), block_c, block_d, num_warps), 255)
    per_warp = -(-regs * 32 // 256) * 256
    return max(1, min(_REGS_PER_SM // (per_warp * num_warps),
                      _MAX_WARPS_PER_SM // num_warps, _MAX_BLOCKS_PER_SM))


def _scan_choice(bh: int, d_pad: int, block_c: int, num_sms: int, dtype, block_d, num_warps):
    """(BLOCK_D, num_warps) of the two scans on a GPU of num_sms SMs.

    The scans are sequential over chunks, one program per (batch-head, column block): their time
    is about (number of waves) x (time of one program). So, over every column block in
    [16, min(D_PAD, MAX_SCAN_BLOCK_D)] and num_warps in SCAN_WARPS (either may be fixed by the
    caller): fewest waves, where a wave is num_sms x programs-per-SM programs (from the
    registers ptxas gives that variant, SCAN_REGS); then fewest idle SMs; then the widest column
    block (the least repeated work: each column block reloads T and the pattern); then the
    preferred num_warps.
    """
    top = min(d_pad, MAX_SCAN_BLOCK_D)
    widths = [block_d] if block_d is not None else \
        [1 << k for k in range(4, top.bit_length()) if 1 << k <= top]
    warps = [num_warps] if num_warps is not None else list(SCAN_WARPS)
    best = None
    for bd in widths:
        for w in warps:
            programs = bh * -(-d_pad // bd)
            slots = num_sms * scan_programs_per_sm(dtype, block_c, bd, w)
            key = (-(-programs // slots), max(0, num_sms - programs), -bd, warps.index(w))
            if best is None or key < best[0]:
                best = (key, bd, w)
    return best[1], best[2]


def kernel_config(n: int, d: int, bh: int, chunk_size: int, block_d: int | None = None,
                  num_sms: int | None = None, dtype=torch.float32,
                  num_warps: int | None = None) -> dict:
    """Block sizes (all tl.constexpr) and the scans' num_warps for one call. Pure Python, so it
    is tested on the CPU.

    BLOCK_C: the kernel chunk, chunk_size rounded to a power of two in [16, MAX_CHUNK].
    D_PAD: d rounded up to a power of two >= 16 (masked columns).
    BLOCK_D, SCAN_WARPS: columns per program and warps of the two sequential scans. The columns
        of Y are independent, so the scans run on a (bh, D_PAD / BLOCK_D) grid. On a GPU both
        come from the occupancy model of _scan_choice (the grid split over d so that it fills the
        SMs in as few waves as the registers allow); in the interpreter BLOCK_D = D_PAD (or
        MAX_SCAN_BLOCK_D) and 8 warps. `block_d` / `num_warps` fix them.
    BLOCK_D_PREP, BLOCK_D_GRADS: the parallel kernels loop over D in blocks of these.
    """
    block_c = _kernel_chunk(chunk_size)
    d_pad = max(16, _pow2(d))
    interp = interpreted()
    if block_d is not None and (block_d < 16 or block_d & (block_d - 1)
                                or block_d > min(d_pad, MAX_SCAN_BLOCK_D)):
        raise ValueError(f"glr_triton: block_d must be a power of two in "
                         f"[16, {min(d_pad, MAX_SCAN_BLOCK_D)}], got {block_d}")
    if num_warps is not None and num_warps not in SCAN_WARPS:
        raise ValueError(f"glr_triton: num_warps must be one of {SCAN_WARPS}, got {num_warps}")
    if num_sms is None or interp:
        block_d = block_d or min(d_pad, MAX_SCAN_BLOCK_D)
        num_warps = num_warps or SCAN_WARPS[0]
    else:
        block_d, num_warps = _scan_choice(bh, d_pad, block_c, num_sms, dtype, block_d,
                                          num_warps)
    return {
        "BLOCK_C": block_c,
        "LOG_C": int(math.log2(block_c)),
        "D_PAD": d_pad,
        "BLOCK_D": block_d,
        "SCAN_WARPS": num_warps,
        "BLOCK_D_PREP": d_pad if interp else min(d_pad, 64),
        "BLOCK_D_GRADS": d_pad if interp else min(d_pad, 32),
        "NC": -(-n // block_c),
        "BH": bh,
        "interpreted": interp,
    }


def _block_k(k: int, rows: int, cols: int, kernel: str, interp: bool) -> int:
    """Pattern entries gathered at once: a [rows, BLOCK_K, cols] tile within budget."""
    budget = _INTERPRETER_TILE if interp else _GPU_TILE * _TILE_WARPS[kernel]
    cap = 1 << max(1, (budget // (rows * cols)).bit_length() - 1)  # a power of two >= 2
    top = _MAX_BLOCK_K["interpreter" if interp else "gpu"]
    return max(2, min(_pow2(max(k, 1)), cap, top))


def _precision(dtype: torch.dtype) -> str:
    """tl.dot input precision: 3xTF32 for float32 and half precision inputs alike (float32
    accuracy on the tensor cores; "ieee" float32 dots of 64 x 64 blocks take ptxas minutes to
    compile), IEEE for float64. Half precision inputs too: the dots multiply float32
    intermediates (the inverse T, sums of weighted rows), and plain TF32 would truncate them to
    a 10-bit mantissa; the inverse chains about log2 C such products, which puts TF32's error
    at bfloat16's own half-ulp instead of well below it."""
    return "ieee" if dtype == torch.float64 else "tf32x3"


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tl_acc(dtype: torch.dtype):
    return _k.tl.float64 if dtype == torch.float64 else _k.tl.float32


def _nonempty(idx: torch.Tensor, coef: torch.Tensor):
    """Triton wants real storage behind every pointer: a pattern with K = 0 gets a dummy."""
    if idx.shape[1] > 0:
        return idx, coef
    return (torch.full((1,), -1, dtype=idx.dtype, device=idx.device),
            torch.zeros(1, dtype=coef.dtype, device=coef.device))


def _num_sms(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).multi_processor_count


def _prepare(v, alpha, a_idx, beta, b_idx):
    b, h, n, d = v.shape
    bh = b * h
    v = v.contiguous().view(bh, n, d)
    alpha = alpha.contiguous().view(bh, n, a_idx.shape[1])
    beta = beta.contiguous().view(bh, n, b_idx.shape[1])
    return v, alpha, a_idx.contiguous().long(), beta, b_idx.contiguous().long()


def launch_params(cfg: dict, dtype: torch.dtype, ka: int, kb: int) -> dict:
    """kernel name -> (grid, constexpr and launch keyword arguments) for one call: the one
    place that turns a kernel_config into launches (the calls below and bench.triton_aot use it).
    """
    c, nc, bd, interp = cfg["BLOCK_C"], cfg["NC"], cfg["BLOCK_D"], cfg["interpreted"]
    bh, d_pad = cfg["BH"], cfg["D_PAD"]
    common = {"ACC": _tl_acc(dtype), "BLOCK_C": c}
    prec = _precision(dtype)
    bd_prep, bd_grads = cfg["BLOCK_D_PREP"], cfg["BLOCK_D_GRADS"]
    # the scans: one program per (batch-head, column block), no software pipelining of loads
    # across the chunk loop (a chunk reads what the previous one stored)
    scan = dict(common, BLOCK_D=bd, PREC=prec, num_warps=cfg["SCAN_WARPS"], num_stages=1)
    return {
        "_glr_fwd_prep": ((nc * bh,), dict(
            common, BLOCK_D=bd_prep, D_PAD=d_pad,
            BLOCK_KA=_block_k(ka, c, bd_prep, "prep", interp),
            BLOCK_KB=_block_k(kb, c, c, "prep", interp),
            LOG_C=cfg["LOG_C"], PREC=prec, num_warps=_WARPS["prep"])),
        "_glr_fwd_scan": ((bh, -(-d_pad // bd)),
                          dict(scan, BLOCK_KB=_block_k(kb, c, bd, "scan", interp))),
        "_glr_bwd_scan": ((bh, -(-d_pad // bd)),
                          dict(scan, BLOCK_KB=_block_k(kb, c, bd, "bscan", interp))),
        "_glr_bwd_grads": ((nc * bh,), dict(
            common, BLOCK_D=bd_grads, D_PAD=d_pad,
            BLOCK_KA=_block_k(ka, c, bd_grads, "grads", interp),
            BLOCK_KB=_block_k(kb, c, bd_grads, "grads", interp), num_warps=_WARPS["grads"])),
    }


def _forward(v, alpha, a_idx, beta, b_idx, cfg):
    """v [BH, n, d] etc. -> (y [BH, n, d] in v's dtype, tinv [BH, NC, C, C])."""
    bh, n, d = v.shape
    ka, kb = a_idx.shape[1], b_idx.shape[1]
    acc = _acc_dtype(v.dtype)
    c, nc = cfg["BLOCK_C"], cfg["NC"]
    launch = launch_params(cfg, v.dtype, ka, kb)
    u = torch.empty((bh, n, d), dtype=acc, device=v.device)  # workspace, fully written
    tinv = torch.empty((bh, nc, c, c), dtype=acc, device=v.device)
    y = new_buffer((bh, n, d), v)
    ai, al = _nonempty(a_idx, alpha)
    bi, be = _nonempty(b_idx, beta)
    grid, kw = launch["_glr_fwd_prep"]
    _k._glr_fwd_prep[grid](v, al, ai, be, bi, u, tinv, n, ka, kb, d, nc, **kw)
    grid, kw = launch["_glr_fwd_scan"]
    _k._glr_fwd_scan[grid](y, u, tinv, be, bi, n, kb, d, nc, **kw)
    return y, tinv


def _backward(grad_y, v, alpha, a_idx, beta, b_idx, y, tinv, cfg):
    bh, n, d = v.shape
    ka, kb = a_idx.shape[1], b_idx.shape[1]
    acc = _acc_dtype(v.dtype)
    launch = launch_params(cfg, v.dtype, ka, kb)
    g = grad_y.contiguous().view(bh, n, d)
    z = torch.zeros((bh, n, d), dtype=acc, device=v.device)  # S accumulator, then Z in place
    dv = new_buffer((bh, n, d), v, dtype=acc)  # zeroed by the scan, then accumulated
    dalpha = new_buffer(alpha.shape, alpha)
    dbeta = new_buffer(beta.shape, beta)
    ai, al = _nonempty(a_idx, alpha)
    bi, be = _nonempty(b_idx, beta)
    dal = dalpha if ka > 0 else torch.empty(1, dtype=alpha.dtype, device=v.device)
    dbe = dbeta if kb > 0 else torch.empty(1, dtype=beta.dtype, device=v.device)
    grid, kw = launch["_glr_bwd_scan"]
    _k._glr_bwd_scan[grid](z, g, tinv, be, bi, dv, n, kb, d, cfg["NC"], **kw)
    grid, kw = launch["_glr_bwd_grads"]
    _k._glr_bwd_grads[grid](z, v, y, al, ai, be, bi, dal, dbe, dv, n, ka, kb, d, cfg["NC"], **kw)
    if dv.dtype != v.dtype:
        dv = dv.to(v.dtype)
    return dv, dalpha, dbeta


class GLRTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, alpha, a_idx, beta, b_idx, chunk_size, block_d, num_warps):
        b, h, n, d = v.shape
        cfg = kernel_config(n, d, b * h, chunk_size, block_d, _num_sms(v.device), v.dtype,
                            num_warps)
        vf, af, ai, bf, bi = _prepare(v, alpha, a_idx, beta, b_idx)
        y, tinv = _forward(vf, af, ai, bf, bi, cfg)
        ctx.save_for_backward(vf, af, ai, bf, bi, y, tinv)
        ctx.cfg = cfg
        ctx.shapes = (v.shape, alpha.shape, beta.shape)
        return y.view(v.shape)

    @staticmethod
    @once_differentiable  # the kernels' backward is not itself differentiable: say so loudly
    def backward(ctx, grad_y):
        vf, af, ai, bf, bi, y, tinv = ctx.saved_tensors
        dv, dalpha, dbeta = _backward(grad_y, vf, af, ai, bf, bi, y, tinv, ctx.cfg)
        v_shape, a_shape, b_shape = ctx.shapes
        return (dv.view(v_shape), dalpha.view(a_shape), None, dbeta.view(b_shape), None, None,
                None, None)


def _check_runnable(v: torch.Tensor):
    if _IMPORT_ERROR is not None:
        raise RuntimeError(
            "glr backend 'triton' needs the triton package, which could not be imported "
            f"({type(_IMPORT_ERROR).__name__}: {_IMPORT_ERROR}). Install triton, or use "
            "backend='chunked' (the CPU path) or backend='auto'.") from _IMPORT_ERROR
    if v.device.type != "cuda" and not interpreted():
        raise RuntimeError(
            f"glr backend 'triton' runs on CUDA tensors, got a tensor on {v.device}. On the CPU "
            "use backend='chunked' (or 'auto'), or set TRITON_INTERPRET=1 before Triton is "
            "first imported to run the kernels in Triton's (slow) interpreter.")
    if v.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise ValueError(f"glr backend 'triton': unsupported dtype {v.dtype}")


def _check_sizes(n: int, bh: int, block_c: int):
    """The one size limit left: the parallel kernels' 1-D grid of NC * BH programs (grid axis 0
    holds up to 2^31 - 1). Offsets are 64-bit in every kernel, so n * d and n * K are free."""
    programs = -(-n // block_c) * bh
    if programs >= 2**31:
        raise ValueError(f"glr backend 'triton': {-(-n // block_c)} chunks x {bh} batch-heads = "
                         f"{programs} programs, beyond a CUDA grid's 2^31 - 1; use a larger "
                         "chunk_size or split the batch")


def glr_triton(v, alpha, a_idx, beta, b_idx, chunk_size: int = 64, *, block_d: int | None = None,
               num_warps: int | None = None):
    """Y = (I - B)^{-1} A V with Triton kernels; differentiable in v, alpha and beta.

    block_d, num_warps: columns per program (a power of two in [16, 128]) and warps (4 or 8) of
    the sequential scans; default: kernel_config's occupancy model. Inputs are checked by
    `mixers.ops.glr`; call that.
    """
    _check_runnable(v)
    _check_sizes(v.shape[-2], v.shape[0] * v.shape[1], _kernel_chunk(chunk_size))
    if v.shape[-2] == 0 or v.shape[0] * v.shape[1] == 0:
        # nothing to compute, but keep the result connected to the graph
        return v * 0 + (alpha.sum() + beta.sum()) * 0
    return GLRTriton.apply(v, alpha, a_idx, beta, b_idx, int(chunk_size), block_d, num_warps)
