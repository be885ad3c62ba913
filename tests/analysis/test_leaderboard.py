"""The leaderboard on hand-written result folders whose right answers are known."""

import json
import math
import re
import statistics

import pandas as pd
import pytest
from analysis_helpers import make_result, write

from analysis.leaderboard import build_leaderboard, default_out, main, within_noise
from analysis.render import print_table, to_markdown
from analysis.results import NoResultsError, load_results, t_interval
from analysis.theory import pattern_stats
from runners.paths import catalogue

T_975_2DF = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (tables)
T_975_3DF = 3.182446305284263


def grid(root):
    """attention on mqar-64: two rates x three seeds; the better validation rate (3e-3) has
    test accuracies .85 .87 .95. first_order: one rate, one seed. flipflop-128: both mixers."""
    att = {1e-3: ([0.80, 0.82, 0.78], [0.99, 0.99, 0.99]),  # best test, worse validation
           3e-3: ([0.90, 0.88, 0.92], [0.85, 0.87, 0.95])}
    for lr, (vals, tests) in att.items():
        for seed, (v, t) in enumerate(zip(vals, tests)):
            write(root, make_result("mqar-64", "attention", seed, lr, v, t))
    write(root, make_result("mqar-64", "first_order", 0, 1e-3, 0.5, 0.40))
    for seed, t in enumerate([0.70, 0.72, 0.74, 0.76]):
        write(root, make_result("flipflop-128", "attention", seed, 1e-3, t, t, task="flipflop",
                                seq_len=128))
        write(root, make_result("flipflop-128", "first_order", seed, 1e-3, 0.9, 0.9 + t / 100,
                                task="flipflop", seq_len=128))
    # a failed run with (bogus) perfect metrics must not count; a skipped one neither
    bad = make_result("mqar-64", "first_order", 1, 1e-3, 1.0, 1.0, status="failed",
                      error="ValueError: boom")
    bad["metrics"] = {"val_acc": 1.0, "test_acc": 1.0}
    write(root, bad)
    write(root, make_result("mqar-64", "first_order", 2, 1e-3, 1.0, 1.0, status="failed",
                            error="RuntimeError: CUDA out of memory"))
    old = make_result("mqar-64", "first_order", 3, 1e-3, 1.0, 1.0)
    old["dim"] = 64  # a key of no schema: unreadable, not counted
    write(root, old)
    return root


def test_lr_choice_mean_and_interval(tmp_path):
    board = build_leaderboard(grid(tmp_path / "r"))
    table = board.table
    tests = [0.85, 0.87, 0.95]
    mean = sum(tests) / 3
    half = T_975_2DF * statistics.stdev(tests) / math.sqrt(3)
    assert table.loc["attention", "mqar-64"] == pytest.approx(mean)  # 0.89, not 0.99
    assert table.loc["attention", "mqar-64 ±"] == pytest.approx(half)
    assert table.loc["attention", "mqar-64 seeds"] == 3
    assert table.loc["attention", "mqar-64 lr"] == pytest.approx(3e-3)
    # one seed: the mean, no interval
    assert table.loc["first_order", "mqar-64"] == pytest.approx(0.40)
    assert math.isnan(table.loc["first_order", "mqar-64 ±"])
    assert table.loc["first_order", "mqar-64 seeds"] == 1
    flip = [0.70, 0.72, 0.74, 0.76]
    assert table.loc["attention", "flipflop-128 ±"] == pytest.approx(
        T_975_3DF * statistics.stdev(flip) / 2)
    # failed runs excluded but counted, a file of another layout unreadable
    assert board.failed == 2 and board.unreadable == 1


def test_ranks_means_and_order(tmp_path):
    board = build_leaderboard(grid(tmp_path / "r"))
    table = board.table
    # attention wins mqar-64, first_order wins flipflop-128: both mean rank 1.5
    assert table.loc["attention", "mean rank"] == 1.5
    assert table.loc["first_order", "mean rank"] == 1.5
    fo_flip = statistics.mean(0.9 + t / 100 for t in [0.70, 0.72, 0.74, 0.76])
    assert table.loc["first_order", "mean"] == pytest.approx((0.40 + fo_flip) / 2)
    assert table.loc["attention", "mean"] == pytest.approx((0.89 + 0.73) / 2)
    # ordered by the mean over the common settings
    expect = sorted(table.index, key=lambda m: -table.loc[m, "mean"])
    assert list(table.index) == expect and board.common == board.settings
    # settings ordered by task, then length; theory columns at the largest length
    assert board.settings == ["flipflop-128", "mqar-64"]
    assert board.theory_n == 128
    assert table.loc["attention", "hop_diameter"] == 1
    assert table.loc["first_order", "hop_diameter"] == 127
    assert table.loc["first_order", "cache_size"] == 1
    assert table.loc["first_order", "state_size"] == 2 * 32  # 2 * d_model * cache


def test_filters_and_metric(tmp_path):
    root = grid(tmp_path / "r")
    only_b = build_leaderboard(root, tasks=["flipflop"])
    assert only_b.settings == ["flipflop-128"]
    one_b = build_leaderboard(root, mixers="attention")
    one = one_b.table
    assert list(one.index) == ["attention"]
    both_b = build_leaderboard(root, tasks="mqar-64,flipflop-128", mixers=["first_*"])
    both = both_b.table
    assert list(both.index) == ["first_order"] and len(both_b.settings) == 2
    exact_b = build_leaderboard(root, metric="test_exact")
    exact = exact_b.table
    tests = [0.85, 0.87, 0.95]
    assert exact.loc["attention", "mqar-64"] == pytest.approx(statistics.mean(
        t ** 4 for t in tests))
    with pytest.raises(NoResultsError):
        build_leaderboard(root, mixers="nonexistent")


def test_where_keeps_one_learning_rate(tmp_path):
    root = grid(tmp_path / "r")
    # attention's better validation rate is 3e-3; --where lr=1e-3 shows the other one instead
    low = build_leaderboard(root, where=["lr=1e-3"]).table
    assert low.loc["attention", "mqar-64"] == pytest.approx(0.99)
    assert low.loc["attention", "mqar-64 lr"] == pytest.approx(1e-3)
    assert low.loc["first_order", "mqar-64"] == pytest.approx(0.40)
    high = build_leaderboard(root, where="lr=0.003")
    assert list(high.table.index) == ["attention"] and high.settings == ["mqar-64"]
    assert high.table.loc["attention", "mqar-64"] == pytest.approx(statistics.mean(
        [0.85, 0.87, 0.95]))
    assert high.where == ["lr=0.003"]
    # two conditions, and a nested key matched as text
    one = build_leaderboard(root, where=["seed=2", "task.name=flip*"]).table
    assert one.loc["attention", "flipflop-128"] == pytest.approx(0.74)
    assert one.loc["attention", "flipflop-128 seeds"] == 1


@pytest.mark.parametrize("where, message", [
    ("lr", "KEY=VALUE"), ("=3", "KEY=VALUE"), ("learning_rate=1e-3", "'learning_rate'"),
])
def test_where_rejects_what_it_cannot_read(tmp_path, where, message):
    root = grid(tmp_path / "r")
    with pytest.raises(ValueError, match=re.escape(message)):
        build_leaderboard(root, where=[where])
    with pytest.raises(NoResultsError):  # a value no run has: nothing left, said so
        build_leaderboard(root, where=["lr=5e-4"])


def test_main_where_is_written_down(tmp_path, capsys):
    root = grid(tmp_path / "r")
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--no-plots", "--where", "lr=1e-3"]) == 0
    assert "lr=1e-3 (--where)" in capsys.readouterr().out
    assert json.loads((out / "leaderboard.json").read_text())["where"] == ["lr=1e-3"]
    assert main([str(root), "--no-plots", "--where", "lr"]) == 1
    assert "--where 'lr': expected KEY=VALUE" in capsys.readouterr().err


def test_main_writes_every_output(tmp_path, capsys):
    root = grid(tmp_path / "r")
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "attention" in printed and "first_order" in printed
    assert "2 failed" in printed
    page = (out / "leaderboard.html").read_text()
    assert "<table" in page and "attention" in page and "first_order" in page
    assert "sortBy" in page and "http" not in page.replace("http-equiv", "")
    assert "2 failed" in page
    md = (out / "leaderboard.md").read_text()
    assert re.search(r"\| attention +\|", md) and "0.890 ±" in md and "0.400 (seeds=1)" in md
    data = json.loads((out / "leaderboard.json").read_text())
    assert {r["mixer"] for r in data["rows"]} == {"attention", "first_order"}
    assert data["failed"] == 2
    csv = pd.read_csv(out / "leaderboard.csv", index_col=0)
    assert csv.loc["attention", "mqar-64"] == pytest.approx(0.89)


def test_main_default_out_and_plots_embedded(tmp_path):
    root = grid(tmp_path / "r")
    assert main([str(root)]) == 0
    page = (root / "leaderboard" / "leaderboard.html").read_text()
    assert "data:image/png;base64," in page  # the plots, inline
    assert (root / "leaderboard" / "accuracy_vs_hops.png").exists()


def test_empty_and_failed_only_folders(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 1
    assert "no result.json" in capsys.readouterr().err
    bad = tmp_path / "bad"
    write(bad, make_result("mqar-64", "attention", 0, 1e-3, 0, 0, status="failed",
                           error="boom"))
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert "no successful" in err and "1 failed" in err
    assert main([str(tmp_path / "missing")]) == 1
    assert "not a folder" in capsys.readouterr().err
    root = grid(tmp_path / "r")
    assert main([str(root), "--mixer", "nothing", "--no-plots"]) == 1


def test_console_script_exit_code(tmp_path):
    import subprocess
    import sys

    empty = tmp_path / "e"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "analysis.leaderboard", str(empty)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "no result.json" in proc.stderr


def test_loader_tolerates_bad_files_and_duplicates(tmp_path):
    root = tmp_path / "r"
    write(root, make_result("mqar-64", "attention", 0, 1e-3, 0.5, 0.5))
    dup = make_result("mqar-64", "attention", 0, 1e-3, 0.9, 0.9)  # same config_hash
    write(root, dup, name="zz-again")
    (root / "broken").mkdir()
    (root / "broken" / "result.json").write_text("{not json")
    runs = load_results(root)
    assert (runs["status"] == "unreadable").sum() == 1
    assert runs.attrs["duplicates"] == 1
    board = build_leaderboard(root)
    table = board.table
    assert table.loc["attention", "mqar-64"] == 0.5 and board.unreadable == 1


def test_t_interval():
    mean, half, n = t_interval([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(T_975_2DF * 1.0 / math.sqrt(3))
    mean, half, n = t_interval([0.5])
    assert mean == 0.5 and math.isnan(half) and n == 1


def test_loader_reads_the_schema_and_refuses_other_layouts(tmp_path):
    from analysis.results import task_of

    root = tmp_path / "r"
    write(root, make_result("mqar-64", "attention", 0, 1e-3, 0.5, 0.5, num_layers=3,
                            task_params={"vocab_size": 64, "num_kv_pairs": 4}, info_bits=12.5))
    flat = make_result("mqar-128", "attention", 0, 1e-3, 0.5, 0.5)
    flat["config"]["task"] = {"name": "mqar", "seq_len": 128, "num_kv_pairs": 4}
    del flat["schema"]  # an older layout
    write(root, flat, name="flat")
    runs = load_results(root)
    assert list(runs["status"]) == ["unreadable", "ok"]
    assert "schema" in runs.loc[0, "error"]
    run = runs.iloc[1]
    assert run["num_layers"] == 3 and run["d_model"] == 32
    assert run["info_bits"] == 12.5 and run["lr"] == 1e-3
    assert run["task_config"] == {"name": "mqar", "seq_len": 64, "vocab_size": 64,
                                  "num_kv_pairs": 4}
    task = task_of(run["task_config"])
    assert (task.seq_len, task.num_kv_pairs, task.vocab_size) == (64, 4, 64)


def test_two_configs_under_one_name_are_two_rows(tmp_path):
    root = tmp_path / "r"
    for seed in (0, 1):
        for d, acc in ((16, 0.5), (64, 0.9)):
            write(root, make_result("mqar-64", "attention", seed, 1e-3, acc, acc, d_model=d))
        write(root, make_result("mqar-64", "pow2", seed, 1e-3, 0.7, 0.7))
        # pow2's name with sq1's recurrence: not pow2, and not pooled with it
        write(root, make_result("mqar-64", "pow2", seed, 1e-3, 0.6, 0.6,
                                mixer_config={**catalogue()["pow2"], "recurrent": "sq1"}))
    board = build_leaderboard(root)
    table = board.table
    assert set(table.index) == {"attention [d_model=16]", "attention [d_model=64]",
                                "pow2 [recurrent=pow2]", "pow2 [recurrent=sq1]"}
    assert (table["mqar-64 seeds"] == 2).all()
    assert table.loc["attention [d_model=16]", "mqar-64"] == pytest.approx(0.5)
    # theory from each row's own config: sq1's cache, not pow2's
    sq1 = pattern_stats("sq1", 64)["cache"]
    assert table.loc["pow2 [recurrent=sq1]", "cache_size"] == sq1
    assert table.loc["pow2 [recurrent=pow2]", "cache_size"] == pattern_stats("pow2", 64)["cache"]
    # --group-by model.d_model: one attention row, the width a column
    by_b = build_leaderboard(root, group_by="model.d_model")
    by = by_b.table
    assert ("attention", 16) in by.index and ("attention", 64) in by.index
    assert by.loc[("attention", 64), "mqar-64"] == pytest.approx(0.9)
    assert main([str(root), "--group-by", "model.d_model", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "accuracy_vs_model_d_model.png").exists()
    md = (tmp_path / "o" / "leaderboard.md").read_text()
    assert re.search(r"\| mixer +\| +model.d_model +\|", md), md


def test_a_field_added_at_its_old_behaviour_does_not_split_a_row(tmp_path):
    # results from before mixer.short_conv_on (no field) and after it at "input" are one row;
    # "qkv" is a row of its own
    root = tmp_path / "r"
    base = {**catalogue()["se_first"], "short_conv": 4}
    for seed, extra in ((0, {}), (1, {"short_conv_on": "input"})):
        write(root, make_result("mqar-64", "se_first", seed, 1e-3, 0.8, 0.8,
                                mixer_config={**base, **extra}))
        write(root, make_result("mqar-64", "se_first", seed, 1e-3, 0.6, 0.6,
                                mixer_config={**base, "short_conv_on": "qkv"}))
    board = build_leaderboard(root)
    table = board.table
    rows = {"se_first [short_conv_on=input]", "se_first [short_conv_on=qkv]"}
    assert set(table.index) == rows
    assert (table["mqar-64 seeds"] == 2).all()
    assert table.loc["se_first [short_conv_on=input]", "mqar-64"] == pytest.approx(0.8)


def test_order_is_mean_accuracy_over_common_settings(tmp_path):
    root = tmp_path / "r"
    # attention solves both settings; chance_mixer is at chance but ranks first on flipflop
    for seed in (0, 1):
        write(root, make_result("mqar-64", "attention", seed, 1e-3, 0.99, 0.996))
        write(root, make_result("mqar-64", "pow2", seed, 1e-3, 0.26, 0.26))
        write(root, make_result("flipflop-64", "attention", seed, 1e-3, 0.8, 0.80,
                                task="flipflop"))
        write(root, make_result("flipflop-64", "pow2", seed, 1e-3, 0.85, 0.85,
                                task="flipflop"))
        # first_order has only one setting: marked, ranked on the common ones (none here)
        write(root, make_result("mqar-64", "first_order", seed, 1e-3, 1.0, 1.0))
    board = build_leaderboard(root)
    table = board.table
    assert board.common == ["mqar-64"]
    assert list(table.index) == ["first_order", "attention", "pow2"]
    assert not table.loc["first_order", "complete"] and table.loc["attention", "complete"]
    board = build_leaderboard(root, mixers="attention,pow2")
    table = board.table
    assert board.common == ["flipflop-64", "mqar-64"]
    assert list(table.index) == ["attention", "pow2"]  # 0.898 > 0.555, though ranks tie
    assert table.loc["attention", "mean rank"] == table.loc["pow2", "mean rank"] == 1.5
    assert main([str(root), "--no-plots", "--out", str(tmp_path / "o")]) == 0
    md = (tmp_path / "o" / "leaderboard.md").read_text()
    assert "first_order *" in md and "misses some task settings" in md


def test_steps_to_accuracy_ranks_lower_first(tmp_path):
    root = tmp_path / "r"
    for seed, (fast, slow) in enumerate([(100, 300), (150, None)]):
        a = make_result("mqar-64", "attention", seed, 1e-3, 0.99, 0.99)
        a["metrics"]["steps_to_0.9"] = fast
        b = make_result("mqar-64", "pow2", seed, 1e-3, 0.95, 0.95)
        b["metrics"]["steps_to_0.9"] = slow  # None: seed 1 never got there
        write(root, a)
        write(root, b)
    board = build_leaderboard(root, metric="steps_to_0.9")
    table = board.table
    assert list(table.index) == ["attention", "pow2"]
    assert table.loc["attention", "mqar-64"] == 125 and math.isinf(table.loc["pow2", "mqar-64"])
    assert main([str(root), "--metric", "steps_to_0.9", "--no-plots",
                 "--out", str(tmp_path / "o")]) == 0
    assert "never (seeds=2)" in (tmp_path / "o" / "leaderboard.md").read_text()


def test_page_names_no_absolute_path(tmp_path, monkeypatch):
    root = grid(tmp_path / "r")
    monkeypatch.chdir(tmp_path)
    assert main([str(root), "--no-plots", "--out", str(tmp_path / "o")]) == 0
    page = (tmp_path / "o" / "leaderboard.html").read_text()
    assert str(tmp_path) not in page and "from r." in page


def test_unknown_kind_gets_no_theory_not_attentions(tmp_path):
    root = tmp_path / "r"
    cfg = {**catalogue()["attention"], "kind": "mystery"}
    write(root, make_result("mqar-64", "attention", 0, 1e-3, 0.5, 0.5, mixer_config=cfg))
    board = build_leaderboard(root)
    table = board.table
    for col in ("reads_per_token", "cache_size", "state_size", "hop_diameter", "congestion"):
        assert math.isnan(table.loc["attention", col]), col


def test_long_differences_get_a_short_tag_and_a_legend(tmp_path):
    root = tmp_path / "r"
    long_keys = {"mlp_ratio": 0, "pos_emb": "learned", "dropout": 0.125}
    for seed in (0, 1):
        write(root, make_result("mqar-64", "attention", seed, 1e-3, 0.9, 0.9))
        write(root, make_result("mqar-64", "attention", seed, 1e-3, 0.5, 0.5, model=long_keys))
    board = build_leaderboard(root)
    labels = list(board.table.index)
    assert sorted(labels) == ["attention [a]", "attention [b]"]
    assert all(len(label) <= 40 for label in labels)
    # every label is explained once, by the full keys that set it apart
    assert set(board.legend) == set(labels)
    assert any("model.pos_emb=learned" in keys and "model.dropout=0.125" in keys
               for keys in board.legend.values())
    md = to_markdown(board)
    assert "attention [a]: " in md and "model.mlp_ratio=" in md


def test_evaluation_sizes_do_not_split_a_column(tmp_path):
    root = tmp_path / "r"
    for seed, num_test in ((0, 500), (1, 2000)):
        r = make_result("mqar-64", "attention", seed, 1e-3, 0.9, 0.8 + seed / 10)
        r["config"]["task"]["num_test"] = num_test
        r["config"]["task"]["num_val"] = num_test // 2
        write(root, r)
    board = build_leaderboard(root)
    assert board.settings == ["mqar-64"]
    assert board.table.loc["attention", "mqar-64 seeds"] == 2


def test_chance_level_and_mark_from_the_task(tmp_path):
    root = tmp_path / "r"
    params = {"vocab_size": 64, "num_kv_pairs": 4}  # values: 32 tokens, chance 1/32
    write(root, make_result("mqar-64", "attention", 0, 1e-3, 0.9, 0.95, task_params=params))
    write(root, make_result("mqar-64", "first_order", 0, 1e-3, 0.1, 0.04, task_params=params))
    board = build_leaderboard(root)
    assert board.setting_info["mqar-64"].chance == pytest.approx(1 / 32)
    assert board.table.loc["first_order", "mqar-64 chance"]
    assert not board.table.loc["attention", "mqar-64 chance"]
    md = to_markdown(board)
    assert "0.040 (seeds=1) ≈" in md and "0.950 (seeds=1) |" in md.replace("**", "")
    assert "chance 0.0312" in md and "num_kv_pairs=4" in md
    # a loss has no chance level
    r = make_result("mqar-64", "pow2", 0, 1e-3, 0.1, 0.04, task_params=params)
    r["metrics"]["test_loss"] = 3.0
    write(root, r)
    assert build_leaderboard(root, metric="test_loss").setting_info["mqar-64"].chance is None
    assert within_noise(0.05, math.nan, 0.04) and not within_noise(0.5, 0.1, 0.04)
    assert within_noise(0.3, 0.3, 0.04)  # a wide interval reaches chance


def test_another_metric_writes_its_own_folder(tmp_path):
    root = grid(tmp_path / "r")
    assert default_out(root, "test_acc") == root / "leaderboard"
    assert default_out(root, "steps_to_0.9") == root / "leaderboard" / "steps_to_0.9"
    assert main([str(root), "--no-plots"]) == 0
    assert main([str(root), "--no-plots", "--metric", "test_exact"]) == 0
    assert (root / "leaderboard" / "leaderboard.md").read_text().startswith(
        "# glmix leaderboard (test_acc)")
    assert (root / "leaderboard" / "test_exact" / "leaderboard.md").read_text().startswith(
        "# glmix leaderboard (test_exact)")
    assert main([str(root), "--no-plots", "--metric", "nonsense"]) == 1


def test_terminal_never_cuts_a_number(tmp_path):
    from rich.console import Console

    board = build_leaderboard(grid(tmp_path / "r"))
    console = Console(width=90, record=True, force_terminal=False)
    print_table(board, console)
    text = console.export_text()
    assert "…" not in text
    assert "0.890" in text and "Theory columns left out" in text
    wide = Console(width=300, record=True, force_terminal=False)
    print_table(board, wide)
    assert "congestion" in wide.export_text()
