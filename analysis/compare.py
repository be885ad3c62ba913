"""Our leaderboard columns beside a published table (docs/results/paper_table1.md).

    python -m analysis.compare --published docs/results/paper_table1/published.csv \\
        --ours "copy=docs/results/paper_table1/leaderboard.csv:copy-len40" \\
        --ours "recall, 8 pairs=docs/results/table1_v2/leaderboard.csv:mqar-n128-kv8"

`--published` is a CSV with a `mixer` column and one column per published figure (percent);
each `--ours LABEL=CSV:SETTING` takes a setting's column (mean, ±, seeds) of a leaderboard.csv
(analysis.leaderboard). A row per leaderboard row; a published figure is matched by the row's
mixer name (the label before ` [`), so every configuration of a mixer sits beside the paper's
one number. Prints a Markdown table in percent: `mean ± 95% half-width (seeds)`, `-` where a
row has no such run or the paper no such mixer.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd


def parse_ours(spec: str) -> tuple[str, Path, str]:
    """`LABEL=CSV:SETTING` -> (label, csv path, setting)."""
    label, sep, rest = spec.partition("=")
    path, sep2, setting = rest.rpartition(":")
    if not (sep and sep2 and label and path and setting):
        raise ValueError(f"--ours must be LABEL=CSV:SETTING, got {spec!r}")
    return label, Path(path), setting


def _cell(mean, half, seeds) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{100 * mean:.1f}"
    if half is not None and not (isinstance(half, float) and math.isnan(half)):
        text += f" ± {100 * half:.1f}"
    if seeds is not None and not (isinstance(seeds, float) and math.isnan(seeds)):
        text += f" ({int(seeds)})"
    return text


def base_name(row_label: str) -> str:
    return str(row_label).split(" [", 1)[0]


def side_by_side(ours: list[tuple[str, Path, str]], published: pd.DataFrame) -> pd.DataFrame:
    """A frame of strings: index the leaderboard rows (in order of first appearance), a column
    per `ours` entry, then the published columns."""
    columns: dict[str, dict[str, str]] = {}
    rows: list[str] = []
    for label, path, setting in ours:
        table = pd.read_csv(path, index_col=0)
        if setting not in table:
            raise ValueError(f"{path}: no column {setting!r} (settings: "
                             f"{[c for c in table if not c.endswith((' ±', ' seeds', ' lr'))]})")
        col = {}
        for row, r in table.iterrows():
            col[str(row)] = _cell(r[setting], r.get(f"{setting} ±"), r.get(f"{setting} seeds"))
            if str(row) not in rows:
                rows.append(str(row))
        columns[f"{label} (ours)"] = col
    published = published.set_index("mixer")
    for name in published.columns:
        columns[f"{name} (paper)"] = {
            row: (f"{published.loc[base_name(row), name]:.2f}"
                  if base_name(row) in published.index
                  and pd.notna(published.loc[base_name(row), name]) else "-")
            for row in rows}
    out = pd.DataFrame({c: [v.get(r, "-") for r in rows] for c, v in columns.items()},
                       index=pd.Index(rows, name="mixer"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--published", required=True, help="CSV: mixer, one column per figure (%%)")
    ap.add_argument("--ours", action="append", required=True, metavar="LABEL=CSV:SETTING")
    args = ap.parse_args(argv)
    try:
        frame = side_by_side([parse_ours(s) for s in args.ours], pd.read_csv(args.published))
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"analysis.compare: error: {e}")
        return 2
    print(frame.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
