"""The MAD score (Poli et al., 2024): per MAD task, the mean over its settings of each row's cell;
the score is the mean over the tasks.

    glmix-leaderboard RESULTS_DIR --rank-by mad        (rows ordered by the MAD score)

A leaderboard cell is already MAD's "best run of a setting": the test metric at the (learning
rate, weight decay) pair with the best mean validation accuracy over seeds (analysis/results.py;
`--select-on test_acc` picks on the test split, as MAD's own analysis does). Which settings
belong to which task is tasks/mad.py's protocol (`grid=mad`); settings outside it are left out.
A task's mean takes the settings of that task that every row has (the leaderboard's `common`
settings), so rows stay comparable; `MAD <task> n` says how many. Pure functions over
`analysis.leaderboard.Leaderboard`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.mad import PROTOCOL, task_of_setting

SCORE = "MAD score"


def _mad_task(column: str) -> str | None:
    # a column label is the setting, with a ` [...]` tag when two configs share the setting name
    return task_of_setting(column.split(" [", 1)[0])


def mad_table(board) -> pd.DataFrame:
    """Rows of the board x `MAD <task>` (the row's mean over that task's common settings), `MAD
    <task> n` (how many settings) for every MAD task the board has, and `MAD score` (the mean
    over those tasks; NaN when a task has no common setting). Empty columns when the board
    holds no MAD setting."""
    table = pd.DataFrame(index=board.table.index)
    scores = []
    for key in PROTOCOL:
        settings = [s for s in board.ranked_settings if _mad_task(s) == key]
        if not settings:
            continue
        common = [s for s in settings if s in board.common]
        column = f"MAD {key}"
        table[column] = board.table[common].mean(axis=1) if common else np.nan
        table[f"{column} n"] = len(common)
        scores.append(column)
    table[SCORE] = table[scores].mean(axis=1, skipna=False) if scores else np.nan
    return table


def score_columns(table: pd.DataFrame) -> list[str]:
    """The displayed columns of a mad_table: the per-task means, then the score."""
    return [c for c in table.columns if c.startswith("MAD ") and not c.endswith(" n")]
