"""Our leaderboard columns beside a published table."""

from pathlib import Path

import pandas as pd
import pytest

from analysis.compare import main, parse_ours, side_by_side


def test_side_by_side_matches_rows_by_mixer_name(tmp_path, capsys):
    board = tmp_path / "leaderboard.csv"
    pd.DataFrame({
        "mixer": ["attention [mixer.short_conv=0]", "attention [mixer.short_conv=4]", "se_first"],
        "mqar-kv8": [0.991, 0.5, 0.25], "mqar-kv8 ±": [0.004, float("nan"), 0.1],
        "mqar-kv8 seeds": [3, 1, 3], "mqar-kv8 lr": [3e-3] * 3,
    }).to_csv(board, index=False)
    published = pd.DataFrame({"mixer": ["attention", "pow2"], "recall": [100.0, 49.03]})
    frame = side_by_side([("recall", board, "mqar-kv8")], published)
    assert frame.loc["attention [mixer.short_conv=0]"].tolist() == ["99.1 ± 0.4 (3)", "100.00"]
    assert frame.loc["attention [mixer.short_conv=4]"].tolist() == ["50.0 (1)", "100.00"]
    assert frame.loc["se_first"].tolist() == ["25.0 ± 10.0 (3)", "-"]  # not in the paper
    pub = tmp_path / "published.csv"
    published.to_csv(pub, index=False)
    assert main(["--published", str(pub), "--ours", f"recall={board}:mqar-kv8"]) == 0
    assert "| recall (ours)" in capsys.readouterr().out
    assert main(["--published", str(pub), "--ours", f"recall={board}:mqar-kv99"]) == 2
    assert "no column 'mqar-kv99'" in capsys.readouterr().out


def test_ours_spec_is_checked():
    assert parse_ours("copy=a/b.csv:copy-len40") == ("copy", Path("a/b.csv"),
                                                     "copy-len40")
    with pytest.raises(ValueError, match="LABEL=CSV:SETTING"):
        parse_ours("copy=a.csv")
