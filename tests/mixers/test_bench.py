"""The mixer benchmark: structure of its output in --quick mode, and the exponent fit.
No wall-clock assertions: timings on a shared CI machine are noise."""

import json

import numpy as np
import pytest

from mixers import bench


def test_fit_exponent_recovers_known_exponents():
    ns = [256, 512, 1024, 2048, 4096, 8192]
    rng = np.random.default_rng(0)
    for p in (1.0, 1.5, 2.0):
        times = [3e-6 * n**p * np.exp(rng.normal(0, 0.02)) for n in ns]
        exp, used = bench.fit_exponent(ns, times)
        assert exp == pytest.approx(p, abs=0.05)
        assert used == [1024, 2048, 4096, 8192]  # fitted over n >= 1024 only


def test_fit_exponent_ignores_small_n_and_handles_too_few_points():
    # a flat overhead below 1024 must not bend the fit
    ns = [256, 512, 1024, 2048, 4096]
    times = [1.0, 1.0, 1024e-3, 2048e-3, 4096e-3]
    assert bench.fit_exponent(ns, times)[0] == pytest.approx(1.0, abs=1e-9)
    assert bench.fit_exponent([256, 512], [1.0, 2.0])[0] == pytest.approx(1.0)  # falls back
    assert bench.fit_exponent([256], [1.0])[0] is None


def test_plan_caps_quadratic_mixers_and_adds_the_reference():
    jobs = bench.plan(["attention", "pow2", "linear_attention"], list(bench.NS))
    by = {}
    for j in jobs:
        by.setdefault((j["mixer"], j["backend"]), []).append(j["n"])
    assert max(by[("attention", "sdpa")]) == 4096
    assert max(by[("pow2", "chunked")]) == 16384
    assert max(by[("pow2", "reference")]) == 4096
    assert ("linear_attention", "layer") in by


def test_targets_are_checked_from_records():
    recs = [{"mixer": "pow2", "backend": b, "n": 4096, "fwd_s": t, "fwdbwd_s": 2 * t,
             "peak_mem_bytes": m} for b, t, m in (("chunked", 0.1, 10), ("reference", 2.0, 1000))]
    fits = {"pow2": {"fwd": 1.0, "fwdbwd": 1.5}}
    t = bench.check_targets(recs, fits)
    assert t["pow2_speedup_fwd@4096"]["met"] is True
    assert t["pow2_speedup_fwd@4096"]["value"] == pytest.approx(20.0)
    assert t["pow2_memory_ratio@4096"]["met"] is True
    assert t["exponent_fwd:pow2"]["met"] is True
    assert t["exponent_fwdbwd:pow2"]["met"] is False
    assert t["exponent_fwd:sq1"]["met"] is None  # not measured


def test_quick_run_writes_json_and_plot(tmp_path):
    out = tmp_path / "mixers.json"
    rc = bench.main(["--quick", "--mixers", "first_order,pow2_cache", "--max-n", "1024",
                     "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"records", "fits", "machine", "targets", "fits_min", "fits_cpu"}
    recs = result["records"]
    assert {(r["mixer"], r["backend"], r["n"]) for r in recs} == {
        (m, "chunked", n) for m in ("first_order", "pow2_cache") for n in (256, 512, 1024)}
    for r in recs:
        assert "error" not in r and "memory_error" not in r, r
        assert set(r) >= {"mixer", "backend", "n", "fwd_s", "fwdbwd_s", "peak_mem_bytes"}
        assert r["fwd_s"] > 0 and r["fwdbwd_s"] > 0 and r["fwd_cpu_s"] > 0
        assert r["fwd_min_s"] <= r["fwd_s"] and len(r["fwd_runs"]) == r["repeats"] == 1
        assert r["peak_mem_bytes"] >= 0 and r["peak_mem_fwd_bytes"] >= 0
        if r["n"] == 1024:  # y, its gradient and dv, [1, 4, n, 32] each, are new memory: 1.5 MiB
            assert r["peak_mem_bytes"] > 2**20  # (RSS counters are exact to ~256 KiB only)
    for m in ("first_order", "pow2_cache"):
        assert set(result["fits"][m]) >= {"fwd", "fwdbwd"}
        assert isinstance(result["fits"][m]["fwd"], float)
    assert result["machine"]["threads"] == 1 and result["machine"]["memory_method"]
    assert result["targets"]["exponent_fwd:first_order"]["met"] in (True, False)
    assert result["targets"]["pow2_speedup_fwd@4096"]["met"] is None
    assert out.with_suffix(".png").stat().st_size > 0


def test_unknown_mixer_is_rejected():
    with pytest.raises(ValueError, match="unknown mixer"):
        bench.main(["--quick", "--mixers", "nope", "--out", "/nonexistent/x.json"])
