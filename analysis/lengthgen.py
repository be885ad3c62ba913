"""Length generalization (docs/design.md 3.1): the score and the accuracy-against-length plot.

A length-generalization run (conf/task/lengthgen/, tasks/lengthgen.py) trains on a mixture of
lengths up to L and reports `test_acc@<label>` / `test_exact@<label>` per test length. Its score
is the Chomsky-hierarchy benchmark's (Deletang et al. 2023): the mean test accuracy over the
test lengths strictly above the longest training length,

    lengthgen        = mean over test settings with length > L of test_acc@<label>
    lengthgen_exact  = the same mean of test_exact@<label> (sequence-level exact match)

NaN for a run with no test length above L (any run outside the protocol). Lengths come from
the labels (`n<length>[-variant]`); a label of another form is measured by building its task
(tasks.make_task(...).seq_len). The leaderboard sorts by either (`--metric lengthgen`,
docs/analysis.md). Pure functions over `analysis.results.load_results` frames; the plot is
`plot_lengths(length_points(runs), out)`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from runners.metrics import Metric, register

#: score name -> the per-setting test metric it averages
METRICS = {"lengthgen": "test_acc", "lengthgen_exact": "test_exact"}
# the scores in the metric table (runners.metrics): direction, label and format for the
# leaderboard and the plots
register(Metric("lengthgen", True, "accuracy above the training lengths", accuracy=True))
register(Metric("lengthgen_exact", True, "exact match above the training lengths",
                accuracy=True))


def _length(name: str, params: dict, label: str, overrides: dict) -> int:
    from tasks.lengthgen import label_length

    n = label_length(label)
    if n is not None:
        return n
    from tasks import make_task  # a label without its length: the task says it
    from tasks.lengthgen import task_length

    return int(task_length(make_task(name, **{**params, **(overrides or {})})))


def setting_lengths(task_config: dict) -> tuple[dict[str, int], dict[str, int]]:
    """({train label: length}, {test label: length}) of a run's `config["task"]`; both empty
    for a run without train and test settings."""
    name, params = task_config.get("name"), dict(task_config.get("params") or {})
    train = task_config.get("train_settings") or {}
    test = task_config.get("test_settings") or {}
    if not train or not test:
        return {}, {}
    return ({label: _length(name, params, label, o) for label, o in train.items()},
            {label: _length(name, params, label, o) for label, o in test.items()})


def score(metrics: dict, train: dict[str, int], test: dict[str, int],
          base: str = "test_acc") -> float:
    """Mean of metrics[<base>@<label>] over the test labels longer than every training length;
    NaN when there is none (or one of them is missing: a partial score would flatter)."""
    if not train or not test:
        return math.nan
    longest = max(train.values())
    above = [label for label, n in test.items() if n > longest]
    values = [metrics.get(f"{base}@{label}") for label in above]
    if not above or any(v is None or not np.isfinite(v) for v in values):
        return math.nan
    return float(np.mean(values))


def with_scores(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """`runs` (load_results) with a column per score of METRICS; when `metric` is one of them,
    without the ok runs that have no score (so a leaderboard by it ranks protocol runs only)."""
    runs = runs.copy()
    for name in METRICS:
        runs[name] = np.nan
    for i, r in runs.iterrows():
        config = r.get("config")
        if r.get("status") != "ok" or not isinstance(config, dict):
            continue
        train, test = setting_lengths(config.get("task") or {})
        metrics = {k: r[k] for k in r.index if isinstance(k, str) and "@" in k}
        for name, base in METRICS.items():
            runs.at[i, name] = score(metrics, train, test, base)
    if metric in METRICS:
        runs = runs[(runs["status"] != "ok") | runs[metric].notna()].reset_index(drop=True)
    return runs


def length_points(runs: pd.DataFrame, select_on: str = "val_acc") -> pd.DataFrame:
    """One row per (run, test setting) of the protocol runs, at the learning rate the leaderboard
    picks (analysis.results.summarize): `row`, `task_setting`, `seed`, `label`, `length`,
    `variant` (the label's part after the length, '' if none), `acc`, `exact`, `train_min`,
    `train_max`, `pos_emb`."""
    from .results import summarize

    cols = ["row", "task_setting", "seed", "label", "length", "variant", "acc", "exact",
            "train_min", "train_max", "pos_emb"]
    scored = with_scores(runs, "lengthgen")
    ok = scored[scored["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    cells = summarize(ok, metric="lengthgen", select_on=select_on)
    chosen = {p: (c["row"], c["task_setting"]) for _, c in cells.iterrows() for p in c["paths"]}
    out = []
    for _, r in ok[ok["path"].isin(chosen)].iterrows():
        train, test = setting_lengths(r["config"]["task"])
        row, setting = chosen[r["path"]]
        for label, n in test.items():
            out.append({
                "row": row, "task_setting": setting, "seed": r["seed"], "label": label,
                "length": n, "variant": label.partition("-")[2] if "-" in label else "",
                "acc": r.get(f"test_acc@{label}", np.nan),
                "exact": r.get(f"test_exact@{label}", np.nan),
                "train_min": min(train.values()), "train_max": max(train.values()),
                "pos_emb": (r["config"].get("model") or {}).get("pos_emb"),
            })
    return pd.DataFrame(out, columns=cols)


def plot_lengths(points: pd.DataFrame, out, order=None, metric: str = "acc",
                 name: str = "accuracy_vs_test_length") -> Path | None:
    """Accuracy (or `exact`) against test length: a panel per task setting (and test variant),
    a line per row through its mean over seeds, a dot per seed, the training range shaded.
    Rows with learned positions are drawn dashed: their table rows past the training length
    were never trained. Writes <out>/<name>.png and .svg; None when there is nothing to draw."""
    if points.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = list(dict.fromkeys([*(order or []), *points["row"]]))
    rows = [r for r in rows if r in set(points["row"])]
    palette = dict(zip(rows, sns.color_palette("tab20", len(rows))))
    panels = list(dict.fromkeys(zip(points["task_setting"], points["variant"])))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols + 2.8, 3.6 * nrows),
                             squeeze=False, layout="constrained")
    learned = set(points.loc[points["pos_emb"] == "learned", "row"])
    for ax, (setting, variant) in zip(axes.flat, panels):
        sub = points[(points["task_setting"] == setting) & (points["variant"] == variant)]
        ax.axvspan(sub["train_min"].min(), sub["train_max"].max(), color="0.88", zorder=0,
                   label="training lengths")
        for row in rows:
            mine = sub[sub["row"] == row]
            if mine.empty:
                continue
            mean = mine.groupby("length")[metric].mean()
            ax.plot(mean.index, mean.values, color=palette[row],
                    linestyle="--" if row in learned else "-", marker="o", markersize=3)
            ax.scatter(mine["length"], mine[metric], color=palette[row], s=10, alpha=0.55,
                       linewidths=0)
        ax.set_xscale("log", base=2)
        ticks = sorted(sub["length"].unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{setting} {variant}".strip(), fontsize=9)
        ax.set_xlabel("test length")
        ax.set_ylabel("test accuracy" if metric == "acc" else "test exact match")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=palette[r], marker="o", markersize=3,
                      linestyle="--" if r in learned else "-", label=r) for r in rows]
    handles.append(Patch(color="0.88", label="training lengths"))
    if learned:
        handles.append(Line2D([], [], color="0.3", linestyle="--",
                              label="learned positions:\nrows past the training\n"
                                    "length never trained"))
    fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=8)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(out / f"{name}.{ext}", dpi=130)
    plt.close(fig)
    return out / f"{name}.png"


def per_length_tables(points: pd.DataFrame, metric: str = "acc") -> dict[str, pd.DataFrame]:
    """task setting -> rows x test settings (in length order): the mean over seeds of `metric`
    (acc or exact), and the number of seeds in `seeds`."""
    out = {}
    for setting, p in points.groupby("task_setting", sort=True):
        p = p.sort_values(["length", "variant"], kind="stable")
        table = p.pivot_table(index="row", columns="label", values=metric, aggfunc="mean",
                              sort=False)
        table["seeds"] = p.groupby("row")["seed"].nunique().reindex(table.index).astype(int)
        out[setting] = table
    return out


def main(argv=None) -> int:
    """`python -m analysis.lengthgen RESULTS_DIR [--exact]`: a Markdown table per task setting
    of the test accuracy (or exact match) at every test length, mean over seeds."""
    import argparse

    from .results import load_results

    ap = argparse.ArgumentParser(prog="python -m analysis.lengthgen",
                                 description="Test accuracy per test length (docs/analysis.md).")
    ap.add_argument("results_dir")
    ap.add_argument("--exact", action="store_true", help="sequence exact match, not accuracy")
    args = ap.parse_args(argv)
    tables = per_length_tables(length_points(load_results(args.results_dir)),
                               "exact" if args.exact else "acc")
    if not tables:
        print("no length-generalization runs")
        return 1
    for setting, table in tables.items():
        print(f"### {setting}\n")
        # object dtype keeps the seed count an integer: a float format would print "2.00"
        print(table.astype({"seeds": object}).to_markdown(floatfmt=".2f") + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
