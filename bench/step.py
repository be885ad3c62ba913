"""What one training step of each mixer costs: `python -m bench.step` (a stage of `make bench`).

    python -m bench.step                         # cheap: n = 128, 512, batch 8, one pass
    python -m bench.step --full                  # n = 128, 512, 1024, batch 64, two passes
    python -m bench.step --mixers attention,se_first,deltanet --ns 512 --batch 64 --threads 2
    python -m bench.step --from-json bench_out/step.json --markdown   # re-render only

One step is what the runner does per batch: the forward of the runner's own model
(`runners.model.LanguageModel` around the mixer), the cross-entropy loss, its backward and one
AdamW step. The model is the second edition's (docs/results/paper_table1.md): d_model 64, one
head, 2 layers, no MLP, vocabulary 256, and the kernel-4 short convolution on q, k, v for every
kind that takes it there (glr, linear_attention, expanded; the fla baselines carry their own).
Every knob is an option.

Each (mixer, n) is timed in a fresh process (`bench.harness.run_isolated`): one warm-up step,
then `torch.utils.benchmark` (`bench.harness.time_calls`) for --min-run-time seconds; with
--rounds > 1 every pass runs each mixer once more in a fresh process, and the figures of all
passes are pooled (median: `step_s`). The peak memory of one step (above what is live before
it, `bench.harness.peak_rss`) is measured once, in a process of its own. Ratios are to the
baseline (attention) at the same n in the same run: on a shared machine absolute times move with
the neighbours' load, ratios within one run much less, so the targets are ratios.

With --max-step-s (20 s under --full) a (mixer, n) whose step, predicted from the mixer's
smaller n, exceeds the cap is not run (listed with the reason), and one measured above it gets
a single pass: the whole sweep then ends in about an hour instead of most of a day.

The JSON (--out) is rewritten after every mixer, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench import harness as H

CHEAP = {"ns": (128, 512), "batch": 8, "rounds": 1, "min_run_time": 0.5, "max_step_s": None}
#: --full caps the step at 20 s: a point predicted above it is skipped (log-linear attention's
#: step at n = 1024, batch 64, would take about 20 minutes and 70 GiB), one measured above it gets
#: no second pass
FULL = {"ns": (128, 512, 1024), "batch": 64, "rounds": 2, "min_run_time": 2.0, "max_step_s": 20.0}
MODEL = {"d_model": 64, "n_layers": 2, "num_heads": 1, "mlp_ratio": 0, "vocab_size": 256,
         "short_conv": 4}
BASELINE = "attention"
DEFAULT_OUT = "bench_out/step.json"
LR = 3e-3

#: the targets of the state-expanded op's CPU path (docs/benchmarks.md): (mixer, reference
#: mixer, n, largest ratio). Vector patterns: the glr kinds with a recurrence.
TARGETS = (
    *(("se_first", "deltanet", n, 1.2) for n in (512, 1024)),
    *((m, BASELINE, 512, 2.0) for m in ("se_pow2_cache", "se_sq1_cache")),
    *((m, BASELINE, 1024, 1.0) for m in ("se_pow2_cache", "se_sq1_cache")),
    *((m, BASELINE, n, 1.5) for m in ("first_order", "kth_order", "pow2", "pow2_cache", "sq1",
                                      "sq1_cache") for n in (512, 1024)),
)

H.set_preload(["mixers", "runners.model"])


# ----------------------------------------------------------------------------------------------
# inside the measuring processes


def mixer_config(cfg: dict, short_conv: int) -> dict:
    """The catalogue entry as the step's model builds it: the short convolution on q, k, v for
    kinds that take it there, none for the others (the fla baselines carry their own)."""
    import mixers

    cfg = dict(cfg)
    if short_conv and mixers.get_kind(cfg.get("kind", "glr")).qkv_conv:
        cfg.update(short_conv=short_conv, short_conv_on="qkv")
    return cfg


def _setup(cfg: dict, n: int, batch: int, model: dict, threads: int, seed: int = 0):
    """-> step(): one forward, loss, backward and AdamW step of the runner's model."""
    import torch
    import torch.nn.functional as F

    from runners.model import LanguageModel

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    net = LanguageModel(model["vocab_size"], n, mixer_config(cfg, model["short_conv"]),
                        d_model=model["d_model"], n_layers=model["n_layers"],
                        num_heads=model["num_heads"], mlp_ratio=model["mlp_ratio"])
    opt = torch.optim.AdamW(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed + n)
    tokens = torch.randint(model["vocab_size"], (batch, n + 1), generator=gen)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x).flatten(0, 1), y.flatten())
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def measure_time(cfg: dict, n: int, batch: int, model: dict, threads: int,
                 min_run_time: float) -> dict:
    """{runs: seconds per step (one figure per timed block), loadavg_1m}."""
    step = _setup(cfg, n, batch, model, threads)
    step()  # lazy initialisation and AdamW's state, not timed
    return {"runs": H.time_calls(step, min_run_time, threads), "loadavg_1m": os.getloadavg()[0]}


def measure_memory(cfg: dict, n: int, batch: int, model: dict, threads: int) -> dict:
    """{peak_mem_bytes}: the RSS high-water mark of one step above what was live (fresh process,
    glibc told to hand freed blocks back, after a warm-up step)."""
    malloc = H.strict_malloc()
    step = _setup(cfg, n, batch, model, threads)
    step()
    peak, method = H.peak_rss(step)
    return {"peak_mem_bytes": peak, "memory_method": method + malloc}


# ----------------------------------------------------------------------------------------------
# the driver


def plan(names=None, log=print) -> tuple[dict, dict]:
    """-> ({mixer: cfg} in run order, the baseline first; {mixer: reason} skipped). A mixer is
    skipped when its model does not build here (a missing package, a GPU-only kind)."""
    import mixers
    from runners.paths import catalogue

    cat = catalogue()
    names = list(cat) if names is None else list(names)
    unknown = [m for m in names if m not in cat]
    if unknown:
        raise ValueError(f"unknown mixer(s) {unknown}; known: {sorted(cat)}")
    if BASELINE in cat and BASELINE not in names:
        names.insert(0, BASELINE)  # the ratios need it
    names.sort(key=lambda m: m != BASELINE)
    run, skipped = {}, {}
    for name in names:
        cfg = dict(cat[name], name=name)
        try:
            mixers.build_mixer(mixer_config(cfg, MODEL["short_conv"]), 64, 1)
        except Exception as err:  # noqa: BLE001 - a mixer that cannot run here is reported
            skipped[name] = f"{type(err).__name__}: {err}".splitlines()[0]
            log(f"skipped {name}: {skipped[name]}")
            continue
        run[name] = cfg
    return run, skipped


def skip_reason(rec, records, rnd: int, max_step_s: float | None) -> str | None:
    """Why this (mixer, n) is not measured in pass `rnd` (`bench.harness.budget_skip` on the
    step time), or None."""
    return H.budget_skip(rec, records, lambda r: r["mixer"] == rec["mixer"], "step_s", rnd,
                         max_step_s, "--max-step-s")


def ratios(records) -> None:
    """Each record's `ratio`: its step time over the baseline's at the same n (None without)."""
    base = {r["n"]: r["step_s"] for r in records if r["mixer"] == BASELINE}
    for r in records:
        b = base.get(r["n"])
        r["ratio"] = r["step_s"] / b if r.get("step_s") and b else None


def check_targets(records) -> dict:
    """{name: {value, bound, met}}: met None where the run did not measure both mixers."""
    find = {(r["mixer"], r["n"]): r.get("step_s") for r in records}
    out = {}
    for mixer, ref, n, bound in TARGETS:
        a, b = find.get((mixer, n)), find.get((ref, n))
        val = a / b if a and b else None
        out[f"{mixer}/{ref}@{n}"] = {"value": val, "bound": bound,
                                     "met": None if val is None else val <= bound}
    return out


def run_bench(names=None, ns=CHEAP["ns"], batch=CHEAP["batch"], threads: int = 2,
              rounds=CHEAP["rounds"], min_run_time=CHEAP["min_run_time"], model=None,
              out: Path | str | None = DEFAULT_OUT, log=print,
              max_step_s: float | None = CHEAP["max_step_s"]) -> dict:
    model = {**MODEL, **(model or {})}
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # read by the forkserver at its start
        os.environ.setdefault(k, str(threads))
    run, skipped = plan(names, log)
    H.preload_kinds(cfg.get("kind", "glr") for cfg in run.values())
    machine = H.machine_info(threads, git_paths=("mixers", "bench", "runners/model.py"))
    settings = {"ns": list(ns), "batch": batch, "threads": threads, "rounds": rounds,
                "min_run_time": min_run_time, "max_step_s": max_step_s, "model": model, "lr": LR,
                "baseline": BASELINE}
    records = [{"mixer": m, "kind": cfg.get("kind", "glr"), "n": n, "step_s": None,
                "min_s": None, "runs": [], "peak_mem_bytes": None, "loadavg_1m": []}
               for m, cfg in run.items() for n in ns]
    result = {"records": records, "skipped": skipped, "machine": machine, "settings": settings,
              "targets": {}, "complete": False}
    t_start = time.perf_counter()
    for rnd in range(rounds):
        for mixer, cfg in run.items():
            for rec in (r for r in records if r["mixer"] == mixer):
                why = skip_reason(rec, records, rnd, max_step_s)
                if why:
                    log(f"[{rnd + 1}/{rounds}] {mixer:>20} n={rec['n']:>5}  not run: {why}")
                    continue
                t0 = time.perf_counter()
                args = {"cfg": cfg, "n": rec["n"], "batch": batch, "model": model,
                        "threads": threads}
                res, err = H.run_isolated("bench.step", "measure_time",
                                          {**args, "min_run_time": min_run_time})
                if err:
                    rec.setdefault("error", err)
                else:
                    rec["runs"] += res["runs"]
                    s = H.summarize_times(rec["runs"])
                    rec.update(step_s=s["s"], min_s=s["min_s"])
                    rec["loadavg_1m"].append(res["loadavg_1m"])
                merr = None
                if rnd == 0 and not err:
                    mem, merr = H.run_isolated("bench.step", "measure_memory", args)
                    if merr:
                        rec["memory_error"] = merr
                    else:
                        machine["memory_method"] = mem.pop("memory_method")
                        rec.update(mem)
                ratios(records)
                ratio = "" if rec.get("ratio") is None else f"  {rec['ratio']:.2f}x {BASELINE}"
                log(f"[{rnd + 1}/{rounds}] {mixer:>20} n={rec['n']:>5}  "
                    f"step {H.fmt_time(rec['step_s']):>9}{ratio}  "
                    f"peak {H.fmt_mem(rec['peak_mem_bytes']):>9}  "
                    f"({time.perf_counter() - t0:.1f} s){'  ' + err if err else ''}"
                    f"{'  memory: ' + merr if merr else ''}")
            result["targets"] = check_targets(records)
            machine["wall_s"] = round(time.perf_counter() - t_start, 1)
            write(result, out)  # after every mixer: a run cut short keeps what it measured
    machine["loadavg_end"] = list(os.getloadavg())
    result["complete"] = True
    write(result, out)
    return result


def write(result, out) -> None:
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))


# ----------------------------------------------------------------------------------------------
# output


def table(result) -> tuple[list[str], list[list[str]]]:
    """One row per mixer: step time and ratio to the baseline per n, then peak memory per n."""
    ns = result["settings"]["ns"]
    header = (["mixer"] + [f"{n}: step" for n in ns] + [f"{n}: / {BASELINE}" for n in ns]
              + [f"{n}: peak" for n in ns])
    rows = []
    for mixer in dict.fromkeys(r["mixer"] for r in result["records"]):
        recs = {r["n"]: r for r in result["records"] if r["mixer"] == mixer}
        row = [mixer]
        row += ["error" if recs[n].get("error") else "skipped" if recs[n].get("skipped")
                else H.fmt_time(recs[n]["step_s"]) for n in ns]
        row += ["-" if recs[n].get("ratio") is None else f"{recs[n]['ratio']:.2f}" for n in ns]
        row += [H.fmt_mem(recs[n]["peak_mem_bytes"]) for n in ns]
        rows.append(row)
    return header, rows


def _target_rows(result):
    """The targets whose two mixers were in this run (measured or not)."""
    met = {True: "met", False: "MISSED", None: "not measured"}
    ran = {r["mixer"] for r in result["records"]}
    return [[name, "-" if t["value"] is None else f"{t['value']:.2f}", f"<= {t['bound']}",
             met[t["met"]]] for name, t in result["targets"].items()
            if set(name.split("@")[0].split("/")) <= ran]


def _skipped_points(result):
    return [[r["mixer"], str(r["n"]), r["skipped"]] for r in result["records"]
            if r.get("skipped")]


def markdown(result) -> str:
    parts = [H.markdown_table(*table(result))]
    if _target_rows(result):
        parts += ["", H.markdown_table(["target (step time ratio)", "value", "bound", "status"],
                                       _target_rows(result))]
    if _skipped_points(result):
        parts += ["", H.markdown_table(["not run", "n", "why"], _skipped_points(result))]
    if result.get("skipped"):
        parts += ["", H.markdown_table(["skipped", "reason"],
                                       [[m, why] for m, why in result["skipped"].items()])]
    return "\n".join(parts) + "\n"


def print_report(result) -> None:
    s = result["settings"]
    H.print_table(f"one training step (batch {s['batch']}, {s['threads']} threads, median)",
                  *table(result))
    if _target_rows(result):
        H.print_table("targets", ["target (step time ratio)", "value", "bound", "status"],
                      _target_rows(result))
    for mixer, n, why in _skipped_points(result):
        print(f"not run {mixer} n={n}: {why}")
    for m, why in result.get("skipped", {}).items():
        print(f"skipped {m}: {why}")
    for r in result["records"]:
        if r.get("error"):
            print(f"error {r['mixer']} n={r['n']}: {r['error']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.step", description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true",
                   help=f"the whole sweep: n = {FULL['ns']}, batch {FULL['batch']}, "
                        f"{FULL['rounds']} passes of {FULL['min_run_time']} s")
    p.add_argument("--mixers", default=None,
                   help="comma-separated names of conf/mixer/*.yaml (default: all; the "
                        f"baseline {BASELINE} is always added)")
    p.add_argument("--ns", type=int, nargs="+", default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--rounds", type=int, default=None, help="passes, figures pooled")
    p.add_argument("--min-run-time", type=float, default=None,
                   help="seconds timed per (mixer, n, pass)")
    for key in ("d_model", "n_layers", "num_heads", "mlp_ratio", "short_conv"):
        p.add_argument(f"--{key.replace('_', '-')}", type=int, default=MODEL[key],
                       help=f"model (default {MODEL[key]})")
    p.add_argument("--max-step-s", type=float, default=None,
                   help="skip a (mixer, n) whose step, predicted from the mixer's smaller n as "
                        "n^2, exceeds this; one measured above it gets one pass (--full: "
                        f"{FULL['max_step_s']:g}; default: none)")
    p.add_argument("--out", default=DEFAULT_OUT, help="the JSON ('' for none)")
    p.add_argument("--from-json", default=None, help="re-render an existing result, run nothing")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--strict", action="store_true", help="exit 1 when a measured target is missed")
    args = p.parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
    else:
        base = FULL if args.full else CHEAP
        ns = args.ns or base["ns"]
        for name, val in (("--threads", args.threads), ("--batch", args.batch),
                          ("--rounds", args.rounds), ("--ns", min(ns))):
            if val is not None and val < 1:
                p.error(f"{name} must be >= 1, got {val}")
        for name, val in (("--min-run-time", args.min_run_time),
                          ("--max-step-s", args.max_step_s)):
            if val is not None and val <= 0:
                p.error(f"{name} must be > 0, got {val}")
        from runners.paths import catalogue

        names = None if args.mixers is None else [
            m.strip() for m in args.mixers.split(",") if m.strip()]
        known = catalogue()
        for m in names or []:
            if m not in known:
                p.error(f"unknown mixer {m!r}; known (conf/mixer/*.yaml): {', '.join(known)}")
        model = {k: getattr(args, k) for k in ("d_model", "n_layers", "num_heads", "mlp_ratio",
                                               "short_conv")}
        result = run_bench(names, ns, args.batch or base["batch"], args.threads,
                           args.rounds or base["rounds"],
                           args.min_run_time or base["min_run_time"], model, args.out,
                           max_step_s=args.max_step_s or base["max_step_s"])
        print(f"wrote {args.out} ({result['machine']['wall_s']} s)" if args.out else
              f"({result['machine']['wall_s']} s)")
    return H.finish(result, markdown if args.markdown else print_report, args.strict)


if __name__ == "__main__":
    sys.exit(main())
