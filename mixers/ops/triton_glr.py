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
           "compile_kernel", "interpreted"]

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

# Registers per thread of the two scans (the larger of _glr_fwd_scan and _glr_bwd_scan), as
# ptxas (Triton 3.9's) allocates them for sm_90, keyed by (input dtype kind: fp32, or fp16 for
# bf16 / fp16, BLOCK_C, BLOCK_D, num_warps). `python -m mixers.ops.triton_glr --usage --dtypes
# float32,bfloat16` compiles every variant and prints this table; the compile test fails when
# it is stale. A missing key (float64, a test-only dtype on a GPU) counts as 255, the most.
# 255 usually means spills: see docs/triton.md for the stack sizes.
SCAN_REGS_TRITON = "3.9.0"  # the Triton that measured it
SCAN_REGS: dict[tuple[str, int, int, int], int] = {
    ('fp32', 16, 16, 4): 128, ('fp32', 16, 16, 8): 99, ('fp32', 16, 32, 4): 219,
    ('fp32', 16, 32, 8): 127, ('fp32', 16, 64, 4): 235, ('fp32', 16, 64, 8): 128,
    ('fp32', 16, 128, 4): 205, ('fp32', 16, 128, 8): 171,
    ('fp32', 32, 16, 4): 243, ('fp32', 32, 16, 8): 161, ('fp32', 32, 32, 4): 247,
    ('fp32', 32, 32, 8): 183, ('fp32', 32, 64, 4): 247, ('fp32', 32, 64, 8): 199,
    ('fp32', 32, 128, 4): 255, ('fp32', 32, 128, 8): 222,
    ('fp32', 64, 16, 4): 233, ('fp32', 64, 16, 8): 166, ('fp32', 64, 32, 4): 235,
    ('fp32', 64, 32, 8): 167, ('fp32', 64, 64, 4): 255, ('fp32', 64, 64, 8): 224,
    ('fp32', 64, 128, 4): 255, ('fp32', 64, 128, 8): 255,
    ('fp16', 16, 16, 4): 122, ('fp16', 16, 16, 8): 101, ('fp16', 16, 32, 4): 182,
    ('fp16', 16, 32, 8): 127, ('fp16', 16, 64, 4): 182, ('fp16', 16, 64, 8): 136,
    ('fp16', 16, 128, 4): 223, ('fp16', 16, 128, 8): 136,
    ('fp16', 32, 16, 4): 168, ('fp16', 32, 16, 8): 128, ('fp16', 32, 32, 4): 168,
    ('fp16', 32, 32, 8): 177, ('fp16', 32, 64, 4): 229, ('fp16', 32, 64, 8): 169,
    ('fp16', 32, 128, 4): 255, ('fp16', 32, 128, 8): 180,
    ('fp16', 64, 16, 4): 190, ('fp16', 64, 16, 8): 168, ('fp16', 64, 32, 4): 237,
    ('fp16', 64, 32, 8): 163, ('fp16', 64, 64, 4): 244, ('fp16', 64, 64, 8): 227,
    ('fp16', 64, 128, 4): 255, ('fp16', 64, 128, 8): 255,
}
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
    place that turns a kernel_config into launches (the calls below and compile_ahead use it).
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


_PTR_KIND = {  # pointer arguments of the kernels: "io" = the input dtype, "acc", or "idx"
    "V": "io", "ALPHA": "io", "BETA": "io", "Y": "io", "G": "io", "DALPHA": "io",
    "DBETA": "io", "AIDX": "idx", "BIDX": "idx", "U": "acc", "TINV": "acc", "Z": "acc",
    "DV": "acc",
}
# shared memory per block on sm_90 (228 KiB per SM, 1 KiB of it reserved per block): a kernel
# asking for more compiles but fails at launch, so compile_ahead checks it
_MAX_SHARED = {90: 232448, 80: 166912}


def _mock_args(fn, dtype: torch.dtype, ints: dict) -> list:
    """The positional arguments of one launch of `fn`, tensors replaced by Triton's MockTensor
    (a dtype and an aligned data pointer: real launches pass fresh or contiguous torch
    allocations, 16-byte aligned), integers by their values (D's divisibility by 16 is part of
    the specialisation)."""
    from triton.runtime.jit import MockTensor

    kinds = {"io": dtype, "acc": _acc_dtype(dtype), "idx": torch.int64}
    return [MockTensor(kinds[_PTR_KIND[a]]) if a in _PTR_KIND else ints[a]
            for a in fn.arg_names if a in _PTR_KIND or a in ints]


def _resource_usage(cubin: bytes) -> dict:
    """Registers, spill stores and shared memory of a cubin, from Triton's bundled cuobjdump
    (without a GPU the driver, which reports them at load time, is not there)."""
    import re
    import shutil
    import tempfile
    from pathlib import Path

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    tool = str(tool) if tool.exists() else shutil.which("cuobjdump")
    if tool is None:
        return {}
    import subprocess

    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True,
                             text=True).stdout
    found = {k: int(v) for k, v in re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", out)}
    return {"regs": found.get("REG"), "spill_bytes": found.get("LOCAL", 0),
            "stack": found.get("STACK", 0)}


def compile_kernel(name: str, kw: dict, dtype: torch.dtype, ints: dict, capability: int = 90):
    """Compile one kernel for a CUDA target without a GPU (Triton's own ptxas), exactly as the
    JIT would specialise it at a launch with these arguments: the launch's constexprs and
    options, the same `do_not_specialize` integers, and the alignment attributes the JIT derives
    from the pointers and from D. Uses the JIT's own binder (Triton >= 3.4 internals)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    fn = getattr(_k, name)
    target = GPUTarget("cuda", capability, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    kw = dict(kw)
    bound, specialization, options = binder(*_mock_args(fn, dtype, ints), **kw)
    options, signature, constexprs, attrs = fn._pack_args(backend, kw, bound, specialization,
                                                          options)
    src = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=target, options=options.__dict__)


def compile_ahead(dtype=torch.bfloat16, n=4096, d=64, bh=32, ka=1, kb=13, chunk_size=64,
                  capability=90, num_sms=132, block_d=None, usage=False) -> dict:
    """Compile the four kernels for a CUDA target without a GPU, with the launch parameters a
    call of that shape would use on a GPU of `num_sms` SMs (see compile_kernel). A CPU-side
    check that the kernels build for the real backend, which the interpreter does not exercise.
    Raises when a kernel needs more shared memory than a block may have. Must run in a process
    where TRITON_INTERPRET is unset. Returns kernel name -> compiled kernel, or with
    usage=True kernel name -> (compiled kernel, registers / spills / shared memory).
    """
    if interpreted() or not hasattr(_k._glr_fwd_scan, "arg_names"):
        raise RuntimeError("compile_ahead: run it without TRITON_INTERPRET (a fresh process)")
    cfg = kernel_config(n, d, bh, chunk_size, block_d=block_d, num_sms=num_sms, dtype=dtype)
    ints = {"n": n, "KA": ka, "KB": kb, "D": d, "NC": cfg["NC"]}
    out = {}
    for name, (_, kw) in launch_params(cfg, dtype, ka, kb).items():
        kernel = compile_kernel(name, kw, dtype, ints, capability)
        shared = kernel.metadata.shared
        limit = _MAX_SHARED.get(capability)
        if limit is not None and shared > limit:
            raise RuntimeError(f"compile_ahead: {name} ({dtype}, {kw}) needs {shared} bytes of "
                               f"shared memory, more than the {limit} a block may have")
        out[name] = (kernel, dict(_resource_usage(kernel.asm["cubin"]), shared=shared)) \
            if usage else kernel
    return out


COMPILE_DTYPES = (torch.float32, torch.bfloat16, torch.float64)


def kernel_variants(dtypes=COMPILE_DTYPES, chunks=(16, 32, MAX_CHUNK),
                    d_pads=(16, 32, 64, MAX_SCAN_BLOCK_D), warps=SCAN_WARPS) -> list:
    """Every distinct specialisation a GPU launch can get, deduplicated: for each dtype, kernel
    chunk, head size (d = D_PAD, divisible by 16 as most are), scan column block in [16, D_PAD]
    and scan num_warps, the four kernels with the launch parameters of launch_params. Pattern
    widths at their largest (2048): BLOCK_KA / BLOCK_KB at the tile cap, the biggest tiles; a
    narrower pattern gets the same code with a smaller tile. A list of (dtype, kernel name,
    launch keyword arguments, integer arguments)."""
    out, seen = [], set()
    for dtype in dtypes:
        for c in chunks:
            for d_pad in d_pads:
                for bd in (b for b in (16, 32, 64, 128) if b <= min(d_pad, MAX_SCAN_BLOCK_D)):
                    for w in warps:
                        cfg = kernel_config(4 * c + 1, d_pad, 1, c, block_d=bd, num_sms=1,
                                            dtype=dtype, num_warps=w)
                        ints = {"n": 4 * c + 1, "KA": 2048, "KB": 2048, "D": d_pad,
                                "NC": cfg["NC"]}
                        for name, (_, kw) in launch_params(cfg, dtype, 2048, 2048).items():
                            key = (str(dtype), name, tuple(sorted(map(str, kw.items()))))
                            if key not in seen:
                                seen.add(key)
                                out.append((dtype, name, kw, ints))
    return out


def _compile_variant(variant, capability=90):
    dtype, name, kw, ints = variant
    try:
        kernel = compile_kernel(name, kw, dtype, ints, capability)
    except Exception as e:  # reported, with the variant, by compile_variants
        return variant, None, f"{type(e).__name__}: {str(e)[-2000:]}"
    usage = dict(_resource_usage(kernel.asm["cubin"]), shared=kernel.metadata.shared)
    limit = _MAX_SHARED.get(capability)
    if limit is not None and usage["shared"] > limit:
        return variant, usage, f"needs {usage['shared']} bytes of shared memory (> {limit})"
    return variant, usage, None


def compile_variants(variants=None, workers: int | None = None, capability: int = 90,
                     progress=None) -> list:
    """Compile variants (default: kernel_variants()) for a CUDA target without a GPU, in
    `workers` processes (default: every CPU). Returns (variant, usage, error or None) rows.
    Triton caches what it compiled, so a second run costs seconds."""
    import concurrent.futures as cf
    import multiprocessing as mp

    if interpreted():
        raise RuntimeError("compile_variants: run it without TRITON_INTERPRET (a fresh process)")
    variants = kernel_variants() if variants is None else variants
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return [_compile_variant(v, capability) for v in variants]
    # spawn, not fork: the parent may have threads (torch), and each child imports the kernels
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        rows = []
        for row in pool.map(_compile_variant, variants, [capability] * len(variants)):
            rows.append(row)
            if progress is not None:
                progress(row)
        return rows


def _scan_regs_table(rows) -> dict:
    table: dict = {}
    for (dtype, name, kw, _), usage, _err in rows:
        if name in ("_glr_fwd_scan", "_glr_bwd_scan") and usage and usage.get("regs"):
            key = (_dtype_kind(dtype), kw["BLOCK_C"], kw["BLOCK_D"], kw["num_warps"])
            table[key] = max(table.get(key, 0), usage["regs"])
    return table


def _main(argv=None) -> int:
    """Compile every kernel variant for sm_90 without a GPU; report the failures, and with
    --usage the registers, spills and shared memory of each and the SCAN_REGS table."""
    import argparse

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--usage", action="store_true")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--dtypes", default="float32,bfloat16,float64")
    args = ap.parse_args(argv)

    def show(row):
        (dtype, name, kw, _), usage, err = row
        if args.usage or err:
            consts = {k: v for k, v in kw.items() if k not in ("ACC", "PREC")}
            print(f"{str(dtype)[6:]:9} {name:15} {consts} {usage} {err or ''}", flush=True)

    dtypes = tuple(getattr(torch, name) for name in args.dtypes.split(","))
    rows = compile_variants(kernel_variants(dtypes), workers=args.workers, progress=show)
    bad = [r for r in rows if r[2]]
    if args.usage:
        print("SCAN_REGS.update({")
        for key, regs in sorted(_scan_regs_table(rows).items()):
            print(f"    {key}: {regs},")
        print("})")
    print(f"{len(rows)} variants compiled, {len(bad)} failed")
    return 1 if bad else 0


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


if __name__ == "__main__":
    raise SystemExit(_main())
