"""The length-generalization score and plot (analysis/lengthgen.py)."""

from __future__ import annotations

import math

import pytest
from analysis_helpers import make_result, write

from analysis import lengthgen as lg
from analysis.leaderboard import build_leaderboard, main
from analysis.results import load_results

TRAIN = {"n8": {"copy_len": 4}, "n16": {"copy_len": 8}}
TEST = {"n16": {"copy_len": 8}, "n32": {"copy_len": 16}, "n64": {"copy_len": 32}}


def test_score_is_the_mean_above_the_longest_training_length():
    metrics = {"test_acc@n16": 1.0, "test_acc@n32": 0.5, "test_acc@n64": 0.2,
               "test_exact@n16": 1.0, "test_exact@n32": 0.25, "test_exact@n64": 0.0}
    train, test = {"n8": 8, "n16": 16}, {"n16": 16, "n32": 32, "n64": 64}
    assert lg.score(metrics, train, test) == pytest.approx(0.35)
    assert lg.score(metrics, train, test, "test_exact") == pytest.approx(0.125)
    # only lengths strictly above: a test at the longest training length does not count
    assert math.isnan(lg.score(metrics, train, {"n16": 16}))
    assert math.isnan(lg.score({"test_acc@n32": 0.5}, train, test))  # n64 missing: no score
    assert math.isnan(lg.score(metrics, {}, {}))


def test_lengths_from_labels_or_from_the_task():
    train, test = lg.setting_lengths({"name": "copy", "params": {"vocab_size": 8},
                                      "train_settings": TRAIN,
                                      "test_settings": {"n64": {"copy_len": 32},
                                                        "long": {"copy_len": 50}}})
    assert train == {"n8": 8, "n16": 16}
    assert test == {"n64": 64, "long": 100}  # 'long' measured by building the task
    assert lg.setting_lengths({"name": "copy", "params": {}}) == ({}, {})


def _run(mixer, seed, accs, pos_emb="none", setting="lengthgen-copy", val=0.9):
    r = make_result(setting, mixer, seed, 1e-3, val, accs[0], task="copy",
                    task_params={"vocab_size": 8}, model={"pos_emb": pos_emb})
    r["config"]["task"].update(train_settings=TRAIN, test_settings=TEST)
    r["config"]["task"]["params"] = {"vocab_size": 8}
    for label, acc in zip(TEST, accs):
        r["metrics"][f"test_acc@{label}"] = acc
        r["metrics"][f"test_exact@{label}"] = acc ** 2
    r["config_hash"] += pos_emb
    return r


@pytest.fixture
def results(tmp_path):
    for seed in (0, 1):
        write(tmp_path, _run("attention", seed, [1.0, 0.2, 0.1], "learned"))
        write(tmp_path, _run("attention", seed, [1.0, 0.9, 0.7 + 0.1 * seed], "rope"))
        write(tmp_path, _run("first_order", seed, [0.8, 0.6, 0.4]))
    plain = make_result("mqar-n64", "pow2", 0, 1e-3, 0.9, 0.9)
    write(tmp_path, plain)  # outside the protocol: no score
    return tmp_path


def test_scores_per_run(results):
    runs = lg.with_scores(load_results(results))
    rope = runs[runs["config"].map(lambda c: c["model"].get("pos_emb") == "rope")]
    assert sorted(rope["lengthgen"]) == pytest.approx([0.8, 0.85])
    assert sorted(rope["lengthgen_exact"]) == pytest.approx([(0.81 + 0.49) / 2,
                                                            (0.81 + 0.64) / 2])
    assert runs.loc[runs["mixer"] == "pow2", "lengthgen"].isna().all()
    assert len(lg.with_scores(load_results(results), "lengthgen")) == 6  # the plain run dropped


def test_leaderboard_sorts_by_the_score(results):
    board = build_leaderboard(results, metric="lengthgen")
    assert list(board.table.index) == ["attention [pos_emb=rope]", "first_order",
                                       "attention [pos_emb=learned]"]
    assert board.legend["attention [pos_emb=rope]"] == "model.pos_emb=rope"
    assert board.table["lengthgen-copy"].tolist() == pytest.approx([0.825, 0.5, 0.15])
    assert board.metric_name == "lengthgen" and board.metric.higher_is_better


def test_points_and_plot(results, tmp_path):
    points = lg.length_points(load_results(results))
    assert len(points) == 3 * 2 * 3  # rows x seeds x test lengths
    rope = points[points["row"] == "attention [pos_emb=rope]"]
    assert sorted(rope.loc[rope["length"] == 64, "acc"]) == pytest.approx([0.7, 0.8])
    assert set(points["train_max"]) == {16} and set(points["train_min"]) == {8}
    path = lg.plot_lengths(points, tmp_path / "out")
    assert path.is_file() and path.with_suffix(".svg").is_file()
    assert lg.plot_lengths(points.iloc[:0], tmp_path / "none") is None


def test_cli_metric_and_plot(results, tmp_path, capsys):
    out = tmp_path / "lb"
    assert main([str(results), "--metric", "lengthgen", "--out", str(out)]) == 0
    assert (out / "accuracy_vs_test_length.png").is_file()
    assert "Accuracy against test length" in (out / "leaderboard.html").read_text()


def test_per_length_tables_and_cli(results, capsys):
    tables = lg.per_length_tables(lg.length_points(load_results(results)))
    t = tables["lengthgen-copy"]
    assert list(t.columns) == ["n16", "n32", "n64", "seeds"]
    assert t.loc["attention [pos_emb=rope]", "n64"] == pytest.approx(0.75)
    assert t.loc["first_order", "seeds"] == 2
    assert lg.main([str(results)]) == 0
    printed = capsys.readouterr().out
    assert "### lengthgen-copy" in printed
    # the seed count prints as an integer, beside accuracies with two decimals
    first_order_line = next(line for line in printed.splitlines()
                            if line.startswith("| first_order "))
    assert first_order_line.split("|")[-2].strip() == "2"
