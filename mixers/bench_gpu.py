"""GPU check of the Triton backend of the glr op, in one call: correctness, then timings.

    python -m mixers.bench_gpu [--out bench_out/gpu_check.json] [--dtype bfloat16|float32]
                               [--ns 1024,2048,...] [--budget-s 480] [--smoke]
    bench/gpu_check.sh [same options]

1. Correctness (the kernels against `reference`, on the device): output and the gradients of v,
   alpha and beta for a spread of patterns (plain and cache-efficient, direct self, window and
   full, lengths not a multiple of the chunk, an odd head size), in float32 and bfloat16.
   The reference runs in float64 on the same (rounded) inputs. An element passes when
   |got - want| <= tol * (1 + max |want|) for its tensor, with tol = 1e-4 (float32: the kernels
   use 3xTF32 products, about float32 accuracy) and 5e-2 (bfloat16: outputs are rounded to bf16,
   about 4e-3 relative, and the rounded outputs are what later positions read back).
   Any failure makes the exit status 1.
2. Timings, `triton.testing.do_bench` (median of its repeats, in ms): forward (with autograd
   recording) and forward + backward of the glr op for the mixers pow2, pow2_cache, sq1, first and
   kth(8) (direct self; coefficients random with each row [alpha_i | beta_i] a softmax over its
   valid entries, so beta rows are normalised), backend triton and backend chunked on the GPU,
   against causal `F.scaled_dot_product_attention` on q, k, v of the same shape: batch 4,
   8 heads, d 64, n = 1024 .. 32768, dtype bfloat16 by default. The work is bounded: chunked is
   skipped at a larger n once one of its forward + backward took over CHUNKED_LIMIT_S, and
   timings not started within --budget-s (default 480 s) of the start are skipped (marked in
   the JSON), so a run ends well inside 10 minutes.
3. Targets, reported (not enforced): pow2 forward + backward faster than causal SDPA for every
   n >= 8192, and at least 5x faster than chunked on the GPU at every n both ran.

Prints a table and writes JSON (machine, versions, settings, correctness rows, timing rows,
targets). --smoke runs the same code on tiny shapes; without a GPU it sets TRITON_INTERPRET=1
(before Triton is imported) and runs the kernels on the CPU in Triton's interpreter, in float32
only, with a wall-clock median in place of do_bench: a check that the script works, not a
measurement.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

MIXERS = {  # name -> (recurrent spec, cache_efficient); direct self for all
    "pow2": ("pow2", False),
    "pow2_cache": ("pow2", True),
    "sq1": ("sq1", False),
    "first": ("first", False),
    "kth8": ("kth(8)", False),
}
NS = (1024, 2048, 4096, 8192, 16384, 32768)
BATCH, HEADS, HEAD_DIM = 4, 8, 64
CHUNK_SIZE = 64
CHUNKED_LIMIT_S = 1.5
TOL = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float64: 1e-10}

# (recurrent, cache_efficient, direct, n, d); chunk size CHUNK_SIZE (smoke: 16)
CHECKS = [  # head size 64 as timed, plus one odd head size (each new shape costs a compile)
    ("pow2", False, "self", 1000, 64),
    ("pow2", True, "self", 1000, 64),
    ("sq1", False, "window(4)", 777, 64),
    ("sq1", True, "self", 300, 64),
    ("first", False, "self", 1000, 64),
    ("kth(8)", False, "self", 513, 64),
    ("dense", False, "self", 200, 64),
    ("none", False, "full", 300, 64),
    ("pow2", False, "full", 129, 24),
]
SMOKE_CHECKS = [
    ("pow2", False, "self", 40, 16),
    ("sq1", True, "window(4)", 33, 5),
    ("dense", False, "full", 20, 16),
]


def _setup_interpreter(smoke: bool) -> None:
    if not torch.cuda.is_available():
        if not smoke:
            sys.exit("bench_gpu: no CUDA device. Use --smoke to try the script on the CPU "
                     "(Triton interpreter).")
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before Triton is first imported


def _coefficients(a_idx, b_idx, batch, heads, dtype, device, gen):
    """alpha, beta: each row [alpha_i | beta_i] a softmax of random scores over valid entries."""
    n = a_idx.shape[0]
    ka, kb = a_idx.shape[1], b_idx.shape[1]
    scores = torch.randn(batch, heads, n, ka + kb, generator=gen, dtype=torch.float32)
    valid = torch.cat([a_idx >= 0, b_idx >= 0], dim=1)
    probs = scores.masked_fill(~valid, float("-inf")).softmax(-1)
    probs = probs.nan_to_num(0.0)
    alpha, beta = probs[..., :ka], probs[..., ka:]
    return alpha.to(device, dtype), beta.to(device, dtype)


def make_inputs(recurrent, cache_efficient, direct, n, d, batch, heads, dtype, device, seed=0):
    from mixers.patterns import make_direct, make_pattern

    gen = torch.Generator().manual_seed(seed)
    a_idx = make_direct(direct).index(n).to(device)
    b_idx = make_pattern(recurrent, cache_efficient=cache_efficient).index(n).to(device)
    v = torch.randn(batch, heads, n, d, generator=gen).to(device, dtype)
    alpha, beta = _coefficients(a_idx.cpu(), b_idx.cpu(), batch, heads, dtype, device, gen)
    return v, alpha, a_idx, beta, b_idx


# ---------------------------------------------------------------------------------------------
# 1. correctness


def _run(backend, v, alpha, a_idx, beta, b_idx, g, chunk):
    from mixers.ops import glr, poisoned_outputs

    v, alpha, beta = (t.detach().clone().requires_grad_() for t in (v, alpha, beta))
    with poisoned_outputs():
        y = glr(v, alpha, a_idx, beta, b_idx, backend=backend, chunk_size=chunk)
        grads = torch.autograd.grad(y, (v, alpha, beta), g)
    return (y, *grads)


def check_case(case, dtype, device, chunk, batch, heads, seed):
    recurrent, ce, direct, n, d = case
    v, alpha, a_idx, beta, b_idx = make_inputs(recurrent, ce, direct, n, d, batch, heads, dtype,
                                               device, seed)
    g = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed + 1)).to(device, dtype)
    got = _run("triton", v, alpha, a_idx, beta, b_idx, g, chunk)
    want = _run("reference", *(t.double() if t.is_floating_point() else t
                               for t in (v, alpha, a_idx, beta, b_idx)), g.double(), chunk)
    row = {"recurrent": recurrent, "cache_efficient": ce, "direct": direct, "n": n, "d": d,
           "chunk_size": chunk, "dtype": str(dtype).replace("torch.", ""), "tol": TOL[dtype]}
    ok = True
    for name, a, b in zip(("y", "dv", "dalpha", "dbeta"), got, want):
        if a.dtype != dtype:
            row[f"dtype_{name}"] = str(a.dtype)
            ok = False
        a = a.double()
        scale = 1.0 + (b.abs().max().item() if b.numel() else 0.0)
        err = (a - b).abs().max().item() if b.numel() else 0.0
        nan = bool(torch.isnan(a).any())
        row[f"err_{name}"] = err / scale  # relative to 1 + max |want|, as the tolerance
        ok &= not nan and err <= TOL[dtype] * scale
        if nan:
            row[f"nan_{name}"] = True
    row["ok"] = bool(ok)
    return row


def correctness(device, dtypes, smoke):
    rows = []
    checks = SMOKE_CHECKS if smoke else CHECKS
    chunk = 16 if smoke else CHUNK_SIZE
    batch, heads = (2, 3) if smoke else (2, 4)
    for dtype in dtypes:
        for i, case in enumerate(checks):
            try:
                row = check_case(case, dtype, device, chunk, batch, heads, seed=i)
            except Exception as e:  # a crash is a failed check, reported, not the end
                row = {"recurrent": case[0], "cache_efficient": case[1], "direct": case[2],
                       "n": case[3], "d": case[4], "dtype": str(dtype).replace("torch.", ""),
                       "ok": False, "error": f"{type(e).__name__}: {e}",
                       "traceback": traceback.format_exc(limit=4)}
            rows.append(row)
            _print_check(row)
    return rows


def _print_check(row):
    errs = " ".join(f"{k[4:]}={row[k]:.1e}" for k in row if k.startswith("err_"))
    name = f"{row['direct']}+{row['recurrent']}{'(cache)' if row['cache_efficient'] else ''}"
    status = "ok  " if row["ok"] else "FAIL"
    print(f"  {status} {row['dtype']:<9} {name:<24} n={row['n']:<5} d={row['d']:<3} "
          f"{errs} {row.get('error', '')}", flush=True)


# ---------------------------------------------------------------------------------------------
# 2. timings


def _timer(device):
    if device.type == "cuda":
        from triton.testing import do_bench

        return lambda fn: float(do_bench(fn, warmup=25, rep=100, return_mode="median"))

    def wall(fn, repeats=3):  # the smoke run on the CPU: a median of wall times, in ms
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return wall


def _glr_fns(backend, inputs, chunk):
    from mixers.ops import glr

    v, alpha, a_idx, beta, b_idx = inputs
    v, alpha, beta = (t.detach().clone().requires_grad_() for t in (v, alpha, beta))
    g = torch.randn_like(v)

    def fwd():
        return glr(v, alpha, a_idx, beta, b_idx, backend=backend, chunk_size=chunk)

    def fwdbwd():
        torch.autograd.backward(fwd(), g, inputs=[v, alpha, beta])

    return fwd, fwdbwd, (v, alpha, beta)


def _sdpa_fns(batch, heads, n, d, dtype, device):
    import torch.nn.functional as F

    q, k, v = (torch.randn(batch, heads, n, d, device=device, dtype=dtype, requires_grad=True)
               for _ in range(3))
    g = torch.randn_like(q)

    def fwd():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def fwdbwd():
        torch.autograd.backward(fwd(), g, inputs=[q, k, v])

    return fwd, fwdbwd, (q, k, v)


def timings(device, dtype, ns, deadline, smoke):
    bench = _timer(device)
    batch, heads, d = (1, 2, 16) if smoke else (BATCH, HEADS, HEAD_DIM)
    chunk = 16 if smoke else CHUNK_SIZE
    mixers = ("pow2", "first") if smoke else tuple(MIXERS)
    rows = []
    chunked_too_slow: set[str] = set()

    def measure(label, backend, n, make):
        row = {"mixer": label, "backend": backend, "n": n}
        if time.perf_counter() > deadline:
            row["skipped"] = "time budget spent"
        else:
            try:
                fwd, fwdbwd, keep = make()
                row["fwd_ms"] = bench(fwd)
                row["fwdbwd_ms"] = bench(fwdbwd)
                for t in keep:
                    t.grad = None
                del keep, fwd, fwdbwd
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
        _print_time(row)
        return row

    for n in ns:
        measure("attention", "sdpa", n, lambda n=n: _sdpa_fns(batch, heads, n, d, dtype, device))
        for label in mixers:
            rec, ce = MIXERS[label]
            inputs = make_inputs(rec, ce, "self", n, d, batch, heads, dtype, device, seed=n)
            measure(label, "triton", n, lambda inputs=inputs: _glr_fns("triton", inputs, chunk))
            if label in chunked_too_slow:
                rows.append({"mixer": label, "backend": "chunked", "n": n,
                             "skipped": f"forward + backward over {CHUNKED_LIMIT_S}s at a "
                                        f"smaller n"})
                _print_time(rows[-1])
            else:
                row = measure(label, "chunked", n,
                              lambda inputs=inputs: _glr_fns("chunked", inputs, chunk))
                if row.get("fwdbwd_ms", 0.0) > CHUNKED_LIMIT_S * 1e3 or "error" in row:
                    chunked_too_slow.add(label)
            del inputs
    return rows


def _print_time(row):
    name = f"{row['mixer']}/{row['backend']}"
    if "fwd_ms" in row:
        print(f"  {name:<20} n={row['n']:<6} fwd {row['fwd_ms']:9.3f} ms   "
              f"fwd+bwd {row['fwdbwd_ms']:9.3f} ms", flush=True)
    else:
        print(f"  {name:<20} n={row['n']:<6} {row.get('skipped') or row.get('error')}",
              flush=True)


def targets(rows):
    """pow2 fwd+bwd < SDPA for n >= 8192; >= 5x faster than chunked wherever both ran."""
    t = {(r["mixer"], r["backend"], r["n"]): r.get("fwdbwd_ms") for r in rows}
    vs_sdpa, vs_chunked = {}, {}
    for (mixer, backend, n), ms in t.items():
        if mixer != "pow2" or backend != "triton" or ms is None:
            continue
        sdpa = t.get(("attention", "sdpa", n))
        if n >= 8192 and sdpa is not None:
            vs_sdpa[n] = {"speedup": sdpa / ms, "ok": ms < sdpa}
        chunked = t.get(("pow2", "chunked", n))
        if chunked is not None:
            vs_chunked[n] = {"speedup": chunked / ms, "ok": chunked / ms >= 5.0}
    return {
        "pow2_fwdbwd_faster_than_sdpa_from_8192": {
            "per_n": vs_sdpa, "ok": bool(vs_sdpa) and all(x["ok"] for x in vs_sdpa.values())},
        "pow2_fwdbwd_5x_faster_than_chunked": {
            "per_n": vs_chunked,
            "ok": bool(vs_chunked) and all(x["ok"] for x in vs_chunked.values())},
    }


def print_table(rows):
    ns = sorted({r["n"] for r in rows})
    keys = []
    for r in rows:
        if (r["mixer"], r["backend"]) not in keys:
            keys.append((r["mixer"], r["backend"]))
    t = {(r["mixer"], r["backend"], r["n"]): r for r in rows}
    for what in ("fwd_ms", "fwdbwd_ms"):
        print(f"\n{what} (median, ms)")
        print(f"{'mixer/backend':<22}" + "".join(f"{n:>11}" for n in ns))
        for mixer, backend in keys:
            cells = []
            for n in ns:
                r = t.get((mixer, backend, n), {})
                cells.append(f"{r[what]:11.3f}" if what in r else f"{'-':>11}")
            print(f"{mixer + '/' + backend:<22}" + "".join(cells))


def machine(device):
    import triton

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "triton": triton.__version__, "device": str(device),
            "interpreter": os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, sms=p.multi_processor_count, capability=f"{p.major}.{p.minor}",
                    memory_gib=round(p.total_memory / 2**30, 1))
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench_out/gpu_check.json")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                    help="dtype of the timings (correctness runs both)")
    ap.add_argument("--ns", default=",".join(map(str, NS)), help="sequence lengths to time")
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="wall-time budget of the whole run: timings not started by then are "
                         "skipped (one measurement in flight still finishes)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny shapes; on the CPU (Triton interpreter) without a GPU")
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args(argv)

    _setup_interpreter(args.smoke)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    info = machine(device)
    print(f"glmix GPU check: {info}", flush=True)

    dtypes = [torch.float32] if device.type != "cuda" else [torch.float32, torch.bfloat16]
    print("\n1. correctness against reference (float64)", flush=True)
    checks = correctness(device, dtypes, args.smoke)
    passed = all(r["ok"] for r in checks)
    print(f"   {'all passed' if passed else 'FAILURES'} ({len(checks)} checks, "
          f"{time.perf_counter() - t0:.0f}s)", flush=True)

    rows, tgt = [], {}
    if not args.skip_timing:
        dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
        ns = (32, 64) if args.smoke else tuple(int(x) for x in args.ns.split(","))
        print(f"\n2. timings ({str(dtype).replace('torch.', '')}, "
              f"batch {1 if args.smoke else BATCH}, heads {2 if args.smoke else HEADS}, "
              f"d {16 if args.smoke else HEAD_DIM})", flush=True)
        rows = timings(device, dtype, ns, t0 + args.budget_s, args.smoke)
        print_table(rows)
        tgt = targets(rows)
        print("\n3. targets")
        for name, t in tgt.items():
            detail = ", ".join(f"n={n}: {x['speedup']:.2f}x" for n, x in t["per_n"].items())
            print(f"  {'ok  ' if t['ok'] else 'MISS'} {name}: {detail or 'not measured'}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": info, "smoke": args.smoke,
        "settings": {"batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM,
                     "chunk_size": CHUNK_SIZE, "timing_dtype": args.dtype,
                     "tolerances": {str(k).replace("torch.", ""): v for k, v in TOL.items()},
                     "chunked_limit_s": CHUNKED_LIMIT_S, "budget_s": args.budget_s},
        "correctness": {"ok": passed, "checks": checks},
        "timings": rows, "targets": tgt,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(f"\nwrote {out} ({result['wall_s']}s)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
