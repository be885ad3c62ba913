"""Scores per level of the Chomsky hierarchy, as Deletang et al. (2023) tabulate them: for every
leaderboard row, the mean of its cells over the task settings of each level.

    python -m analysis.levels RESULTS_DIR [--metric lengthgen] [--task ...] [--mixer ...]

A task's level is its class attribute `level` (tasks/chomsky.py: `regular`, `dcf`, `cs`;
state_tracking counts as regular, a finite group's word problem being a regular language);
tasks without one are left out. A level's mean is taken over the settings of that level that
every row has (the leaderboard's `common` settings), so rows stay comparable; `<level> n` says
how many settings that is, and `<level> solved` on how many of them the row scores at least
`solved_at` (0.9 by default; for a metric where lower is better, at most). A mean over tasks of
different chance levels (parity 1/2, an order-60 group 1/60) mixes scales; the solved count does
not, which is why both are shown. Pure functions over `analysis.leaderboard.Leaderboard`.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

LEVELS = ("regular", "dcf", "cs")


def level_of(task_name) -> str | None:
    """The Chomsky level of a registered task (None: unknown task, or outside the hierarchy)."""
    from tasks import TASKS

    cls = TASKS.get(task_name) if isinstance(task_name, str) else None
    level = getattr(cls, "level", None)
    return level if level in LEVELS else None


def setting_levels(board) -> dict[str, str]:
    """task setting -> level, for the board's ranked settings whose task has one."""
    out = {}
    for setting in board.ranked_settings:
        configs = board.cells.loc[board.cells["task_setting"] == setting, "task_config"].dropna()
        name = configs.iloc[0].get("name") if len(configs) else None
        level = level_of(name)
        if level is not None:
            out[setting] = level
    return out


SOLVED_AT = 0.9
"""A task counts as solved at this score or better: the suite's choice of threshold, strict
enough that guessing on a two-answer task (0.5) or a partly learned one is not counted."""


def level_table(board, solved_at: float = SOLVED_AT) -> pd.DataFrame:
    """Rows of the board (its order) x, per level that has settings, `<level>` (the mean of the
    row's cells over that level's common settings; NaN when it has none), `<level> n` (how
    many settings the mean takes) and `<level> solved` (on how many of them the row's cell is
    `solved_at` or better)."""
    if not np.isfinite(solved_at):
        raise ValueError(f"solved_at must be a finite number, got {solved_at}")
    levels = setting_levels(board)
    table = pd.DataFrame(index=board.table.index)
    for level in LEVELS:
        settings = [s for s, v in levels.items() if v == level]
        if not settings:
            continue
        common = [s for s in settings if s in board.common]
        table[level] = board.table[common].mean(axis=1) if common else np.nan
        table[f"{level} n"] = len(common)
        cells = board.table[common]
        solved = cells >= solved_at if board.higher_is_better else cells <= solved_at
        table[f"{level} solved"] = solved.sum(axis=1).astype(int)
    return table


def main(argv=None) -> int:
    import argparse

    from .leaderboard import DEFAULT_METRIC, build_leaderboard
    from .results import NoResultsError

    ap = argparse.ArgumentParser(prog="python -m analysis.levels",
                                 description="Mean score per Chomsky level (docs/analysis.md).")
    ap.add_argument("results_dir")
    ap.add_argument("--metric", default=DEFAULT_METRIC, help="as the leaderboard's (e.g. "
                    "lengthgen: accuracy above the training lengths, Deletang et al.'s score)")
    ap.add_argument("--task", action="append", help="as the leaderboard's")
    ap.add_argument("--mixer", action="append", help="as the leaderboard's")
    ap.add_argument("--solved-at", type=float, default=SOLVED_AT,
                    help="a cell this good counts as solved (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        board = build_leaderboard(args.results_dir, metric=args.metric, tasks=args.task,
                                  mixers=args.mixer)
    except (NoResultsError, ValueError) as e:
        print(f"analysis.levels: {e}", file=sys.stderr)
        return 1
    try:
        table = level_table(board, solved_at=args.solved_at)
    except ValueError as e:
        print(f"analysis.levels: --solved-at: {e}", file=sys.stderr)
        return 2
    if table.empty or not len(table.columns):
        print("analysis.levels: no task setting of a Chomsky level", file=sys.stderr)
        return 1
    shown = table.astype(object)
    for level in LEVELS:
        if level in table:
            shown[level] = [board.metric.format(v) for v in table[level]]
    print(shown.to_markdown(disable_numparse=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
