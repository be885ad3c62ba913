"""The leaderboard: one row per experiment (a mixer config), one column per task setting.

    python -m analysis.leaderboard RESULTS_DIR [--out DIR] [--metric test_exact]
                                   [--task mqar,copy] [--mixer 'pow2*'] [--group-by KEY]
                                   [--rank-by mad] [--select-on val_acc]
                                   [--no-plots] [--bench F]
    glmix-leaderboard RESULTS_DIR          (the installed entry point)

A row is one mixer config with everything else that is not the task (analysis.results): runs
that differ only in seed, learning rate and weight decay. For every (row, task setting) the
(learning rate, weight decay) with the best mean validation accuracy over seeds is chosen (on
another metric with --select-on), and that pair's test metric is reported
as its mean over seeds with a 95% Student t interval. Rows are ordered by the mean of the metric
over the settings every shown row has (`mean`), with the mean rank beside it; a row missing
settings is marked. `build_leaderboard` computes a `Leaderboard`; analysis.render draws it in
the terminal (rich) and writes leaderboard.md / .csv / .json / .html into --out (default
RESULTS_DIR/leaderboard, RESULTS_DIR/leaderboard/<metric> for another metric than test_acc).
Definitions: docs/analysis.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from runners.metrics import Metric
from runners.metrics import metric as lookup_metric

from . import lengthgen
from .results import (
    NoResultsError,
    filter_results,
    load_results,
    parse_where,
    setting_order,
    summarize,
    task_of,
)
from .theory import THEORY_NAMES, task_chance

__all__ = ["Leaderboard", "Setting", "build_leaderboard", "load_results", "main"]

SELECT_ON = "val_acc"
DEFAULT_METRIC = "test_acc"


@dataclass(frozen=True)
class Setting:
    """A task setting (a column): what it is and its chance level (None: not an accuracy
    metric, or the task is unknown)."""

    name: str
    description: str
    chance: float | None
    keys: str | None = None  # what sets it apart from a setting of the same name


@dataclass
class Leaderboard:
    """The computed leaderboard, before any rendering (analysis.render draws it).

    `table`: indexed by row label (with --group-by: (row, key)), in rank order; columns `mixer`,
    for every shown setting S `S`, `S ±` (95% t half-width, NaN with one seed), `S seeds`,
    `S lr`, `S chance` (True: within noise of the chance level); `mean` (over the `common`
    settings), `mean rank`, `tasks` (settings present), `complete`, the theory columns
    (analysis.theory.THEORY_COLUMNS) at n = `theory_n`, and `params` (median num_params).
    """

    table: pd.DataFrame
    metric: Metric
    metric_name: str
    settings: list[str]  # shown, with the per-test-setting columns `S@label`
    ranked_settings: list[str]
    common: list[str]
    setting_info: dict[str, Setting]
    legend: dict[str, str]  # short row label -> the config keys that set it apart
    cells: pd.DataFrame
    setting_cells: pd.DataFrame
    runs: pd.DataFrame
    group_by: str | None = None
    theory_n: int | None = None
    select_on: str = SELECT_ON
    failed: int = 0
    unreadable: int = 0
    duplicates: int = 0
    failures: list = field(default_factory=list)  # (task setting, mixer, first error line)
    results_dir: str = ""
    rank_by: str = "mean"  # mean | mad (analysis/mad.py)
    scores: list = field(default_factory=list)  # aggregate columns shown after `mean rank`
    where: list = field(default_factory=list)  # the KEY=VALUE filters the runs passed

    @property
    def higher_is_better(self) -> bool:
        return self.metric.higher_is_better

    @property
    def row_labels(self) -> list[str]:
        """The row label of each table row (without the --group-by value): one colour each."""
        return [str(k[0] if isinstance(k, tuple) else k) for k in self.table.index]


def _row_theory(cells: pd.DataFrame, n) -> dict:
    """A row's theory columns at length n, read from the summary's cells at that length (the
    results summary computes them once per cell)."""
    at = cells[cells["seq_len"] == n]
    if at.empty:
        return dict.fromkeys(THEORY_NAMES, np.nan)
    return {key: at[key].iloc[0] for key in THEORY_NAMES}


def within_noise(mean, half, chance, margin: float = 0.02) -> bool:
    """Whether an accuracy is within noise of the chance level: mean <= chance + max(95% t
    half-width, margin) (the margin alone with one seed)."""
    if chance is None or mean is None or not np.isfinite(mean):
        return False
    noise = half if half is not None and np.isfinite(half) else 0.0
    return bool(mean <= chance + max(noise, margin))


def _setting_info(cells: pd.DataFrame, settings: list[str], metric: Metric
                  ) -> dict[str, Setting]:
    out = {}
    for s in settings:
        base = s.split("@", 1)[0]
        sub = cells[cells["task_setting"] == base]
        cfg = sub["task_config"].dropna()
        cfg = cfg.iloc[0] if len(cfg) else {}
        params = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "name")
        task = task_of(cfg)
        chance = task_chance(task)[0] if task is not None and metric.accuracy else None
        desc = f"{cfg.get('name', '?')}: {params}" if cfg else "task config not recorded"
        if "@" in s:
            desc = f"test setting {s.split('@', 1)[1]} of {base}"
        keys = sub["column_keys"].dropna() if "column_keys" in sub else []
        out[s] = Setting(s, desc, chance, keys.iloc[0] if len(keys) else None)
    return out


RANK_BY = ("mean", "mad")


def build_leaderboard(results_dir, metric: str = DEFAULT_METRIC, tasks=None, mixers=None,
                      group_by: str | None = None, rank_by: str = "mean",
                      select_on: str = SELECT_ON, where=None) -> Leaderboard:
    """The leaderboard of the results below `results_dir` (see `Leaderboard`). Rows are
    ordered by `mean` (best first; the metric table's direction, runners.metrics), then
    `mean rank`, then label; with `rank_by="mad"` by the MAD score first (analysis/mad.py).
    `select_on`: the metric that picks a cell's (learning rate, weight decay); `where`: only the
    runs whose config has every KEY=VALUE (analysis.results.filter_results). Raises
    NoResultsError when nothing is left to rank, ValueError for a metric the table does not
    know or a `rank_by` with nothing to rank on."""
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")
    kind = lookup_metric(metric)
    lookup_metric(select_on)
    runs = load_results(results_dir)
    if runs.empty:
        raise NoResultsError(f"no result.json found under {results_dir}")
    # the length-generalization scores as metrics (analysis/lengthgen.py)
    runs = lengthgen.with_scores(runs, metric)
    chosen = filter_results(runs, tasks, mixers, where)
    status = chosen["status"]
    failed = chosen[status == "failed"]
    counts = {
        "failed": int(len(failed)),
        "unreadable": int((status == "unreadable").sum()),
    }
    if not (status == "ok").any():
        which = "" if chosen is runs or len(chosen) == len(runs) else " matching the filters"
        parts = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        raise NoResultsError(f"no successful ('ok') result{which} under {results_dir}"
                             + (f" ({parts})" if parts else ""))
    cells = summarize(chosen, metric=metric, select_on=select_on, group_by=group_by)
    settings = setting_order(cells)
    index = ["row", group_by] if group_by else ["row"]
    wide = cells.pivot_table(index=index, columns="task_setting", values="mean",
                             aggfunc="first", dropna=False)
    wide = wide.reindex(columns=settings)
    table = pd.DataFrame(index=wide.index)
    table["mixer"] = cells.groupby(index)["mixer"].first().reindex(table.index)
    sub_cells = per_setting_cells(chosen, metric, group_by, select_on)
    shown = []
    for s in settings:
        subs = [c for c in dict.fromkeys(sub_cells.get("task_setting", [])) if
                c.startswith(s + "@")]
        for column, source in [(s, cells)] + [(c, sub_cells) for c in subs]:
            sub = source[source["task_setting"] == column].set_index(index)
            table[column] = sub["mean"].reindex(table.index)
            table[f"{column} ±"] = sub["ci95"].reindex(table.index)
            table[f"{column} seeds"] = sub["seeds"].reindex(table.index)
            table[f"{column} lr"] = sub["lr"].reindex(table.index)
            shown.append(column)
    info = _setting_info(cells, shown, kind)
    for s in shown:
        table[f"{s} chance"] = [within_noise(m, h, info[s].chance)
                                for m, h in zip(table[s], table[f"{s} ±"])]
    means = wide[settings]
    common = [s for s in settings if means[s].notna().all()]
    better = kind.higher_is_better
    table["mean"] = means[common].mean(axis=1) if common else np.nan
    table["mean rank"] = (means[common].rank(axis=0, ascending=not better, method="average")
                          .mean(axis=1) if common else np.nan)
    table["tasks"] = means.notna().sum(axis=1)
    table["complete"] = table["tasks"] == len(settings)
    theory_n = cells["seq_len"].max()
    for key in table.index:
        mask = np.ones(len(cells), dtype=bool)
        for level, value in zip(index, key if isinstance(key, tuple) else (key,)):
            mask &= (cells[level] == value).to_numpy()
        for col, value in _row_theory(cells[mask], theory_n).items():
            table.loc[key, col] = value
    table["params"] = cells.groupby(index)["num_params"].median().reindex(table.index)
    scores, first = [], table["mean"]
    if rank_by == "mad":
        from .mad import SCORE, mad_table, score_columns

        mad = mad_table(_Board(table, settings, common))
        if SCORE not in mad or mad[SCORE].isna().all():
            raise ValueError(f"--rank-by mad: no row has a score; the MAD score needs the settings"
                             f" of tasks/mad.py's protocol (grid=mad) under {results_dir}")
        table = table.join(mad)
        scores, first = score_columns(mad), table[SCORE]
    order = table.assign(
        _first=first if not better else -first,
        _score=table["mean"] if not better else -table["mean"],
        _rank=table["mean rank"],
        _name=[str(k) for k in table.index],
    ).sort_values(["_first", "_score", "_rank", "_name"], na_position="last",
                  kind="stable").index
    table = table.loc[order]
    failures = []
    for _, r in failed.iterrows():
        err = str(r.get("error") or "").strip().splitlines()
        failures.append((r.get("task_setting"), r.get("mixer"), err[0] if err else ""))
    legend = {r: k for r, k in zip(cells["row"], cells.get("row_keys", [])) if isinstance(k, str)}
    return Leaderboard(
        table=table, metric=kind, metric_name=metric, settings=shown, ranked_settings=settings,
        common=common, setting_info=info, legend=legend, cells=cells, setting_cells=sub_cells,
        runs=chosen, group_by=group_by,
        theory_n=None if not np.isfinite(theory_n) else int(theory_n),
        failures=failures, duplicates=runs.attrs.get("duplicates", 0),
        results_dir=str(results_dir), select_on=select_on, rank_by=rank_by, scores=scores,
        where=[f"{k}={v}" for k, v in parse_where(where)], **counts)


@dataclass
class _Board:
    """What analysis.mad reads of a board before its rows are ordered."""

    table: pd.DataFrame
    ranked_settings: list[str]
    common: list[str]


def per_setting_cells(runs: pd.DataFrame, metric: str, group_by: str | None = None,
                      select_on: str = SELECT_ON) -> pd.DataFrame:
    """Cells of the per-setting test metrics of Zoology's protocol (docs/tasks.md): for every
    `<metric>@<label>` column, a pseudo task setting `<task_setting>@<label>` summarised like
    the others (the learning rate is chosen on the run's own `select_on` metric, so it is the
    one of `<task_setting>`). Shown beside `<task_setting>`, not ranked (the same runs). Labels
    keep the order of the result files (the config's test order)."""
    frames = []
    for col in [c for c in runs.columns if isinstance(c, str) and c.startswith(metric + "@")]:
        sub = runs[runs[col].notna()].copy()
        if not sub.empty:
            sub["task_setting"] = sub["task_setting"] + col[len(metric):]
            sub[metric] = sub[col]
            frames.append(sub)
    if not frames:
        return pd.DataFrame(columns=["task_setting", "row", "mixer", "mean", "ci95", "seeds",
                                     "lr", *([group_by] if group_by else [])])
    cells = summarize(pd.concat(frames, ignore_index=True), metric=metric, select_on=select_on,
                      group_by=group_by)
    order = {name: i for i, name in enumerate(dict.fromkeys(
        ts for f in frames for ts in f["task_setting"]))}
    return cells.sort_values("task_setting", key=lambda c: c.map(order), kind="stable")


def default_out(results_dir, metric: str) -> Path:
    """Where a leaderboard goes without --out: RESULTS_DIR/leaderboard for the default metric,
    RESULTS_DIR/leaderboard/<metric> for another, so that one never overwrites the other."""
    out = Path(results_dir) / "leaderboard"
    return out if metric == DEFAULT_METRIC else out / metric.replace("/", "_")


def main(argv=None) -> int:
    from .render import print_table, write_outputs

    ap = argparse.ArgumentParser(
        prog="glmix-leaderboard",
        description="Rank mixers on a folder of result.json files (docs/analysis.md).")
    ap.add_argument("results_dir", help="folder searched recursively for result.json")
    ap.add_argument("--out", help="output folder (default RESULTS_DIR/leaderboard, or "
                    "RESULTS_DIR/leaderboard/METRIC for another metric than test_acc)")
    ap.add_argument("--metric", default=DEFAULT_METRIC,
                    help="test metric to report (default test_acc; e.g. test_exact, "
                    "steps_to_0.9, or lengthgen / lengthgen_exact: the mean over test lengths "
                    "above the training lengths, analysis/lengthgen.py)")
    ap.add_argument("--task", action="append", help="task name or setting (repeatable, "
                    "comma-separated, wildcards allowed)")
    ap.add_argument("--mixer", action="append", help="mixer name (repeatable, comma-separated, "
                    "wildcards allowed)")
    ap.add_argument("--group-by", metavar="KEY", help="a config key (e.g. model.d_model) shown "
                    "as a column instead of splitting rows; adds the accuracy-against-KEY plot")
    ap.add_argument("--rank-by", choices=RANK_BY, default="mean", help="order rows by the mean "
                    "over the common settings (default) or by the MAD score (analysis/mad.py: "
                    "per MAD task the mean over its settings, then the mean over tasks)")
    ap.add_argument("--select-on", default=SELECT_ON, help="the metric that picks each cell's "
                    "learning rate and weight decay (default val_acc; test_acc as MAD does)")
    ap.add_argument("--where", action="append", metavar="KEY=VALUE", help="only runs whose "
                    "config has this value (repeatable; a dotted key: lr=1e-3, "
                    "trainer.weight_decay=0.1; numbers compare as numbers, text as a wildcard "
                    "pattern): e.g. one learning rate of a grid that swept several")
    ap.add_argument("--no-plots", action="store_true", help="skip the plots")
    ap.add_argument("--bench", help="bench.ops JSON for the time-against-n plot")
    args = ap.parse_args(argv)

    try:
        board = build_leaderboard(args.results_dir, metric=args.metric, tasks=args.task,
                                  mixers=args.mixer, group_by=args.group_by,
                                  rank_by=args.rank_by, select_on=args.select_on,
                                  where=args.where)
    except (NoResultsError, ValueError) as e:
        print(f"glmix-leaderboard: {e}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else default_out(args.results_dir, args.metric)
    figures = []
    if not args.no_plots:
        from .plots import make_plots

        figures = make_plots(board.cells, out, metric=args.metric, bench=args.bench,
                             results_dir=args.results_dir, order=board.row_labels,
                             runs=board.runs, legend=board.legend)
        # accuracy against test length, for the runs tested at several lengths
        path = lengthgen.plot_lengths(lengthgen.length_points(board.runs), out,
                                      order=board.row_labels)
        if path is not None:
            figures.append(("Accuracy against test length", path))
    print_table(board)
    for path in write_outputs(board, out, figures):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
