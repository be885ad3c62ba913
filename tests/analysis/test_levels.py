"""Scores per Chomsky level (analysis/levels.py)."""

from __future__ import annotations

import pytest
from analysis_helpers import make_result, write

from analysis.leaderboard import build_leaderboard
from analysis.levels import level_of, level_table, main

# (task, setting) -> test accuracy of (attention, first_order); two seeds each, the same value
CELLS = {("even_pairs", "ep"): (1.0, 0.9), ("cycle_navigation", "cn"): (0.8, 0.5),
         ("reverse_string", "rs"): (0.6, 0.2), ("duplicate_string", "ds"): (0.4, 0.1),
         ("mqar", "mq"): (0.3, 0.7)}


@pytest.fixture
def results(tmp_path):
    for (task, setting), accs in CELLS.items():
        for mixer, acc in zip(("attention", "first_order"), accs):
            for seed in (0, 1):
                r = make_result(setting, mixer, seed, 1e-3, acc, acc, task=task)
                if task != "mqar":
                    r["config"]["task"]["params"] = {"length": 8}
                write(tmp_path, r)
    return tmp_path


def test_levels_of_tasks():
    from analysis.levels import LEVELS
    from tasks.chomsky import LEVELS as TASK_LEVELS

    assert LEVELS == TASK_LEVELS
    assert level_of("even_pairs") == "regular" and level_of("state_tracking") == "regular"
    assert level_of("stack_manipulation") == "dcf" and level_of("bucket_sort") == "cs"
    assert level_of("mqar") is None and level_of("nope") is None and level_of(None) is None


def test_level_means_over_each_levels_settings(results):
    table = level_table(build_leaderboard(results))
    assert list(table.columns) == ["regular", "regular n", "regular solved", "dcf", "dcf n",
                                   "dcf solved", "cs", "cs n", "cs solved"]
    assert table.loc["attention", "regular"] == pytest.approx((1.0 + 0.8) / 2)
    assert table.loc["first_order", "regular"] == pytest.approx((0.9 + 0.5) / 2)
    assert table.loc["attention", "dcf"] == pytest.approx(0.6)
    assert table.loc["first_order", "cs"] == pytest.approx(0.1)
    assert (table["regular n"] == 2).all() and (table["cs n"] == 1).all()
    # solved: a cell at 0.9 or above (attention 1.0 on even_pairs; first_order 0.9 exactly)
    assert table["regular solved"].tolist() == [1, 1] and table["dcf solved"].tolist() == [0, 0]
    assert level_table(build_leaderboard(results), solved_at=0.75)["regular solved"].tolist() \
        == [2, 1]
    # mqar has no level: it changes no level's mean, though it ranks first_order first overall
    board = build_leaderboard(results, tasks=["even_pairs", "mqar"])
    assert list(level_table(board).columns) == ["regular", "regular n", "regular solved"]


def test_cli_prints_one_row_per_mixer(results, capsys):
    assert main([str(results), "--metric", "test_exact"]) == 0
    out = capsys.readouterr().out
    header, _, *rows = out.strip().splitlines()
    assert [c.strip() for c in header.strip("|").split("|")] == \
        ["row", "regular", "regular n", "regular solved", "dcf", "dcf n", "dcf solved", "cs",
         "cs n", "cs solved"]
    assert [r.split("|")[1].strip() for r in rows] == ["attention", "first_order"]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1:] == ["0.705", "2", "1", "0.130", "1", "0", "0.026", "1", "0"]  # its format
    assert main([str(results), "--task", "mqar"]) == 1
    assert main([str(results), "--solved-at", "nan"]) == 2
    assert "--solved-at" in capsys.readouterr().err
