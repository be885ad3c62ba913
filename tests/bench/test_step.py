"""bench.step, one training step per mixer: the runner's model, ratios to attention, targets, and
the JSON written after every mixer. No wall-clock assertions."""

import json

import pytest

from bench import step


def test_a_cheap_run_writes_ratios_memory_and_targets(tmp_path):
    out = tmp_path / "step.json"
    rc = step.main(["--mixers", "se_first", "--ns", "16", "--batch", "2", "--threads", "1",
                    "--min-run-time", "0.01", "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["complete"] is True
    recs = {r["mixer"]: r for r in result["records"]}
    assert list(recs) == ["attention", "se_first"]  # the baseline is added, and runs first
    for r in recs.values():
        assert "error" not in r and r["step_s"] > 0 and r["peak_mem_bytes"] >= 0, r
    assert recs["attention"]["ratio"] == 1.0
    assert recs["se_first"]["ratio"] == pytest.approx(
        recs["se_first"]["step_s"] / recs["attention"]["step_s"])
    assert result["targets"]["se_first/deltanet@512"]["met"] is None  # not measured here
    assert result["settings"]["model"]["short_conv"] == 4
    assert step.main(["--from-json", str(out), "--markdown"]) == 0


def test_the_short_convolution_goes_on_qkv_only_where_the_kind_takes_it():
    assert step.mixer_config({"kind": "expanded"}, 4)["short_conv_on"] == "qkv"
    assert "short_conv" not in step.mixer_config({"kind": "fla", "params": {}}, 4)
    assert "short_conv" not in step.mixer_config({"kind": "expanded"}, 0)


def test_targets_are_ratios_within_the_run():
    recs = [{"mixer": "se_first", "n": 512, "step_s": 1.1},
            {"mixer": "deltanet", "n": 512, "step_s": 1.0},
            {"mixer": "se_pow2_cache", "n": 512, "step_s": 3.0},
            {"mixer": "attention", "n": 512, "step_s": 1.0}]
    t = step.check_targets(recs)
    assert t["se_first/deltanet@512"]["met"] is True
    assert t["se_pow2_cache/attention@512"]["met"] is False
    assert t["se_first/deltanet@1024"]["met"] is None


def test_the_command_line_rejects_bad_values(capsys):
    with pytest.raises(SystemExit):
        step.main(["--mixers", "nope", "--out", ""])
    assert "unknown mixer 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        step.main(["--batch", "0", "--out", ""])
    assert "--batch must be >= 1" in capsys.readouterr().err


def test_a_point_predicted_above_the_cap_is_not_run_and_says_why(tmp_path):
    out = tmp_path / "step.json"
    rc = step.main(["--mixers", "attention", "--ns", "8", "16", "--batch", "1", "--threads",
                    "1", "--min-run-time", "0.01", "--max-step-s", "1e-9", "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    by_n = {r["n"]: r for r in result["records"]}
    assert by_n[8]["step_s"] > 0 and "skipped" not in by_n[8]  # nothing to predict it from
    assert by_n[16]["step_s"] is None and by_n[16]["runs"] == []
    assert "> --max-step-s 1e-09" in by_n[16]["skipped"]
    assert result["settings"]["max_step_s"] == 1e-9
    header, rows = step.table(result)
    assert rows[0][header.index("16: step")] == "skipped"
    md = step.markdown(result)
    assert "not run" in md and by_n[16]["skipped"] in md


def test_the_cap_predicts_as_n_squared_and_a_slow_point_gets_one_pass():
    recs = [{"mixer": "m", "n": 128, "step_s": 1.0}, {"mixer": "m", "n": 512, "step_s": None},
            {"mixer": "m", "n": 1024, "step_s": None}, {"mixer": "x", "n": 512, "step_s": 9.0}]
    assert step.H.predicted_time(recs[1], recs, lambda r: r["mixer"] == "m",
                                 "step_s") == (16.0, 128)
    assert step.skip_reason(recs[1], recs, 0, None) is None  # no cap, no skipping
    assert step.skip_reason(recs[1], recs, 0, 16.0) is None  # at the cap: run
    assert step.skip_reason(recs[2], recs, 0, 16.0).startswith("predicted 64 s")
    assert step.skip_reason(recs[2], recs, 1, 100.0) == recs[2]["skipped"]  # stays skipped
    assert step.skip_reason(recs[3], recs, 0, 5.0) is None  # measured: its first pass runs
    assert step.skip_reason(recs[3], recs, 1, 5.0).startswith("one pass only")


def test_only_the_targets_of_mixers_in_the_run_are_shown():
    result = {"records": [{"mixer": "attention", "n": 512}, {"mixer": "se_pow2_cache", "n": 512}],
              "targets": step.check_targets([])}
    names = [row[0] for row in step._target_rows(result)]
    assert names == ["se_pow2_cache/attention@512", "se_pow2_cache/attention@1024"]
