"""The MAD score (analysis/mad.py) and the (learning rate, weight decay) choice of a cell."""

from __future__ import annotations

import pytest
from analysis_helpers import make_result, write

from analysis.leaderboard import build_leaderboard, main
from analysis.mad import SCORE, mad_table

# setting -> task -> the (val, test) of attention and se_first at each (lr, weight decay);
# the best validation pair is what a cell reports
GRID = {
    ("mad-recall-base", "noisy_recall"): {
        "attention": {(1e-3, 0.0): (0.9, 0.8), (1e-3, 0.1): (0.95, 0.9)},
        "se_first": {(1e-3, 0.0): (0.5, 0.6), (1e-3, 0.1): (0.4, 0.7)},
    },
    ("mad-recall-v64", "noisy_recall"): {
        "attention": {(1e-3, 0.0): (0.7, 0.6), (3e-3, 0.0): (0.6, 0.65)},
        "se_first": {(1e-3, 0.0): (0.3, 0.2), (3e-3, 0.0): (0.35, 0.3)},
    },
    ("mad-memorize-base", "memorization"): {
        "attention": {(1e-3, 0.0): (0.2, 0.1)},
        "se_first": {(1e-3, 0.0): (0.9, 0.9)},
    },
    # not MAD's: counted in `mean`, not in the MAD score
    ("mq", "mqar"): {
        "attention": {(1e-3, 0.1): (0.1, 0.1)},
        "se_first": {(1e-3, 0.1): (1.0, 1.0)},
    },
}


@pytest.fixture
def results(tmp_path):
    for (setting, task), mixers in GRID.items():
        for mixer, cells in mixers.items():
            for (lr, wd), (val, test) in cells.items():
                for seed in (0, 1):
                    r = make_result(setting, mixer, seed, lr, val, test, task=task)
                    r["config"]["trainer"]["weight_decay"] = wd
                    r["config_hash"] += f"-wd{wd}"
                    write(tmp_path, r)
    return tmp_path


def test_a_cell_takes_the_best_validation_pair_of_rate_and_decay(results):
    board = build_leaderboard(results)
    # one row per mixer: the weight decay is pooled like the learning rate
    assert sorted(board.table.index) == ["attention", "se_first"]
    cell = board.cells.set_index(["row", "task_setting"])
    assert cell.loc[("attention", "mad-recall-base"), "mean"] == pytest.approx(0.9)
    assert cell.loc[("attention", "mad-recall-base"), "weight_decay"] == 0.1
    assert cell.loc[("se_first", "mad-recall-base"), "weight_decay"] == 0.0
    assert cell.loc[("se_first", "mad-recall-v64"), "lr"] == 3e-3
    assert cell.loc[("attention", "mad-recall-base"), "hparams"] == 2
    # picked on the test split (MAD's own analysis): the best test pair
    by_test = build_leaderboard(results, select_on="test_acc").cells.set_index(
        ["row", "task_setting"])
    assert by_test.loc[("se_first", "mad-recall-base"), "mean"] == pytest.approx(0.7)
    assert by_test.loc[("attention", "mad-recall-v64"), "mean"] == pytest.approx(0.65)


def test_mad_score_is_the_mean_over_tasks_of_the_mean_over_settings(results):
    board = build_leaderboard(results, rank_by="mad")
    table = mad_table(board)
    assert list(table.columns) == ["MAD recall", "MAD recall n", "MAD memorize",
                                   "MAD memorize n", SCORE]
    assert table.loc["attention", "MAD recall"] == pytest.approx((0.9 + 0.6) / 2)
    assert table.loc["se_first", "MAD recall"] == pytest.approx((0.6 + 0.3) / 2)
    assert table.loc["attention", SCORE] == pytest.approx(((0.9 + 0.6) / 2 + 0.1) / 2)
    assert table.loc["se_first", SCORE] == pytest.approx(((0.6 + 0.3) / 2 + 0.9) / 2)
    # se_first leads on the MAD score (0.675 against 0.425); mqar is left out of it
    assert board.row_labels == ["se_first", "attention"]
    assert board.scores == ["MAD recall", "MAD memorize", SCORE]
    only_mad = build_leaderboard(results, rank_by="mad", tasks=["noisy_recall", "memorization"])
    assert mad_table(only_mad).loc["attention", SCORE] == pytest.approx(0.425)


def test_rank_by_mad_orders_rows_against_the_mean(tmp_path):
    # attention wins the non-MAD setting by far: first on `mean`, second on the MAD score
    for setting, task, accs in [("mad-recall-base", "noisy_recall", (0.5, 0.6)),
                                ("mq", "mqar", (1.0, 0.0))]:
        for mixer, acc in zip(("attention", "se_first"), accs):
            write(tmp_path, make_result(setting, mixer, 0, 1e-3, acc, acc, task=task))
    assert build_leaderboard(tmp_path).row_labels == ["attention", "se_first"]
    assert build_leaderboard(tmp_path, rank_by="mad").row_labels == ["se_first", "attention"]


def test_rank_by_mad_without_mad_settings_says_so(tmp_path, capsys):
    write(tmp_path, make_result("mq", "attention", 0, 1e-3, 0.5, 0.5))
    with pytest.raises(ValueError, match="MAD score needs the settings"):
        build_leaderboard(tmp_path, rank_by="mad")
    with pytest.raises(ValueError, match="rank_by must be one of mean, mad"):
        build_leaderboard(tmp_path, rank_by="best")
    assert main([str(tmp_path), "--rank-by", "mad", "--no-plots"]) == 1
    assert "--rank-by mad" in capsys.readouterr().err


def test_cli_shows_the_score_columns(results, capsys, tmp_path):
    out = tmp_path / "board"
    assert main([str(results), "--rank-by", "mad", "--no-plots", "--out", str(out)]) == 0
    text = (out / "leaderboard.md").read_text()
    assert "MAD score" in text and "Ranked by the MAD score" in text
    assert "MAD score" in capsys.readouterr().out
