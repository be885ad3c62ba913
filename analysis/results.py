"""Loading `result.json` files, grouping runs into experiments, choosing the learning rate.

    from analysis.results import load_results, summarize
    runs = load_results("results/smoke")          # one row per result.json, every status
    cells = summarize(runs, metric="test_acc")     # one row per (row, task setting)

A result file is a `runners.schema.Result`; a file of another schema is a row with status
`unreadable`. Runs that differ only in seed and learning rate are one experiment: a leaderboard
*row* is one mixer config with everything else that is not the task (model, trainer, op
version), labelled by its mixer name and, when one name has several configs, by what differs
(`attention [model.d_model=16]`). A *column* is one task setting (its config and generator
version). The rules are in docs/analysis.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import pandas as pd

from runners.schema import POOLED, RUN_ONLY, Result, drop_keys, fill_defaults, flatten

from .stats import t_interval

__all__ = [
    "load_results",
    "find_result_files",
    "filter_results",
    "summarize",
    "setting_order",
    "t_interval",
    "task_of",
    "higher_is_better",
    "NoResultsError",
]


class NoResultsError(Exception):
    """Nothing to report: no result file, or no `ok` one (after the filters)."""


def find_result_files(results_dir) -> list[Path]:
    root = Path(results_dir)
    if not root.is_dir():
        raise NoResultsError(f"{root} is not a folder")
    return sorted(root.rglob("result.json"))


def higher_is_better(metric: str) -> bool:
    """Accuracies: higher is better; losses and steps-to-accuracy: lower is better."""
    return not (metric.startswith("steps_to_") or metric.endswith("loss"))


def _num(x, missing=np.nan):
    if isinstance(x, bool) or x is None:
        return missing
    try:
        return float(x)
    except (TypeError, ValueError):
        return np.nan


def _row_identity(r: Result) -> dict:
    """What the leaderboard row of a run is: its config minus the task, the pooled fields
    (seed, lr) and where it ran, plus the op version, flattened to dotted keys."""
    config = fill_defaults(drop_keys(r.config, (*RUN_ONLY, *POOLED)))
    config.pop("task", None)
    return {**flatten(config), "op_version": r.code_versions.get("op")}


def _column_identity(r: Result) -> dict:
    task = r.config.get("task", {})
    return {**flatten({"task": task}), "task_version": r.code_versions.get("task"),
            "generator_version": r.code_versions.get("generator")}


def _flatten_result(r: Result, path: Path) -> dict:
    config = r.config
    model = config.get("model", {})
    task_cfg = config.get("task", {})
    row = {
        "status": r.status, "error": r.error, "task": r.task, "task_setting": r.task_setting,
        "mixer": r.mixer, "seed": r.seed, "lr": _num(r.lr), "config_hash": r.config_hash,
        "num_params": _num(r.num_params), "wall_time_s": _num(r.wall_time_s), "steps": r.steps,
        "path": str(path), "config": config, "curve": r.curve,
        "task_config": {"name": task_cfg.get("name", r.task), **task_cfg.get("params", {})},
        "mixer_config": dict(config.get("mixer", {})),
        "info_bits": _num(r.info_bits), "seq_len": _num(r.theory.get("seq_len")),
        "d_model": _num(model.get("d_model")), "num_heads": _num(model.get("num_heads")),
        "num_layers": _num(model.get("n_layers")),
        "_row_id": _row_identity(r), "_col_id": _column_identity(r),
    }
    for key, value in r.metrics.items():
        # a threshold never reached: infinitely many steps, not a missing value
        row[key] = _num(value, math.inf if key.startswith("steps_to_") else np.nan)
    for key, value in r.theory.items():
        row[f"theory.{key}"] = _num(value)
    return row


#: the largest result.json read (a real one is a few hundred KiB, its curve included)
MAX_RESULT_BYTES = 64 * 2**20


def read_result_json(path: Path):
    """The parsed JSON of one result file. ValueError (one line) for a file over
    MAX_RESULT_BYTES, one that is not UTF-8 JSON, or one nested too deeply to parse."""
    size = path.stat().st_size
    if size > MAX_RESULT_BYTES:
        raise ValueError(f"{size} bytes, over the {MAX_RESULT_BYTES} bytes a result may have")
    try:
        return json.loads(path.read_bytes())
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 ({e.reason})") from None


def load_results(results_dir) -> pd.DataFrame:
    """One row per `result.json` below `results_dir` (status ok or failed; files that are not a
    runners.schema.Result get status `unreadable` and the reason in `error`). Columns: the
    result's fields, every metric (`val_acc`, `test_acc`, `steps_to_0.9`, ...; a threshold never
    reached is inf), the recorded theory as `theory.<key>`, `seq_len`, `d_model`, `num_heads`,
    `num_layers`, `path`, the `config`, `task_config`, `mixer_config` mappings and the `curve`.

    Among `ok` results sharing a `config_hash` (a run recorded twice) only the first by path is
    kept; `df.attrs["duplicates"]` counts the dropped ones. Raises NoResultsError when the folder
    does not exist.
    """
    rows = []
    for path in find_result_files(results_dir):
        try:
            rows.append(_flatten_result(Result.from_dict(read_result_json(path)), path))
        except (OSError, ValueError, TypeError) as e:
            rows.append({"path": str(path), "status": "unreadable", "error": f"{path}: {e}"})
    df = pd.DataFrame(rows)
    for key in ("status", "task", "task_setting", "mixer", "seed", "lr", "config_hash", "error",
                "path", "seq_len", "val_acc", "test_acc"):
        if key not in df:
            df[key] = np.nan
    dup = df["status"].eq("ok") & df["config_hash"].notna() & df.duplicated(
        ["status", "config_hash"], keep="first")
    df = df[~dup].reset_index(drop=True)
    df.attrs["duplicates"] = int(dup.sum())
    df.attrs["results_dir"] = str(results_dir)
    return df


def _matches(value, patterns: list[str]) -> bool:
    return value is not None and any(fnmatchcase(str(value), p) for p in patterns)


def _split(values: Iterable[str] | str | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out = [v.strip() for item in values for v in str(item).split(",") if v.strip()]
    return out or None


def filter_results(df: pd.DataFrame, tasks=None, mixers=None) -> pd.DataFrame:
    """Rows whose task name or task setting matches one of `tasks`, and whose mixer matches one of
    `mixers` (lists or comma-separated strings; shell-style wildcards allowed)."""
    tasks, mixers = _split(tasks), _split(mixers)
    keep = pd.Series(True, index=df.index)
    if tasks:
        keep &= df["task"].map(lambda v: _matches(v, tasks)) | df["task_setting"].map(
            lambda v: _matches(v, tasks))
    if mixers:
        keep &= df["mixer"].map(lambda v: _matches(v, mixers))
    out = df[keep].copy()
    out.attrs.update(df.attrs)
    return out


# ----------------------------------------------------------------------------------------------
# experiments: rows and columns


def _key(d: dict) -> str:
    return json.dumps(d, sort_keys=True, default=str)


def _fmt_value(v) -> str:
    if isinstance(v, float) and v == int(v) and abs(v) < 1e15:
        return f"{v:g}"
    return str(v)


def label_by_difference(base: pd.Series, ids: pd.Series) -> pd.Series:
    """A label per entry: `base`, and when one base has several distinct identities (dicts of
    dotted keys), ` [k=v, ...]` with the keys whose values differ among them."""
    keys = ids.map(_key)
    labels = pd.Series(index=ids.index, dtype=object)
    for name, idx in base.groupby(base, sort=False).groups.items():
        distinct = {keys[i]: ids[i] for i in idx}
        if len(distinct) == 1:
            labels[idx] = str(name)
            continue
        every = sorted(set().union(*(d.keys() for d in distinct.values())))
        differ = [k for k in every if len({_key(d.get(k, "-")) for d in distinct.values()}) > 1]
        names = {key: f"{name} [" + ", ".join(f"{k}={_fmt_value(d.get(k, '-'))}"
                                              for k in differ) + "]"
                 for key, d in distinct.items()}
        for i in idx:
            labels[i] = names[keys[i]]
    return labels


def add_experiment_labels(ok: pd.DataFrame, group_by: str | None = None) -> pd.DataFrame:
    """`row` and `column` labels of every run (see the module docstring); with `group_by` (a
    dotted config key such as `model.d_model`) that key is left out of both identities and
    becomes a column of its own (its value per run)."""
    ok = ok.copy()
    rows = ok["_row_id"]
    # a column is its label too: the per-setting columns of one run (`S@label`) share a config
    cols = pd.Series([{**d, "task_setting": ts}
                      for d, ts in zip(ok["_col_id"], ok["task_setting"])], index=ok.index)
    if group_by:
        values = ok["config"].map(lambda c: flatten(c).get(group_by, np.nan))
        if values.isna().all():
            raise NoResultsError(f"--group-by {group_by}: no result has this config key "
                                 f"(examples: model.d_model, trainer.max_steps, mixer.short_conv)")
        ok[group_by] = values
        rows = rows.map(lambda d: {k: v for k, v in d.items() if k != group_by})
        cols = cols.map(lambda d: {k: v for k, v in d.items() if k != group_by})
    ok["row"] = label_by_difference(ok["mixer"].astype(str), rows)
    ok["column"] = label_by_difference(ok["task_setting"].astype(str), cols)
    ok["_row_key"] = rows.map(_key) + (ok[group_by].map(_key) if group_by else "")
    ok["_col_key"] = cols.map(_key)
    return ok


def _first(series: pd.Series):
    s = series.dropna()
    return s.iloc[0] if len(s) else None


def summarize(df: pd.DataFrame, metric: str = "test_acc", select_on: str = "val_acc",
              level: float = 0.95, group_by: str | None = None) -> pd.DataFrame:
    """One cell per (row, column) over the `ok` runs (add_experiment_labels).

    The learning rate is the one with the best mean `select_on` over seeds (ties: more seeds,
    then the smaller rate); the cell reports that rate's `metric` over its seeds: `mean`, `std`,
    `ci95` (the t half-width, NaN for one seed), `lo`, `hi`, `seeds`, `values` (the seeds'
    own). A steps-to-accuracy metric of a seed that never reached the threshold is inf, and so
    is then the mean. Also `row`,
    `mixer`, `task_setting` (the column label), `val_mean`, `lrs` (rates tried), `seq_len`,
    `num_params` (median), `d_model`, `num_heads`, `num_layers`, `state_size` (the recorded
    theory.state_size), `info_bits`, the task and mixer configs, and the `group_by` value.
    """
    ok = df[df["status"] == "ok"].copy()
    if ok.empty:
        raise NoResultsError("no result with status 'ok'")
    if metric not in ok:
        raise NoResultsError(f"no result reports the metric {metric!r}")
    if select_on not in ok:
        ok[select_on] = np.nan
    ok = add_experiment_labels(ok, group_by)
    ok["lr_key"] = ok["lr"].fillna(-1.0)
    rows = []
    for (_, _), group in ok.groupby(["_row_key", "_col_key"], sort=True):
        per_lr = group.groupby("lr_key").agg(val=(select_on, "mean"), runs=(metric, "count"))
        per_lr = per_lr.assign(val_key=per_lr["val"].fillna(-np.inf)).sort_values(
            ["val_key", "runs"], ascending=[False, False], kind="stable")
        lr_key = per_lr.index[0]
        chosen = group[group["lr_key"] == lr_key]
        values = chosen[metric].dropna()
        if np.isinf(values).any():
            mean, half, n = math.inf, math.nan, len(values)
        else:
            mean, half, n = t_interval(values.tolist(), level)
        state = (chosen["theory.state_size"].median() if "theory.state_size" in chosen
                 else np.nan)
        rows.append({
            "row": chosen["row"].iloc[0],
            "task_setting": chosen["column"].iloc[0],
            "mixer": chosen["mixer"].iloc[0],
            **({group_by: _first(chosen[group_by])} if group_by else {}),
            "task": _first(chosen["task"]),
            "seq_len": chosen["seq_len"].median(),
            "lr": None if lr_key == -1.0 else float(lr_key),
            "val_mean": per_lr["val"].iloc[0],
            "lrs": len(per_lr),
            "seeds": n,
            "values": values.tolist(),  # one per seed, at the chosen rate
            "mean": mean,
            "std": float(values.std(ddof=1)) if n > 1 and np.isfinite(mean) else math.nan,
            "ci95": half,
            "lo": mean - half if n > 1 else math.nan,
            "hi": mean + half if n > 1 else math.nan,
            "num_params": chosen["num_params"].median(),
            "d_model": chosen["d_model"].median(),
            "num_heads": chosen["num_heads"].median(),
            "num_layers": chosen["num_layers"].median(),
            "state_size": state,
            "info_bits": chosen["info_bits"].median(),
            "task_config": _first(chosen["task_config"]),
            "mixer_config": _first(chosen["mixer_config"]),
            "paths": chosen["path"].tolist(),
        })
    cells = pd.DataFrame(rows)
    cells.attrs.update(df.attrs)
    cells.attrs["metric"] = metric
    cells.attrs["group_by"] = group_by
    return cells


def _natural(label: str) -> tuple:
    """`mqar-n128-kv8` before `mqar-n128-kv16`: digit runs compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(label)))


def setting_order(cells: pd.DataFrame) -> list[str]:
    """Task settings ordered by task name, then sequence length, then label (numbers in it
    compared as numbers)."""
    keys = cells.groupby("task_setting").agg(task=("task", "first"), n=("seq_len", "max"))
    keys = keys.reset_index().fillna({"task": "", "n": -1})
    keys["label"] = keys["task_setting"].map(_natural)
    keys = keys.sort_values(["task", "n", "label"], kind="stable")
    return keys["task_setting"].tolist()


def task_of(task_config):
    """The `tasks` task a result's task config describes, or None (unknown, or tasks missing)."""
    if not isinstance(task_config, Mapping) or "name" not in task_config:
        return None
    try:
        from tasks import TASKS, make_task
    except ImportError:
        return None
    name = task_config["name"]
    if name not in TASKS:
        return None
    fields = {f.name for f in dataclasses.fields(TASKS[name]) if f.init}
    params = {k: v for k, v in task_config.items() if k in fields}
    try:
        return make_task(name, **params)
    except (ValueError, TypeError):
        return None
