"""Plots (seaborn on matplotlib, PNG and SVG): accuracy against sequence length, state size (with
the capacity bound), hop diameter and congestion, and a --group-by key; learning curves; measured
time against n with fitted exponents.

    python -m analysis.plots RESULTS_DIR [--out DIR] [--metric test_acc] [--bench BENCH.json]
                             [--task ...] [--mixer ...] [--group-by KEY]

Colours (and markers) are assigned by order: the leaderboard's row order, so a row keeps its
colour across the plots and the page of one leaderboard. A plot whose data is missing is
skipped with a printed note. Accuracy points are the leaderboard's cells: the chosen learning
rate's mean over seeds, with the 95% t interval as bars or bands.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from runners.metrics import metric as lookup_metric

from .results import setting_order
from .stats import fit_exponent

__all__ = ["PLOTS", "Plot", "Style", "colors_for", "make_plots", "split_by_group", "plot_bench",
           "plot_curves", "plot_group_by", "load_bench", "load_bench_records", "main"]

_MARKERS = ["o", "s", "D", "^", "v", "P", "X", "<", ">", "p"]
_LINESTYLES = ["-", "--", ":", "-."]


def colors_for(labels) -> dict[str, str]:
    """A colour per distinct label, assigned in order of first appearance: seaborn's
    colorblind palette for up to 10, husl beyond (as many distinct hues as labels)."""
    import seaborn as sns

    names = list(dict.fromkeys(str(x) for x in labels))
    colors = (sns.color_palette("colorblind", 10) if len(names) <= 10
              else sns.color_palette("husl", len(names)))
    return {n: "#{:02x}{:02x}{:02x}".format(*(int(round(255 * c)) for c in colors[i]))
            for i, n in enumerate(names)}


class Style:
    """Colour and marker of each row label, by the order given (default: sorted), and the
    legend text of the labels that stand for config keys (analysis.results'
    label_by_difference)."""

    def __init__(self, order, legend: dict | None = None):
        self.order = list(dict.fromkeys(str(x) for x in order))
        self.colors = colors_for(self.order)
        self.legend = dict(legend or {})

    def keys_to_show(self, label) -> str | None:
        """The config keys a legend entry has to spell out under its label: none when its tag
        already says them (`attention [n_layers=2]` for `model.n_layers=2`), the keys in full
        under a letter tag (`attention [a]`), which analysis.results' label_by_difference gives
        where the key=value tag would be too long or ambiguous."""
        keys = self.legend.get(str(label))
        tag = str(label).rpartition(" [")[2]
        return None if not keys or "=" in tag else keys

    def text(self, label) -> str:
        """A legend entry: the label, and the keys it stands for wrapped under it."""
        keys = self.keys_to_show(label)
        if not keys:
            return str(label)
        return str(label) + "\n" + textwrap.fill(keys, 44, initial_indent="  ",
                                                   subsequent_indent="  ")

    def ordered(self, labels) -> list[str]:
        labels = {str(x) for x in labels}
        return [x for x in self.order if x in labels] + sorted(labels - set(self.order))

    def color(self, label) -> str:
        if str(label) not in self.colors:
            # a label first seen late gets a colour of its own; the ones already drawn keep
            # theirs (recolouring all of them would change a row's colour between panels)
            self.order.append(str(label))
            self.colors[str(label)] = colors_for(self.order)[str(label)]
        return self.colors[str(label)]

    def marker(self, label) -> str:
        self.color(label)
        return _MARKERS[self.order.index(str(label)) % len(_MARKERS)]


def _note(msg: str) -> None:
    print(f"plots: {msg}")


def _style():
    import seaborn as sns

    return sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.95)


def _grid(k: int, ncols: int = 3, size=(4.6, 3.6)):
    from matplotlib.figure import Figure

    ncols = max(1, min(k, ncols))
    nrows = math.ceil(k / ncols)
    fig = Figure(figsize=(size[0] * ncols + 2.4, size[1] * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[k:]:
        ax.set_visible(False)
    return fig, axes[:k]


@contextmanager
def _setting_panels(data: pd.DataFrame):
    """In the plots' style: a figure with a panel per task setting of `data` (in setting order),
    and the triples (axes, setting, that setting's rows)."""
    ax_style, ctx = _style()
    with ax_style, ctx:
        settings = setting_order(data)
        fig, axes = _grid(len(settings))
        yield fig, [(ax, s, data[data["task_setting"] == s].copy())
                    for ax, s in zip(axes, settings)]


def _legend(fig, style: Style, mixers, extra=()) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=style.color(m), marker=style.marker(m), linestyle="-",
                      label=style.text(m)) for m in mixers]
    handles += list(extra)
    if not any(style.keys_to_show(m) for m in mixers):
        fig.legend(handles=handles, loc="outside right center", frameon=False, title="mixer",
                   fontsize="small")
        return
    # labels that stand for config keys carry them under the label: below the panels, in
    # columns, with the figure made taller by the legend's height so the panels keep theirs
    ncols = min(3, len(handles))
    lines = [h.get_label().count("\n") + 1 for h in handles]
    rows = [max(lines[i:i + ncols]) for i in range(0, len(lines), ncols)]
    fig.set_figheight(fig.get_figheight() + 0.19 * (sum(rows) + len(rows)) + 0.4)
    fig.legend(handles=handles, loc="outside lower center", frameon=False, title="mixer",
               fontsize="small", ncols=ncols)


def _suptitle(fig, text: str, width: int | None = None) -> None:
    """A figure title wrapped to lines of `width` characters (default: what the figure's width
    holds at the title's font, about 9 characters an inch; constrained layout makes room)."""
    width = width or max(40, min(90, int(fig.get_figwidth() * 9)))
    fig.suptitle(textwrap.fill(text, width))


def _save(fig, out: Path, name: str, formats=("png", "svg")) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for ext in formats:
        fig.savefig(out / f"{name}.{ext}", dpi=130)
    return out / f"{name}.png"


def _points(ax, style: Style, sub: pd.DataFrame, xcol: str, step: float = 7.0) -> None:
    """A marker with its 95% interval bar per row of `sub` at x = sub[xcol]. Rows that share an x
    (up to 2%) are spread sideways by a few points, in palette order, so none hides another."""
    from matplotlib.transforms import offset_copy

    sub = sub.assign(_order=[style.ordered(sub["row"]).index(m) for m in sub["row"]])
    sub = sub.sort_values("_order")
    key = np.round(np.log(np.maximum(sub[xcol].to_numpy(float), 1e-9)) / 0.02)
    for _, group in sub.groupby(key, sort=False):
        count = len(group)
        for k, (_, r) in enumerate(group.iterrows()):
            y = r["mean"]
            lo, hi = np.clip(r["lo"], 0, 1), np.clip(r["hi"], 0, 1)  # accuracies live in [0, 1]
            err = [[y - lo if np.isfinite(lo) else 0], [hi - y if np.isfinite(hi) else 0]]
            shift = offset_copy(ax.transData, fig=ax.figure, x=(k - (count - 1) / 2) * step,
                                y=0, units="points")
            ax.errorbar([r[xcol]], [y], yerr=err, fmt=style.marker(r["row"]), ms=6, capsize=3,
                        color=style.color(r["row"]), lw=1.2, transform=shift, zorder=3)


def _thin_labels(ticks, x_inf=None, gap: float = 0.45) -> list[str]:
    """Tick labels on a log2 axis, blank where a label would crowd its left neighbour."""
    labels, last = [], -np.inf
    for t in ticks:
        if np.log2(t) - last >= gap or t == ticks[-1]:
            labels.append("∞" if x_inf is not None and t == x_inf else f"{t:g}")
            last = np.log2(t)
        else:
            labels.append("")
    return labels


def _metric_label(metric: str) -> str:
    """The axis label of a metric: the metric table's (runners.metrics)."""
    try:
        return lookup_metric(metric).label
    except ValueError:
        return metric


# ----------------------------------------------------------------------------------------------
# accuracy plots


def _seq_len_panels(cells: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    panels = []
    for task, sub in cells.dropna(subset=["seq_len"]).groupby("task", sort=True):
        if sub["seq_len"].nunique() < 2:
            continue
        per_len = sub.groupby("seq_len")["task_setting"].nunique()
        if per_len.max() == 1:
            panels.append((str(task), sub))
            continue
        # several settings share a length: split by the other task parameters
        def family(cfg):
            if not isinstance(cfg, dict):
                return ""
            return json.dumps({k: v for k, v in cfg.items() if k != "seq_len"}, sort_keys=True,
                              default=str)
        fam = sub["task_config"].map(family)
        for i, (_, part) in enumerate(sub.groupby(fam, sort=True)):
            if part["seq_len"].nunique() >= 2 and part.groupby("seq_len")[
                    "task_setting"].nunique().max() == 1:
                panels.append((f"{task} ({i + 1})", part))
    return panels


def plot_seq_len(cells: pd.DataFrame, out: Path, metric: str, style: Style | None = None):
    style = style or Style(sorted(cells["row"].unique()))
    panels = _seq_len_panels(cells)
    if not panels:
        _note("accuracy against sequence length skipped: no task has results at several "
              "seq_len values")
        return None
    import seaborn as sns

    ax_style, ctx = _style()
    with ax_style, ctx:
        fig, axes = _grid(len(panels))
        for ax, (title, sub) in zip(axes, panels):
            mixers = style.ordered(sub["row"])
            for m in mixers:
                part = sub[sub["row"] == m].sort_values("seq_len")
                x = part["seq_len"].to_numpy(float)
                ax.fill_between(x, np.clip(part["lo"].to_numpy(float), 0, 1),
                                np.clip(part["hi"].to_numpy(float), 0, 1),
                                color=style.color(m), alpha=0.18, lw=0)
            sns.lineplot(data=sub, x="seq_len", y="mean", hue="row", style="row",
                         palette={m: style.color(m) for m in mixers},
                         markers={m: style.marker(m) for m in mixers}, dashes=False,
                         hue_order=mixers, style_order=mixers, errorbar=None, ax=ax,
                         legend=False)
            ax.set_xscale("log", base=2)
            lens = sorted(sub["seq_len"].unique())
            ax.set_xticks(lens, [str(int(v)) for v in lens])
            ax.minorticks_off()
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(title)
            ax.set_xlabel("sequence length")
            ax.set_ylabel(_metric_label(metric))
        _legend(fig, style, style.ordered(cells["row"]))
        _suptitle(fig, "Accuracy against sequence length (bands: 95% t interval over seeds)")
        return _save(fig, out, "accuracy_vs_seq_len")


def _bound_inputs(sub: pd.DataFrame):
    """(info_bits, chance, num_layers) of a task setting, or None when unknown."""
    from .results import task_of
    from .theory import task_chance

    task = None
    cfg = sub["task_config"].dropna()
    if len(cfg):
        task = task_of(cfg.iloc[0])
    info = sub["info_bits"].median() if "info_bits" in sub else math.nan
    if not np.isfinite(info) and task is not None:
        info = float(task.info_bits)
    if not np.isfinite(info):
        return None
    chance = task_chance(task)[0]
    layers = sub["num_layers"].median()
    return info, chance, int(layers) if np.isfinite(layers) else 1


def state_lines(sub: pd.DataFrame) -> dict[str, tuple[list[float], list[float]]]:
    """Zoology's frontier lines: for each row of a --group-by split (column group_row, e.g. a
    mixer over model.d_model) with two or more points, its (state sizes, means) in state
    order. Empty without a split."""
    if "group_row" not in sub:
        return {}
    lines = {}
    for row, part in sub.groupby("group_row", sort=False):
        part = part.sort_values("state")
        if len(part) > 1:
            lines[str(row)] = (part["state"].tolist(), part["mean"].tolist())
    return lines


def plot_cache(cells: pd.DataFrame, out: Path, metric: str, bits_per_float: int = 16,
               style: Style | None = None):
    """Accuracy against the layer's state size, a panel per task setting and a point per row.
    Under --group-by (cells split by analysis.plots.split_by_group) a row is one mixer: a line
    joins its group values (Zoology's accuracy against state, a point per width)."""
    style = style or Style(sorted(cells["row"].unique()))
    from matplotlib.lines import Line2D

    from .theory import accuracy_ceiling

    data = cells.copy()
    data["state"] = pd.to_numeric(data["state_size"], errors="coerce")
    data = data[np.isfinite(data["state"]) & (data["state"] > 0)]
    if data.empty:
        _note("accuracy against state size skipped: no state size (theory.state_size) in "
              "the results")
        return None
    grouped = "group_row" in data
    if grouped:  # one colour per mixer: its widths are its points along one line
        data["row"] = data["group_row"]
    drew_bound = False
    with _setting_panels(data) as (fig, panels):
        for ax, setting, sub in panels:
            for row, (xs, ys) in state_lines(sub).items():
                ax.plot(xs, ys, color=style.color(row), lw=1.2, alpha=0.8, zorder=2)
            _points(ax, style, sub, "state")
            ax.set_xscale("log")
            lo, hi = sub["state"].min() / 3, sub["state"].max() * 3
            bound = (_bound_inputs(sub) if lookup_metric(metric).accuracy
                     and "exact" not in lookup_metric(metric).name else None)
            if bound is not None:
                info, chance, layers = bound
                knee = info / (bits_per_float * layers)  # the state that holds I bits
                lo, hi = max(min(lo, knee / 10), 0.5), max(hi, knee * 3)
                xs = np.logspace(np.log10(lo), np.log10(hi), 200)
                ys = [accuracy_ceiling(x * bits_per_float * layers, info, chance) for x in xs]
                ax.plot(xs, ys, color="black", ls="--", lw=1.2, zorder=2)
                drew_bound = True
            ax.set_xlim(lo, hi)
            ax.set_ylim(-0.03, 1.05)
            ax.set_title(str(setting))
            ax.set_xlabel("state size (floats per layer)")
            ax.set_ylabel(_metric_label(metric))
        extra = []
        if drew_bound:
            label = f"capacity bound\n({bits_per_float}-bit floats,\nall layers)"
            extra.append(Line2D([], [], color="black", ls="--", label=label))
        else:
            _note("capacity bound not drawn: task info_bits unknown (tasks package or "
                  "theory.info_bits needed) or the metric is not a token accuracy")
        _legend(fig, style, style.ordered(data["row"]), extra)
        key = str(cells.attrs.get("group_by") or "group value").rsplit(".", 1)[-1]
        what = f"a line per mixer, a point per {key}" if grouped else "a point per mixer"
        _suptitle(fig, f"Accuracy against state size ({what}; bars: 95% t interval)")
        return _save(fig, out, "accuracy_vs_state")


def plot_theory_axis(cells: pd.DataFrame, out: Path, metric: str, column: str,
                     style: Style | None = None):
    """Accuracy against a theory column of the summary's cells (`hop_diameter`, `congestion`)
    at each cell's seq_len."""
    style = style or Style(sorted(cells["row"].unique()))
    data = cells[~cells[column].isna()].copy()
    label = {"hop_diameter": "hop diameter", "congestion": "congestion"}[column]
    if data.empty:
        _note(f"accuracy against {label} skipped: no mixer or seq_len the theory module knows")
        return None
    with _setting_panels(data) as (fig, panels):
        for ax, setting, sub in panels:
            finite = sub.loc[np.isfinite(sub[column]), column]
            top = finite.max() if len(finite) else 1.0
            x_inf = max(2.0, top * 2.5) if column == "hop_diameter" else max(10.0, top * 5)
            has_inf = bool(np.isinf(sub[column]).any())
            sub["x"] = np.where(np.isinf(sub[column]), x_inf, sub[column])
            _points(ax, style, sub, "x")
            if column == "hop_diameter":
                ax.set_xscale("log", base=2)
                ticks = sorted({float(v) for v in sub["x"]})
                ax.set_xticks(ticks, _thin_labels(ticks, x_inf if has_inf else None))
                ax.minorticks_off()
                ax.set_xlim(min(ticks) / 2.2, max(ticks) * 2.2)
            else:
                ax.set_xscale("symlog", linthresh=1.0)
                ax.set_xlim(-0.7, sub["x"].max() * 3 + 1)
                if has_inf:
                    ax.axvline(x_inf, color="grey", lw=0.6, ls=":")
            ax.set_ylim(-0.03, 1.05)
            ax.set_title(str(setting))
            ax.set_xlabel(f"{label} at n = seq_len")
            ax.set_ylabel(_metric_label(metric))
        _legend(fig, style, style.ordered(data["row"]))
        what = ("hop diameter (fewest hops, worst pair; ∞: unreachable)"
                if column == "hop_diameter"
                else "congestion (largest shortest-path load on one position)")
        _suptitle(fig, f"Accuracy against {what}")
        name = "hops" if column == "hop_diameter" else "congestion"
        return _save(fig, out, f"accuracy_vs_{name}")


def _value_axis(ax, x: pd.Series) -> None:
    """An x axis ticked at each value of x (log2 when all are positive), accuracy on y."""
    values = sorted(x.unique())
    if min(values) > 0:
        ax.set_xscale("log", base=2)
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()
    ax.set_ylim(-0.03, 1.03)


def plot_group_by(cells: pd.DataFrame, out: Path, metric: str, key: str,
                  style: Style | None = None):
    """Accuracy against the --group-by key (e.g. model.d_model: Zoology's accuracy against
    width), a panel per task setting, a line per row."""
    style = style or Style(sorted(cells["row"].unique()))
    data = cells[pd.to_numeric(cells[key], errors="coerce").notna()].copy()
    data["x"] = pd.to_numeric(data[key])
    if data.empty or data["x"].nunique() < 2:
        _note(f"accuracy against {key} skipped: fewer than two numeric values of {key}")
        return None
    with _setting_panels(data) as (fig, panels):
        for ax, setting, sub in panels:
            for m in style.ordered(sub["row"]):
                part = sub[sub["row"] == m].sort_values("x")
                x = part["x"].to_numpy(float)
                ax.fill_between(x, np.clip(part["lo"].to_numpy(float), 0, 1),
                                np.clip(part["hi"].to_numpy(float), 0, 1),
                                color=style.color(m), alpha=0.18, lw=0)
                ax.plot(x, part["mean"], marker=style.marker(m), color=style.color(m))
            _value_axis(ax, sub["x"])
            ax.set_title(str(setting))
            ax.set_xlabel(key)
            ax.set_ylabel(_metric_label(metric))
        _legend(fig, style, style.ordered(data["row"]))
        _suptitle(fig, f"Accuracy against {key} (bands: 95% t interval over seeds)")
        return _save(fig, out, f"accuracy_vs_{key.replace('.', '_')}")


def swept_task_params(cells: pd.DataFrame) -> dict[str, tuple[str, pd.DataFrame]]:
    """For each task whose settings differ in exactly one numeric parameter other than seq_len
    (which has its own plot): MQAR at 8, 16 and 32 pairs. Maps the task to that parameter's key
    and the task's cells with the parameter's value in column `x`."""
    found = {}
    data = cells[cells["task_config"].notna()]
    for task, sub in data.groupby("task"):
        params = pd.DataFrame([{k: v for k, v in c.items() if k != "name"}
                               for c in sub["task_config"]], index=sub.index)
        varying = [k for k in params if params[k].astype(str).nunique() > 1 and k != "seq_len"]
        if len(varying) != 1:
            continue
        x = pd.to_numeric(params[varying[0]], errors="coerce")
        if x.isna().any() or x.nunique() < 2:
            continue
        found[str(task)] = (varying[0], sub.assign(x=x))
    return found


def plot_task_sweep(cells: pd.DataFrame, out: Path, metric: str, style: Style | None = None):
    """Accuracy against the one task parameter a task's settings sweep (Zoology's accuracy
    against the number of pairs): a panel per task, a line per row through its means, a dot per
    seed."""
    style = style or Style(sorted(cells["row"].unique()))
    swept = swept_task_params(cells)
    if not swept:
        _note("accuracy against a task parameter skipped: no task whose settings differ in "
              "exactly one numeric parameter")
        return None
    ax_style, ctx = _style()
    with ax_style, ctx:
        fig, axes = _grid(len(swept), size=(7.5, 4.8))  # room beside long row labels
        for ax, (task, (key, sub)) in zip(axes, sorted(swept.items())):
            rows = style.ordered(sub["row"])
            for k, m in enumerate(rows):
                part = sub[sub["row"] == m].sort_values("x")
                x = part["x"].to_numpy(float)
                ax.plot(x, part["mean"], marker=style.marker(m), color=style.color(m), ms=7)
                # every seed as a dot, nudged sideways per row: with a few seeds that either
                # learn or do not, the seeds say more than a t interval
                nudge = 2 ** ((k - (len(rows) - 1) / 2) * 0.03)
                for xv, seeds in zip(x, part["values"]):
                    ax.scatter([xv * nudge] * len(seeds), seeds, s=14, alpha=0.55, lw=0,
                               color=style.color(m), zorder=3)
            _value_axis(ax, sub["x"])
            ax.set_title(task)
            ax.set_xlabel(key)
            ax.set_ylabel(_metric_label(metric))
        _legend(fig, style, style.ordered(cells["row"]))
        _suptitle(fig, "Accuracy against the swept task parameter (line: mean; dots: seeds)")
        keys = sorted({key for key, _ in swept.values()})
        return _save(fig, out, "accuracy_vs_" + "_".join(keys))


def _curve_frame(cells: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Long table (task_setting, row, path, part, step, value) of the learning curves of the
    runs each cell reports (its chosen learning rate): part = val_acc or train_loss. A run that
    stopped early (it reached trainer.target_acc) holds its last value up to the last step of
    its cell's other runs, so that a mean over seeds does not jump when a seed stops."""
    curves = dict(zip(runs["path"], runs["curve"])) if "curve" in runs else {}
    rows = []
    for _, cell in cells.iterrows():
        for path in cell.get("paths") or []:
            curve = curves.get(path)
            if not isinstance(curve, dict):
                continue
            for part, (section, key) in (("val_acc", ("val", "acc")),
                                         ("train_loss", ("train", "loss"))):
                c = curve.get(section, {})
                for step, value in zip(c.get("step", []), c.get(key, [])):
                    if value is not None:
                        rows.append((cell["task_setting"], cell["row"], path, part, step, value))
    frame = pd.DataFrame(rows, columns=["task_setting", "row", "path", "part", "step", "value"])
    held = []
    for (setting, row, part), group in frame.groupby(["task_setting", "row", "part"]):
        steps = np.sort(group["step"].unique())
        for path, run in group.groupby("path"):
            last = run["step"].max()
            for step in steps[steps > last]:
                held.append((setting, row, path, part, step,
                             run.loc[run["step"] == last, "value"].iloc[-1]))
    if held:
        frame = pd.concat([frame, pd.DataFrame(held, columns=frame.columns)], ignore_index=True)
    return frame


def plot_curves(cells: pd.DataFrame, runs: pd.DataFrame, out: Path, style: Style | None = None):
    """Learning curves per task setting: validation accuracy (top) and training loss (bottom)
    against the step, a line per row: the mean over seeds (at the chosen learning rate) with a
    band from the lowest to the highest seed."""
    style = style or Style(sorted(cells["row"].unique()))
    data = _curve_frame(cells, runs)
    if data.empty:
        _note("learning curves skipped: no curve in the results")
        return None
    settings = [s for s in setting_order(cells) if s in set(data["task_setting"])]
    from matplotlib.figure import Figure

    ax_style, ctx = _style()
    with ax_style, ctx:
        k = len(settings)
        fig = Figure(figsize=(4.6 * k + 2.4, 7.4), layout="constrained")
        axes = fig.subplots(2, k, squeeze=False)
        for j, setting in enumerate(settings):
            for i, part in enumerate(("val_acc", "train_loss")):
                ax = axes[i, j]
                sub = data[(data["task_setting"] == setting) & (data["part"] == part)]
                for m in style.ordered(sub["row"]):
                    g = sub[sub["row"] == m].groupby("step")["value"].agg(["mean", "min", "max"])
                    if g.empty:
                        continue
                    color = style.color(m)
                    ax.fill_between(g.index, g["min"], g["max"], color=color, alpha=0.18, lw=0)
                    ax.plot(g.index, g["mean"], color=color, lw=1.4, ms=3.5,  # a point per
                            marker=style.marker(m) if part == "val_acc" else None)  # validation
                if part == "val_acc":
                    ax.set_ylim(-0.03, 1.03)
                    ax.set_title(str(setting))
                else:
                    ax.set_yscale("log")
                    ax.set_xlabel("step")
                ax.set_ylabel({"val_acc": "validation accuracy",
                               "train_loss": "training loss"}[part] if j == 0 else "")
        _legend(fig, style, style.ordered(data["row"]))
        _suptitle(fig, "Learning curves (mean over seeds at the chosen rate; band: min to max; a "
                     "run stopped early holds its last value)")
        return _save(fig, out, "learning_curves")


# ----------------------------------------------------------------------------------------------
# benchmark


def load_bench(path) -> pd.DataFrame:
    """The records of an op benchmark's JSON: an object whose `records` is a list of {mixer,
    backend, n, fwd_s, fwdbwd_s, peak_mem_bytes, ...} (the layout the benchmark writes)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise ValueError("expected a JSON object with a list under 'records'")
    return load_bench_records(data["records"])


def load_bench_records(records) -> pd.DataFrame:
    """Benchmark records as a DataFrame; non-dict entries, records without a mixer or a numeric
    n are dropped, missing timings are NaN, a missing backend is ''."""
    df = pd.DataFrame([r for r in records if isinstance(r, dict)])
    if df.empty or "n" not in df or "mixer" not in df:
        return pd.DataFrame(columns=["mixer", "backend", "n"])
    if "backend" not in df:
        df["backend"] = ""
    df["backend"] = df["backend"].fillna("").astype(str)
    df["n"] = pd.to_numeric(df["n"], errors="coerce")
    for col in ("fwd_s", "fwdbwd_s", "peak_mem_bytes"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df.dropna(subset=["n", "mixer"]).reset_index(drop=True)


def plot_bench(bench, out: Path, n_min: int = 1024, style: Style | None = None):
    try:
        df = load_bench(bench) if not isinstance(bench, pd.DataFrame) else bench
    except (OSError, ValueError) as e:
        _note(f"time against n skipped: cannot read {bench} ({e})")
        return None
    columns = [c for c in ("fwd_s", "fwdbwd_s") if c in df and (df[c] > 0).any()]
    if df.empty or not columns:
        _note(f"time against n skipped: no timed records in {bench}")
        return None
    style = style or Style(sorted(df["mixer"].unique()))
    from matplotlib.figure import Figure

    titles = {"fwd_s": "forward", "fwdbwd_s": "forward + backward"}
    backends = sorted(df["backend"].unique())
    ax_style, ctx = _style()
    with ax_style, ctx:
        fig = Figure(figsize=(10.5, 4.4 * len(columns)), layout="constrained")
        axes = fig.subplots(len(columns), 1, squeeze=False).ravel()
        for ax, col in zip(axes, columns):
            handles = []
            for m in style.ordered(df["mixer"]):
                for b in backends:
                    part = df[(df["mixer"] == m) & (df["backend"] == b) & (df[col] > 0)]
                    part = part.groupby("n", as_index=False)[col].median().sort_values("n")
                    if part.empty:
                        continue
                    slope = fit_exponent(part["n"], part[col], n_min).exponent
                    fit = f"n^{slope:.2f}" if np.isfinite(slope) else "no fit"
                    label = f"{m}{f' [{b}]' if b else ''}: {fit}"
                    (h,) = ax.plot(part["n"], part[col], marker=style.marker(m),
                                   color=style.color(m),
                                   ls=_LINESTYLES[backends.index(b) % len(_LINESTYLES)],
                                   label=label, ms=5)
                    handles.append(h)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length n")
            ax.set_ylabel("seconds")
            ax.set_title(f"{titles[col]} time (exponent: log-log fit over n >= {n_min})")
            ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5),
                      frameon=False, fontsize="small")
        return _save(fig, out, "time_vs_n")


# ----------------------------------------------------------------------------------------------


def _find_bench(results_dir) -> Path | None:
    """A *bench*.json at the top of results_dir, else bench.ops' default output."""
    found = sorted(Path(results_dir).glob("*bench*.json")) if results_dir is not None else []
    default = Path("bench_out") / "mixers.json"
    if not found and default.is_file():
        found = [default]
    return found[0] if found else None


@dataclass(frozen=True)
class Plot:
    """A registered plot: `title` (the HTML page's caption), `draw(cells, out, metric, key,
    style)` returning its PNG path or None (skipped, with a printed note; `style` the rows'
    colours, markers and legend text), `accuracy` (drawn only for an accuracy metric),
    `by_group` (drawn only with --group-by; the others get one curve per group value)."""

    title: str
    draw: Callable
    accuracy: bool = True
    by_group: bool = False


#: Every plot of make_plots, in page order: a new plot is one entry here plus its test
#: (docs/analysis.md).
PLOTS: list[Plot] = [
    Plot("Accuracy against the --group-by key",
         lambda cells, out, metric, key, style: plot_group_by(cells, out, metric, key, style),
         by_group=True),
    Plot("Accuracy against sequence length",
         lambda cells, out, metric, key, style: plot_seq_len(cells, out, metric, style)),
    Plot("Accuracy against the swept task parameter",
         lambda cells, out, metric, key, style: plot_task_sweep(cells, out, metric, style)),
    Plot("Accuracy against state size",
         lambda cells, out, metric, key, style: plot_cache(cells, out, metric, style=style)),
    Plot("Accuracy against hop diameter",
         lambda cells, out, metric, key, style: plot_theory_axis(cells, out, metric,
                                                                 "hop_diameter", style)),
    Plot("Accuracy against congestion",
         lambda cells, out, metric, key, style: plot_theory_axis(cells, out, metric,
                                                                 "congestion", style)),
]


def split_by_group(cells: pd.DataFrame, key: str | None) -> pd.DataFrame:
    """With --group-by KEY, each row label gets its group value (`pow2 [d_model=32]`), so that
    the plots other than accuracy-against-KEY draw one curve per group value, not the pool."""
    if not key or key not in cells:
        return cells
    short = key.rsplit(".", 1)[-1]
    values = cells[key].map(lambda v: f"{v:g}" if isinstance(v, (int, float)) else str(v))
    # group_row keeps the pooled label, for the plots that join a row's group values by a line
    out = cells.assign(row=cells["row"].astype(str) + f" [{short}=" + values + "]",
                       group_row=cells["row"].astype(str))
    out.attrs.update(cells.attrs)
    return out


def make_plots(cells: pd.DataFrame | None, out, metric: str = "test_acc", bench=None,
               results_dir=None, order=None, runs=None, legend=None,
               style: Style | None = None) -> list[tuple[str, Path]]:
    """Every plot of PLOTS the data allows, into `out` (PNG and SVG), then the learning curves
    and the benchmark's time against n. Returns (title, png path) pairs. `cells` is
    analysis.results.summarize's table (None: only the benchmark plot); `style` the colours,
    markers and legend text of the rows (default: a Style of `order`, the leaderboard's row
    labels, and `legend`, the keys each label stands for); `runs` the loaded results, for the
    learning curves. Without `bench`, a *bench*.json at the top of results_dir is used when
    there is one."""
    out = Path(out)
    made = []
    has = cells is not None and not cells.empty
    key = cells.attrs.get("group_by") if has else None
    split = split_by_group(cells, key) if has else cells
    if style is None:
        labels = order if order is not None else (cells["row"] if has else [])
        style = Style(labels, legend)
    if key:  # the split labels after every row's, so a row keeps the leaderboard's colour
        base = list(style.order)
        style.order = list(dict.fromkeys([*base, *(x for r in base for x in
                                                   split.loc[cells["row"] == r, "row"])]))
        # a plot draws either the pooled rows or the split ones, never both: each set gets a
        # palette of its own, so a few mixers keep distinct colours beside many split labels
        style.colors = {**colors_for(style.order[len(base):]), **colors_for(base)}
    accuracy = lookup_metric(metric).accuracy
    if has and not accuracy:
        _note(f"accuracy plots skipped: {metric} is not an accuracy")
    if has:
        for plot in PLOTS:
            if (plot.accuracy and not accuracy) or (plot.by_group and not key):
                continue
            path = plot.draw(cells if plot.by_group else split, out, metric, key, style)
            if path is not None:
                made.append((plot.title.replace("the --group-by key", str(key)), path))
    else:
        _note("accuracy plots skipped: no results")
    if has and runs is not None:
        path = plot_curves(split, runs, out, style)
        if path is not None:
            made.append(("Learning curves", path))
    bench = bench or _find_bench(results_dir)
    if bench is None:
        _note("time against n skipped: no benchmark JSON (--bench PATH, from python -m "
              "bench.ops)")
    else:
        path = plot_bench(bench, out, style=style)
        if path is not None:
            made.append(("Time against n", path))
    return made


def main(argv=None) -> int:
    from .results import NoResultsError, filter_results, load_results, summarize

    ap = argparse.ArgumentParser(prog="python -m analysis.plots",
                                 description="Plots of a results folder (docs/analysis.md).")
    ap.add_argument("results_dir")
    ap.add_argument("--out", help="output folder (default RESULTS_DIR/leaderboard, or "
                    "RESULTS_DIR/leaderboard/METRIC for another metric than test_acc)")
    ap.add_argument("--metric", default="test_acc")
    ap.add_argument("--task", action="append")
    ap.add_argument("--mixer", action="append")
    ap.add_argument("--group-by", metavar="KEY", help="a config key plotted on the x axis")
    ap.add_argument("--where", action="append", metavar="KEY=VALUE",
                    help="only runs whose config has this value (as glmix-leaderboard)")
    ap.add_argument("--bench", help="op benchmark JSON (time against n)")
    args = ap.parse_args(argv)
    cells = runs = None
    try:
        runs = filter_results(load_results(args.results_dir), args.task, args.mixer, args.where)
        cells = summarize(runs, metric=args.metric, group_by=args.group_by)
    except ValueError as e:  # a --where that cannot be read
        print(f"python -m analysis.plots: {e}", file=sys.stderr)
        return 1
    except NoResultsError as e:
        _note(f"{e}")
        if not args.bench:
            print(f"python -m analysis.plots: nothing to plot under {args.results_dir}",
                  file=sys.stderr)
            return 1
    from .leaderboard import default_out

    out = Path(args.out) if args.out else default_out(args.results_dir, args.metric)
    made = make_plots(cells, out, metric=args.metric, bench=args.bench,
                      results_dir=args.results_dir, runs=runs)
    for _, path in made:
        print(f"wrote {path} (and .svg)")
    return 0 if made else 1


if __name__ == "__main__":
    sys.exit(main())
