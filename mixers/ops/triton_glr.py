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

try:  # Triton is optional: the CPU paths of the project never import this module
    import triton

    from . import triton_kernels as _k

    _IMPORT_ERROR: Exception | None = None
except Exception as e:  # pragma: no cover - exercised only where Triton is missing or broken
    triton = None
    _k = None
    _IMPORT_ERROR = e

__all__ = ["glr_triton", "GLRTriton", "kernel_config", "launch_params", "compile_ahead",
           "interpreted"]

MAX_CHUNK = 64
# num_warps per kernel, and the size of the [C, BLOCK_K, BLOCK_D] gather tiles a program holds
# at once (with their 64-bit pointers these set the register use): 32 elements per thread of
# _TILE_WARPS warps on a GPU. Checked with ptxas for sm_90 (compile_ahead + cuobjdump): no spills
# in bfloat16; the float32 prep kernel (3xTF32 products) spills a little. Large tiles in the
# interpreter, where every op costs about the same whatever its size.
_WARPS = {"prep": 4, "scan": 8, "bscan": 8, "grads": 8}
_TILE_WARPS = {"prep": 4, "scan": 8, "bscan": 4, "grads": 8}
_GPU_TILE = 32 * 32  # elements per warp
_INTERPRETER_TILE = 1 << 16
_MAX_BLOCK_K = {"gpu": 16, "interpreter": 64}


def interpreted() -> bool:
    """Whether Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def kernel_config(n: int, d: int, bh: int, chunk_size: int, block_d: int | None = None,
                  num_sms: int | None = None) -> dict:
    """Block sizes (all tl.constexpr) for one call. Pure Python, so it is tested on the CPU.

    BLOCK_C: the kernel chunk, chunk_size rounded to a power of two in [16, MAX_CHUNK].
    D_PAD: d rounded up to a power of two >= 16 (masked columns).
    BLOCK_D: columns per program of the two sequential scans. The columns of Y are independent,
        so the scans run on a (bh, D_PAD / BLOCK_D) grid: on a GPU with few (batch, head) pairs
        the d axis is split until the grid about fills the SMs (never below 16 columns).
    BLOCK_D_PREP, BLOCK_D_GRADS: the parallel kernels loop over D in blocks of these.
    """
    block_c = min(MAX_CHUNK, max(16, _pow2(chunk_size)))
    d_pad = max(16, _pow2(d))
    interp = interpreted()
    if block_d is None:
        if num_sms is None or interp:
            block_d = d_pad
        else:
            split = max(1, num_sms // max(1, bh))
            block_d = max(16, min(d_pad, _pow2(-(-d_pad // split))))
    if block_d < 16 or block_d & (block_d - 1) or block_d > d_pad:
        raise ValueError(f"glr_triton: block_d must be a power of two in [16, {d_pad}], "
                         f"got {block_d}")
    return {
        "BLOCK_C": block_c,
        "LOG_C": int(math.log2(block_c)),
        "D_PAD": d_pad,
        "BLOCK_D": block_d,
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
    """tl.dot input precision. float32 inputs: 3xTF32 (float32 accuracy on tensor cores; "ieee"
    float32 dots of 64 x 64 blocks take ptxas minutes to compile). Half precision inputs: TF32
    on the float32 intermediates, well below bf16 rounding. float64: exact."""
    if dtype == torch.float64:
        return "ieee"
    return "tf32x3" if dtype == torch.float32 else "tf32"


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
    place that turns a kernel_config into launches (the calls below and compile_ahead use it).
    """
    c, nc, bd, interp = cfg["BLOCK_C"], cfg["NC"], cfg["BLOCK_D"], cfg["interpreted"]
    bh, d_pad = cfg["BH"], cfg["D_PAD"]
    common = {"ACC": _tl_acc(dtype), "BLOCK_C": c}
    prec = _precision(dtype)
    bd_prep, bd_grads = cfg["BLOCK_D_PREP"], cfg["BLOCK_D_GRADS"]
    # the scans: one program per (batch-head, column block), no software pipelining of loads
    # across the chunk loop (a chunk reads what the previous one stored)
    scan = dict(common, BLOCK_D=bd, PREC=prec, num_warps=_WARPS["scan"], num_stages=1)
    return {
        "_glr_fwd_prep": ((nc, bh), dict(
            common, BLOCK_D=bd_prep, D_PAD=d_pad,
            BLOCK_KA=_block_k(ka, c, bd_prep, "prep", interp),
            BLOCK_KB=_block_k(kb, c, c, "prep", interp),
            LOG_C=cfg["LOG_C"], PREC=prec, num_warps=_WARPS["prep"])),
        "_glr_fwd_scan": ((bh, d_pad // bd),
                          dict(scan, BLOCK_KB=_block_k(kb, c, bd, "scan", interp))),
        "_glr_bwd_scan": ((bh, d_pad // bd),
                          dict(scan, BLOCK_KB=_block_k(kb, c, bd, "bscan", interp))),
        "_glr_bwd_grads": ((nc, bh), dict(
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
    _k._glr_bwd_grads[grid](z, v, y, al, ai, be, bi, dal, dbe, dv, n, ka, kb, d, **kw)
    if dv.dtype != v.dtype:
        dv = dv.to(v.dtype)
    return dv, dalpha, dbeta


_PTR_KIND = {  # pointer arguments of the kernels: "io" = the input dtype, "acc", or "idx"
    "V": "io", "ALPHA": "io", "BETA": "io", "Y": "io", "G": "io", "DALPHA": "io",
    "DBETA": "io", "AIDX": "idx", "BIDX": "idx", "U": "acc", "TINV": "acc", "Z": "acc",
    "DV": "acc",
}
_TRITON_TY = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16",
              torch.float64: "fp64"}


def compile_ahead(dtype=torch.bfloat16, n=4096, d=64, bh=32, ka=1, kb=13, chunk_size=64,
                  capability=90, num_sms=132) -> dict:
    """Compile the four kernels for a CUDA target without a GPU (Triton's own ptxas), with the
    launch parameters a call of that shape would use on a GPU of `num_sms` SMs. A CPU-side check
    that the kernels build for the real backend, which the interpreter does not exercise. Must
    run in a process where TRITON_INTERPRET is unset. Returns kernel name -> compiled kernel.
    """
    if interpreted() or not hasattr(_k._glr_fwd_scan, "arg_names"):
        raise RuntimeError("compile_ahead: run it without TRITON_INTERPRET (a fresh process)")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    cfg = kernel_config(n, d, bh, chunk_size, num_sms=num_sms)
    types = {"io": "*" + _TRITON_TY[dtype], "acc": "*" + _TRITON_TY[_acc_dtype(dtype)],
             "idx": "*i64"}
    out = {}
    for name, (_, kw) in launch_params(cfg, dtype, ka, kb).items():
        fn = getattr(_k, name)
        options = {k: kw.pop(k) for k in ("num_warps", "num_stages") if k in kw}
        signature = {a: ("constexpr" if a in kw else types[_PTR_KIND[a]] if a in _PTR_KIND
                         else "i32") for a in fn.arg_names}
        src = ASTSource(fn=fn, signature=signature, constexprs=kw)
        out[name] = triton.compile(src, target=GPUTarget("cuda", capability, 32),
                                   options=options)
    return out


class GLRTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, alpha, a_idx, beta, b_idx, chunk_size, block_d):
        b, h, n, d = v.shape
        cfg = kernel_config(n, d, b * h, chunk_size, block_d, _num_sms(v.device))
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
                None)


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


def _check_sizes(n: int, ka: int, kb: int):
    # the kernels index the [n, K] pattern tensors with 32-bit offsets
    if n * max(ka, kb, 1) >= 2**31:
        raise ValueError(f"glr backend 'triton': n * K = {n} * {max(ka, kb)} >= 2^31 entries in a "
                         "pattern tensor, beyond the kernels' 32-bit offsets")


def glr_triton(v, alpha, a_idx, beta, b_idx, chunk_size: int = 64, *, block_d: int | None = None):
    """Y = (I - B)^{-1} A V with Triton kernels; differentiable in v, alpha and beta.

    block_d: columns per program of the sequential scans (a power of two >= 16); default: d
    split so the grid about fills the GPU. Inputs are checked by `mixers.ops.glr`; call that.
    """
    _check_runnable(v)
    _check_sizes(v.shape[-2], a_idx.shape[1], b_idx.shape[1])
    if v.shape[-2] == 0 or v.shape[0] * v.shape[1] == 0:
        # nothing to compute, but keep the result connected to the graph
        return v * 0 + (alpha.sum() + beta.sum()) * 0
    return GLRTriton.apply(v, alpha, a_idx, beta, b_idx, int(chunk_size), block_d)
