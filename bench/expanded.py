"""CPU timing of the state-expanded op `glr_expanded` (docs/design.md 1.4): time and peak memory
against n for each pattern and backend, with the fitted exponent of time in n.

    python bench/expanded.py                                    # n = 256..4096, dk = dv = 32
    python bench/expanded.py --ns 256 512 --patterns pow2 --out /tmp/x.json

Each measurement is a forward and a backward (what training costs) of one head pair
(batch 1, 2 heads) on one thread, the median of --repeats runs after a warm-up, as CPU time of
the process (what the exponents are fitted to: on a shared machine wall time mostly measures
the neighbours) and as wall time; coefficients are random convex rows, as the layers' softmax
makes them. Peak memory is the rise of the process's resident set (VmHWM, reset through
/proc/self/clear_refs) over the inputs in one more run, with every allocation of a page or more
mapped fresh so that the heap left by earlier runs does not hide the op's own allocations
(forward and backward). Standalone on purpose (bench/ops.py is the shared harness); prints a
table and writes JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixers.ops import glr_expanded  # noqa: E402
from mixers.patterns import make_direct, make_pattern  # noqa: E402

PATTERNS = {  # the catalogue name -> (recurrent pattern, cache_efficient); direct is self
    "se_first": ("first", False), "se_pow2": ("pow2", False), "se_pow2_cache": ("pow2", True),
    "se_sq1": ("sq1", False), "se_sq1_cache": ("sq1", True), "se_dense": ("dense", False),
}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def inputs(name: str, n: int, d: int, heads: int = 2, seed: int = 0):
    recurrent, cache_efficient = PATTERNS[name]
    a_idx = make_direct("self").index(n)
    b_idx = make_pattern(recurrent, cache_efficient=cache_efficient).index(n)
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, n, d, generator=g) / math.sqrt(d) for _ in range(3))
    scores = torch.randn(1, heads, n, 1 + b_idx.shape[1], generator=g)
    scores[..., 1:] = scores[..., 1:].masked_fill(b_idx < 0, float("-inf"))
    coef = torch.softmax(scores, dim=-1)
    alpha, beta = coef[..., :1].contiguous(), coef[..., 1:].contiguous()
    return [t.requires_grad_() for t in (q, k, v, alpha, beta)], a_idx, b_idx


def _mmap_threshold(nbytes: int) -> None:
    """Serve every allocation of `nbytes` or more by mmap, returned to the system when freed,
    and trim the heap: the resident-set peak then shows the op's own tensors, not the heap the
    earlier runs left behind."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, nbytes)  # M_MMAP_THRESHOLD
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_once(backend, args, a_idx, b_idx, chunk):
    q, k, v, alpha, beta = args
    o = glr_expanded(q, k, v, alpha, a_idx, beta, b_idx, backend=backend, chunk_size=chunk)
    o.sum().backward()
    for t in args:
        t.grad = None


def measure(name, backend, n, d, chunk, repeats):
    args, a_idx, b_idx = inputs(name, n, d)
    run_once(backend, args, a_idx, b_idx, chunk)  # warm-up (also builds the index caches)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run_once(backend, args, a_idx, b_idx, chunk)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # the memory run: every allocation of a page or more mapped fresh (slower, so not timed)
    _mmap_threshold(4096)
    gc.collect()
    peak = None
    if _reset_peak():
        base = _status_kb("VmRSS")
        run_once(backend, args, a_idx, b_idx, chunk)
        peak = max(0, _status_kb("VmHWM") - base) * 1024
    _mmap_threshold(128 * 1024)  # glibc's default
    return {"pattern": name, "backend": backend, "n": n, "fwdbwd_s": statistics.median(times),
            "fwdbwd_cpu_s": statistics.median(cpu), "peak_mem_bytes": peak}


def fit_exponent(ns, values, min_n):
    """Least-squares slope of log(value) against log(n) over n >= min_n."""
    pts = [(math.log(n), math.log(t)) for n, t in zip(ns, values) if n >= min_n and t]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ns", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    p.add_argument("--patterns", nargs="+", default=["se_first", "se_pow2", "se_pow2_cache",
                                                     "se_sq1", "se_sq1_cache"],
                   choices=sorted(PATTERNS))
    p.add_argument("--backends", nargs="+", default=["chunked", "flat"],
                   choices=["chunked", "flat", "reference", "recurrent"])
    p.add_argument("--d", type=int, default=32, help="dk = dv")
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--fit-min-n", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="bench_out/expanded.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    t_start = time.perf_counter()
    for name in args.patterns:
        for backend in args.backends:
            for n in args.ns:
                r = measure(name, backend, n, args.d, args.chunk, args.repeats)
                rows.append(r)
                mem = r["peak_mem_bytes"]
                print(f"{name:14s} {backend:9s} n={n:5d}  {r['fwdbwd_cpu_s'] * 1e3:9.1f} ms cpu "
                      f"{r['fwdbwd_s'] * 1e3:9.1f} ms wall  "
                      f"{'-' if mem is None else f'{mem / 2**20:8.1f} MiB'}", flush=True)
    fits = {}
    for name in args.patterns:
        for backend in args.backends:
            rs = [r for r in rows if r["pattern"] == name and r["backend"] == backend]
            ns = [r["n"] for r in rs]
            fits[f"{name}/{backend}"] = {
                "time_exponent": fit_exponent(ns, [r["fwdbwd_cpu_s"] for r in rs],
                                              args.fit_min_n),
                "memory_exponent": fit_exponent(ns, [r["peak_mem_bytes"] for r in rs],
                                                args.fit_min_n)}
    print(f"\nfitted exponents over n >= {args.fit_min_n} (time, peak memory):")
    for key, f in fits.items():
        te, me = f["time_exponent"], f["memory_exponent"]
        print(f"  {key:26s} time n^{te:.2f}   memory n^{me:.2f}" if te and me else f"  {key}: -")
    result = {"command": " ".join(["python bench/expanded.py", *(argv or sys.argv[1:])]),
              "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "rows": rows, "fits": fits,
              "machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "threads": args.threads,
                          "wall_s": round(time.perf_counter() - t_start, 1)}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
