"""CPU benchmark of the mixer catalogue: time and peak memory of each mixer's op against n.

    python -m mixers.bench [--quick] [--mixers pow2,sq1] [--max-n 4096] [--threads 1]
                           [--repeats 7] [--out bench_out/mixers.json]
    python -m mixers.bench --from-json bench_out/mixers.json [--markdown]   # re-render only

What is timed, per mixer of conf/mixer/*.yaml (batch 1, 4 heads, head dim 32, float32, CPU):

    kind glr          the `glr` op on that mixer's patterns (direct index from `make_direct`,
                      recurrent index from `make_pattern`); alpha, beta random positive with each
                      row [alpha_i | beta_i] a softmax over the valid entries (as in GLRMixer, so
                      the recurrence is stable); v random; requires_grad on v, alpha, beta.
                      Backend `chunked`, plus `reference` for pow2 up to n = 4096.
    full attention    (direct full, no recurrence) GLRMixer routes this to
                      F.scaled_dot_product_attention(is_causal=True), so that is what is timed
                      (q, k, v [1, 4, n, 32] with requires_grad), labelled backend `sdpa`.
    linear_attention  not a glr op: the LinearAttention layer's forward on x [1, n, 128]
                      (projections included), labelled backend `layer`.

fwd_s is the median wall time of the forward (with autograd recording, as in training),
fwdbwd_s the median of forward + backward; one untimed warm-up call first. The whole list is
timed in two passes (--rounds), each with 5 repeats up to n = 2048, 4 at 4096, 3 above
(--repeats), and the median is taken over the pooled repeats (10, 8, 6): a burst of other
jobs' load then falls on one pass of a point, not on all of it. Kept too: the fastest repeat
(fwd_min_s, ...), the median CPU time of the process (fwd_cpu_s, ...; with one thread it leaves
out the time other jobs hold the core), every repeat and the 1-minute load average.
Quadratic mixers (direct full or recurrent dense) stop at n = 4096.

Every measurement runs in a fresh process per (mixer, backend, n), one for the times and one
for the memory, forked from a forkserver that has imported torch but run nothing (spawn where
there is no forkserver), so no measurement inherits another's allocations or caches.

Peak memory (peak_mem_bytes): in its process, after a tiny warm-up at n = 64 (lazy
initialisation) and building the inputs, the resident-set high-water mark is reset
(`echo 5 > /proc/self/clear_refs`), one forward + backward runs, and the record is
VmHWM - VmRSS (from /proc/self/status); peak_mem_fwd_bytes likewise for a forward alone. That is
everything the op touches beyond its inputs: output, saved tensors, gradients, temporaries.
torch's CPU allocations bypass Python's allocator (tracemalloc does not see them), not the
kernel's RSS accounting. The memory process first sets mallopt(M_MMAP_THRESHOLD = 64 KiB,
M_TRIM_THRESHOLD = 0) so that glibc hands freed blocks back to the kernel instead of recycling
memory freed while building the inputs (which would hide part of the op's peak); the timing
processes keep the default allocator. Resolution: about +-256 KiB (the kernel keeps RSS in
per-CPU counters that fold into the total every 32 pages per CPU), plus allocator slack below
64 KiB: meaningful from a few MiB up, noise for the smallest n. Without clear_refs the fallback
is ru_maxrss (named in machine.memory_method), which undercounts when the op's peak stays below
an earlier one.

Exponents: a least-squares line through (log n, log t) over n >= 1024 (`fit_exponent`) of the
medians ("fits", what the targets check) and, as diagnostics, of the fastest repeats
("fits_min") and of the CPU times ("fits_cpu").
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "mixer"

NS = (256, 512, 1024, 2048, 4096, 8192, 16384)
QUICK_MAX_N = 2048
QUADRATIC_MAX_N = 4096
MIXERS = ("attention", "local_attention", "first_order", "kth_order", "dense_recurrence",
          "pow2", "pow2_cache", "sq1", "sq1_cache", "linear_attention")
EXTRA_BACKENDS = {"pow2": [("reference", 4096)]}  # (backend, max n): the comparison targets
BATCH, HEADS, HEAD_DIM = 1, 4, 32
CHUNK_SIZE = 64
FIT_MIN_N = 1024
WARMUP_N = 64
CHILD_TIMEOUT_S = 600
DEFAULT_ROUNDS = 2

# exponent bounds of the issue: mixer -> (lo, hi), checked for fwd and fwd+bwd
EXPONENT_TARGETS = {
    "first_order": (0.8, 1.3), "kth_order": (0.8, 1.3), "pow2": (0.8, 1.3),
    "pow2_cache": (0.8, 1.3), "sq1": (1.2, 1.7),
    "dense_recurrence": (1.6, 2.2), "attention": (1.6, 2.2),
}
SPEEDUP_TARGET = {"mixer": "pow2", "n": 4096, "speedup": 10.0, "memory_ratio": 0.1}


# ----------------------------------------------------------------------------------------------
# the catalogue


def load_mixer(name: str) -> dict:
    """conf/mixer/<name>.yaml as a dict with the defaults of MixerConfig filled in."""
    import yaml

    path = CONF_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
        raise ValueError(f"unknown mixer {name!r}; known: {known}")
    cfg = {"kind": "glr", "direct": "full", "recurrent": "none", "cache_efficient": False}
    cfg.update(yaml.safe_load(path.read_text()) or {})
    cfg["name"] = name
    return cfg


def primary_backend(cfg: dict) -> str:
    if cfg["kind"] == "linear_attention":
        return "layer"
    if cfg["direct"] == "full" and cfg["recurrent"] == "none":
        return "sdpa"
    return "chunked"


def is_quadratic(cfg: dict) -> bool:
    if cfg["kind"] != "glr":
        return False
    base = str(cfg["recurrent"]).split("(")[0].strip()
    return cfg["direct"] == "full" or base == "dense"


PATH_LABELS = {
    "chunked": "glr op, backend chunked (chunk 64)",
    "reference": "glr op, backend reference (dense A, B, one triangular solve)",
    "sdpa": "F.scaled_dot_product_attention(is_causal=True): the layer's full-attention path",
    "layer": "LinearAttention(128, 4).forward on x [1, n, 128], projections included",
}


def plan(mixers, ns, quick: bool = False) -> list[dict]:
    """The measurement groups: one (mixer, backend, n) each."""
    jobs = []
    for name in mixers:
        cfg = load_mixer(name)
        backends = [(primary_backend(cfg), math.inf)] + EXTRA_BACKENDS.get(name, [])
        for backend, cap in backends:
            top = min(cap, QUADRATIC_MAX_N if is_quadratic(cfg) else math.inf)
            for n in ns:
                if n <= top:
                    jobs.append({"mixer": name, "cfg": cfg, "backend": backend, "n": n})
    return jobs


def repeats_for(n: int, requested: int | None, quick: bool) -> int:
    """Timed repeats per round (the record pools every round's repeats)."""
    if quick:
        return 1
    if requested is not None:
        return requested
    return 5 if n <= 2048 else 4 if n <= 4096 else 3


# ----------------------------------------------------------------------------------------------
# inputs and the timed callables (run inside the children)


def make_case(cfg: dict, backend: str, n: int, seed: int = 0):
    """-> (leaves, forward): forward() returns the output whose backward is timed."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed + n)
    if backend == "layer":
        from .layers import LinearAttention

        torch.manual_seed(seed)
        layer = LinearAttention(HEADS * HEAD_DIM, HEADS, chunk_size=CHUNK_SIZE)
        x = torch.randn(BATCH, n, HEADS * HEAD_DIM, generator=gen).requires_grad_()
        return [x, *layer.parameters()], lambda: layer(x)
    shape = (BATCH, HEADS, n, HEAD_DIM)
    if backend == "sdpa":
        q, k, v = (torch.randn(shape, generator=gen).requires_grad_() for _ in range(3))
        return [q, k, v], lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)

    from .ops import glr
    from .patterns import make_direct, make_pattern

    a_idx = make_direct(cfg["direct"]).index(n)
    b_idx = make_pattern(cfg["recurrent"], cache_efficient=bool(cfg["cache_efficient"])).index(n)
    ka = a_idx.shape[1]
    logits = torch.randn(BATCH, HEADS, n, ka + b_idx.shape[1], generator=gen)
    pad = torch.cat([a_idx, b_idx], dim=1) < 0
    coef = torch.softmax(logits.masked_fill(pad, float("-inf")), dim=-1)  # rows sum to 1
    alpha, beta = (c.contiguous().requires_grad_() for c in coef.split(
        [ka, b_idx.shape[1]], dim=-1))
    del logits, pad, coef
    v = torch.randn(shape, generator=gen).requires_grad_()
    return [v, alpha, beta], lambda: glr(v, alpha, a_idx, beta, b_idx, backend=backend,
                                         chunk_size=CHUNK_SIZE)


def _run(leaves, forward, backward: bool):
    y = forward()
    if backward:
        y.backward(_ones_like(y))
    for t in leaves:
        t.grad = None
    return y


def _ones_like(y):
    import torch

    return torch.ones_like(y)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _strict_malloc() -> str:
    """Make glibc return freed blocks >= 64 KiB to the kernel at once (fixed mmap threshold, no
    trim slack), so RSS follows what is live instead of recycling earlier frees."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(-3, 65536) == 1 and libc.mallopt(-1, 0) == 1  # M_MMAP_ / M_TRIM_
    except OSError:
        ok = False
    return ", mallopt(M_MMAP_THRESHOLD=64KiB, M_TRIM_THRESHOLD=0)" if ok else ""


def measure_memory(cfg: dict, backend: str, n: int, threads: int) -> dict:
    """Peak RSS above the inputs over one forward and one forward+backward (fresh process)."""
    import torch

    torch.set_num_threads(threads)
    malloc = _strict_malloc()
    leaves, forward = make_case(cfg, backend, WARMUP_N)
    _run(leaves, forward, backward=True)  # lazy initialisation, not counted
    del leaves, forward
    leaves, forward = make_case(cfg, backend, n)
    gc.collect()
    out = {}
    for key, backward in (("peak_mem_fwd_bytes", False), ("peak_mem_bytes", True)):
        gc.collect()
        if _reset_hwm():
            method = "VmHWM - VmRSS after clear_refs" + malloc
            base = _status_kb("VmRSS")
        else:
            method = "ru_maxrss" + malloc
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        y = _run(leaves, forward, backward)
        peak = (_status_kb("VmHWM") if method.startswith("VmHWM")
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        del y
        out[key] = max(0, peak - base) * 1024
        out["memory_method"] = method
    return out


def measure_time(cfg: dict, backend: str, ns: list[int], repeats: list[int],
                 threads: int) -> list[dict]:
    """Wall and CPU times of `repeats` forward and forward+backward calls at each n, after one
    warm-up call: {n, fwd_runs, fwd_cpu_runs, fwdbwd_runs, fwdbwd_cpu_runs, loadavg_1m}."""
    import torch

    torch.set_num_threads(threads)
    out = []
    for n, reps in zip(ns, repeats):
        leaves, forward = make_case(cfg, backend, n)
        _run(leaves, forward, backward=True)  # warm-up
        rec = {"n": n}
        for key, backward in (("fwd", False), ("fwdbwd", True)):
            wall, cpu = [], []
            for _ in range(reps):
                gc.collect()
                gc.disable()  # as timeit: no collection inside the timed region
                c0, t0 = time.process_time(), time.perf_counter()
                y = forward()
                if backward:
                    y.backward(_ones_like(y))
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                gc.enable()
                del y
                for t in leaves:
                    t.grad = None
            rec.update({f"{key}_runs": wall, f"{key}_cpu_runs": cpu})
        rec["loadavg_1m"] = os.getloadavg()[0]
        out.append(rec)
        del leaves, forward
    return out


def summarize_runs(rec: dict) -> dict:
    """fwd_s / fwdbwd_s (median wall time), *_min_s (fastest), *_cpu_s (median CPU time) from
    the pooled repeats in rec."""
    out = {}
    for key in ("fwd", "fwdbwd"):
        wall, cpu = rec.get(f"{key}_runs") or [], rec.get(f"{key}_cpu_runs") or []
        out[f"{key}_s"] = statistics.median(wall) if wall else None
        out[f"{key}_min_s"] = min(wall) if wall else None
        out[f"{key}_cpu_s"] = statistics.median(cpu) if cpu else None
    return out


def _child(conn, fn_name, kwargs):
    # the objects inherited from the forkserver (torch, sympy, ...) are never garbage: without
    # this each gc.collect() walks them all (~0.3 s, and copy-on-write faults on every page)
    gc.freeze()
    try:
        conn.send({"ok": globals()[fn_name](**kwargs)})
    except BaseException:  # noqa: BLE001 - reported to the parent
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


# torch imports fx.experimental.symbolic_shapes (and sympy, ~1-2 s) lazily at a first op
_PRELOAD = ["torch", "torch.fx.experimental.symbolic_shapes", "yaml", "statistics",
            "mixers.patterns", "mixers.ops", "mixers.layers"]
_CONTEXT = None


def _context():
    """A forkserver that has imported torch once: each measurement is a fresh fork of it, which
    costs milliseconds where a spawned interpreter costs seconds of imports (spawn elsewhere)."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in mp.get_all_start_methods():
            _CONTEXT = mp.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(_PRELOAD)
        else:
            _CONTEXT = mp.get_context("spawn")
    return _CONTEXT


def run_in_child(fn_name: str, kwargs: dict, timeout: float = CHILD_TIMEOUT_S):
    """Run one measurement function of this module in a fresh process: (result, error)."""
    import importlib

    this = importlib.import_module("mixers.bench")  # picklable by name, also under `-m`
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=this._child, args=(send, fn_name, kwargs))
    proc.start()
    send.close()
    msg = None
    if recv.poll(timeout):
        try:
            msg = recv.recv()
        except EOFError:
            msg = None
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return None, f"timed out after {timeout:.0f} s"
    if msg is None:
        return None, f"child exited with code {proc.exitcode} (killed: out of memory?)"
    if "error" in msg:
        return None, msg["error"].strip().splitlines()[-1]
    return msg["ok"], None


# ----------------------------------------------------------------------------------------------
# analysis


def fit_exponent(ns, times, min_n: int = FIT_MIN_N):
    """Slope of log t against log n over n >= min_n (all points when fewer than two qualify).
    Returns (exponent, fitted ns) or (None, ns) with fewer than two usable points."""
    pts = sorted((n, t) for n, t in zip(ns, times) if t is not None and t > 0)
    use = [p for p in pts if p[0] >= min_n]
    if len(use) < 2:
        use = pts
    if len(use) < 2:
        return None, [p[0] for p in use]
    x = np.log([p[0] for p in use])
    y = np.log([p[1] for p in use])
    return float(np.polyfit(x, y, 1)[0]), [p[0] for p in use]


def compute_fits(records, min_n: int = FIT_MIN_N, stat: str = "") -> dict:
    """{mixer: {fwd, fwdbwd, backend, ns}} for each mixer's primary backend; other backends
    (pow2's reference) under the key 'mixer[backend]'. Diagnostics, less sensitive to other
    jobs on a shared machine: stat "_min" fits the fastest repeat instead of the median wall
    time, "_cpu" the median CPU time of the process (time.process_time)."""
    fits = {}
    groups: dict[tuple, list] = {}
    for r in records:
        if r.get("fwd_s") is not None:
            groups.setdefault((r["mixer"], r["backend"]), []).append(r)
    for (mixer, backend), rs in groups.items():
        key = mixer if backend == primary_backend(load_mixer(mixer)) else f"{mixer}[{backend}]"
        ns = [r["n"] for r in rs]
        fwd, used = fit_exponent(ns, [r.get(f"fwd{stat}_s") for r in rs], min_n)
        fwdbwd, _ = fit_exponent(ns, [r.get(f"fwdbwd{stat}_s") for r in rs], min_n)
        fits[key] = {"fwd": fwd, "fwdbwd": fwdbwd, "backend": backend, "ns": used}
    return fits


def _find(records, mixer, backend, n):
    for r in records:
        if (r["mixer"], r["backend"], r["n"]) == (mixer, backend, n):
            return r
    return None


def check_targets(records, fits) -> dict:
    """Each target: {description, value, bound, met} (met None: not measured in this run)."""
    t = SPEEDUP_TARGET
    out = {}
    ch = _find(records, t["mixer"], "chunked", t["n"])
    ref = _find(records, t["mixer"], "reference", t["n"])
    for phase in ("fwd", "fwdbwd"):
        val = None
        if ch and ref and ch.get(f"{phase}_s") and ref.get(f"{phase}_s"):
            val = ref[f"{phase}_s"] / ch[f"{phase}_s"]
        out[f"pow2_speedup_{phase}@{t['n']}"] = {
            "description": f"chunked pow2 {phase} at n={t['n']}: reference time / chunked time",
            "value": val, "bound": [t["speedup"], None],
            "met": None if val is None else val >= t["speedup"]}
    val = None
    if ch and ref and ch.get("peak_mem_bytes") is not None and ref.get("peak_mem_bytes"):
        val = ch["peak_mem_bytes"] / ref["peak_mem_bytes"]
    out[f"pow2_memory_ratio@{t['n']}"] = {
        "description": f"chunked pow2 peak memory / reference peak memory at n={t['n']}",
        "value": val, "bound": [None, t["memory_ratio"]],
        "met": None if val is None else val <= t["memory_ratio"]}
    for mixer, (lo, hi) in EXPONENT_TARGETS.items():
        for phase in ("fwd", "fwdbwd"):
            val = fits.get(mixer, {}).get(phase)
            out[f"exponent_{phase}:{mixer}"] = {
                "description": f"fitted exponent of {mixer} {phase} time vs n "
                               f"(n >= {FIT_MIN_N})",
                "value": val, "bound": [lo, hi],
                "met": None if val is None else lo <= val <= hi}
    return out


def _git_state() -> dict | None:
    """The commit measured, and the files under mixers/ that differ from it."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mixers"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "modified": [ln[3:] for ln in dirty.splitlines()]}


def machine_info(threads: int) -> dict:
    import torch

    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f
                          if ln.startswith("model name")), model)
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_state(),
        "platform": platform.platform(), "cpu": model, "cpu_count": os.cpu_count(),
        "memory_bytes": mem, "python": platform.python_version(), "torch": torch.__version__,
        "threads": threads, "loadavg_start": list(os.getloadavg()),
        "shape": {"batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM, "dtype": "float32",
                  "chunk_size": CHUNK_SIZE},
        "memory_method": None,
        "note": "wall-clock times on a possibly shared machine: see loadavg_start/_end",
    }


# ----------------------------------------------------------------------------------------------
# output


def _fmt_time(t):
    if t is None:
        return "-"
    return f"{t * 1e3:.3g} ms" if t < 1 else f"{t:.3g} s"


def _fmt_mem(b):
    if b is None:
        return "-"
    if b >= 2**30:
        return f"{b / 2**30:.3g} GiB"
    return f"{b / 2**20:.3g} MiB" if b >= 2**20 else f"{b / 2**10:.3g} KiB"


def _fmt_exp(e):
    return "-" if e is None else f"{e:.2f}"


def _series(result):
    seen = []
    for r in result["records"]:
        if (r["mixer"], r["backend"]) not in seen:
            seen.append((r["mixer"], r["backend"]))
    return seen


def _fit_key(result, mixer, backend):
    fits = result["fits"]
    return mixer if fits.get(mixer, {}).get("backend") == backend else f"{mixer}[{backend}]"


def tables(result) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for fwd, fwd+bwd and memory: one row per (mixer, backend)."""
    ns = sorted({r["n"] for r in result["records"]})
    out = []
    for title, field, fmt, with_fit in (
            ("forward time (median)", "fwd_s", _fmt_time, "fwd"),
            ("forward + backward time (median)", "fwdbwd_s", _fmt_time, "fwdbwd"),
            ("peak memory over the inputs (forward + backward)", "peak_mem_bytes", _fmt_mem,
             None)):
        header = ["mixer", "backend"] + [str(n) for n in ns] + (
            ["exponent", "exp. (min)", "exp. (cpu)"] if with_fit else [])
        rows = []
        for mixer, backend in _series(result):
            row = [mixer, backend]
            for n in ns:
                r = _find(result["records"], mixer, backend, n)
                if r is None:
                    row.append("")
                elif r.get(field) is None and (r.get("error") or r.get("memory_error")):
                    row.append("error")
                else:
                    row.append(fmt(r.get(field)))
            if with_fit:
                key = _fit_key(result, mixer, backend)
                row.append(_fmt_exp(result["fits"].get(key, {}).get(with_fit)))
                for diag in ("fits_min", "fits_cpu"):
                    row.append(_fmt_exp(result.get(diag, {}).get(key, {}).get(with_fit)))
            rows.append(row)
        out.append((title, header, rows))
    return out


def _target_rows(result):
    rows = []
    for name, t in result["targets"].items():
        lo, hi = t["bound"]
        bound = (f"[{lo}, {hi}]" if lo is not None and hi is not None
                 else f">= {lo}" if lo is not None else f"<= {hi}")
        val = "-" if t["value"] is None else f"{t['value']:.3g}"
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        rows.append([name, val, bound, met])
    return rows


def print_report(result) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        for title, header, rows in tables(result):
            print(f"\n{title}\n" + "\n".join("  ".join(r) for r in [header, *rows]))
        print("\ntargets\n" + "\n".join("  ".join(r) for r in _target_rows(result)))
        return
    console = Console(width=200)
    for title, header, rows in tables(result):
        table = Table(title=title)
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    table = Table(title="targets")
    for h in ("target", "value", "bound", "status"):
        table.add_column(h)
    for row in _target_rows(result):
        style = {"met": "green", "MISSED": "bold red"}.get(row[3], "yellow")
        table.add_row(*row[:3], f"[{style}]{row[3]}[/{style}]")
    console.print(table)
    errors = [r for r in result["records"] if r.get("error")]
    for r in errors:
        console.print(f"[red]error[/red] {r['mixer']} {r['backend']} n={r['n']}: {r['error']}")


def markdown(result) -> str:
    """The tables and targets as Markdown (for docs/benchmarks.md)."""
    lines = []
    for title, header, rows in tables(result):
        lines += [f"**{title}**", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    lines += ["**targets**", "", "| target | value | bound | status |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in _target_rows(result)]
    return "\n".join(lines) + "\n"


def plot(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 8.5), sharey=True)
    cmap = plt.get_cmap("tab10")
    series = _series(result)
    colors = {m: cmap(i % 10) for i, m in enumerate(dict.fromkeys(m for m, _ in series))}
    for ax, (phase, title) in zip(axes, (("fwd", "forward"), ("fwdbwd", "forward + backward"))):
        for mixer, backend in series:
            rs = sorted((r for r in result["records"]
                         if (r["mixer"], r["backend"]) == (mixer, backend)
                         and r.get(f"{phase}_s")), key=lambda r: r["n"])
            if not rs:
                continue
            fit = result["fits"].get(_fit_key(result, mixer, backend), {})
            label = f"{mixer} [{backend}]  n^{_fmt_exp(fit.get(phase))}"
            used = fit.get("ns") or []
            if used and min(used) < FIT_MIN_N:  # too few large n: say what was fitted
                label += f" (fit n={min(used)}..{max(used)})"
            ax.plot([r["n"] for r in rs], [r[f"{phase}_s"] for r in rs], marker="o",
                    color=colors[mixer], linestyle="--" if backend == "reference" else "-",
                    label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length n")
        ax.set_title(f"{title} (median wall time)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title=f"exponent fitted over n >= {FIT_MIN_N}",
                  title_fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    axes[0].set_ylabel("seconds")
    m = result["machine"]
    fig.suptitle(f"glmix mixers on CPU: batch {BATCH}, {HEADS} heads, d {HEAD_DIM}, float32, "
                 f"{m['threads']} thread(s), {m['cpu']} ({m['date'][:10]})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# the driver


def run_bench(mixers=MIXERS, max_n: int | None = None, quick: bool = False, threads: int = 1,
              repeats: int | None = None, out: Path | str = "bench_out/mixers.json",
              rounds: int | None = None, log=print) -> dict:
    """Time every (mixer, backend, n) in `rounds` passes (each a fresh process per group, the
    repeats pooled, so a burst of other load on the machine hits one pass of a point, not all
    of it), and measure its memory once. Writes the JSON and the plot; returns the result."""
    cap = min(max_n or math.inf, QUICK_MAX_N if quick else math.inf)
    ns = [n for n in NS if n <= cap] or [min(NS)]
    if max_n is not None and max_n < min(NS):
        ns = [max_n]
    rounds = 1 if quick and rounds is None else (rounds or DEFAULT_ROUNDS)
    jobs = plan(mixers, ns, quick)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # read by the forkserver at its start
        os.environ.setdefault(k, str(threads))
    machine = machine_info(threads)
    t_start = time.perf_counter()
    records = [{"mixer": j["mixer"], "backend": j["backend"], "n": j["n"],
                "path": PATH_LABELS[j["backend"]], "fwd_s": None, "fwdbwd_s": None,
                "peak_mem_bytes": None, "repeats": 0, "rounds": 0, "loadavg_1m": []}
               for j in jobs]
    for rnd in range(rounds):
        for j, rec in zip(jobs, records):
            mixer, backend, n, cfg = j["mixer"], j["backend"], j["n"], j["cfg"]
            reps = repeats_for(n, repeats, quick)
            t0 = time.perf_counter()
            res, err = run_in_child("measure_time", {
                "cfg": cfg, "backend": backend, "ns": [n], "repeats": [reps],
                "threads": threads})
            if err:
                rec.setdefault("error", err)
            else:
                for key in ("fwd_runs", "fwd_cpu_runs", "fwdbwd_runs", "fwdbwd_cpu_runs"):
                    rec[key] = rec.get(key, []) + res[0][key]
                rec["loadavg_1m"].append(res[0]["loadavg_1m"])
                rec["repeats"] += reps
                rec["rounds"] += 1
                rec.update(summarize_runs(rec))
            merr = None
            if rnd == 0:  # memory does not depend on the machine's load: once
                mem, merr = run_in_child("measure_memory", {
                    "cfg": cfg, "backend": backend, "n": n, "threads": threads})
                if merr:
                    rec["memory_error"] = merr
                else:
                    machine["memory_method"] = mem.pop("memory_method")
                    rec.update(mem)
            log(f"[{rnd + 1}/{rounds}] {mixer:>16} {backend:>9} n={n:>5}  "
                f"fwd {_fmt_time(rec['fwd_s']):>9}  fwd+bwd {_fmt_time(rec['fwdbwd_s']):>9}  "
                f"peak {_fmt_mem(rec['peak_mem_bytes']):>9}  "
                f"({time.perf_counter() - t0:.1f} s){'  ' + err if err else ''}"
                f"{'  memory: ' + merr if merr else ''}")
    machine["loadavg_end"] = list(os.getloadavg())
    machine["wall_s"] = round(time.perf_counter() - t_start, 1)
    fits = compute_fits(records)
    result = {"records": records, "fits": fits, "fits_min": compute_fits(records, stat="_min"),
              "fits_cpu": compute_fits(records, stat="_cpu"),
              "machine": machine,
              "targets": check_targets(records, fits),
              "settings": {"ns": ns, "quick": quick, "repeats": repeats, "rounds": rounds,
                           "threads": threads, "mixers": list(mixers), "fit_min_n": FIT_MIN_N}}
    write_outputs(result, Path(out))
    return result


def write_outputs(result, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    plot(result, out.with_suffix(".png"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mixers.bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"n up to {QUICK_MAX_N}, one repeat (for tests)")
    p.add_argument("--mixers", default=",".join(MIXERS),
                   help="comma-separated names of conf/mixer/*.yaml")
    p.add_argument("--max-n", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per n and round (default 5 up to n=2048, 4 at 4096, "
                        "3 above)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"passes over all measurements, repeats pooled (default "
                        f"{DEFAULT_ROUNDS}, 1 with --quick)")
    p.add_argument("--out", default="bench_out/mixers.json")
    p.add_argument("--from-json", default=None,
                   help="re-render the table and plot of an existing result file, run nothing")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--strict", action="store_true", help="exit 1 when a measured target is missed")
    args = p.parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        plot(result, Path(args.from_json).with_suffix(".png"))
    else:
        mixers = [m.strip() for m in args.mixers.split(",") if m.strip()]
        for m in mixers:
            load_mixer(m)  # fail early on a typo
        if args.threads < 1:
            p.error("--threads must be >= 1")
        if args.rounds is not None and args.rounds < 1:
            p.error("--rounds must be >= 1")
        result = run_bench(mixers, args.max_n, args.quick, args.threads, args.repeats, args.out,
                           args.rounds)
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.png')} "
              f"({result['machine']['wall_s']} s)")
    if args.markdown:
        print(markdown(result))
    else:
        print_report(result)
    missed = [k for k, t in result["targets"].items() if t["met"] is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
