"""GPU check of the Triton backend of the glr op: the first GPU hour, in one call.

    bench/gpu_check.sh [options]                    # the one script to run
    python -m bench.gpu_check [--out bench_out/gpu_check.json] [--budget-s 660] [--smoke]
                              [--only STAGE,STAGE] [--skip STAGE,STAGE]

Needs nothing but the repository and the machine's own torch and Triton (torch 2.11 and Triton
3.6 were seen on the GPU machines): no install, no pytest, no network. Stages, in order; the JSON
is rewritten after each one, so a run cut short keeps what it measured:

1. correctness   the kernels against the float64 `reference` on the device: output and the
                 gradients of v, alpha and beta, NaN-poisoned buffers, float32 / bfloat16 /
                 float64, a spread of patterns (lengths not a multiple of the chunk, odd head
                 sizes), gradcheck in float64, the first-call (compile) and second-call times of
                 each; then "no host sync" (torch's sync debug mode set to error around a call)
                 and a CUDA graph capture of the forward, replayed, bitwise equal to eager.
2. race          forward bitwise identical over 20 runs and backward run-to-run differences
                 (n 8192, batch x heads 32, d 64, float32 and bfloat16, column blocks 16 and
                 64); Triton against chunked in float32 at n 4096.
3. sanitizer     compute-sanitizer memcheck and synccheck (when the tool exists) on small odd
                 shapes, forward and backward, PyTorch's caching allocator off so that an
                 out-of-bounds access lands outside any allocation.
   expanded      the state-expanded op's triton backend (bench/gpu_check_expanded.py): errors
                 against its reference, se_first against fla's chunk_simple_gla, memcheck on one
                 case, forward + backward against the chunked PyTorch form, n 1K to 16K; at most
                 150 s or a third of what is left.
4. occupancy     forward + backward of pow2 at n 8192 for every scan configuration (column
                 block 16 / 32 / 64, 4 / 8 warps) at batch x heads 32, 132, 200, 264: which is
                 fastest, against the one kernel_config picks (docs/triton.md, review item 4).
5. speed         forward and forward + backward, triton and chunked against causal SDPA, n 1K to
                 32K, batch x heads 32 (every mixer) and 256 (pow2).
6. bf16_error    bfloat16 outputs and gradients against float64 kernels on the same rounded
                 inputs, n up to 32K.
7. pytest        tests/mixers/test_triton.py on CUDA, when pytest is installed and time is left.

Pass / fail: stages 1 and 2 (and 3's error counts) decide the exit status (1 on any failure);
timings are reported, never enforced. Every figure is described in docs/triton.md.
--smoke runs small shapes of stages 1, 2, 4, 5 and 6; without a GPU it sets TRITON_INTERPRET=1
(before Triton is imported) and runs on the CPU in the interpreter, float32 and float64 only, a
wall-clock median in place of do_bench: a check that the script works, not a measurement.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file or as -m from elsewhere: the repo's own mixers
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

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
# float32: 3xTF32 dots, about float32 accuracy; bfloat16: outputs rounded to bf16 and read back
# by later positions (tests/mixers/test_triton.py TOL, measured); float64: IEEE dots
TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float64: 1e-10}
STAGES = ("correctness", "race", "sanitizer", "expanded", "occupancy", "speed", "bf16_error",
          "pytest")

# (recurrent, cache_efficient, direct, n, d); chunk size CHUNK_SIZE (smoke: 16)
CHECKS = [  # head size 64 as timed, plus odd head sizes (each new shape costs a compile)
    ("pow2", False, "self", 1000, 64),
    ("pow2", True, "self", 1000, 64),
    ("sq1", False, "window(4)", 777, 64),
    ("sq1", True, "self", 300, 64),
    ("first", False, "self", 1000, 64),
    ("kth(8)", False, "self", 513, 64),
    ("dense", False, "self", 200, 64),
    ("none", False, "full", 300, 64),
    ("pow2", False, "full", 129, 24),
    ("pow2", True, "window(4)", 1, 5),
]
CHECKS_FP64 = [("pow2", True, "window(4)", 300, 24), ("dense", False, "self", 130, 64)]
SMOKE_CHECKS = [
    ("pow2", False, "self", 40, 16),
    ("sq1", True, "window(4)", 33, 5),
    ("dense", False, "full", 20, 16),
]


def _setup_interpreter(smoke: bool) -> None:
    if not torch.cuda.is_available():
        if not smoke:
            sys.exit("gpu_check: no CUDA device. Use --smoke to try the script on the CPU "
                     "(Triton interpreter).")
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before Triton is first imported


def _dt_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


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
    # checked once where built, cached per (n, device): what the layers pass
    a_idx = make_direct(direct).index_on(n, device)
    b_idx = make_pattern(recurrent, cache_efficient=cache_efficient).index_on(n, device)
    v = torch.randn(batch, heads, n, d, generator=gen).to(device, dtype)
    alpha, beta = _coefficients(a_idx.cpu(), b_idx.cpu(), batch, heads, dtype, device, gen)
    return v, alpha, a_idx, beta, b_idx


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _run(backend, v, alpha, a_idx, beta, b_idx, g, chunk, **kw):
    from mixers.ops import glr, poisoned_outputs
    from mixers.ops.triton_glr import glr_triton

    v, alpha, beta = (t.detach().clone().requires_grad_() for t in (v, alpha, beta))
    with poisoned_outputs():
        if kw:
            y = glr_triton(v, alpha, a_idx, beta, b_idx, chunk, **kw)
        else:
            y = glr(v, alpha, a_idx, beta, b_idx, backend=backend, chunk_size=chunk)
        grads = torch.autograd.grad(y, (v, alpha, beta), g)
    return (y, *grads)


def _errors(got, want, dtype, row):
    """err_<name>: max |got - want| / (1 + max |want|), the measure the tolerance bounds."""
    ok = True
    for name, a, b in zip(("y", "dv", "dalpha", "dbeta"), got, want):
        if a.dtype != dtype:
            row[f"dtype_{name}"] = str(a.dtype)
            ok = False
        a, b = a.double(), b.double()
        scale = 1.0 + (b.abs().max().item() if b.numel() else 0.0)
        err = (a - b).abs().max().item() if b.numel() else 0.0
        nan = bool(torch.isnan(a).any())
        row[f"err_{name}"] = err / scale
        ok &= not nan and err <= TOL[dtype] * scale
        if nan:
            row[f"nan_{name}"] = True
    return ok


# ---------------------------------------------------------------------------------------------
# 1. correctness


def check_case(case, dtype, device, chunk, batch, heads, seed):
    recurrent, ce, direct, n, d = case
    v, alpha, a_idx, beta, b_idx = make_inputs(recurrent, ce, direct, n, d, batch, heads, dtype,
                                               device, seed)
    g = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed + 1)).to(device, dtype)
    row = {"recurrent": recurrent, "cache_efficient": ce, "direct": direct, "n": n, "d": d,
           "chunk_size": chunk, "dtype": _dt_name(dtype), "tol": TOL[dtype]}
    times = []
    for _ in range(2):  # the first call compiles what this shape needs, the second does not
        _sync(device)
        t0 = time.perf_counter()
        got = _run("triton", v, alpha, a_idx, beta, b_idx, g, chunk)
        _sync(device)
        times.append(time.perf_counter() - t0)
    row["first_call_s"], row["second_call_s"] = round(times[0], 4), round(times[1], 4)
    want = _run("reference", *(t.double() if t.is_floating_point() else t
                               for t in (v, alpha, a_idx, beta, b_idx)), g.double(), chunk)
    row["ok"] = bool(_errors(got, want, dtype, row))
    return row


def gradcheck_row(device):
    from mixers.ops import glr

    row = {"check": "gradcheck float64", "pattern": "window(2)+pow2(cache)", "n": 40, "d": 5}
    v, alpha, ai, beta, bi = make_inputs("pow2", True, "window(2)", 40, 5, 1, 2, torch.float64,
                                         device, seed=11)
    args = tuple(t.detach().clone().requires_grad_() for t in (v, alpha, beta))
    t0 = time.perf_counter()
    row["ok"] = bool(torch.autograd.gradcheck(
        lambda v, a, b: glr(v, a, ai, b, bi, backend="triton", chunk_size=16), args, eps=1e-6,
        atol=1e-7, rtol=1e-5, fast_mode=True))
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def no_sync_row(device):
    """torch's sync debug mode raises on any synchronising CUDA call inside a glr call."""
    row = {"check": "no host sync in glr (forward + backward)"}
    v, alpha, a_idx, beta, b_idx = make_inputs("pow2", False, "window(4)", 700, 64, 2, 4,
                                               torch.bfloat16, device, seed=5)
    g = torch.randn_like(v)
    _run("triton", v, alpha, a_idx, beta, b_idx, g, CHUNK_SIZE)  # compiled before
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _run("triton", v, alpha, a_idx, beta, b_idx, g, CHUNK_SIZE)
        row["ok"] = True
    except Exception as e:
        row.update(ok=False, error=f"{type(e).__name__}: {e}")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return row


def cuda_graph_row(device):
    """The forward captured in a CUDA graph, replayed on new values, equals eager bitwise."""
    from mixers.ops import glr

    row = {"check": "CUDA graph capture of the forward"}
    v, alpha, a_idx, beta, b_idx = make_inputs("sq1", True, "self", 1000, 64, 2, 4,
                                               torch.float32, device, seed=6)
    try:
        glr(v, alpha, a_idx, beta, b_idx, backend="triton")  # compile outside the capture
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            glr(v, alpha, a_idx, beta, b_idx, backend="triton")
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            y = glr(v, alpha, a_idx, beta, b_idx, backend="triton")
        v.copy_(torch.randn_like(v))
        graph.replay()
        torch.cuda.synchronize()
        row["ok"] = bool(torch.equal(y, glr(v, alpha, a_idx, beta, b_idx, backend="triton")))
    except Exception as e:
        row.update(ok=False, error=f"{type(e).__name__}: {e}")
    return row


def stage_correctness(device, smoke, log):
    rows = []
    checks = SMOKE_CHECKS if smoke else CHECKS
    chunk = 16 if smoke else CHUNK_SIZE
    batch, heads = (2, 3) if smoke else (2, 4)
    dtypes = [torch.float32, torch.float64] if device.type != "cuda" else \
        [torch.float32, torch.bfloat16, torch.float64]
    for dtype in dtypes:
        cases = checks if dtype != torch.float64 or smoke else CHECKS_FP64
        for i, case in enumerate(cases):
            try:
                row = check_case(case, dtype, device, chunk, batch, heads, seed=i)
            except Exception as e:  # a crash is a failed check, reported, not the end
                row = {"recurrent": case[0], "cache_efficient": case[1], "direct": case[2],
                       "n": case[3], "d": case[4], "dtype": _dt_name(dtype), "ok": False,
                       "error": f"{type(e).__name__}: {e}",
                       "traceback": traceback.format_exc(limit=4)}
            rows.append(row)
            _print_check(row, log)
    extra = [gradcheck_row]
    if device.type == "cuda":
        extra += [no_sync_row, cuda_graph_row]
    for fn in extra:
        try:
            row = fn(device)
        except Exception as e:
            row = {"check": fn.__name__, "ok": False, "error": f"{type(e).__name__}: {e}"}
        rows.append(row)
        log(f"  {'ok  ' if row['ok'] else 'FAIL'} {row['check']} {row.get('error', '')}")
    return {"ok": all(r["ok"] for r in rows), "checks": rows}


def _print_check(row, log):
    errs = " ".join(f"{k[4:]}={row[k]:.1e}" for k in row if k.startswith("err_"))
    name = f"{row['direct']}+{row['recurrent']}{'(cache)' if row['cache_efficient'] else ''}"
    status = "ok  " if row["ok"] else "FAIL"
    when = f"first {row['first_call_s']:.2f}s" if "first_call_s" in row else ""
    log(f"  {status} {row['dtype']:<9} {name:<24} n={row['n']:<5} d={row['d']:<3} {errs} "
        f"{when} {row.get('error', '')}")


# ---------------------------------------------------------------------------------------------
# 2. races: run-to-run determinism and Triton against chunked


def _rel_diff(a, b):
    return ((a.double() - b.double()).abs().max() / (1 + b.double().abs().max())).item()


def stage_race(device, smoke, log):
    n, batch, heads, d, runs = (200, 2, 2, 16, 3) if smoke else (8192, 4, 8, 64, 20)
    chunk = 16 if smoke else CHUNK_SIZE
    rows = []
    dtypes = (torch.float32,) if device.type != "cuda" else (torch.float32, torch.bfloat16)
    for dtype in dtypes:
        for block_d in (16, 64) if not smoke else (16,):
            v, alpha, a_idx, beta, b_idx = make_inputs("pow2", False, "window(4)", n, d, batch,
                                                       heads, dtype, device, seed=7)
            g = torch.randn(v.shape, generator=torch.Generator().manual_seed(8)).to(device,
                                                                                     dtype)
            first = _run("triton", v, alpha, a_idx, beta, b_idx, g, chunk, block_d=block_d)
            fwd_same, bwd_diff = True, 0.0
            for _ in range(runs - 1):
                again = _run("triton", v, alpha, a_idx, beta, b_idx, g, chunk, block_d=block_d)
                fwd_same &= bool(torch.equal(again[0], first[0]))
                bwd_diff = max(bwd_diff, *(_rel_diff(a, b) for a, b in zip(again[1:], first[1:])))
            # the backward sums with atomics, in no fixed order: float32 sums differ in the last
            # bits (<= 1e-6 of the largest value); bf16 gradients are those sums rounded, so a
            # difference may flip one bf16 rounding: at most one ulp, 2^-7 of the largest
            bwd_tol = 1e-6 if dtype == torch.float32 else 2.0**-7
            row = {"dtype": _dt_name(dtype), "block_d": block_d, "n": n, "bh": batch * heads,
                   "d": d, "runs": runs, "forward_bitwise_identical": fwd_same,
                   "backward_max_rel_diff": bwd_diff, "backward_tol": bwd_tol,
                   "ok": fwd_same and bwd_diff <= bwd_tol}
            rows.append(row)
            log(f"  {'ok  ' if row['ok'] else 'FAIL'} {row['dtype']:<9} block_d={block_d:<3} "
                f"forward identical x{runs}: {fwd_same}; backward max diff {bwd_diff:.1e}")
    n2 = 100 if smoke else 4096
    v, alpha, a_idx, beta, b_idx = make_inputs("pow2", False, "window(4)", n2, d, batch, heads,
                                               torch.float32, device, seed=9)
    g = torch.randn(v.shape, generator=torch.Generator().manual_seed(10)).to(device)
    tri = _run("triton", v, alpha, a_idx, beta, b_idx, g, chunk)
    chk = _run("chunked", v, alpha, a_idx, beta, b_idx, g, chunk)
    diffs = {name: _rel_diff(a, b) for name, a, b in zip(("y", "dv", "dalpha", "dbeta"), tri,
                                                         chk)}
    row = {"check": "triton vs chunked float32", "n": n2, "diffs": diffs, "tol": 1e-4,
           "ok": max(diffs.values()) <= 1e-4}
    rows.append(row)
    log(f"  {'ok  ' if row['ok'] else 'FAIL'} triton vs chunked float32 n={n2}: "
        + " ".join(f"{k}={x:.1e}" for k, x in diffs.items()))
    return {"ok": all(r["ok"] for r in rows), "rows": rows}


# ---------------------------------------------------------------------------------------------
# 3. compute-sanitizer


def sanitize_case() -> int:
    """What runs under compute-sanitizer: small odd shapes, forward and backward, float32."""
    device = torch.device("cuda")
    for case, chunk in ((("pow2", False, "window(3)", 77, 24), 16),
                        (("sq1", True, "self", 45, 40), 32),
                        (("dense", False, "full", 33, 5), 16)):
        v, alpha, a_idx, beta, b_idx = make_inputs(*case, 1, 3, torch.float32, device, seed=1)
        g = torch.randn_like(v)
        _run("triton", v, alpha, a_idx, beta, b_idx, g, chunk)
        _run("triton", v, alpha, a_idx, beta, b_idx, g, chunk, block_d=16)
    torch.cuda.synchronize()
    print("sanitize case done")
    return 0


def _sanitizer_tool():
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    for base in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        path = Path(base) / "bin" / "compute-sanitizer"
        if base and path.exists():
            return str(path)
    return None


def stage_sanitizer(device, smoke, log, budget_s, case="--sanitize-case",
                    checks=("memcheck", "synccheck")):
    tool = _sanitizer_tool()
    if device.type != "cuda" or tool is None:
        log("  skipped: no compute-sanitizer" if tool is None else "  skipped: no GPU")
        return {"ok": True, "skipped": "no compute-sanitizer" if tool is None else "no GPU"}
    rows = []
    env = dict(os.environ, PYTORCH_NO_CUDA_MEMORY_CACHING="1", PYTHONUNBUFFERED="1")
    for check in checks:
        cmd = [tool, "--tool", check, "--error-exitcode", "9", "--print-limit", "20",
               sys.executable, "-m", "bench.gpu_check", case]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=max(30.0, budget_s / 2))
            out = proc.stdout + proc.stderr
            summary = [ln for ln in out.splitlines() if "ERROR SUMMARY" in ln]
            row = {"tool": check, "rc": proc.returncode, "summary": summary[-1:],
                   "ok": proc.returncode == 0 and "sanitize case done" in out,
                   "tail": out[-2000:]}
        except subprocess.TimeoutExpired:
            row = {"tool": check, "ok": None, "skipped": "timed out"}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        log(f"  {check}: rc={row.get('rc')} {row.get('summary') or row.get('skipped', '')}")
    # a timeout is not a finding: only an error the tool reports fails the stage
    return {"ok": all(r["ok"] is not False for r in rows), "rows": rows, "tool": tool}


# ---------------------------------------------------------------------------------------------
# timing helpers


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


def _glr_fns(backend, inputs, chunk, **kw):
    from mixers.ops import glr
    from mixers.ops.triton_glr import glr_triton

    v, alpha, a_idx, beta, b_idx = inputs
    v, alpha, beta = (t.detach().clone().requires_grad_() for t in (v, alpha, beta))
    g = torch.randn_like(v)

    def fwd():
        if kw:
            return glr_triton(v, alpha, a_idx, beta, b_idx, chunk, **kw)
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


def _measure(bench, make, row, deadline, device, fwd=True):
    if time.perf_counter() > deadline:
        row["skipped"] = "time budget spent"
        return row
    try:
        f, fb, keep = make()
        if fwd:
            row["fwd_ms"] = bench(f)
        row["fwdbwd_ms"] = bench(fb)
        for t in keep:
            t.grad = None
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


# ---------------------------------------------------------------------------------------------
# 4. occupancy: the scan configurations, timed


def stage_occupancy(device, smoke, log, deadline, dtype):
    from mixers.ops.triton_glr import SCAN_WARPS, _num_sms, kernel_config

    bench = _timer(device)
    n, heads, d = (128, 2, 32) if smoke else (8192, 4, HEAD_DIM)
    bhs = (2,) if smoke else (32, 132, 200, 264)
    chunk = 16 if smoke else CHUNK_SIZE
    num_sms = _num_sms(device) or 132
    rows = []
    for bh in bhs:
        inputs = make_inputs("pow2", False, "self", n, d, bh // heads or 1, heads, dtype,
                             device, seed=bh)
        cfg = kernel_config(n, d, bh, chunk, num_sms=num_sms, dtype=dtype)
        chosen = (cfg["BLOCK_D"], cfg["SCAN_WARPS"])
        timed = {}
        for bd in (16, 32, 64) if not smoke else (16, 32):
            for w in SCAN_WARPS:
                row = _measure(bench, lambda bd=bd, w=w, inputs=inputs: _glr_fns(
                    "triton", inputs, chunk, block_d=bd, num_warps=w), {}, deadline, device,
                    fwd=False)
                if "fwdbwd_ms" in row:
                    timed[f"{bd}/{w}"] = row["fwdbwd_ms"]
        best = min(timed, key=timed.get) if timed else None
        key = f"{chosen[0]}/{chosen[1]}"
        row = {"bh": bh, "n": n, "d": d, "dtype": _dt_name(dtype), "num_sms": num_sms,
               "fwdbwd_ms_by_block_d_warps": timed, "chosen": key, "fastest": best,
               "chosen_over_fastest": (timed[key] / timed[best]) if best and key in timed
               else None}
        rows.append(row)
        log(f"  bh={bh:<4} chosen {key:<6} fastest {best}: "
            + " ".join(f"{k}={t:.2f}" for k, t in timed.items()))
        del inputs
    return {"rows": rows}


# ---------------------------------------------------------------------------------------------
# 5. speed table


def stage_speed(device, smoke, log, deadline, dtype, ns):
    bench = _timer(device)
    chunk = 16 if smoke else CHUNK_SIZE
    configs = [((1, 2, 16) if smoke else (BATCH, HEADS, HEAD_DIM),
                ("pow2", "first") if smoke else tuple(MIXERS))]
    if not smoke:
        configs.append(((32, 8, HEAD_DIM), ("pow2",)))  # batch x heads 256
    rows = []
    for (batch, heads, d), mixers in configs:
        chunked_too_slow: set[str] = set()
        for n in ns:
            base = {"bh": batch * heads, "n": n, "d": d}
            row = _measure(bench, lambda n=n, b=batch, h=heads, d=d: _sdpa_fns(b, h, n, d, dtype,
                                                                                device),
                           dict(base, mixer="attention", backend="sdpa"), deadline, device)
            rows.append(row)
            _print_time(row, log)
            for label in mixers:
                rec, ce = MIXERS[label]
                inputs = make_inputs(rec, ce, "self", n, d, batch, heads, dtype, device, seed=n)
                row = _measure(bench, lambda inputs=inputs: _glr_fns("triton", inputs, chunk),
                               dict(base, mixer=label, backend="triton"), deadline, device)
                rows.append(row)
                _print_time(row, log)
                row = dict(base, mixer=label, backend="chunked")
                if label in chunked_too_slow:
                    row["skipped"] = f"forward + backward over {CHUNKED_LIMIT_S}s at a smaller n"
                else:
                    _measure(bench, lambda inputs=inputs: _glr_fns("chunked", inputs, chunk),
                             row, deadline, device)
                    if row.get("fwdbwd_ms", 0.0) > CHUNKED_LIMIT_S * 1e3 or "error" in row:
                        chunked_too_slow.add(label)
                rows.append(row)
                _print_time(row, log)
                del inputs
    return {"rows": rows, "targets": targets(rows)}


def _print_time(row, log):
    name = f"{row['mixer']}/{row['backend']} bh={row['bh']}"
    if "fwd_ms" in row:
        log(f"  {name:<28} n={row['n']:<6} fwd {row['fwd_ms']:9.3f} ms   "
            f"fwd+bwd {row['fwdbwd_ms']:9.3f} ms")
    else:
        log(f"  {name:<28} n={row['n']:<6} {row.get('skipped') or row.get('error')}")


def targets(rows):
    """pow2 fwd+bwd < SDPA for n >= 8192; >= 5x faster than chunked wherever both ran."""
    t = {(r["mixer"], r["backend"], r["n"], r["bh"]): r.get("fwdbwd_ms") for r in rows}
    vs_sdpa, vs_chunked = {}, {}
    for (mixer, backend, n, bh), ms in t.items():
        if mixer != "pow2" or backend != "triton" or ms is None:
            continue
        sdpa = t.get(("attention", "sdpa", n, bh))
        if n >= 8192 and sdpa is not None:
            vs_sdpa[f"{n}/bh{bh}"] = {"speedup": sdpa / ms, "ok": ms < sdpa}
        chunked = t.get(("pow2", "chunked", n, bh))
        if chunked is not None:
            vs_chunked[f"{n}/bh{bh}"] = {"speedup": chunked / ms, "ok": chunked / ms >= 5.0}
    return {
        "pow2_fwdbwd_faster_than_sdpa_from_8192": {
            "per_n": vs_sdpa, "ok": bool(vs_sdpa) and all(x["ok"] for x in vs_sdpa.values())},
        "pow2_fwdbwd_5x_faster_than_chunked": {
            "per_n": vs_chunked,
            "ok": bool(vs_chunked) and all(x["ok"] for x in vs_chunked.values())},
    }


# ---------------------------------------------------------------------------------------------
# 6. bfloat16 error against n


def stage_bf16_error(device, smoke, log, deadline):
    """bf16 kernels against float64 kernels on the same bf16-rounded inputs (float64 kernels
    match the dense reference to 1e-13, and the reference cannot hold n = 32K densely)."""
    ns = (64, 256) if smoke else (1024, 4096, 16384, 32768)
    low = torch.float32 if device.type != "cuda" else torch.bfloat16
    chunk = 16 if smoke else CHUNK_SIZE
    rows = []
    for rec in ("pow2", "sq1"):
        for n in ns:
            if time.perf_counter() > deadline:
                rows.append({"recurrent": rec, "n": n, "skipped": "time budget spent"})
                continue
            v, alpha, a_idx, beta, b_idx = make_inputs(rec, False, "self", n, HEAD_DIM, 1, 4,
                                                       low, device, seed=n)
            g = torch.randn(v.shape, generator=torch.Generator().manual_seed(n)).to(device, low)
            got = _run("triton", v, alpha, a_idx, beta, b_idx, g, chunk)
            want = _run("triton", v.double(), alpha.double(), a_idx, beta.double(), b_idx,
                        g.double(), chunk)
            row = {"recurrent": rec, "n": n, "dtype": _dt_name(low)}
            for name, a, b in zip(("y", "dv", "dalpha", "dbeta"), got, want):
                a, b = a.double(), b.double()
                row[f"err_{name}"] = ((a - b).abs().max() / (1 + b.abs().max())).item()
                row[f"rms_rel_{name}"] = ((a - b).norm() / b.norm().clamp(min=1e-30)).item()
            rows.append(row)
            log(f"  {rec:<5} n={n:<6} " + " ".join(f"{k[4:]}={row[k]:.1e}" for k in row
                                                   if k.startswith("err_")))
            del v, alpha, beta, g, got, want
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return {"rows": rows, "tol": TOL[torch.bfloat16]}


# ---------------------------------------------------------------------------------------------
# 7. the test file, when pytest is there


def stage_pytest(log, budget_s):
    try:
        import pytest  # noqa: F401
    except ImportError:
        log("  skipped: pytest is not installed")
        return {"skipped": "pytest not installed"}
    if budget_s < 60:
        log("  skipped: time budget spent")
        return {"skipped": "time budget spent"}
    cmd = [sys.executable, "-m", "pytest", "tests/mixers/test_triton.py", "-q", "-x",
           "-p", "no:cacheprovider", "--durations=5"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=budget_s)
        out = proc.stdout + proc.stderr
        res = {"rc": proc.returncode, "ok": proc.returncode == 0, "tail": out[-3000:]}
    except subprocess.TimeoutExpired:
        res = {"ok": None, "skipped": f"timed out after {budget_s:.0f}s"}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    log(f"  rc={res.get('rc')} in {res['seconds']}s " + (res.get("tail", "").strip()
                                                          .splitlines() or [""])[-1])
    return res


# ---------------------------------------------------------------------------------------------


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


def _write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench_out/gpu_check.json")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                    help="dtype of the timings (correctness runs all three)")
    ap.add_argument("--ns", default=",".join(map(str, NS)), help="sequence lengths to time")
    ap.add_argument("--budget-s", type=float, default=660.0,
                    help="wall time of the whole run: work not started by then is skipped "
                         "(a measurement in flight still finishes)")
    ap.add_argument("--smoke", action="store_true",
                    help="small shapes; on the CPU (Triton interpreter) without a GPU")
    ap.add_argument("--only", default="", help=f"comma-separated stages of {STAGES}")
    ap.add_argument("--skip", default="", help="comma-separated stages to leave out")
    ap.add_argument("--sanitize-case", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sanitize-expanded-case", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.sanitize_case:
        return sanitize_case()
    if args.sanitize_expanded_case:
        from bench.gpu_check_expanded import sanitize_case as sanitize_expanded_case

        return sanitize_expanded_case()

    only = [s for s in args.only.split(",") if s] or list(STAGES)
    skip = [s for s in args.skip.split(",") if s]
    unknown = (set(only) | set(skip)) - set(STAGES)
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}; stages: {STAGES}")
    stages = [s for s in STAGES if s in only and s not in skip]
    if args.smoke and not args.only:
        stages.remove("pytest")  # the interpreter run of the test file is `make test`'s job
    _setup_interpreter(args.smoke)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    deadline = t0 + args.budget_s
    out = Path(args.out)
    info = machine(device)
    dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
    ns = (32, 64) if args.smoke else tuple(int(x) for x in args.ns.split(","))
    result = {"when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": info, "smoke": args.smoke, "stages": {},
              "settings": {"batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM,
                           "chunk_size": CHUNK_SIZE, "timing_dtype": _dt_name(dtype),
                           "tolerances": {_dt_name(k): v for k, v in TOL.items()},
                           "chunked_limit_s": CHUNKED_LIMIT_S, "budget_s": args.budget_s}}
    print(f"glmix GPU check: {info}", flush=True)

    def log(line):
        print(line, flush=True)

    for i, stage in enumerate(stages, 1):
        left = deadline - time.perf_counter()
        log(f"\n{i}. {stage} ({left:.0f}s of the budget left)")
        s0 = time.perf_counter()
        try:
            if stage == "correctness":
                res = stage_correctness(device, args.smoke, log)
            elif stage == "race":
                res = stage_race(device, args.smoke, log)
            elif stage == "sanitizer":
                res = stage_sanitizer(device, args.smoke, log, min(240.0, max(0.0, left - 200)))
            elif stage == "expanded":
                from bench.gpu_check_expanded import stage_expanded

                def sanitizer():
                    return stage_sanitizer(device, args.smoke, log, 60.0,
                                           "--sanitize-expanded-case", ("memcheck",))

                res = stage_expanded(device, args.smoke, log,
                                     time.perf_counter() + min(150.0, max(30.0, left / 3)),
                                     dtype, _timer(device),
                                     sanitizer if device.type == "cuda" else None)
            elif stage == "occupancy":
                # leaves the speed table most of what is left
                res = stage_occupancy(device, args.smoke, log,
                                      min(deadline, time.perf_counter() + max(30.0, left / 4)),
                                      dtype)
            elif stage == "speed":
                res = stage_speed(device, args.smoke, log, deadline - 60, dtype, ns)
            elif stage == "bf16_error":
                res = stage_bf16_error(device, args.smoke, log, deadline)
            else:
                res = stage_pytest(log, left - 10)
        except Exception as e:  # one broken stage does not lose the others
            res = {"ok": False, "error": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc(limit=6)}
            log(f"  stage failed: {res['error']}")
        res["seconds"] = round(time.perf_counter() - s0, 1)
        result["stages"][stage] = res
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        _write(out, result)

    failed = [s for s, r in result["stages"].items() if r.get("ok") is False]
    result["ok"] = not failed
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    _write(out, result)
    log(f"\n{'all checks passed' if not failed else 'FAILED: ' + ', '.join(failed)}; wrote "
        f"{out} ({result['wall_s']}s)")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
