"""The leaderboard: one row per experiment (a mixer config), one column per task setting.

    python -m analysis.leaderboard RESULTS_DIR [--out DIR] [--metric test_exact]
                                   [--task mqar,copy] [--mixer 'pow2*'] [--group-by KEY]
                                   [--no-plots] [--bench F]
    glmix-leaderboard RESULTS_DIR          (the installed entry point)

A row is one mixer config with everything else that is not the task (analysis.results): runs
that differ only in seed and learning rate. For every (row, task setting) the learning rate with
the best mean validation accuracy over seeds is chosen, and that rate's test metric is reported
as its mean over seeds with a 95% Student t interval. Rows are ordered by the mean of the metric
over the settings every shown row has (`mean`), with the mean rank beside it; a row missing
settings is marked. The table goes to the terminal (rich) and to leaderboard.md / .csv / .json /
.html in --out (default RESULTS_DIR/leaderboard). Definitions: docs/analysis.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import lengthgen  # [lengthgen hook]
from .results import (
    NoResultsError,
    filter_results,
    higher_is_better,
    load_results,
    setting_order,
    summarize,
)
from .theory import layer_theory

__all__ = ["build_leaderboard", "load_results", "main", "write_outputs"]

SELECT_ON = "val_acc"
THEORY_COLUMNS = ["reads/token", "cache", "state floats", "hops", "congestion"]


def _row_theory(n, cells: pd.DataFrame) -> dict:
    """The theory columns of a row at length n, from its recorded mixer config and model width
    (analysis.theory.layer_theory); NaN where the registry cannot build the config."""
    out = dict.fromkeys(THEORY_COLUMNS, np.nan)
    cfg = cells["mixer_config"].dropna()
    d_model, heads = cells["d_model"].median(), cells["num_heads"].median()
    if not len(cfg) or not np.isfinite(n) or not np.isfinite(d_model):
        return out
    try:
        th = layer_theory(cfg.iloc[0], int(n), int(d_model), int(heads) if np.isfinite(heads)
                          else 1)
    except Exception:  # noqa: BLE001 - an unknown kind, a missing optional package: no theory
        return out
    return {key: th[key] for key in THEORY_COLUMNS}


def build_leaderboard(results_dir, metric: str = "test_acc", tasks=None, mixers=None,
                      group_by: str | None = None) -> pd.DataFrame:
    """The leaderboard as a DataFrame indexed by row label (analysis.results), in rank order.

    Columns: `mixer` (the mixer name); for every task setting S, `S` (the mean of `metric` over
    seeds at the chosen learning rate), `S ±` (95% t half-width, NaN with one seed), `S seeds`,
    `S lr`; then `mean` (over the settings that every shown row has), `mean rank` (rank 1 =
    best within each of those settings, ties averaged), `tasks` (settings present), `complete`
    (whether the row has every setting), the theory columns `reads/token`, `cache`,
    `state floats`, `hops`, `congestion` at n = attrs["theory_n"] (the largest task length
    shown), and `params` (median num_params). With `group_by` (a config key such as
    `model.d_model`) that key is a column and no longer splits rows by label; the index is then
    (row, key). Rows are ordered by `mean` (best first; lower is better for losses and
    steps-to-accuracy), then `mean rank`, then label. attrs: `cells` (the per-cell summary),
    `settings`, `common` (the settings every row has), `metric`, `failed` (count), `failures`
    (task setting, mixer, error), `unreadable`, `duplicates`, `theory_n`, `group_by`. Raises
    NoResultsError when nothing is left to rank.
    """
    runs = load_results(results_dir)
    if runs.empty:
        raise NoResultsError(f"no result.json found under {results_dir}")
    # [lengthgen hook] the length-generalization scores as metrics (analysis/lengthgen.py)
    runs = lengthgen.with_scores(runs, metric)
    chosen = filter_results(runs, tasks, mixers)
    status = chosen["status"]
    failed = chosen[status == "failed"]
    counts = {
        "failed": int(len(failed)),
        "unreadable": int((status == "unreadable").sum()),
    }
    if not (status == "ok").any():
        where = "" if chosen is runs or len(chosen) == len(runs) else " matching the filters"
        parts = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        raise NoResultsError(f"no successful ('ok') result{where} under {results_dir}"
                             + (f" ({parts})" if parts else ""))
    cells = summarize(chosen, metric=metric, select_on=SELECT_ON, group_by=group_by)
    settings = setting_order(cells)
    index = ["row", group_by] if group_by else ["row"]
    wide = cells.pivot_table(index=index, columns="task_setting", values="mean",
                             aggfunc="first", dropna=False)
    wide = wide.reindex(columns=settings)
    table = pd.DataFrame(index=wide.index)
    table["mixer"] = cells.groupby(index)["mixer"].first().reindex(table.index)
    sub_cells = per_setting_cells(chosen, metric, group_by)
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
    means = wide[settings]
    common = [s for s in settings if means[s].notna().all()]
    better = higher_is_better(metric)
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
        for col, value in _row_theory(theory_n, cells[mask]).items():
            table.loc[key, col] = value
    table["params"] = cells.groupby(index)["num_params"].median().reindex(table.index)
    order = table.assign(
        _score=table["mean"] if not better else -table["mean"],
        _rank=table["mean rank"],
        _name=[str(k) for k in table.index],
    ).sort_values(["_score", "_rank", "_name"], na_position="last", kind="stable").index
    table = table.loc[order]
    failures = [
        (r.get("task_setting"), r.get("mixer"), str(r.get("error") or "").strip().splitlines()[:1])
        for _, r in failed.iterrows()
    ]
    table.attrs.update(
        cells=cells, runs=chosen, settings=shown, ranked_settings=settings,
        setting_cells=sub_cells, common=common, metric=metric, select_on=SELECT_ON,
        group_by=group_by, higher_is_better=better,
        theory_n=None if not np.isfinite(theory_n) else int(theory_n),
        failures=[(s, m, e[0] if e else "") for s, m, e in failures],
        duplicates=runs.attrs.get("duplicates", 0), results_dir=str(results_dir), **counts,
    )
    return table


def per_setting_cells(runs: pd.DataFrame, metric: str, group_by: str | None = None
                      ) -> pd.DataFrame:
    """Cells of the per-setting test metrics of Zoology's protocol (docs/tasks.md): for every
    `<metric>@<label>` column, a pseudo task setting `<task_setting>@<label>` summarised like
    the others (the learning rate is chosen on the run's own validation accuracy, so it is the
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
    cells = summarize(pd.concat(frames, ignore_index=True), metric=metric, select_on=SELECT_ON,
                      group_by=group_by)
    order = {name: i for i, name in enumerate(dict.fromkeys(
        ts for f in frames for ts in f["task_setting"]))}
    return cells.sort_values("task_setting", key=lambda c: c.map(order), kind="stable")


# ----------------------------------------------------------------------------------------------
# formatting


def _fmt_acc(mean, half, seeds) -> str:
    if mean is None or np.isnan(mean):
        return "-"
    seeds = 0 if seeds is None or not np.isfinite(seeds) else int(seeds)
    if np.isinf(mean):
        return f"never (n={seeds})"
    if seeds > 1 and np.isfinite(half):
        return f"{_fmt_mean(mean)} ± {_fmt_mean(half)} (n={seeds})"
    return f"{_fmt_mean(mean)} (n={seeds})"


def _fmt_mean(x) -> str:
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.0f}"


def _fmt_num(x, kind: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    if kind == "params":
        for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(x) >= scale:
                return f"{x / scale:.3g}{unit}"
        return f"{int(x)}"
    if float(x) == int(x):
        return f"{int(x):,}".replace(",", " ") if abs(x) >= 1e4 else f"{int(x)}"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.3e}"


def _columns(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(header, column, kind) for the displayed table."""
    n = table.attrs.get("theory_n")
    at = f" @n={n}" if n else ""
    cols = [(table.attrs["group_by"], table.attrs["group_by"], "key")] if table.attrs.get(
        "group_by") else []
    cols += [(s, s, "acc") for s in table.attrs["settings"]]
    cols += [("mean", "mean", "float"), ("mean rank", "mean rank", "float")]
    if not table["complete"].all():
        cols.append(("tasks", "tasks", "int"))
    cols += [(f"reads/token{at}", "reads/token", "float"), (f"cache{at}", "cache", "int"),
             (f"state floats{at}", "state floats", "int"), (f"hops{at}", "hops", "int"),
             (f"congestion{at}", "congestion", "float"), ("params", "params", "params")]
    return cols


def _label(key, row) -> str:
    """The row's label, with `*` when it misses some task settings."""
    name = key[0] if isinstance(key, tuple) else key
    return f"{name}{'' if row['complete'] else ' *'}"


def _display(table: pd.DataFrame) -> tuple[list[str], list[list[str]], list[list], list]:
    """Headers, formatted cells, sort keys and a bold flag per cell (the best of a column)."""
    cols = _columns(table)
    pick = max if table.attrs.get("higher_is_better", True) else min
    best = {s: pick(table[s].dropna(), default=np.nan) for s in table.attrs["settings"]}
    best["mean"] = pick(table["mean"].dropna(), default=np.nan)
    best["mean rank"] = table["mean rank"].min()
    headers = ["mixer"] + [h for h, _, _ in cols]
    text, keys, bold = [], [], []
    for key, row in table.iterrows():
        label = _label(key, row)
        t, k, b = [label], [label], [False]
        for _, col, kind in cols:
            v = key[1] if kind == "key" else row[col]
            if kind == "key":
                t.append(_fmt_num(v) if isinstance(v, (int, float)) else str(v))
            elif kind == "acc":
                t.append(_fmt_acc(v, row[f"{col} ±"], row[f"{col} seeds"]))
            elif col == "mean":
                t.append("-" if np.isnan(v) else _fmt_mean(v) if np.isfinite(v) else "never")
            elif col == "mean rank":
                t.append("-" if not np.isfinite(v) else f"{v:.2f}")
            else:
                t.append(_fmt_num(v, kind))
            k.append(v)
            b.append(col in best and isinstance(v, (int, float)) and not np.isnan(v)
                     and v == best[col])
        text.append(t)
        keys.append(k)
        bold.append(b)
    return headers, text, keys, bold


def _notes(table: pd.DataFrame) -> list[str]:
    a = table.attrs
    direction = "higher" if a.get("higher_is_better", True) else "lower"
    common = a.get("common", [])
    notes = [
        f"Metric: {a['metric']} ({direction} is better), at the learning rate with the best mean "
        f"{a['select_on']} over seeds; mean ± half-width of the 95% Student t interval over "
        f"seeds (t quantile from scipy.stats.t, n-1 degrees of freedom; one seed: mean only).",
        f"Order: by `mean`, the mean of the metric over the {len(common)} task setting(s) every "
        f"row has" + (f" ({', '.join(common)})"
                      if common and len(common) < len(a.get("ranked_settings", common)) else "")
        + "; `mean rank` (rank 1 = best within a setting) over the same settings beside it. "
        "A row is one mixer config; runs that differ only in seed and learning rate are pooled "
        "(docs/analysis.md).",
    ]
    if not table["complete"].all():
        notes.append("* misses some task settings: not ranked on fewer settings, see `tasks`.")
    if not common:
        notes.append("No task setting is shared by every row: rows are in label order "
                     "(choose comparable ones with --task / --mixer).")
    if a.get("theory_n"):
        notes.append(f"Theory columns at n = {a['theory_n']} (the largest task length shown), "
                     f"from each row's recorded mixer config and model width: reads/token = "
                     f"mean |A(i)| + |B(i)|, cache = vectors kept per head for decoding ('-' "
                     f"for a matrix state), state floats per layer, hops = hop diameter, "
                     f"congestion = the largest shortest-path load (docs/analysis.md).")
    foot = f"{a['failed']} failed run(s) excluded"
    if a.get("unreadable"):
        foot += f", {a['unreadable']} unreadable result file(s)"
    if a.get("duplicates"):
        foot += f", {a['duplicates']} duplicate result(s) of one config ignored"
    notes.append(foot + ".")
    for setting, mixer, err in a.get("failures", [])[:20]:
        notes.append(f"  failed: {setting} / {mixer}: {err[:160]}")
    if len(a.get("failures", [])) > 20:
        notes.append(f"  ... and {len(a['failures']) - 20} more")
    return notes


def to_markdown(table: pd.DataFrame) -> str:
    headers, text, _, bold = _display(table)
    cells = [[(f"**{c}**" if f else c).replace("|", "\\|") for c, f in zip(row, flags)]
             for row, flags in zip(text, bold)]
    body = pd.DataFrame(cells, columns=headers).to_markdown(
        index=False, colalign=["left"] + ["right"] * (len(headers) - 1))
    lines = [f"# glmix leaderboard ({table.attrs['metric']})", "", body, ""]
    lines += [f"{note}  " for note in _notes(table)]
    return "\n".join(lines) + "\n"


def _clean(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else ("inf" if math.isinf(v) else float(v))
    return v


def to_json(table: pd.DataFrame) -> dict:
    cells = table.attrs["cells"].drop(columns=["task_config", "mixer_config", "paths"],
                                      errors="ignore")
    group_by = table.attrs.get("group_by")
    rows = []
    for key, r in table.iterrows():
        head = ({"row": key[0], group_by: _clean(key[1])} if isinstance(key, tuple)
                else {"row": key})
        rows.append({**head, **{k: _clean(v) for k, v in r.items()}})
    return {
        "metric": table.attrs["metric"],
        "select_on": table.attrs["select_on"],
        "interval": "95% Student t over seeds",
        "order": "mean over the settings every row has, then mean rank",
        "theory_n": table.attrs.get("theory_n"),
        "settings": table.attrs["settings"],
        "common": table.attrs.get("common", []),
        "group_by": group_by,
        "rows": rows,
        "cells": [{k: _clean(v) for k, v in r.items()} for _, r in cells.iterrows()],
        "failed": table.attrs["failed"],
        "failures": [list(f) for f in table.attrs.get("failures", [])],
        "unreadable": table.attrs.get("unreadable", 0),
    }


def _row_labels(table: pd.DataFrame) -> list[str]:
    """The row label of each table row (without the --group-by value): one colour each."""
    return [str(k[0] if isinstance(k, tuple) else k) for k in table.index]


def _shown_path(path) -> str:
    """A results folder as a page may show it: relative to the working folder when inside it,
    else its name (a committed page names no absolute path of the machine that made it)."""
    p = Path(str(path))
    if not p.is_absolute():
        return str(p)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return p.name


_HTML_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;cursor:pointer;user-select:none;position:sticky;top:0}
th:hover{background:#e0e6f0}
th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#fafafa}
td.best{font-weight:bold;background:#eaf5ea}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.notes{color:#555;font-size:13px;max-width:70em}
figure{display:inline-block;margin:1em 1em 1em 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}
"""

_HTML_SCRIPT = """
function sortBy(th){
  const table=th.closest('table'), body=table.tBodies[0], col=th.cellIndex;
  const asc=!(th.classList.contains('asc'));
  for(const h of table.tHead.rows[0].cells){h.classList.remove('asc','desc');}
  th.classList.add(asc?'asc':'desc');
  const key=r=>{const v=r.cells[col].dataset.v; const x=parseFloat(v);
    return isNaN(x)?(v===''||v==='nan'?null:v):x;};
  const rows=Array.from(body.rows);
  rows.sort((a,b)=>{const x=key(a),y=key(b);
    if(x===null&&y===null)return 0; if(x===null)return 1; if(y===null)return -1;
    const c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
    return asc?c:-c;});
  for(const r of rows)body.appendChild(r);
}
"""


def to_html(table: pd.DataFrame, figures: list[tuple[str, Path]] | None = None) -> str:
    from .plots import colors_for

    headers, text, keys, bold = _display(table)
    colors = colors_for(_row_labels(table))
    esc = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>glmix leaderboard ({esc(table.attrs['metric'])})</title>",
           f"<style>{_HTML_STYLE}</style><script>{_HTML_SCRIPT}</script></head><body>",
           f"<h1>glmix leaderboard: {esc(table.attrs['metric'])}</h1>",
           "<p class='notes'>Click a column header to sort.</p>",
           "<table id='leaderboard'><thead><tr>"]
    out += [f"<th onclick='sortBy(this)'>{esc(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    row_keys = _row_labels(table)
    for r, (row, key, flags) in enumerate(zip(text, keys, bold)):
        out.append("<tr>")
        for i, (cell, k, flag) in enumerate(zip(row, key, flags)):
            if isinstance(k, (bool, np.bool_)):
                v = str(k)
            elif isinstance(k, (int, float, np.integer, np.floating)):
                k = float(k)
                v = "" if np.isnan(k) else ("1e308" if np.isinf(k) else repr(float(k)))
            else:
                v = str(k)
            attrs = f" data-v='{esc(v)}'" + (" class='best'" if flag else "")
            content = esc(cell)
            if i == 0:
                swatch = colors[row_keys[r]]
                content = f"<span class='swatch' style='background:{swatch}'></span>" + content
            out.append(f"<td{attrs}>{content}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    out += [f"<p class='notes'>{esc(n)}</p>" for n in _notes(table)]
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    out.append(f"<p class='notes'>Generated {esc(stamp)} from "
               f"{esc(_shown_path(table.attrs.get('results_dir', '')))}.</p>")
    if figures:
        out.append("<h2>Plots</h2>")
        for title, path in figures:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{esc(title)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{esc(title)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def print_table(table: pd.DataFrame, console=None) -> None:
    """The leaderboard in the terminal (rich): compact cells `mean±half`, the seed count in the
    header when a column has one count, in the cell otherwise."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from .plots import colors_for

    colors = colors_for(_row_labels(table))
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 240))
    headers, text, _, bold = _display(table)
    cols = _columns(table)
    n = table.attrs.get("theory_n")
    t = Table(title=f"glmix leaderboard: {table.attrs['metric']} (mean±95% t half-width)"
              + (f"; theory at n={n}" if n else ""), show_lines=False, pad_edge=False)
    t.add_column("mixer", justify="left", no_wrap=True)
    labels = _row_labels(table)
    compact = {}
    for header, col, kind in cols:
        if kind == "acc":
            seeds = table[f"{col} seeds"].dropna().unique()
            one = len(seeds) == 1
            compact[col] = one
            header = f"{col} (n={int(seeds[0])})" if one else col
        elif n:
            header = header.replace(f" @n={n}", "")
        t.add_column(header, justify="right")
    for r, ((_, row), cells, flags) in enumerate(zip(table.iterrows(), text, bold)):
        out = [f"[{colors[labels[r]]}]■[/] {escape(cells[0])}"]
        for (_, col, kind), cell, flag in zip(cols, cells[1:], flags[1:]):
            if kind == "acc" and np.isfinite(row[col]):
                mean, half, seeds = row[col], row[f"{col} ±"], row[f"{col} seeds"]
                if not np.isfinite(mean):
                    cell = "-"
                else:
                    cell = _fmt_mean(mean) + (f"±{_fmt_mean(half)}" if np.isfinite(half)
                                              else "")
                    if not compact[col]:
                        cell += f" (n={int(seeds)})"
            out.append(f"[bold]{cell}[/bold]" if flag else cell)
        t.add_row(*out)
    console.print(t)
    for note in _notes(table):
        console.print(note, style="dim", markup=False, highlight=False)


def write_outputs(table: pd.DataFrame, out: Path, figures=None) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"leaderboard.{ext}" for ext in ("md", "csv", "json", "html")]
    paths[0].write_text(to_markdown(table))
    table.to_csv(paths[1])
    paths[2].write_text(json.dumps(to_json(table), indent=2, default=str) + "\n")
    paths[3].write_text(to_html(table, figures))
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="glmix-leaderboard",
        description="Rank mixers on a folder of result.json files (docs/analysis.md).")
    ap.add_argument("results_dir", help="folder searched recursively for result.json")
    ap.add_argument("--out", help="output folder (default RESULTS_DIR/leaderboard)")
    ap.add_argument("--metric", default="test_acc",
                    help="test metric to report (default test_acc; e.g. test_exact, or "
                    "lengthgen / lengthgen_exact: the mean over test lengths above the "
                    "training lengths, analysis/lengthgen.py)")
    ap.add_argument("--task", action="append", help="task name or setting (repeatable, "
                    "comma-separated, wildcards allowed)")
    ap.add_argument("--mixer", action="append", help="mixer name (repeatable, comma-separated, "
                    "wildcards allowed)")
    ap.add_argument("--group-by", metavar="KEY", help="a config key (e.g. model.d_model) shown "
                    "as a column instead of splitting rows; adds the accuracy-against-KEY plot")
    ap.add_argument("--no-plots", action="store_true", help="skip the plots")
    ap.add_argument("--bench", help="bench.ops JSON for the time-against-n plot")
    args = ap.parse_args(argv)

    try:
        table = build_leaderboard(args.results_dir, metric=args.metric, tasks=args.task,
                                  mixers=args.mixer, group_by=args.group_by)
    except NoResultsError as e:
        print(f"glmix-leaderboard: {e}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else Path(args.results_dir) / "leaderboard"
    figures = []
    if not args.no_plots:
        from .plots import make_plots

        figures = make_plots(table.attrs["cells"], out, metric=args.metric, bench=args.bench,
                             results_dir=args.results_dir, order=_row_labels(table),
                             runs=table.attrs["runs"])
        # [lengthgen hook] accuracy against test length for length-generalization runs
        path = lengthgen.plot_lengths(lengthgen.length_points(table.attrs["runs"]), out,
                                      order=_row_labels(table))
        if path is not None:
            figures.append(("Accuracy against test length", path))
    print_table(table)
    for path in write_outputs(table, out, figures):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
