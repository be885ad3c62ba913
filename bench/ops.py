"""CPU benchmark of the mixer catalogue: time and peak memory of each mixer layer against n.

    python -m bench.ops [--quick] [--mixers pow2,sq1] [--max-n 4096] [--threads 1]
                        [--min-run-time 0.3] [--rounds 2] [--clock wall|cpu]
                        [--compare pow2:reference] [--out bench_out/mixers.json]
    python -m bench.ops --from-json bench_out/mixers.json [--markdown]   # re-render only

The mixers are the catalogue, `conf/mixer/*.yaml` (`runners.paths.catalogue()`), each built with
`mixers.build_mixer(cfg, 128, 4)` (4 heads of dim 32): a mixer added as one YAML file is
benchmarked with no change here, and one whose build fails on this machine (a missing optional
package, a GPU-only kind) is listed under `skipped` with the reason. What is timed is the layer's
forward on x [1, n, 128] (projections, coefficients and the op together, as in training), and its
forward + backward(ones) with gradients for x and every weight. `--compare MIXER:BACKEND` adds the
same mixer with its config's `backend` replaced (pow2 on `reference`, up to n = 4096, by default).

Timing: torch.utils.benchmark (`bench.harness.time_calls`): per (mixer, backend, n, round) one
fresh process, `blocked_autorange(min_run_time)` for the forward and for forward + backward;
the per-call times of all rounds are pooled (median: `fwd_s`, fastest: `fwd_min_s`). Peak
memory: in another fresh process, the RSS high-water mark over one call above what was live
before it (`bench.harness.peak_rss`), after a warm-up at n = 64.

Theory, from the layer itself (mixers.registry), so from its patterns and not from its name: the
expected exponent e of time against n is the slope of the mixing work n * flops_per_token(n),
fitted over the same lengths as the measurements (none, first, kth, window, linear attention: 1;
pow2: about 1.1, n log n; sq1: about 1.5; dense, full: 2). It sets each mixer's exponent target,
[0.8 e, e + 0.3], and caps the mixers whose work grows like n^2 (e >= 1.75) at n = 4096.

Budget: a point whose forward + backward, predicted from the same series at its largest smaller
n scaled as n^2, exceeds --max-call-s (default 5 s) is not run (listed with the reason), and one
measured above it gets one pass. On the CPU, fla's PyTorch references have backwards that grow
faster than n (GLA's forward + backward: 2.8 s at n = 4096, 53 s at 16384, a point costing 6
calls): without the budget the sweep took hours, most of them on a few such points.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from pathlib import Path

from bench import harness as H

NS = (256, 512, 1024, 2048, 4096, 8192, 16384)
QUICK_MAX_N = 2048
QUADRATIC_MAX_N = 4096
QUADRATIC_EXPONENT = 1.75
D_MODEL, HEADS = 128, 4
BATCH = 1
WARMUP_N = 64
DEFAULT_ROUNDS = 2
DEFAULT_MIN_RUN_TIME = 0.3
QUICK_MIN_RUN_TIME = 0.02
DEFAULT_COMPARE = ("pow2:reference",)
COMPARE_MAX_N = 4096  # a compared backend is the reference: dense n x n matrices
MAX_CALL_S = 5.0  # --max-call-s: the budget of one forward + backward (module docstring)
# the comparison the chunked op was built for: the reference time (and peak memory) over the
# mixer's own at n. The op alone was asked for 10x (docs/benchmarks.md: 17x); timed as a layer,
# the projections and coefficients both backends share (~60 ms at n = 4096, estimated) bound it near
# 8x on an idle machine, so the layer's bound is 5x: still far from a chunked op gone dense
SPEEDUP_TARGET = {"mixer": "pow2", "backend": "reference", "n": 4096, "speedup": 5.0,
                  "memory_ratio": 0.1}

# not bench.ops itself: a child run under `python -m bench.ops` imports it as its __main__
H.set_preload(["mixers", "mixers.layers"])


# ----------------------------------------------------------------------------------------------
# the catalogue and its theory


def build(cfg: dict):
    """The mixer of a catalogue entry, as the runner builds it (seeded weights)."""
    import torch

    import mixers

    with torch.random.fork_rng(devices=[]):  # leaves the caller's generator as it was
        torch.manual_seed(0)
        return mixers.build_mixer(cfg, D_MODEL, HEADS)


def theory_exponent(layer, ns) -> float | None:
    """The slope of the mixing work n * flops_per_token(n) (the figure the layer states from its
    patterns, projections left out) over ns, fitted as the measurements are; None when the layer
    does not state flops_per_token."""
    if not callable(getattr(layer, "flops_per_token", None)):
        return None
    return H.fit_exponent(ns, [n * layer.flops_per_token(n) for n in ns])[0]


def exponent_bound(e: float) -> tuple[float, float]:
    """[0.8 e, e + 0.3]: fixed costs (per-chunk Python, the O(n) projections the theory leaves
    out) flatten a measured slope more often than cache effects steepen it."""
    return round(0.8 * e, 2), round(e + 0.3, 2)


def plan(names=None, ns=NS, compare=DEFAULT_COMPARE, log=print):
    """-> (jobs, theory, skipped). A job per (mixer, backend, n); theory {mixer: {exponent,
    bound, max_n}}; skipped {mixer: reason} for every mixer that does not build here."""
    import mixers
    import runners.paths

    cat = runners.paths.catalogue()
    names = list(cat) if names is None else list(names)
    unknown = [m for m in names if m not in cat]
    if unknown:
        raise ValueError(f"unknown mixer(s) {unknown}; known: {sorted(cat)}")
    extra: dict[str, list[str]] = {}
    for spec in compare:
        mixer, _, backend = spec.partition(":")
        if not backend:
            raise ValueError(f"--compare takes MIXER:BACKEND, got {spec!r}")
        extra.setdefault(mixer, []).append(backend)
    jobs, theory, skipped = [], {}, {}
    for name in names:
        cfg = dict(cat[name], name=name)
        try:
            e = theory_exponent(build(cfg), [n for n in NS if n >= H.FIT_MIN_N])
        except Exception as err:  # noqa: BLE001 - a mixer that cannot run here is reported
            skipped[name] = f"{type(err).__name__}: {err}".splitlines()[0]
            log(f"skipped {name}: {skipped[name]}")
            continue
        top = QUADRATIC_MAX_N if e is not None and e >= QUADRATIC_EXPONENT else math.inf
        theory[name] = {"exponent": e, "bound": exponent_bound(e) if e is not None else None,
                        "max_n": None if top == math.inf else top}
        variants = [(cfg.get("backend", "auto"), cfg, top)]
        if "backend" in mixers.MixerConfig.from_mapping(cfg).used_keys():
            variants += [(b, dict(cfg, backend=b), min(top, COMPARE_MAX_N))
                         for b in extra.get(name, []) if b != variants[0][0]]
        for backend, c, cap in variants:
            jobs += [{"mixer": name, "backend": backend, "cfg": c, "n": n} for n in ns if n <= cap]
    return jobs, theory, skipped


# ----------------------------------------------------------------------------------------------
# inside the measuring processes


def _case(cfg: dict, n: int, seed: int = 0):
    """-> (leaves, forward): the layer's weights and its input x [1, n, D_MODEL]."""
    import torch

    layer = build(cfg)
    gen = torch.Generator().manual_seed(seed + n)
    x = torch.randn(BATCH, n, D_MODEL, generator=gen).requires_grad_()
    return [x, *layer.parameters()], lambda: layer(x)


def _caller(leaves, forward, backward: bool):
    import torch

    grad = []

    def step():
        y = forward()
        if backward:
            if not grad:
                grad.append(torch.ones_like(y))
            y.backward(grad[0])
            for t in leaves:
                t.grad = None
        return y

    return step


def measure_time(cfg: dict, n: int, min_run_time: float, threads: int, clock: str) -> dict:
    """{fwd_runs, fwdbwd_runs, loadavg_1m}: seconds per call, one figure per timed block."""
    import torch

    torch.set_num_threads(threads)
    leaves, forward = _case(cfg, n)
    out = {}
    for key, backward in (("fwd", False), ("fwdbwd", True)):
        out[f"{key}_runs"] = H.time_calls(_caller(leaves, forward, backward), min_run_time,
                                          threads, clock)
    out["loadavg_1m"] = os.getloadavg()[0]
    return out


def measure_memory(cfg: dict, n: int, threads: int) -> dict:
    """Peak RSS above what is live over one forward and one forward + backward (fresh process,
    glibc told to hand freed blocks back: bench.harness.strict_malloc)."""
    import torch

    torch.set_num_threads(threads)
    malloc = H.strict_malloc()
    leaves, forward = _case(cfg, WARMUP_N)
    _caller(leaves, forward, backward=True)()  # lazy initialisation, not counted
    del leaves, forward
    leaves, forward = _case(cfg, n)
    out = {}
    for key, backward in (("peak_mem_fwd_bytes", False), ("peak_mem_bytes", True)):
        out[key], method = H.peak_rss(_caller(leaves, forward, backward))
        out["memory_method"] = method + malloc
        gc.collect()
    return out


# ----------------------------------------------------------------------------------------------
# analysis


def _key(rec: dict, primary: dict) -> str:
    """A series' name: the mixer for its own backend, 'mixer[backend]' for a comparison."""
    m, b = rec["mixer"], rec["backend"]
    return m if primary.get(m) == b else f"{m}[{b}]"


def _primary(records) -> dict:
    out = {}
    for r in records:
        out.setdefault(r["mixer"], r["backend"])
    return out


def compute_fits(records, min_n: int = H.FIT_MIN_N, stat: str = "") -> dict:
    """{series: {fwd, fwdbwd, backend, ns}} from the medians (stat '') or the fastest calls
    (stat '_min', a diagnostic less sensitive to other jobs on a shared machine)."""
    primary, groups = _primary(records), {}
    for r in records:
        if r.get("fwd_s") is not None:
            groups.setdefault(_key(r, primary), []).append(r)
    fits = {}
    for key, rs in groups.items():
        ns = [r["n"] for r in rs]
        fwd, used = H.fit_exponent(ns, [r.get(f"fwd{stat}_s") for r in rs], min_n)
        fwdbwd, _ = H.fit_exponent(ns, [r.get(f"fwdbwd{stat}_s") for r in rs], min_n)
        fits[key] = {"fwd": fwd, "fwdbwd": fwdbwd, "backend": rs[0]["backend"], "ns": used}
    return fits


def _find(records, mixer, backend, n):
    return next((r for r in records if (r["mixer"], r["backend"], r["n"]) == (mixer, backend, n)),
                None)


def check_targets(records, fits, theory) -> dict:
    """Each target: {description, value, bound, met} (met None: not measured in this run)."""
    t = SPEEDUP_TARGET
    primary = _primary(records)
    own = _find(records, t["mixer"], primary.get(t["mixer"]), t["n"])
    ref = _find(records, t["mixer"], t["backend"], t["n"])
    out = {}
    for phase in ("fwd", "fwdbwd"):
        val = None
        if own and ref and own.get(f"{phase}_s") and ref.get(f"{phase}_s"):
            val = ref[f"{phase}_s"] / own[f"{phase}_s"]
        out[f"{t['mixer']}_speedup_{phase}@{t['n']}"] = {
            "description": f"{t['mixer']} {phase} at n={t['n']}: {t['backend']} time / own "
                           "backend's time",
            "value": val, "bound": [t["speedup"], None],
            "met": None if val is None else val >= t["speedup"]}
    val = None
    if own and ref and own.get("peak_mem_bytes") is not None and ref.get("peak_mem_bytes"):
        val = own["peak_mem_bytes"] / ref["peak_mem_bytes"]
    out[f"{t['mixer']}_memory_ratio@{t['n']}"] = {
        "description": f"{t['mixer']} peak memory at n={t['n']}: own backend / {t['backend']}",
        "value": val, "bound": [None, t["memory_ratio"]],
        "met": None if val is None else val <= t["memory_ratio"]}
    for mixer, th in theory.items():
        if th.get("bound") is None:
            continue
        lo, hi = th["bound"]
        # a slope fitted below FIT_MIN_N (too few large n) is shown but checks nothing
        large = sum(n >= H.FIT_MIN_N for n in fits.get(mixer, {}).get("ns", ()))
        for phase in ("fwd", "fwdbwd"):
            val = fits.get(mixer, {}).get(phase)
            out[f"exponent_{phase}:{mixer}"] = {
                "description": f"fitted exponent of {mixer} {phase} time vs n (n >= "
                               f"{H.FIT_MIN_N}); theory {th['exponent']:.2f}",
                "value": val, "bound": [lo, hi],
                "met": None if val is None or large < 2 else lo <= val <= hi}
    return out


# ----------------------------------------------------------------------------------------------
# output


def _series(result):
    return list(dict.fromkeys((r["mixer"], r["backend"]) for r in result["records"]))


def tables(result) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for fwd, fwd+bwd and memory: one row per (mixer, backend)."""
    ns = sorted({r["n"] for r in result["records"]})
    primary = _primary(result["records"])
    out = []
    for title, field, fmt, phase in (
            ("forward time (median)", "fwd_s", H.fmt_time, "fwd"),
            ("forward + backward time (median)", "fwdbwd_s", H.fmt_time, "fwdbwd"),
            ("peak memory over what is live (forward + backward)", "peak_mem_bytes", H.fmt_mem,
             None)):
        header = ["mixer", "backend"] + [str(n) for n in ns] + (
            ["exponent", "exp. (min)", "theory"] if phase else [])
        rows = []
        for mixer, backend in _series(result):
            row = [mixer, backend]
            for n in ns:
                r = _find(result["records"], mixer, backend, n)
                if r is None:
                    row.append("")
                elif r.get(field) is None and (r.get("error") or r.get("memory_error")):
                    row.append("error")
                elif r.get(field) is None and r.get("skipped"):
                    row.append("skipped")
                else:
                    row.append(fmt(r.get(field)))
            if phase:
                key = _key({"mixer": mixer, "backend": backend}, primary)
                row.append(H.fmt_exp(result["fits"].get(key, {}).get(phase)))
                row.append(H.fmt_exp(result["fits_min"].get(key, {}).get(phase)))
                own = primary[mixer] == backend
                row.append(H.fmt_exp(result["theory"].get(mixer, {}).get("exponent"))
                           if own else "")
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


def _skipped_rows(result):
    return [[m, why] for m, why in result.get("skipped", {}).items()]


def print_report(result) -> None:
    for title, header, rows in tables(result):
        H.print_table(title, header, rows, left=2)
    H.print_table("targets", ["target", "value", "bound", "status"], _target_rows(result))
    if result.get("skipped"):
        H.print_table("skipped (did not build here)", ["mixer", "reason"], _skipped_rows(result))
    for r in result["records"]:
        if r.get("error"):
            print(f"error {r['mixer']} {r['backend']} n={r['n']}: {r['error']}")


def markdown(result) -> str:
    """The tables, targets and skipped mixers as Markdown (for docs/benchmarks.md)."""
    parts = [f"**{title}**\n\n{H.markdown_table(header, rows)}\n"
             for title, header, rows in tables(result)]
    parts.append("**targets**\n\n" + H.markdown_table(["target", "value", "bound", "status"],
                                                       _target_rows(result)) + "\n")
    if result.get("skipped"):
        parts.append("**skipped**\n\n" + H.markdown_table(["mixer", "reason"],
                                                          _skipped_rows(result)) + "\n")
    return "\n".join(parts)


def plot(result, out_dir: Path):
    """time_vs_n.png (and .svg) in out_dir, through analysis.plots (the leaderboard's plot)."""
    from analysis.plots import load_bench_records, plot_bench

    return plot_bench(load_bench_records(result["records"]), Path(out_dir), H.FIT_MIN_N)


# ----------------------------------------------------------------------------------------------
# the driver


def _measure(j, rec, rnd: int, rounds: int, machine: dict, min_run_time: float, threads: int,
             clock: str, log) -> None:
    """One pass of one point: its times (pooled into rec), and in the first pass its memory."""
    t0 = time.perf_counter()
    res, err = H.run_isolated("bench.ops", "measure_time", {
        "cfg": j["cfg"], "n": j["n"], "min_run_time": min_run_time,
        "threads": threads, "clock": clock})
    if err:
        rec.setdefault("error", err)
    else:
        for phase in ("fwd", "fwdbwd"):
            runs = rec.get(f"{phase}_runs", []) + res[f"{phase}_runs"]
            s = H.summarize_times(runs)
            rec.update({f"{phase}_runs": runs, f"{phase}_s": s["s"],
                        f"{phase}_min_s": s["min_s"]})
        rec["loadavg_1m"].append(res["loadavg_1m"])
        rec["rounds"] += 1
    merr = None
    if rnd == 0:  # memory does not depend on the machine's load: once
        mem, merr = H.run_isolated("bench.ops", "measure_memory", {
            "cfg": j["cfg"], "n": j["n"], "threads": threads})
        if merr:
            rec["memory_error"] = merr
        else:
            machine["memory_method"] = mem.pop("memory_method")
            rec.update(mem)
    log(f"[{rnd + 1}/{rounds}] {j['mixer']:>16} {j['backend']:>9} n={j['n']:>5}  "
        f"fwd {H.fmt_time(rec['fwd_s']):>9}  "
        f"fwd+bwd {H.fmt_time(rec['fwdbwd_s']):>9}  "
        f"peak {H.fmt_mem(rec['peak_mem_bytes']):>9}  "
        f"({time.perf_counter() - t0:.1f} s){'  ' + err if err else ''}"
        f"{'  memory: ' + merr if merr else ''}")


def run_bench(mixers=None, max_n: int | None = None, quick: bool = False, threads: int = 1,
              min_run_time: float | None = None, out: Path | str = "bench_out/mixers.json",
              rounds: int | None = None, clock: str = "wall", compare=DEFAULT_COMPARE,
              log=print, max_call_s: float | None = MAX_CALL_S) -> dict:
    """Time every (mixer, backend, n) in `rounds` passes (each a fresh process, the calls pooled,
    so a burst of other load on the machine hits one pass of a point, not all of it), and measure
    its memory once. Writes the JSON and the plot; returns the result."""
    cap = min(max_n or math.inf, QUICK_MAX_N if quick else math.inf)
    ns = [n for n in NS if n <= cap] or [min(NS)]
    if max_n is not None and max_n < min(NS):
        ns = [max_n]
    rounds = 1 if quick and rounds is None else (rounds or DEFAULT_ROUNDS)
    if min_run_time is None:
        min_run_time = QUICK_MIN_RUN_TIME if quick else DEFAULT_MIN_RUN_TIME
    jobs, theory, skipped = plan(mixers, ns, compare, log)
    H.preload_kinds(j["cfg"].get("kind", "glr") for j in jobs)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # read by the forkserver at its start
        os.environ.setdefault(k, str(threads))
    machine = H.machine_info(threads)
    machine.update(shape={"batch": BATCH, "d_model": D_MODEL, "heads": HEADS,
                          "dtype": "float32"}, clock=clock, memory_method=None)
    t_start = time.perf_counter()
    records = [{"mixer": j["mixer"], "backend": j["backend"], "n": j["n"],
                "kind": j["cfg"].get("kind", "glr"), "fwd_s": None, "fwdbwd_s": None,
                "peak_mem_bytes": None, "rounds": 0, "loadavg_1m": []} for j in jobs]
    for rnd in range(rounds):
        for j, rec in zip(jobs, records):
            why = H.budget_skip(
                rec, records, lambda r, j=j: (r["mixer"], r["backend"]) == (j["mixer"],
                                                                          j["backend"]),
                "fwdbwd_s", rnd, max_call_s, "--max-call-s")
            if why:
                log(f"[{rnd + 1}/{rounds}] {j['mixer']:>16} {j['backend']:>9} n={j['n']:>5}  "
                    f"not run: {why}")
            else:
                _measure(j, rec, rnd, rounds, machine, min_run_time, threads, clock, log)
            if j is jobs[-1] or jobs[jobs.index(j) + 1]["mixer"] != j["mixer"]:
                # after every mixer: a run cut short keeps what it measured
                write_partial(records, theory, skipped, machine, Path(out))
    machine["loadavg_end"] = list(os.getloadavg())
    machine["wall_s"] = round(time.perf_counter() - t_start, 1)
    fits = compute_fits(records)
    result = {"records": records, "fits": fits, "fits_min": compute_fits(records, stat="_min"),
              "theory": theory, "skipped": skipped, "machine": machine,
              "targets": check_targets(records, fits, theory),
              "settings": {"ns": ns, "quick": quick, "min_run_time": min_run_time,
                           "rounds": rounds, "threads": threads, "clock": clock,
                           "mixers": sorted({j["mixer"] for j in jobs} | set(skipped)),
                           "compare": list(compare), "fit_min_n": H.FIT_MIN_N,
                           "max_call_s": max_call_s},
              "complete": True}
    write_outputs(result, Path(out))
    return result


def write_partial(records, theory, skipped, machine, out: Path) -> None:
    """The JSON of the records measured so far (`complete`: false; no fits, targets or plot)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"records": records, "theory": theory, "skipped": skipped,
                               "machine": machine, "complete": False}, indent=1))


def write_outputs(result, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    plot(result, out.parent)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"n up to {QUICK_MAX_N}, one short round (for tests)")
    p.add_argument("--mixers", default=None,
                   help="comma-separated names of conf/mixer/*.yaml (default: all of them)")
    p.add_argument("--max-n", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--min-run-time", type=float, default=None,
                   help=f"seconds timed per (mixer, n, phase, round) (default "
                        f"{DEFAULT_MIN_RUN_TIME}, {QUICK_MIN_RUN_TIME} with --quick)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"passes over all measurements, calls pooled (default "
                        f"{DEFAULT_ROUNDS}, 1 with --quick)")
    p.add_argument("--clock", choices=sorted(H.CLOCKS), default="wall")
    p.add_argument("--compare", default=",".join(DEFAULT_COMPARE),
                   help="comma-separated MIXER:BACKEND, the mixer again on another glr backend "
                        f"(n <= {COMPARE_MAX_N}); '' for none")
    p.add_argument("--max-call-s", type=float, default=MAX_CALL_S,
                   help="skip a point whose forward + backward, predicted from the series' "
                        "smaller n as n^2, exceeds this; one measured above it gets one pass "
                        f"(default {MAX_CALL_S:g}; 0 for no budget)")
    p.add_argument("--out", default="bench_out/mixers.json",
                   help="the JSON; time_vs_n.png beside it")
    p.add_argument("--from-json", default=None,
                   help="re-render the tables and plot of an existing result file, run nothing")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--strict", action="store_true", help="exit 1 when a measured target is missed")
    args = p.parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        plot(result, Path(args.from_json).parent)
    else:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        if args.rounds is not None and args.rounds < 1:
            p.error("--rounds must be >= 1")
        if args.max_call_s < 0:
            p.error(f"--max-call-s must be >= 0 (0: no budget), got {args.max_call_s}")
        names = None if args.mixers is None else [
            m.strip() for m in args.mixers.split(",") if m.strip()]
        compare = [c.strip() for c in args.compare.split(",") if c.strip()]
        from runners.paths import catalogue

        known = catalogue()
        for m in (names or []) + [c.partition(":")[0] for c in compare]:
            if m not in known:
                p.error(f"unknown mixer {m!r}; known (conf/mixer/*.yaml): {', '.join(known)}")
        result = run_bench(names, args.max_n, args.quick, args.threads, args.min_run_time,
                           args.out, args.rounds, args.clock, compare,
                           max_call_s=args.max_call_s or None)
        print(f"wrote {args.out} and {Path(args.out).parent / 'time_vs_n.png'} "
              f"({result['machine']['wall_s']} s)")
    return H.finish(result, markdown if args.markdown else print_report, args.strict)


if __name__ == "__main__":
    sys.exit(main())
