"""The leaderboard: one row per mixer, one column per task setting.

    python -m analysis.leaderboard RESULTS_DIR [--out DIR] [--metric test_exact]
                                   [--task mqar,copy] [--mixer 'pow2*'] [--no-plots] [--bench F]
    glmix-leaderboard RESULTS_DIR          (the installed entry point)

For every (task setting, mixer) the learning rate with the best mean validation accuracy over
seeds is chosen, and that rate's test metric is reported as its mean over seeds with a 95%
Student t interval. Mixers are sorted by their mean rank over the task settings. The table goes
to the terminal (rich) and to leaderboard.md / .csv / .json / .html in --out (default
RESULTS_DIR/leaderboard). Definitions: docs/analysis.md.
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

from .results import (
    NoResultsError,
    cell_theory,
    filter_results,
    load_results,
    setting_order,
    summarize,
)
from .theory import state_floats

__all__ = ["build_leaderboard", "load_results", "main", "write_outputs"]

SELECT_ON = "val_acc"
THEORY_COLUMNS = ["reads/token", "cache", "state floats", "hops", "congestion"]


def _mixer_theory(mixer: str, n, cells: pd.DataFrame) -> dict:
    cfg = cells["mixer_config"].dropna()
    cfg = cfg.iloc[0] if len(cfg) else None
    th = cell_theory(mixer, n, cfg)
    out = dict.fromkeys(THEORY_COLUMNS, np.nan)
    if th is None:
        return out
    out["reads/token"] = th["reads_per_token_mean"]
    out["cache"] = th["cache"]
    out["hops"] = th["hop_diameter"]
    out["congestion"] = th["congestion"]
    d_model, heads = cells["d_model"].median(), cells["num_heads"].median()
    if np.isfinite(d_model):
        heads = int(heads) if np.isfinite(heads) else 1
        try:
            out["state floats"] = state_floats(cfg or mixer, int(n), int(d_model), heads)
        except ValueError:
            pass
    if not np.isfinite(out["state floats"]):
        at_n = cells.loc[cells["seq_len"] == n, "state_size"].dropna()
        if len(at_n):
            out["state floats"] = at_n.median()
    return out


def build_leaderboard(results_dir, metric: str = "test_acc", tasks=None,
                      mixers=None) -> pd.DataFrame:
    """The leaderboard as a DataFrame indexed by mixer, sorted by mean rank.

    Columns: for every task setting S, `S` (the mean of `metric` over seeds at the chosen
    learning rate), `S ±` (95% t half-width, NaN with one seed), `S seeds`, `S lr`; then `mean`
    (over the settings the mixer has), `mean rank` (rank 1 = best within each setting, ties
    averaged), `tasks` (settings present), the theory columns `reads/token`, `cache`,
    `state floats`, `hops`, `congestion` at n = attrs["theory_n"] (the largest task length
    shown), and `params` (median num_params). attrs: `cells` (the per-cell summary), `settings`,
    `metric`, `failed` (count), `failures` (task setting, mixer, error), `skipped`,
    `unreadable`, `duplicates`, `theory_n`. Raises NoResultsError when nothing is left to rank.
    """
    runs = load_results(results_dir)
    if runs.empty:
        raise NoResultsError(f"no result.json found under {results_dir}")
    chosen = filter_results(runs, tasks, mixers)
    status = chosen["status"]
    failed = chosen[status == "failed"]
    counts = {
        "failed": int(len(failed)),
        "skipped": int((status == "skipped").sum()),
        "unreadable": int((status == "unreadable").sum()),
    }
    if not (status == "ok").any():
        where = "" if chosen is runs or len(chosen) == len(runs) else " matching the filters"
        parts = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        raise NoResultsError(f"no successful ('ok') result{where} under {results_dir}"
                             + (f" ({parts})" if parts else ""))
    cells = summarize(chosen, metric=metric, select_on=SELECT_ON)
    settings = setting_order(cells)
    wide = cells.pivot(index="mixer", columns="task_setting", values="mean")
    table = pd.DataFrame(index=wide.index)
    sub_cells = per_setting_cells(chosen, metric)
    shown = []
    for s in settings:
        subs = [c for c in dict.fromkeys(sub_cells.get("task_setting", [])) if
                c.startswith(s + "@")]
        for column, source in [(s, cells)] + [(c, sub_cells) for c in subs]:
            sub = source[source["task_setting"] == column].set_index("mixer")
            table[column] = sub["mean"].reindex(table.index)
            table[f"{column} ±"] = sub["ci95"].reindex(table.index)
            table[f"{column} seeds"] = sub["seeds"].reindex(table.index)
            table[f"{column} lr"] = sub["lr"].reindex(table.index)
            shown.append(column)
    means = wide[settings]
    table["mean"] = means.mean(axis=1, skipna=True)
    table["mean rank"] = means.rank(axis=0, ascending=False, method="average").mean(axis=1)
    table["tasks"] = means.notna().sum(axis=1)
    theory_n = cells["seq_len"].max()
    for mixer in table.index:
        th = _mixer_theory(mixer, theory_n, cells[cells["mixer"] == mixer])
        for key, value in th.items():
            table.loc[mixer, key] = value
    table["params"] = cells.groupby("mixer")["num_params"].median().reindex(table.index)
    table = table.assign(_name=table.index).sort_values(
        ["mean rank", "mean", "_name"], ascending=[True, False, True]).drop(columns="_name")
    table.index.name = "mixer"
    failures = [
        (r.get("task_setting"), r.get("mixer"), str(r.get("error") or "").strip().splitlines()[:1])
        for _, r in failed.iterrows()
    ]
    table.attrs.update(
        cells=cells, settings=shown, ranked_settings=settings, setting_cells=sub_cells,
        metric=metric, select_on=SELECT_ON,
        theory_n=None if not np.isfinite(theory_n) else int(theory_n),
        failures=[(s, m, e[0] if e else "") for s, m, e in failures],
        duplicates=runs.attrs.get("duplicates", 0), results_dir=str(results_dir), **counts,
    )
    return table


def per_setting_cells(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
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
        return pd.DataFrame(columns=["task_setting", "mixer", "mean", "ci95", "seeds", "lr"])
    cells = summarize(pd.concat(frames, ignore_index=True), metric=metric, select_on=SELECT_ON)
    order = {name: i for i, name in enumerate(dict.fromkeys(
        ts for f in frames for ts in f["task_setting"]))}
    return cells.sort_values("task_setting", key=lambda c: c.map(order), kind="stable")


# ----------------------------------------------------------------------------------------------
# formatting


def _fmt_acc(mean, half, seeds) -> str:
    if mean is None or not np.isfinite(mean):
        return "-"
    seeds = 0 if seeds is None or not np.isfinite(seeds) else int(seeds)
    if seeds > 1 and np.isfinite(half):
        return f"{mean:.3f} ± {half:.3f} (n={seeds})"
    return f"{mean:.3f} (n={seeds})"


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
    cols = [(s, s, "acc") for s in table.attrs["settings"]]
    cols += [("mean", "mean", "float"), ("mean rank", "mean rank", "float")]
    if (table["tasks"] < len(table.attrs.get("ranked_settings", table.attrs["settings"]))).any():
        cols.append(("tasks", "tasks", "int"))
    cols += [(f"reads/token{at}", "reads/token", "float"), (f"cache{at}", "cache", "int"),
             (f"state floats{at}", "state floats", "int"), (f"hops{at}", "hops", "int"),
             (f"congestion{at}", "congestion", "float"), ("params", "params", "params")]
    return cols


def _display(table: pd.DataFrame) -> tuple[list[str], list[list[str]], list[list[float]], list]:
    """Headers, formatted cells, sort keys and a bold flag per cell (best of an accuracy column)."""
    cols = _columns(table)
    best = {s: table[s].max() for s in table.attrs["settings"]}
    best["mean"] = table["mean"].max()
    best["mean rank"] = table["mean rank"].min()
    headers = ["mixer"] + [h for h, _, _ in cols]
    text, keys, bold = [], [], []
    for mixer, row in table.iterrows():
        t, k, b = [str(mixer)], [str(mixer)], [False]
        for _, col, kind in cols:
            v = row[col]
            if kind == "acc":
                t.append(_fmt_acc(v, row[f"{col} ±"], row[f"{col} seeds"]))
            elif kind in ("float",) and col in ("mean", "mean rank"):
                t.append("-" if not np.isfinite(v) else f"{v:.3f}" if col == "mean" else f"{v:.2f}")
            else:
                t.append(_fmt_num(v, kind))
            k.append(v)
            b.append(col in best and np.isfinite(v) and v == best[col])
        text.append(t)
        keys.append(k)
        bold.append(b)
    return headers, text, keys, bold


def _notes(table: pd.DataFrame) -> list[str]:
    a = table.attrs
    notes = [
        f"Metric: {a['metric']}, at the learning rate with the best mean {a['select_on']} over "
        f"seeds; mean ± half-width of the 95% Student t interval over seeds "
        f"(t quantile from scipy.stats.t, n-1 degrees of freedom; one seed: mean only). "
        f"Rank 1 = best within a task setting; mean rank over the settings a mixer has.",
    ]
    if a.get("theory_n"):
        notes.append(f"Theory columns at n = {a['theory_n']} (the largest task length shown): "
                     f"reads/token = mean |A(i)| + |B(i)|, cache = vectors kept for decoding "
                     f"('-' for a matrix state), state floats per layer, hops = hop diameter, "
                     f"congestion = the largest shortest-path load (docs/analysis.md).")
    foot = f"{a['failed']} failed run(s) excluded"
    if a.get("skipped"):
        foot += f", {a['skipped']} skipped"
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
    lines = [f"# glmix leaderboard ({table.attrs['metric']})", ""]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|")
    for row, flags in zip(text, bold):
        cells = [f"**{c}**" if f else c for c, f in zip(row, flags)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines += [f"{note}  " for note in _notes(table)]
    return "\n".join(lines) + "\n"


def to_json(table: pd.DataFrame) -> dict:
    def clean(v):
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return None if math.isnan(v) else ("inf" if math.isinf(v) else float(v))
        return v

    cells = table.attrs["cells"].drop(columns=["task_config", "mixer_config"], errors="ignore")
    return {
        "metric": table.attrs["metric"],
        "select_on": table.attrs["select_on"],
        "interval": "95% Student t over seeds",
        "theory_n": table.attrs.get("theory_n"),
        "settings": table.attrs["settings"],
        "rows": [{"mixer": m, **{k: clean(v) for k, v in r.items()}}
                 for m, r in table.iterrows()],
        "cells": [{k: clean(v) for k, v in r.items()} for _, r in cells.iterrows()],
        "failed": table.attrs["failed"],
        "failures": [list(f) for f in table.attrs.get("failures", [])],
        "skipped": table.attrs.get("skipped", 0),
        "unreadable": table.attrs.get("unreadable", 0),
    }


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
    from .plots import color_of

    headers, text, keys, bold = _display(table)
    esc = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>glmix leaderboard ({esc(table.attrs['metric'])})</title>",
           f"<style>{_HTML_STYLE}</style><script>{_HTML_SCRIPT}</script></head><body>",
           f"<h1>glmix leaderboard: {esc(table.attrs['metric'])}</h1>",
           "<p class='notes'>Click a column header to sort.</p>",
           "<table id='leaderboard'><thead><tr>"]
    out += [f"<th onclick='sortBy(this)'>{esc(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for row, key, flags in zip(text, keys, bold):
        out.append("<tr>")
        for i, (cell, k, flag) in enumerate(zip(row, key, flags)):
            if isinstance(k, (float, np.floating)):
                v = "" if np.isnan(k) else ("1e308" if np.isinf(k) else repr(float(k)))
            else:
                v = str(k)
            attrs = f" data-v='{esc(v)}'" + (" class='best'" if flag else "")
            content = esc(cell)
            if i == 0:
                content = (f"<span class='swatch' style='background:{color_of(cell)}'></span>"
                           + content)
            out.append(f"<td{attrs}>{content}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    out += [f"<p class='notes'>{esc(n)}</p>" for n in _notes(table)]
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    out.append(f"<p class='notes'>Generated {esc(stamp)} from "
               f"{esc(table.attrs.get('results_dir', ''))}.</p>")
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
    from rich.table import Table

    from .plots import color_of

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
    for (mixer, row), cells, flags in zip(table.iterrows(), text, bold):
        out = [f"[{color_of(mixer)}]■[/] {mixer}"]
        for (_, col, kind), cell, flag in zip(cols, cells[1:], flags[1:]):
            if kind == "acc":
                mean, half, seeds = row[col], row[f"{col} ±"], row[f"{col} seeds"]
                if not np.isfinite(mean):
                    cell = "-"
                else:
                    cell = f"{mean:.3f}" + (f"±{half:.3f}" if np.isfinite(half) else "")
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
                    help="test metric to report (default test_acc; e.g. test_exact)")
    ap.add_argument("--task", action="append", help="task name or setting (repeatable, "
                    "comma-separated, wildcards allowed)")
    ap.add_argument("--mixer", action="append", help="mixer name (repeatable, comma-separated, "
                    "wildcards allowed)")
    ap.add_argument("--no-plots", action="store_true", help="skip the plots")
    ap.add_argument("--bench", help="mixers.bench JSON for the time-against-n plot")
    args = ap.parse_args(argv)

    try:
        table = build_leaderboard(args.results_dir, metric=args.metric, tasks=args.task,
                                  mixers=args.mixer)
    except NoResultsError as e:
        print(f"glmix-leaderboard: {e}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else Path(args.results_dir) / "leaderboard"
    figures = []
    if not args.no_plots:
        from .plots import make_plots

        figures = make_plots(table.attrs["cells"], out, metric=args.metric, bench=args.bench,
                             results_dir=args.results_dir)
    print_table(table)
    for path in write_outputs(table, out, figures):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
