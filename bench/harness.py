"""What every benchmark under bench/ shares: process isolation, timing, peak memory, exponent fits,
machine and git info, and the terminal and Markdown tables.

    run_isolated("bench.ops", "measure_time", {...})  -> (result, error): a fresh process per call
    time_calls(step, min_run_time, threads, clock)    -> per-call times (torch.utils.benchmark)
    peak_rss(run)                                     -> bytes the call touched beyond what was live
    fit_exponent(ns, times)                           -> slope of log t against log n over n >= 1024
    machine_info(threads), git_state()                -> the "machine" block of a result file

Nothing here knows about mixers or tasks.
"""

from __future__ import annotations

import datetime as _dt
import gc
import importlib
import math
import multiprocessing as mp
import os
import resource
import statistics
import time
import timeit
import traceback
from pathlib import Path

from analysis import stats
from runners import machine

__all__ = [
    "ROOT", "FIT_MIN_N", "CHILD_TIMEOUT_S", "CLOCKS", "preload_kinds", "run_isolated",
    "set_preload", "predicted_time", "budget_skip", "time_calls",
    "summarize_times", "peak_rss", "strict_malloc", "fit_exponent", "machine_info", "git_state",
    "fmt_time", "fmt_mem", "fmt_exp", "markdown_table", "print_table", "finish",
]

ROOT = Path(__file__).resolve().parents[1]
FIT_MIN_N = 1024
CHILD_TIMEOUT_S = 600
#: the clocks `time_calls` can read: wall time, or the CPU time of the process (with one thread
#: this leaves out the time other jobs hold the core on a shared machine)
CLOCKS = {"wall": timeit.default_timer, "cpu": time.process_time}


# ----------------------------------------------------------------------------------------------
# process isolation

# torch imports fx.experimental.symbolic_shapes (and sympy, ~1-2 s) lazily at a first op
_PRELOAD = ["torch", "torch.fx.experimental.symbolic_shapes", "statistics"]
_CONTEXT = None


def set_preload(modules) -> None:
    """Modules the forkserver imports once, before its first fork (call before run_isolated)."""
    for m in modules:
        if m not in _PRELOAD:
            _PRELOAD.append(m)


def preload_kinds(kinds) -> None:
    """Preload what the given mixer kinds import when built: `import fla` (with transformers)
    takes 10 to 15 s, which a fresh fork per measurement would pay at every point of an fla
    mixer (22 s per point of `make bench` where a glmix point takes 3 s). Imported once in the
    forkserver instead, and only when a job needs it. A failed preload is ignored by
    multiprocessing (the child then imports it, as before)."""
    if "fla" in set(kinds):
        set_preload(["fla.layers"])


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


def _child(conn, module: str, fn_name: str, kwargs: dict) -> None:
    # the objects inherited from the forkserver (torch, sympy, ...) are never garbage: without
    # this each gc.collect() walks them all (~0.3 s, and copy-on-write faults on every page)
    gc.freeze()
    try:
        fn = getattr(importlib.import_module(module), fn_name)
        conn.send({"ok": fn(**kwargs)})
    except BaseException:  # noqa: BLE001 - reported to the parent
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


def run_isolated(module: str, fn_name: str, kwargs: dict, timeout: float = CHILD_TIMEOUT_S):
    """Call `module.fn_name(**kwargs)` in a fresh process, so that no measurement inherits another's
    allocations or caches. Returns (result, None) or (None, the error's last line)."""
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, module, fn_name, kwargs))
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
# time


def predicted_time(rec, records, same, field: str) -> tuple[float, int] | None:
    """(seconds, from n): rec's `field` at its n predicted from the record of the same series
    (`same(r)`) at the largest smaller n measured, scaled as n^2 (attention's growth); None when
    there is none. A guess to skip hopeless points, not a figure: a mixer that grows faster is
    caught one n later, or by the child timeout."""
    prev = [r for r in records if same(r) and r["n"] < rec["n"] and r.get(field)]
    if not prev:
        return None
    p = max(prev, key=lambda r: r["n"])
    return p[field] * (rec["n"] / p["n"]) ** 2, p["n"]


def budget_skip(rec, records, same, field: str, rnd: int, cap: float | None,
                option: str) -> str | None:
    """Why this point is not measured in pass `rnd`, or None. With a cap (seconds of `field`):
    a point predicted above it (`predicted_time`) is skipped in every pass, and its reason kept
    in rec["skipped"]; one measured above it in the first pass gets no further pass."""
    if rec.get("skipped"):
        return rec["skipped"]
    if cap is None:
        return None
    if rnd > 0 and rec.get(field) and rec[field] > cap:
        return f"one pass only: {rec[field]:.3g} s > {option} {cap:g}"
    guess = predicted_time(rec, records, same, field) if rnd == 0 else None
    if guess and guess[0] > cap:
        rec["skipped"] = (f"predicted {guess[0]:.3g} s (n = {guess[1]}'s scaled as n^2) "
                          f"> {option} {cap:g}")
        return rec["skipped"]
    return None



def time_calls(step, min_run_time: float, threads: int = 1, clock: str = "wall") -> list[float]:
    """Seconds per call of `step()`: torch.utils.benchmark's `blocked_autorange` (its block-size
    estimate is the warm-up; each block runs `step` a fixed number of times with the garbage
    collector off, until `min_run_time` is spent), one figure per block."""
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="step()", globals={"step": step}, num_threads=threads,
                  timer=CLOCKS[clock])
    return list(timer.blocked_autorange(min_run_time=min_run_time).times)


def summarize_times(runs: list[float]) -> dict:
    """{s: median, min_s: fastest, runs: how many} of per-call times (None when there are none)."""
    return {"s": statistics.median(runs) if runs else None, "min_s": min(runs) if runs else None,
            "runs": len(runs)}


# ----------------------------------------------------------------------------------------------
# memory


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


def strict_malloc() -> str:
    """Make glibc return freed blocks >= 64 KiB to the kernel at once (fixed mmap threshold, no
    trim slack), so RSS follows what is live instead of recycling earlier frees. Call once, in a
    process of its own. Returns the note for the memory method ('' where mallopt is missing)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(-3, 65536) == 1 and libc.mallopt(-1, 0) == 1  # M_MMAP_ / M_TRIM_
    except OSError:
        ok = False
    return ", mallopt(M_MMAP_THRESHOLD=64KiB, M_TRIM_THRESHOLD=0)" if ok else ""


def peak_rss(run) -> tuple[int, str]:
    """(bytes, method): the resident-set high-water mark over `run()` above the RSS before it.

    torch's CPU allocations bypass Python's allocator (tracemalloc does not see them), not the
    kernel's RSS accounting. The mark is reset with `echo 5 > /proc/self/clear_refs` and read as
    VmHWM - VmRSS from /proc/self/status; resolution about +-256 KiB (per-CPU RSS counters). Where
    clear_refs is refused the fallback is ru_maxrss, which undercounts when the peak stays below
    an earlier one.
    """
    gc.collect()
    if _reset_hwm():
        method, base = "VmHWM - VmRSS after clear_refs", _status_kb("VmRSS")
        out = run()
        peak = _status_kb("VmHWM")
    else:
        method, base = "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = run()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del out
    return max(0, peak - base) * 1024, method


# ----------------------------------------------------------------------------------------------
# exponents


def fit_exponent(ns, times, min_n: int = FIT_MIN_N):
    """analysis.stats.fit_exponent over n >= min_n, or over all points when fewer than two
    lengths qualify (a --quick run). Returns (exponent, fitted ns), or (None, ns) with fewer
    than two usable points."""
    fit = stats.fit_exponent(ns, times, min_n)
    if len(fit.ns) < 2:
        usable = [n for n, t in zip(ns, times) if t is not None and t > 0]
        fit = stats.fit_exponent(ns, times, min(usable, default=min_n))
    return (None if math.isnan(fit.exponent) else fit.exponent), list(fit.ns)


# ----------------------------------------------------------------------------------------------
# machine and git: runners.machine, with what a benchmark adds


def git_state(paths=("mixers", "bench")) -> dict | None:
    """The commit measured, and the files under `paths` that differ from it (None outside git)."""
    return machine.git_state(tuple(paths))


def machine_info(threads: int, git_paths=("mixers", "bench")) -> dict:
    """runners.machine's machine block, with the commit, threads and load of this benchmark."""
    return {
        **machine.machine_info(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(git_paths),
        "threads": threads, "loadavg_start": list(os.getloadavg()),
        "note": "wall-clock times on a possibly shared machine: see loadavg_start/_end",
    }


# ----------------------------------------------------------------------------------------------
# output


def _sig3(v: float) -> str:
    """Three significant digits, never in exponent form (1020 MiB, not 1.02e+03 MiB)."""
    return f"{v:.3g}" if abs(v) < 999.5 else f"{v:.0f}"


def fmt_time(t) -> str:
    if t is None:
        return "-"
    return f"{_sig3(t * 1e3)} ms" if t < 1 else f"{_sig3(t)} s"


def fmt_mem(b) -> str:
    if b is None:
        return "-"
    if b >= 2**30:
        return f"{_sig3(b / 2**30)} GiB"
    return f"{_sig3(b / 2**20)} MiB" if b >= 2**20 else f"{_sig3(b / 2**10)} KiB"


def fmt_exp(e) -> str:
    return "-" if e is None else f"{e:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table, through pandas."""
    import pandas as pd

    return pd.DataFrame(rows, columns=header).to_markdown(index=False)


def finish(result: dict, render, strict: bool) -> int:
    """A benchmark's last step: `render(result)` (printed when it returns text) and the exit
    status, 1 when `strict` and a measured target (`result["targets"]`) was missed."""
    text = render(result)
    if text is not None:
        print(text)
    missed = [k for k, t in result["targets"].items() if t["met"] is False]
    return 1 if strict and missed else 0


def print_table(title: str, header: list[str], rows: list[list[str]], left: int = 1) -> None:
    """A table on the terminal (rich when installed); the first `left` columns left-aligned."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}\n" + "\n".join("  ".join(map(str, r)) for r in [header, *rows]))
        return
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < left else "right")
    for row in rows:
        table.add_row(*map(str, row))
    Console(width=200).print(table)
