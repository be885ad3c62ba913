"""bench.ops, the mixer benchmark: the plan comes from the catalogue (conf/mixer/*.yaml) and the
layers' own theory, and a --quick run writes its JSON. No wall-clock assertions: timings on a
shared CI machine are noise."""

import json

import pytest

import runners.paths
from bench import ops


def _by_series(jobs):
    by = {}
    for j in jobs:
        by.setdefault((j["mixer"], j["backend"]), []).append(j["n"])
    return by


def test_plan_covers_the_catalogue_caps_quadratic_mixers_and_adds_the_reference():
    jobs, theory, skipped = ops.plan(ns=ops.NS, log=lambda *_: None)
    assert set(theory) | set(skipped) == set(runners.paths.catalogue())
    by = _by_series(jobs)
    assert max(by[("attention", "auto")]) == 4096
    assert max(by[("dense_recurrence", "auto")]) == 4096
    assert max(by[("pow2", "auto")]) == 16384
    assert max(by[("pow2", "reference")]) == 4096
    assert ("linear_attention", "auto") in by


def test_theory_exponents_follow_the_patterns():
    _, theory, _ = ops.plan(["first_order", "kth_order", "pow2", "sq1", "dense_recurrence",
                             "attention", "linear_attention"], log=lambda *_: None)
    e = {m: t["exponent"] for m, t in theory.items()}
    for m in ("first_order", "kth_order", "linear_attention"):
        assert e[m] == pytest.approx(1.0, abs=0.02)
    assert 1.05 < e["pow2"] < 1.2  # n log n
    assert 1.4 < e["sq1"] < 1.6  # n sqrt n
    for m in ("dense_recurrence", "attention"):
        assert e[m] == pytest.approx(2.0, abs=0.02)
    assert theory["sq1"]["bound"] == ops.exponent_bound(e["sq1"])


def test_a_new_yaml_is_benchmarked_and_a_broken_one_is_skipped(monkeypatch):
    cat = {"hybrid": {"name": "hybrid", "kind": "glr", "direct": "window(4)",
                      "recurrent": "k**2 + 2", "cache_efficient": True},
           "broken": {"name": "broken", "kind": "no_such_kind"}}
    monkeypatch.setattr(runners.paths, "catalogue", lambda *a, **k: cat)
    jobs, theory, skipped = ops.plan(ns=[256], log=lambda *_: None)
    assert [(j["mixer"], j["backend"], j["n"]) for j in jobs] == [("hybrid", "auto", 256)]
    assert "hybrid" in theory and "no_such_kind" in skipped["broken"]
    with pytest.raises(ValueError, match="unknown mixer"):
        ops.plan(["nope"], log=lambda *_: None)


def test_targets_are_checked_from_records():
    recs = [{"mixer": "pow2", "backend": b, "n": 4096, "fwd_s": t, "fwdbwd_s": 2 * t,
             "peak_mem_bytes": m} for b, t, m in (("auto", 0.1, 10), ("reference", 2.0, 1000))]
    fits = {"pow2": {"fwd": 1.0, "fwdbwd": 1.5, "ns": [1024, 2048, 4096]},
            "sq1_cache": {"fwd": 1.5, "fwdbwd": 1.5, "ns": [256, 512]}}  # too small to check
    theory = {"pow2": {"exponent": 1.1, "bound": ops.exponent_bound(1.1)},
              "sq1": {"exponent": 1.5, "bound": ops.exponent_bound(1.5)},
              "sq1_cache": {"exponent": 1.5, "bound": ops.exponent_bound(1.5)}}
    t = ops.check_targets(recs, fits, theory)
    assert t["pow2_speedup_fwd@4096"]["met"] is True
    assert t["pow2_speedup_fwd@4096"]["value"] == pytest.approx(20.0)
    assert t["pow2_memory_ratio@4096"]["met"] is True
    assert t["exponent_fwd:pow2"]["met"] is True
    assert t["exponent_fwdbwd:pow2"]["met"] is False
    assert t["exponent_fwd:sq1"]["met"] is None  # not measured
    assert t["exponent_fwd:sq1_cache"]["met"] is None and t["exponent_fwd:sq1_cache"]["value"]


def test_quick_run_writes_json_and_plot(tmp_path):
    out = tmp_path / "mixers.json"
    rc = ops.main(["--quick", "--mixers", "first_order,pow2", "--max-n", "512",
                   "--min-run-time", "0.005", "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"records", "fits", "fits_min", "theory", "skipped", "machine",
                           "targets", "settings"}
    recs = result["records"]
    assert {(r["mixer"], r["backend"], r["n"]) for r in recs} == {
        (m, b, n) for m, b in (("first_order", "auto"), ("pow2", "auto"), ("pow2", "reference"))
        for n in (256, 512)}
    for r in recs:
        assert "error" not in r and "memory_error" not in r, r
        assert r["fwd_s"] > 0 and r["fwdbwd_s"] > 0 and r["fwd_min_s"] <= r["fwd_s"]
        assert r["peak_mem_bytes"] >= 0 and r["peak_mem_fwd_bytes"] >= 0
    assert set(result["fits"]) == {"first_order", "pow2", "pow2[reference]"}
    assert isinstance(result["fits"]["pow2"]["fwd"], float)
    assert result["machine"]["threads"] == 1 and result["machine"]["memory_method"]
    assert result["targets"]["exponent_fwd:first_order"]["met"] is None  # n < 1024 only
    assert result["targets"]["pow2_speedup_fwd@4096"]["met"] is None
    assert (tmp_path / "time_vs_n.png").stat().st_size > 0
    assert ops.main(["--from-json", str(out), "--markdown"]) == 0
    assert result["complete"] is True


def test_the_json_is_written_after_every_mixer(tmp_path, monkeypatch):
    # a run stopped after its first mixer keeps that mixer's records
    out = tmp_path / "mixers.json"
    calls = []

    def fake(module, fn, kwargs, timeout=None):
        calls.append(kwargs["cfg"]["name"])
        if len(set(calls)) > 1:
            raise KeyboardInterrupt
        if fn == "measure_time":
            return {"fwd_runs": [0.1], "fwdbwd_runs": [0.2], "loadavg_1m": 0.0}, None
        return {"peak_mem_fwd_bytes": 1, "peak_mem_bytes": 2, "memory_method": "x"}, None

    monkeypatch.setattr(ops.H, "run_isolated", fake)
    with pytest.raises(KeyboardInterrupt):
        ops.run_bench(["first_order", "pow2"], max_n=512, quick=True, compare=(), out=out,
                      log=lambda *_: None)
    partial = json.loads(out.read_text())
    assert partial["complete"] is False
    done = [r for r in partial["records"] if r["fwd_s"] is not None]
    assert {r["mixer"] for r in done} == {"first_order"} and len(done) == 2


def test_the_command_line_rejects_an_unknown_mixer(capsys):
    with pytest.raises(SystemExit):
        ops.main(["--quick", "--mixers", "nope", "--out", "/nonexistent/x.json"])
    assert "unknown mixer 'nope'" in capsys.readouterr().err


def test_a_point_predicted_over_the_budget_is_not_run_and_a_slow_one_gets_one_pass(
        tmp_path, monkeypatch):
    # fake timings against a 2 s budget: pow2's forward + backward 0.4 s at n = 256 (predicted
    # 1.6 s at 512: run), 3 s at 512 (over: one pass), so 12 s predicted at 1024 (not run);
    # first_order 0.1 s everywhere
    calls = []

    def fake(module, fn, kwargs, timeout=None):
        name, n = kwargs["cfg"]["name"], kwargs["n"]
        calls.append((fn, name, n))
        if fn == "measure_time":
            t = {256: 0.4, 512: 3.0}[n] if name == "pow2" else 0.1
            return {"fwd_runs": [t / 3], "fwdbwd_runs": [t], "loadavg_1m": 0.0}, None
        return {"peak_mem_fwd_bytes": 1, "peak_mem_bytes": 2, "memory_method": "x"}, None

    monkeypatch.setattr(ops.H, "run_isolated", fake)
    out = tmp_path / "mixers.json"
    result = ops.run_bench(["first_order", "pow2"], max_n=1024, rounds=2, compare=(), out=out,
                           log=lambda *_: None, max_call_s=2.0)
    timed = [(name, n) for fn, name, n in calls if fn == "measure_time"]
    assert timed.count(("pow2", 256)) == 2 and timed.count(("pow2", 512)) == 1
    assert ("pow2", 1024) not in timed and timed.count(("first_order", 1024)) == 2
    rec = {(r["mixer"], r["n"]): r for r in result["records"]}
    assert rec[("pow2", 1024)]["fwdbwd_s"] is None
    assert rec[("pow2", 1024)]["skipped"].startswith("predicted 12 s (n = 512's")
    assert rec[("pow2", 512)]["rounds"] == 1 and "skipped" not in rec[("pow2", 512)]
    assert result["settings"]["max_call_s"] == 2.0
    fwdbwd = next(rows for title, _, rows in ops.tables(result) if "backward" in title)
    assert next(r for r in fwdbwd if r[0] == "pow2")[4] == "skipped"
