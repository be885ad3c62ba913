"""The demo (`make demo`): the smoke grid as a subprocess, then the leaderboard of its folder."""

from __future__ import annotations

import sys

from analysis import demo


def test_demo_runs_the_smoke_grid_then_the_leaderboard(monkeypatch, tmp_path, capsys):
    calls = {}
    monkeypatch.setattr(demo.subprocess, "call", lambda cmd: calls.setdefault("grid", cmd) and 0)
    monkeypatch.setattr(demo, "leaderboard", lambda dirs: calls.setdefault("board", dirs) and 0)
    rc = demo.main([f"results_dir={tmp_path}", "trainer.max_steps=5"])
    assert rc == 0
    grid = calls["grid"]
    assert grid[:4] == [sys.executable, "-m", "runners.train", "-m"]
    assert "grid=smoke" in grid and "hydra/launcher=joblib" in grid
    assert f"results_dir={tmp_path.resolve()}" in grid and grid[-1] == "trainer.max_steps=5"
    assert calls["board"] == [str(tmp_path.resolve())]
    hint = capsys.readouterr().out.strip().splitlines()[-1]
    # the hint names this interpreter, not a bare `python` that may be the system's
    shown = demo._shown
    assert f"{shown(sys.executable)} -m analysis.leaderboard {shown(tmp_path.resolve())}" in hint


def test_a_failed_grid_still_shows_the_table_and_returns_its_code(monkeypatch, tmp_path):
    shown = []
    monkeypatch.setattr(demo.subprocess, "call", lambda cmd: 3)
    monkeypatch.setattr(demo, "leaderboard", lambda dirs: shown.append(dirs) or 0)
    assert demo.main([f"results_dir={tmp_path}"]) == 3 and shown
