"""Loading `result.json` files, choosing the learning rate, and the per-cell summaries.

    from analysis.results import load_results, summarize
    runs = load_results("results/smoke")          # one row per result.json, every status
    cells = summarize(runs, metric="test_acc")     # one row per (task_setting, mixer)

The result schema is in docs/architecture.md; the selection and interval rules in
docs/analysis.md. The loader is tolerant: a missing key is a missing value, an unreadable file is
a row with status `unreadable`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "load_results",
    "find_result_files",
    "filter_results",
    "summarize",
    "setting_order",
    "t_interval",
    "cell_theory",
    "task_of",
    "NoResultsError",
]

KEYS = ("status", "error", "task", "task_setting", "mixer", "seed", "lr", "config_hash",
        "num_params", "wall_time_s", "steps")


_TASK_META = ("name", "setting", "num_train", "num_val", "num_test", "_target_")


class NoResultsError(Exception):
    """Nothing to report: no result file, or no `ok` one (after the filters)."""


def find_result_files(results_dir) -> list[Path]:
    root = Path(results_dir)
    if not root.is_dir():
        raise NoResultsError(f"{root} is not a folder")
    return sorted(root.rglob("result.json"))


def _find_key(cfg, names: tuple[str, ...], prefer: tuple[str, ...] = ("model",)):
    """The first value of any of `names` in a nested config, looking in `prefer` sections first."""
    if not isinstance(cfg, Mapping):
        return None
    for section in prefer:
        sub = cfg.get(section)
        if isinstance(sub, Mapping):
            for name in names:
                if name in sub:
                    return sub[name]
    stack = [cfg]
    while stack:
        node = stack.pop(0)
        for name in names:
            if name in node and not isinstance(node[name], Mapping):
                return node[name]
        stack.extend(v for v in node.values() if isinstance(v, Mapping))
    return None


def _num(x):
    if isinstance(x, bool) or x is None:
        return np.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return np.nan


def _flatten(record: Mapping, path: Path) -> dict:
    row = {key: record.get(key) for key in KEYS}
    row["path"] = str(path)
    config = record.get("config") if isinstance(record.get("config"), Mapping) else {}
    row["config"] = config
    metrics = record.get("metrics") if isinstance(record.get("metrics"), Mapping) else {}
    for key, value in metrics.items():
        row[key] = _num(value)
    theory = record.get("theory") if isinstance(record.get("theory"), Mapping) else {}
    for key, value in theory.items():
        row[f"theory.{key}"] = value if isinstance(value, (str, bool)) else _num(value)
    task_cfg = config.get("task") if isinstance(config.get("task"), Mapping) else {}
    mixer_cfg = config.get("mixer") if isinstance(config.get("mixer"), Mapping) else {}
    if isinstance(task_cfg.get("params"), Mapping):  # the runners' layout: task.params
        params = dict(task_cfg["params"])
    else:
        params = {k: v for k, v in task_cfg.items() if k not in _TASK_META}
    row["task_config"] = {"name": task_cfg.get("name", record.get("task")), **params}
    row["mixer_config"] = dict(mixer_cfg)
    if row["task"] is None:
        row["task"] = task_cfg.get("name")
    if row["mixer"] is None:
        row["mixer"] = mixer_cfg.get("name")
    row["info_bits"] = _num(record.get("info_bits", theory.get("info_bits")))
    seq_len = theory.get("seq_len") or params.get("seq_len")
    row["seq_len"] = _num(seq_len)
    if row["task_setting"] is None and row["task"] is not None:
        row["task_setting"] = row["task"] + (f"-{int(seq_len)}" if seq_len is not None else "")
    row["d_model"] = _num(_find_key(config, ("d_model", "dim", "hidden_size")))
    heads = _find_key(config, ("num_heads", "n_heads", "heads"), ("mixer", "model"))
    row["num_heads"] = _num(heads)
    row["num_layers"] = _num(_find_key(config, ("n_layers", "num_layers", "layers", "depth")))
    row["num_params"] = _num(row["num_params"])
    row["lr"] = _num(row["lr"]) if row["lr"] is not None else _num(
        _find_key(config, ("lr", "learning_rate"), ("trainer", "optimizer")))
    row["seed"] = row["seed"] if row["seed"] is not None else _find_key(config, ("seed",), ())
    row["status"] = str(row["status"] or "unknown")
    return row


def load_results(results_dir) -> pd.DataFrame:
    """One row per `result.json` below `results_dir` (every status; unreadable files get status
    `unreadable`). Columns: the top-level keys, every metric (`val_acc`, `test_acc`, ...), the
    theory figures as `theory.<key>`, `seq_len`, `d_model`, `num_heads`, `num_layers`, `path`,
    and the `config`, `task_config` and `mixer_config` mappings.

    Among `ok` results sharing a `config_hash` (a run recorded twice) only the first by path is
    kept; `df.attrs["duplicates"]` counts the dropped ones. Raises NoResultsError when the folder
    does not exist.
    """
    rows = []
    for path in find_result_files(results_dir):
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, Mapping):
                raise ValueError("not a JSON object")
            rows.append(_flatten(record, path))
        except (OSError, ValueError) as e:
            rows.append({"path": str(path), "status": "unreadable", "error": str(e)})
    df = pd.DataFrame(rows)
    for key in (*KEYS, "path", "seq_len", "val_acc", "test_acc", "test_exact"):
        if key not in df:
            df[key] = np.nan if key not in ("status",) else "unknown"
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


def t_interval(values, level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width, n) of the Student t interval: mean +- t_{(1+level)/2, n-1} * s / sqrt(n),
    s the sample standard deviation (ddof 1). NaN half-width when n < 2."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def _first(series: pd.Series):
    s = series.dropna()
    return s.iloc[0] if len(s) else None


def summarize(df: pd.DataFrame, metric: str = "test_acc", select_on: str = "val_acc",
              level: float = 0.95) -> pd.DataFrame:
    """One row per (task_setting, mixer) over the `ok` runs.

    The learning rate is the one with the best mean `select_on` over seeds (ties: more seeds,
    then the smaller rate); the row reports that rate's `metric` over its seeds: `mean`, `std`,
    `ci95` (the t half-width, NaN for one seed), `lo`, `hi`, `seeds`. Also `val_mean`, `lrs`
    (rates tried), `seq_len`, `num_params` (median), `d_model`, `num_heads`, `num_layers`,
    `state_size` (the runner's theory.state_size, median), `info_bits`, and the task config
    (`task_config`: name and parameters) and the mixer config.
    """
    ok = df[df["status"] == "ok"].copy()
    if ok.empty:
        raise NoResultsError("no result with status 'ok'")
    if metric not in ok:
        raise NoResultsError(f"no result reports the metric {metric!r}")
    if select_on not in ok:
        ok[select_on] = np.nan
    ok["lr_key"] = ok["lr"].fillna(-1.0)
    rows = []
    for (setting, mixer), group in ok.groupby(["task_setting", "mixer"], sort=True, dropna=False):
        per_lr = group.groupby("lr_key").agg(val=(select_on, "mean"), runs=(metric, "count"))
        per_lr = per_lr.assign(val_key=per_lr["val"].fillna(-np.inf)).sort_values(
            ["val_key", "runs"], ascending=[False, False], kind="stable")
        lr_key = per_lr.index[0]
        chosen = group[group["lr_key"] == lr_key]
        mean, half, n = t_interval(chosen[metric].tolist(), level)
        values = chosen[metric].dropna()
        state = chosen["theory.state_size"].median() if "theory.state_size" in chosen else np.nan
        rows.append({
            "task_setting": setting,
            "mixer": mixer,
            "task": _first(chosen["task"]),
            "seq_len": chosen["seq_len"].median(),
            "lr": None if lr_key == -1.0 else float(lr_key),
            "val_mean": per_lr["val"].iloc[0],
            "lrs": len(per_lr),
            "seeds": n,
            "mean": mean,
            "std": float(values.std(ddof=1)) if n > 1 else math.nan,
            "ci95": half,
            "lo": mean - half if n > 1 else math.nan,
            "hi": mean + half if n > 1 else math.nan,
            "num_params": chosen["num_params"].median(),
            "d_model": chosen["d_model"].median(),
            "num_heads": chosen["num_heads"].median(),
            "num_layers": chosen["num_layers"].median(),
            "state_size": state,
            "info_bits": chosen["info_bits"].median() if "info_bits" in chosen else np.nan,
            "task_config": _first(chosen["task_config"]) if "task_config" in chosen else None,
            "mixer_config": _first(chosen["mixer_config"]) if "mixer_config" in chosen else None,
        })
    cells = pd.DataFrame(rows)
    cells.attrs.update(df.attrs)
    cells.attrs["metric"] = metric
    return cells


def setting_order(cells: pd.DataFrame) -> list[str]:
    """Task settings ordered by task name, then sequence length, then label."""
    keys = cells.groupby("task_setting").agg(task=("task", "first"), n=("seq_len", "max"))
    keys = keys.reset_index().fillna({"task": "", "n": -1})
    keys = keys.sort_values(["task", "n", "task_setting"], kind="stable")
    return keys["task_setting"].tolist()


# ----------------------------------------------------------------------------------------------
# theory for a cell


def _mixer_key(mixer: str, mixer_config) -> str:
    from .theory import CATALOGUE

    if mixer in CATALOGUE or not isinstance(mixer_config, Mapping) or not mixer_config:
        return json.dumps(mixer)
    keep = {k: mixer_config[k] for k in ("name", "kind", "direct", "recurrent", "cache_efficient")
            if k in mixer_config}
    return json.dumps(keep, sort_keys=True, default=str)


@lru_cache(maxsize=512)
def _theory(key: str, n: int) -> dict:
    from .theory import pattern_stats

    return pattern_stats(json.loads(key), n)


def cell_theory(mixer: str, n, mixer_config=None) -> dict | None:
    """pattern_stats for a result's mixer at length n (catalogue name first, else the mixer's
    config mapping); None when neither describes a mixer."""
    if n is None or not np.isfinite(n):
        return None
    try:
        return _theory(_mixer_key(mixer, mixer_config), int(n))
    except (ValueError, TypeError, KeyError):
        return None


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
