"""The leaderboard's four renderers: terminal (rich), Markdown, HTML, CSV and JSON.

Each takes a `analysis.leaderboard.Leaderboard` (computed, never recomputed here) and draws the
same cells: `mean ± half (seeds=k)`, the best of a column in bold, `≈` on a cell within noise of
the task setting's chance level; under the table the legends (the keys that set a row label or a
setting apart, what a setting is and its chance level, one line per theory column) and the notes.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .theory import THEORY_COLUMNS

__all__ = ["columns", "display", "legend_lines", "notes", "to_markdown", "to_json", "to_csv",
           "to_html", "print_table", "write_outputs"]

CHANCE_MARK = "≈"


def _fmt_mean(x) -> str:
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.0f}"


def _fmt_acc(mean, half, seeds, near_chance=False, show_seeds=True) -> str:
    if mean is None or np.isnan(mean):
        return "-"
    seeds = 0 if seeds is None or not np.isfinite(seeds) else int(seeds)
    tail = f" (seeds={seeds})" if show_seeds else ""
    if np.isinf(mean):
        return f"never{tail}"
    text = _fmt_mean(mean)
    if seeds > 1 and np.isfinite(half):
        text += f" ± {_fmt_mean(half)}"
    return text + tail + (f" {CHANCE_MARK}" if near_chance else "")


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


def columns(board, theory: bool = True) -> list[tuple[str, str, str]]:
    """(header, column, kind) of the displayed table; kind `theory` for the theory columns."""
    cols = [(board.group_by, board.group_by, "key")] if board.group_by else []
    cols += [(s, s, "acc") for s in board.settings]
    cols += [("mean", "mean", "float"), ("mean rank", "mean rank", "float")]
    cols += [(c, c, "score") for c in board.scores]
    if not board.table["complete"].all():
        cols.append(("tasks", "tasks", "int"))
    if theory:
        cols += [(label, name, "theory") for name, label, _ in THEORY_COLUMNS]
    cols.append(("params", "params", "params"))
    return cols


def _label(key, row) -> str:
    """The row's label, with `*` when it misses some task settings."""
    name = key[0] if isinstance(key, tuple) else key
    return f"{name}{'' if row['complete'] else ' *'}"


def display(board, theory: bool = True, show_seeds=None):
    """Headers, formatted cells, sort keys and a bold flag per cell (the best of a column).
    `show_seeds`: per setting, whether a cell shows its seed count (default: always)."""
    table = board.table
    cols = columns(board, theory)
    pick = max if board.higher_is_better else min
    best = {s: pick(table[s].dropna(), default=np.nan) for s in board.settings}
    best["mean"] = pick(table["mean"].dropna(), default=np.nan)
    best["mean rank"] = table["mean rank"].min()
    for c in board.scores:
        best[c] = pick(table[c].dropna(), default=np.nan)
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
                t.append(_fmt_acc(v, row[f"{col} ±"], row[f"{col} seeds"], row[f"{col} chance"],
                                  True if show_seeds is None else show_seeds[col]))
            elif col == "mean" or kind == "score":
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


def legend_lines(board, theory: bool = True) -> list[str]:
    """The legends: row labels' keys, the settings (what, chance level), the theory columns."""
    lines = []
    if board.legend:
        lines.append("Rows (the config keys that set a label apart):")
        lines += [f"  {label}: {keys}" for label, keys in sorted(board.legend.items())]
    lines.append("Task settings:")
    for s in board.settings:
        info = board.setting_info[s]
        chance = "" if info.chance is None else f"; chance {info.chance:.3g}"
        keys = f" (differs in {info.keys})" if info.keys else ""
        lines.append(f"  {s}: {info.description}{chance}{keys}")
    if any(i.chance is not None for i in board.setting_info.values()):
        lines.append(f"  {CHANCE_MARK}: within noise of chance (mean <= chance + max(95% "
                     f"half-width, 0.02))")
    if theory and board.theory_n:
        lines.append(f"Theory columns, per layer at n = {board.theory_n} (the largest task "
                     f"length shown), from each row's recorded mixer config and model width:")
        lines += [f"  {label}: {definition}" for _, label, definition in THEORY_COLUMNS]
    return lines


def notes(board) -> list[str]:
    direction = "higher" if board.higher_is_better else "lower"
    common = board.common
    out = [
        f"Metric: {board.metric_name} ({board.metric.label}; {direction} is better), at the "
        f"learning rate and weight decay with the best mean {board.select_on} over seeds; mean "
        f"± half-width of "
        f"the 95% Student t interval over seeds (one seed: mean only).",
        f"Order: by `mean`, the mean of the metric over the {len(common)} task setting(s) every "
        f"row has" + (f" ({', '.join(common)})"
                      if common and len(common) < len(board.ranked_settings) else "")
        + "; `mean rank` (rank 1 = best within a setting) over the same settings beside it. "
        "A row is one mixer config; runs that differ only in seed, learning rate and weight "
        "decay are pooled "
        "(docs/analysis.md).",
    ]
    if board.where:
        out.insert(1, f"Only the runs whose config has {', '.join(board.where)} (--where).")
    if board.rank_by == "mad":
        out.insert(1, "Ranked by the MAD score (analysis/mad.py): per MAD task (tasks/mad.py), "
                   "the mean of a row's cells over that task's settings every row has; the score "
                   "is the mean over the tasks; ties by `mean`.")
    if not board.table["complete"].all():
        out.append("* misses some task settings: not ranked on fewer settings, see `tasks`.")
    if not common:
        out.append("No task setting is shared by every row: rows are in label order "
                   "(choose comparable ones with --task / --mixer).")
    foot = f"{board.failed} failed run(s) excluded"
    if board.unreadable:
        foot += f", {board.unreadable} unreadable result file(s)"
    if board.duplicates:
        foot += f", {board.duplicates} duplicate result(s) of one config ignored"
    out.append(foot + ".")
    for setting, mixer, err in board.failures[:20]:
        out.append(f"  failed: {setting} / {mixer}: {err[:160]}")
    if len(board.failures) > 20:
        out.append(f"  ... and {len(board.failures) - 20} more")
    return out


def to_markdown(board) -> str:
    headers, text, _, bold = display(board)
    cells = [[(f"**{c}**" if f else c).replace("|", "\\|") for c, f in zip(row, flags)]
             for row, flags in zip(text, bold)]
    body = pd.DataFrame(cells, columns=headers).to_markdown(
        index=False, colalign=["left"] + ["right"] * (len(headers) - 1))
    lines = [f"# glmix leaderboard ({board.metric_name})", "", body, ""]
    lines += [f"{line}  " for line in legend_lines(board) + [""] + notes(board)]
    return "\n".join(lines) + "\n"


def _clean(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else ("inf" if math.isinf(v) else float(v))
    return v


def to_json(board) -> dict:
    cells = board.cells.drop(columns=["task_config", "mixer_config", "paths"], errors="ignore")
    rows = []
    for key, r in board.table.iterrows():
        head = ({"row": key[0], board.group_by: _clean(key[1])} if isinstance(key, tuple)
                else {"row": key})
        rows.append({**head, **{k: _clean(v) for k, v in r.items()}})
    return {
        "metric": board.metric_name,
        "higher_is_better": board.higher_is_better,
        "select_on": board.select_on,
        "where": board.where,
        "interval": "95% Student t over seeds",
        "order": ("MAD score, then " if board.rank_by == "mad" else "")
        + "mean over the settings every row has, then mean rank",
        "scores": board.scores,
        "theory_n": board.theory_n,
        "theory_columns": {name: definition for name, _, definition in THEORY_COLUMNS},
        "settings": board.settings,
        "setting_info": {s: {"description": i.description, "chance": i.chance, "keys": i.keys}
                         for s, i in board.setting_info.items()},
        "legend": board.legend,
        "common": board.common,
        "group_by": board.group_by,
        "rows": rows,
        "cells": [{k: _clean(v) for k, v in r.items()} for _, r in cells.iterrows()],
        "failed": board.failed,
        "failures": [list(f) for f in board.failures],
        "unreadable": board.unreadable,
    }


def to_csv(board, path) -> None:
    board.table.to_csv(path)


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
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;
 color:#222;max-width:1360px}
.wrap{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
td{white-space:nowrap}
th{background:#f0f0f0;cursor:pointer;user-select:none;position:sticky;top:0;max-width:11em;
 white-space:normal;vertical-align:bottom}
th:hover{background:#e0e6f0}
th[title]{text-decoration:underline dotted}
th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
td:first-child,th:first-child{text-align:left;max-width:26em;overflow:hidden;
 text-overflow:ellipsis}
tbody tr:nth-child(even){background:#fafafa}
td.best{font-weight:bold;background:#eaf5ea}
td.chance{color:#999}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.notes{color:#555;font-size:13px;max-width:70em;margin:0.3em 0}
.legend{color:#444;font-size:13px;margin:0.2em 0 0.2em 1em}
body.hide-theory .theory{display:none}
button{font-size:13px;margin:0.5em 0}
figure{display:block;margin:1em 0;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #eee}
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
function toggleTheory(b){
  const hidden=document.body.classList.toggle('hide-theory');
  b.textContent=hidden?'show theory columns':'hide theory columns';
}
"""


def _sort_value(k) -> str:
    if isinstance(k, (bool, np.bool_)):
        return str(k)
    if isinstance(k, (int, float, np.integer, np.floating)):
        k = float(k)
        return "" if np.isnan(k) else ("1e308" if np.isinf(k) else repr(float(k)))
    return str(k)


def to_html(board, figures: list[tuple[str, Path]] | None = None) -> str:
    from .plots import colors_for

    headers, text, keys, bold = display(board)
    cols = [("mixer", "mixer", "label")] + columns(board)
    titles = {label: definition for _, label, definition in THEORY_COLUMNS}
    titles.update({s: i.description + ("" if i.chance is None else f"; chance {i.chance:.3g}")
                   for s, i in board.setting_info.items()})
    labels = board.row_labels
    colors = colors_for(labels)
    esc = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>glmix leaderboard ({esc(board.metric_name)})</title>",
           f"<style>{_HTML_STYLE}</style><script>{_HTML_SCRIPT}</script></head>",
           "<body class='hide-theory'>",
           f"<h1>glmix leaderboard: {esc(board.metric_name)}</h1>",
           "<p class='notes'>Click a column header to sort; hover a header for its definition."
           "</p><button onclick='toggleTheory(this)'>show theory columns</button>",
           "<div class='wrap'><table id='leaderboard'><thead><tr>"]
    for h, (_, _, kind) in zip(headers, cols):
        cls = " class='theory'" if kind == "theory" else ""
        title = f" title='{esc(titles[h])}'" if h in titles else ""
        out.append(f"<th onclick='sortBy(this)'{cls}{title}>{esc(h)}</th>")
    out.append("</tr></thead><tbody>")
    for r, (row, key, flags) in enumerate(zip(text, keys, bold)):
        out.append("<tr>")
        for i, (cell, k, flag, (_, _, kind)) in enumerate(zip(row, key, flags, cols)):
            classes = (["best"] if flag else []) + (["theory"] if kind == "theory" else [])
            if kind == "acc" and cell.endswith(CHANCE_MARK):
                classes.append("chance")
            attrs = f" data-v='{esc(_sort_value(k))}'"
            attrs += f" class='{' '.join(classes)}'" if classes else ""
            content = esc(cell)
            if i == 0:
                swatch = colors[labels[r]]
                content = f"<span class='swatch' style='background:{swatch}'></span>" + content
                attrs += f" title='{esc(board.legend.get(labels[r], labels[r]))}'"
            out.append(f"<td{attrs}>{content}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    for line in legend_lines(board):
        cls = "legend" if line.startswith("  ") else "notes"
        out.append(f"<p class='{cls}'>{esc(line.strip())}</p>")
    out += [f"<p class='notes'>{esc(n)}</p>" for n in notes(board)]
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    out.append(f"<p class='notes'>Generated {esc(stamp)} from "
               f"{esc(_shown_path(board.results_dir))}.</p>")
    if figures:
        out.append("<h2>Plots</h2>")
        for title, path in figures:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{esc(title)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{esc(title)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _rich_table(board, colors, theory: bool):
    from rich.markup import escape
    from rich.table import Table

    table = board.table
    one_count = {}
    for s in board.settings:
        seeds = table[f"{s} seeds"].dropna().unique()
        one_count[s] = int(seeds[0]) if len(seeds) == 1 else None
    headers, text, _, bold = display(board, theory,
                                    {s: one_count[s] is None for s in board.settings})
    cols = columns(board, theory)
    t = Table(title=f"glmix leaderboard: {board.metric_name} (mean±95% t half-width)"
              + (f"; theory at n={board.theory_n}" if theory and board.theory_n else ""),
              show_lines=False, pad_edge=False)
    t.add_column("mixer", justify="left", overflow="fold")
    for header, col, kind in cols:
        if kind == "acc" and one_count[col] is not None:
            header = f"{col} (seeds={one_count[col]})"
        t.add_column(header, justify="right", overflow="fold")
    labels = board.row_labels
    for r, (cells, flags) in enumerate(zip(text, bold)):
        out = [f"[{colors[labels[r]]}]■[/] {escape(cells[0])}"]
        for cell, flag in zip(cells[1:], flags[1:]):
            cell = cell.replace(" ± ", "±")
            out.append(f"[bold]{escape(cell)}[/bold]" if flag else escape(cell))
        t.add_row(*out)
    return t


def print_table(board, console=None) -> None:
    """The leaderboard in the terminal (rich): compact cells `mean±half`, the seed count in the
    header when a column has one count. Numbers are never cut: when the table is wider than the
    terminal the theory columns are left out (their figures are in the other outputs), and a
    cell that still does not fit wraps."""
    from rich.console import Console
    from rich.measure import Measurement

    from .plots import colors_for

    colors = colors_for(board.row_labels)
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 200))
    theory = True
    t = _rich_table(board, colors, theory)
    if Measurement.get(console, console.options.update_width(10_000), t).maximum > console.width:
        theory = False
        t = _rich_table(board, colors, theory)
    console.print(t)
    lines = legend_lines(board, theory)
    if not theory:
        lines.append("Theory columns left out to fit the terminal: see leaderboard.md / .html.")
    for line in lines + notes(board):
        console.print(line, style="dim", markup=False, highlight=False)


def write_outputs(board, out: Path, figures=None) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"leaderboard.{ext}" for ext in ("md", "csv", "json", "html")]
    paths[0].write_text(to_markdown(board))
    to_csv(board, paths[1])
    paths[2].write_text(json.dumps(to_json(board), indent=2, default=str) + "\n")
    paths[3].write_text(to_html(board, figures))
    return paths
