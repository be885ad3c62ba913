"""bench.harness: the exponent fit, isolated calls, timing and peak memory."""

import numpy as np
import pytest

from bench import harness as H


def test_fit_exponent_recovers_known_exponents():
    ns = [256, 512, 1024, 2048, 4096, 8192]
    rng = np.random.default_rng(0)
    for p in (1.0, 1.5, 2.0):
        times = [3e-6 * n**p * np.exp(rng.normal(0, 0.02)) for n in ns]
        exp, used = H.fit_exponent(ns, times)
        assert exp == pytest.approx(p, abs=0.05)
        assert used == [1024, 2048, 4096, 8192]  # fitted over n >= 1024 only


def test_fit_exponent_ignores_small_n_and_handles_too_few_points():
    # a flat overhead below 1024 must not bend the fit
    ns = [256, 512, 1024, 2048, 4096]
    times = [1.0, 1.0, 1024e-3, 2048e-3, 4096e-3]
    assert H.fit_exponent(ns, times)[0] == pytest.approx(1.0, abs=1e-9)
    assert H.fit_exponent([256, 512], [1.0, 2.0])[0] == pytest.approx(1.0)  # falls back
    assert H.fit_exponent([256], [1.0])[0] is None
    assert H.fit_exponent([1024, 2048], [None, 1.0])[0] is None


def test_time_calls_and_summary():
    runs = H.time_calls(lambda: sum(range(1000)), min_run_time=0.01)
    assert runs and all(t > 0 for t in runs)
    s = H.summarize_times(runs)
    assert s["min_s"] <= s["s"] and s["runs"] == len(runs)
    assert H.summarize_times([]) == {"s": None, "min_s": None, "runs": 0}
    assert all(t >= 0 for t in H.time_calls(lambda: None, min_run_time=0.01, clock="cpu"))


def test_run_isolated_returns_results_and_errors():
    assert H.run_isolated("json", "loads", {"s": "[1, 2]"}, timeout=120) == ([1, 2], None)
    res, err = H.run_isolated("json", "loads", {"s": "[1,"}, timeout=120)
    assert res is None and "JSONDecodeError" in err


def test_peak_rss_sees_a_large_allocation():
    """In a fresh process, as bench.step measures (in a long-lived test worker, memory that
    earlier tests freed may still be resident and serve the allocation without raising RSS)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = ("import json, torch; from bench import harness as H; "
            "print(json.dumps(H.peak_rss(lambda: torch.ones(16 * 2**20 // 4))))")  # 16 MiB, live
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    nbytes, method = json.loads(proc.stdout.strip().splitlines()[-1])
    assert method and nbytes > 8 * 2**20


def test_markdown_table_and_formats():
    md = H.markdown_table(["a", "b"], [["1", "2"]])
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()]
    assert cells[0] == ["a", "b"] and cells[2] == ["1", "2"] and set(cells[1][0]) <= set("-:")
    assert H.fmt_time(None) == "-" and H.fmt_time(0.5) == "500 ms" and H.fmt_time(2) == "2 s"
    assert H.fmt_mem(3 * 2**20) == "3 MiB" and H.fmt_exp(1.234) == "1.23"
    assert H.fmt_mem(1020 * 2**20) == "1020 MiB" and H.fmt_time(0.9999) == "1000 ms"
    info = H.machine_info(1)
    assert info["threads"] == 1 and info["torch"] and "loadavg_start" in info


def test_fla_is_preloaded_only_when_a_job_needs_it(monkeypatch):
    monkeypatch.setattr(H, "_PRELOAD", ["mixers"])
    H.preload_kinds(["glr", "expanded", "attention"])
    assert H._PRELOAD == ["mixers"]
    H.preload_kinds(iter(["glr", "fla", "fla"]))
    assert H._PRELOAD == ["mixers", "fla.layers"]
