"""Ahead-of-time compilation of the glr Triton kernels for a CUDA target, without a GPU.

    python -m bench.triton_aot                    # compile every variant, report failures
    python -m bench.triton_aot --usage            # + registers, spills, shared memory of each
    python -m bench.triton_aot --usage --write    # + regenerate mixers/ops/triton_scan_regs.py

The interpreter (TRITON_INTERPRET=1, how the tests run the kernels on the CPU) compiles nothing,
so this is the CPU-side check that the kernels build for the real backend (sm_90, Triton's own
ptxas), fit a block's shared memory, and use the registers the occupancy model of
mixers/ops/triton_glr.py assumes (its table, SCAN_REGS, is generated here). Tooling, not part of
the runtime op: it uses Triton's compiler internals (Triton >= 3.4). Run it in a process where
TRITON_INTERPRET is unset. docs/triton.md explains the variants and the table.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mixers.ops import triton_glr as _glr
from mixers.ops.triton_glr import (
    MAX_CHUNK,
    MAX_SCAN_BLOCK_D,
    SCAN_WARPS,
    _acc_dtype,
    _dtype_kind,
    interpreted,
    kernel_config,
    launch_params,
)

_k = _glr._k
triton = _glr.triton
TABLE_MODULE = Path(_glr.__file__).with_name("triton_scan_regs.py")

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


def render_table(regs: dict, triton_version: str) -> str:
    """The source of mixers/ops/triton_scan_regs.py for a measured table."""
    lines = [
        '"""Registers per thread of the glr Triton scans on sm_90. GENERATED: do not edit.',
        "",
        "Regenerate: `python -m bench.triton_aot --usage --write` (compiles every kernel",
        "variant with Triton's own ptxas; no GPU needed). The larger of _glr_fwd_scan and",
        "_glr_bwd_scan, keyed by (input dtype kind: fp32, or fp16 for bf16 / fp16; BLOCK_C;",
        "BLOCK_D; num_warps). The occupancy model of mixers/ops/triton_glr.py reads it; 255",
        "usually means spills (docs/triton.md).",
        '"""',
        "",
        f"SCAN_REGS_TRITON = {triton_version!r}  # the Triton whose ptxas measured the table",
        "SCAN_REGS: dict[tuple[str, int, int, int], int] = {",
        *(f"    {key!r}: {value}," for key, value in sorted(regs.items())),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _main(argv=None) -> int:
    """Compile every kernel variant for sm_90 without a GPU; report the failures, and with
    --usage the registers, spills and shared memory of each and the SCAN_REGS table."""
    import argparse

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--usage", action="store_true")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--dtypes", default="float32,bfloat16,float64")
    ap.add_argument("--write", action="store_true",
                    help=f"rewrite {TABLE_MODULE.name} from the measured registers (with --usage)")
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
        table = _scan_regs_table(rows)
        print(render_table(table, triton.__version__), end="")
        if args.write and not bad:
            TABLE_MODULE.write_text(render_table(table, triton.__version__))
            print(f"wrote {TABLE_MODULE}")
    print(f"{len(rows)} variants compiled, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(_main())
