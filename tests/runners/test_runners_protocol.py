"""Zoology's protocol through the runner: a training mixture, a test list, per-setting metrics."""

from __future__ import annotations

import math

import pytest

from runners.train import run

TRAIN = "+task.train_settings={a-n16-kv2: {seq_len: 16, num_kv_pairs: 2}, b-n32-kv4: {seq_len: 32, num_kv_pairs: 4}}"  # noqa: E501
TEST = "+task.test_settings={n32-kv4: {seq_len: 32, num_kv_pairs: 4}, n64-kv8: {seq_len: 64, num_kv_pairs: 8}, n64-kv4: {seq_len: 64, num_kv_pairs: 4}}"  # noqa: E501


def test_mixture_run_reports_every_test_setting(compose, tiny, tmp_path, read_results):
    ret = run(compose([*tiny, "task.params.vocab_size=32", TRAIN, TEST, "task.setting=gen",
                       f"results_dir={tmp_path}"]))
    assert ret["status"] == "ok", ret
    (r,) = read_results(tmp_path)
    assert r["status"] == "ok", r["error"]
    m = r["metrics"]
    labels = ("n32-kv4", "n64-kv8", "n64-kv4")
    for label in labels:
        for key in ("test_acc", "test_exact", "test_loss"):
            assert isinstance(m[f"{key}@{label}"], float), (key, label)
        assert any(k.startswith("slice_acc/") and k.endswith(f"@{label}") for k in m)
    # the pooled test accuracy is the token-weighted mean of the settings' (32 examples each;
    # 4, 8 and 4 scored tokens per example)
    weights = {"n32-kv4": 4, "n64-kv8": 8, "n64-kv4": 4}
    pooled = sum(w * m[f"test_acc@{label}"] for label, w in weights.items()) / 16
    assert math.isclose(m["test_acc"], pooled, rel_tol=1e-5, abs_tol=1e-6)
    assert r["theory"]["seq_len"] == 64  # the model holds the longest test setting
    assert r["task_setting"] == "gen"


def test_plain_runs_have_no_setting_metrics(compose, tiny, tmp_path, read_results):
    run(compose([*tiny, f"results_dir={tmp_path}"]))
    (r,) = read_results(tmp_path)
    assert not any("@" in k for k in r["metrics"])


def test_bad_setting_is_named(compose, tiny, tmp_path):
    bad = "+task.test_settings={short: {seq_len: 4, num_kv_pairs: 2}}"
    with pytest.raises(ValueError, match="test_settings.short.*seq_len"):
        run(compose([*tiny, bad, f"results_dir={tmp_path}"]))


def test_one_test_setting_without_a_training_mixture(compose, tiny, tmp_path, read_results):
    # train on params alone (seq_len 16), test on one longer setting: a single test loader
    longer = "+task.test_settings={n32-kv2: {seq_len: 32}}"
    assert run(compose([*tiny, longer, f"results_dir={tmp_path}"]))["status"] == "ok"
    (r,) = read_results(tmp_path)
    m = r["metrics"]
    assert m["test_acc"] == m["test_acc@n32-kv2"] and m["test_exact"] == m["test_exact@n32-kv2"]
    assert r["theory"]["seq_len"] == 32
