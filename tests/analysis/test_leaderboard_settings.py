"""Zoology's protocol on the leaderboard: one column per test setting beside its run's column."""

import math

from analysis_helpers import make_result, write

from analysis.leaderboard import build_leaderboard
from analysis.render import to_json, to_markdown

LABELS = ("mqar-n128-kv8", "mqar-n512-kv32", "mqar-n1024-kv64")  # not in alphabetical order


def protocol_result(mixer, seed, lr, val_acc, accs):
    r = make_result("mqar-gen", mixer, seed, lr, val_acc, sum(accs) / len(accs), seq_len=1024)
    for label, acc in zip(LABELS, accs):
        r["metrics"][f"test_acc@{label}"] = acc
        r["metrics"][f"test_exact@{label}"] = acc**4
    return r


def test_one_column_per_setting(tmp_path):
    for seed in (0, 1):
        write(tmp_path, protocol_result("attention", seed, 1e-3, 0.9, (1.0, 0.8, 0.5 + seed / 10)))
        write(tmp_path, protocol_result("attention", seed, 3e-3, 0.5, (0.0, 0.0, 0.0)))
        write(tmp_path, protocol_result("pow2", seed, 1e-3, 0.7, (0.9, 0.4, 0.1)))
        write(tmp_path, make_result("copy-n32", "pow2", seed, 1e-3, 0.9, 0.9, task="copy"))
    board = build_leaderboard(tmp_path)
    table = board.table
    shown = board.settings
    assert shown == ["copy-n32", "mqar-gen"] + [f"mqar-gen@{label}" for label in LABELS]
    assert board.ranked_settings == ["copy-n32", "mqar-gen"]
    # the per-setting cells use the learning rate chosen on validation (1e-3, not 3e-3)
    assert table.loc["attention", "mqar-gen@mqar-n128-kv8"] == 1.0
    assert math.isclose(table.loc["attention", "mqar-gen@mqar-n1024-kv64"], 0.55)
    assert table.loc["attention", "mqar-gen@mqar-n1024-kv64 seeds"] == 2
    assert table.loc["attention", "mqar-gen@mqar-n512-kv32 lr"] == 1e-3
    assert math.isnan(table.loc["attention", "copy-n32"])
    # the mean rank counts each run once: copy-n32 and mqar-gen only
    assert table.loc["pow2", "tasks"] == 2
    md = to_markdown(board)
    assert all(f"mqar-gen@{label}" in md for label in LABELS)
    assert to_json(board)["settings"] == shown
    exact_b = build_leaderboard(tmp_path, metric="test_exact")
    exact = exact_b.table
    assert math.isclose(exact.loc["pow2", "mqar-gen@mqar-n512-kv32"], 0.4**4)


def test_plain_grids_are_unchanged(tmp_path):
    write(tmp_path, make_result("mqar-64", "attention", 0, 1e-3, 0.9, 0.9))
    board = build_leaderboard(tmp_path)
    assert board.settings == board.ranked_settings == ["mqar-64"]
