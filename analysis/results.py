"""Loading `result.json` files, grouping runs into experiments, choosing the learning rate.

    from analysis.results import load_results, summarize
    runs = load_results("results/smoke")          # one row per result.json, every status
    cells = summarize(runs, metric="test_acc")     # one row per (row, task setting)

A result file is a `runners.schema.Result`; a file of another schema is a row with status
`unreadable`. Runs that differ only in seed and learning rate are one experiment: a leaderboard
*row* is one mixer config with everything else that is not the task (model, trainer, op
version), labelled by its mixer name and, when one name has several configs, a short tag of
what differs (`attention [d_model=16]`, or `attention [a]` beyond 40 characters), the keys in
full in a legend. A *column* is one task setting (its config and generator version; the
evaluation-set sizes task.num_val / task.num_test are not part of it). The rules are in
docs/analysis.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from runners.metrics import metric as lookup_metric
from runners.schema import POOLED, RUN_ONLY, Result, drop_keys, fill_defaults, flatten

from .stats import t_interval
from .theory import THEORY_NAMES, layer_theory

__all__ = [
    "load_results",
    "find_result_files",
    "filter_results",
    "parse_where",
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
    """The metric's direction, from the metric table (runners.metrics)."""
    return lookup_metric(metric).higher_is_better


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
        "weight_decay": _num(config.get("trainer", {}).get("weight_decay")),
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
        try:
            missing = lookup_metric(key).missing
        except ValueError:  # a metric of a newer runner: read as a plain number
            missing = np.nan
        row[key] = _num(value, missing)
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


def parse_where(items: Iterable[str] | str | None) -> list[tuple[str, str]]:
    """`KEY=VALUE` strings (a dotted config key: `lr=1e-3`, `trainer.weight_decay=0.1`) as
    (key, value) pairs. ValueError, naming the item, for one without a key or an `=`."""
    if items is None:
        return []
    pairs = []
    for item in [items] if isinstance(items, str) else items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--where {item!r}: expected KEY=VALUE with a dotted config key, "
                             f"e.g. lr=1e-3 or trainer.weight_decay=0.1")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _config_value_matches(value, wanted: str) -> bool:
    """A config value against a --where value: numbers as numbers (1e-3 is 0.001), booleans and
    null as YAML writes them, anything else as a shell-style pattern on its text."""
    if isinstance(value, bool):
        return wanted.lower() == str(value).lower()
    if value is None:
        return wanted.lower() in ("null", "none", "~")
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=0.0)
        except ValueError:
            return False
    return fnmatchcase(str(value), wanted)


def filter_results(df: pd.DataFrame, tasks=None, mixers=None, where=None) -> pd.DataFrame:
    """Rows whose task name or task setting matches one of `tasks`, whose mixer matches one of
    `mixers` (lists or comma-separated strings; shell-style wildcards allowed) and whose config
    has every `KEY=VALUE` of `where` (parse_where; runs of another value, or without the key,
    are left out). ValueError for a `where` key that no run's config has: a misspelt key would
    otherwise leave nothing, or everything, silently."""
    tasks, mixers = _split(tasks), _split(mixers)
    keep = pd.Series(True, index=df.index)
    if tasks:
        keep &= df["task"].map(lambda v: _matches(v, tasks)) | df["task_setting"].map(
            lambda v: _matches(v, tasks))
    if mixers:
        keep &= df["mixer"].map(lambda v: _matches(v, mixers))
    conditions = parse_where(where)
    if conditions:
        configs = df["config"] if "config" in df else pd.Series([None] * len(df), index=df.index)
        flat = [flatten(c) if isinstance(c, Mapping) else {} for c in configs]
        for key, wanted in conditions:
            if not any(key in f for f in flat):
                raise ValueError(f"--where {key}={wanted}: no run's config has the key {key!r} "
                                 f"(a dotted key such as lr, seed or model.d_model)")
            keep &= pd.Series([key in f and _config_value_matches(f[key], wanted) for f in flat],
                              index=df.index)
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


LABEL_WIDTH = 40
"""The longest row or column label; the keys that set a label apart are in the legend."""

EVAL_SIZE_KEYS = ("task.num_val", "task.num_test")
"""Evaluation-set sizes: part of a run's identity, not of its column's (one task setting)."""


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(97 + r) + out
    return out


def label_by_difference(base: pd.Series, ids: pd.Series, width: int = LABEL_WIDTH
                        ) -> tuple[pd.Series, dict[str, str]]:
    """A short label per entry and the legend of the labels that need one.

    `base` alone when one base has one identity (a dict of dotted keys); when it has several,
    `base [d_model=16]` with the last part of each key whose value differs, or `base [a]`,
    `base [b]`, ... when that would be longer than `width` characters. The legend maps each such
    label to the differing keys in full (`model.d_model=16, trainer.max_steps=600`)."""
    keys = ids.map(_key)
    labels = pd.Series(index=ids.index, dtype=object)
    legend: dict[str, str] = {}
    for name, idx in base.groupby(base, sort=False).groups.items():
        distinct = {keys[i]: ids[i] for i in idx}
        if len(distinct) == 1:
            labels[idx] = str(name)
            continue
        every = sorted(set().union(*(d.keys() for d in distinct.values())))
        differ = [k for k in every if len({_key(d.get(k, "-")) for d in distinct.values()}) > 1]
        full = {key: ", ".join(f"{k}={_fmt_value(d.get(k, '-'))}" for k in differ)
                for key, d in distinct.items()}
        short = {key: f"{name} [" + ", ".join(f"{k.rsplit('.', 1)[-1]}={_fmt_value(d.get(k, '-'))}"
                                              for k in differ) + "]"
                 for key, d in distinct.items()}
        if (max(map(len, short.values())) > width
                or len(set(short.values())) < len(short)):
            short = {key: f"{name} [{_letters(i)}]" for i, key in enumerate(sorted(full,
                     key=lambda k: _natural(full[k])))}
        for key in distinct:
            legend[short[key]] = full[key]
        for i in idx:
            labels[i] = short[keys[i]]
    return labels, legend


def add_experiment_labels(ok: pd.DataFrame, group_by: str | None = None) -> pd.DataFrame:
    """`row` and `column` labels of every run (see the module docstring); with `group_by` (a
    dotted config key such as `model.d_model`) that key is left out of both identities and
    becomes a column of its own (its value per run)."""
    ok = ok.copy()
    rows = ok["_row_id"]
    # a column is its label too: the per-setting columns of one run (`S@label`) share a config
    cols = pd.Series([{**{k: v for k, v in d.items() if k not in EVAL_SIZE_KEYS},
                       "task_setting": ts}
                      for d, ts in zip(ok["_col_id"], ok["task_setting"])], index=ok.index)
    if group_by:
        values = ok["config"].map(lambda c: flatten(c).get(group_by, np.nan))
        if values.isna().all():
            raise NoResultsError(f"--group-by {group_by}: no result has this config key "
                                 f"(examples: model.d_model, trainer.max_steps, mixer.short_conv)")
        ok[group_by] = values
        rows = rows.map(lambda d: {k: v for k, v in d.items() if k != group_by})
        cols = cols.map(lambda d: {k: v for k, v in d.items() if k != group_by})
    ok["row"], row_legend = label_by_difference(ok["mixer"].astype(str), rows)
    ok["column"], col_legend = label_by_difference(ok["task_setting"].astype(str), cols)
    ok["row_keys"] = ok["row"].map(row_legend)
    ok["column_keys"] = ok["column"].map(col_legend)
    ok["_row_key"] = rows.map(_key) + (ok[group_by].map(_key) if group_by else "")
    ok["_col_key"] = cols.map(_key)
    return ok


def _first(series: pd.Series):
    s = series.dropna()
    return s.iloc[0] if len(s) else None


def summarize(df: pd.DataFrame, metric: str = "test_acc", select_on: str = "val_acc",
              level: float = 0.95, group_by: str | None = None) -> pd.DataFrame:
    """One cell per (row, column) over the `ok` runs (add_experiment_labels).

    The optimizer's (learning rate, weight decay) is the pair with the best mean `select_on` over
    seeds (ties: more seeds, then the smaller rate, then the smaller decay); the cell reports that
    pair's `metric` over its seeds: `mean`, `std`,
    `ci95` (the t half-width, NaN for one seed), `lo`, `hi`, `seeds`, `values` (the seeds'
    own). A steps-to-accuracy metric of a seed that never reached the threshold is inf, and so
    is then the mean. Also `row`,
    `mixer`, `task_setting` (the column label), `lr` and `weight_decay` (chosen), `val_mean`, `lrs`
    (rates tried), `hparams` ((rate, decay) pairs tried), `seq_len`,
    `num_params` (median), `d_model`, `num_heads`, `num_layers`, `info_bits`, the task and
    mixer configs, the `group_by` value, and the theory columns at the cell's seq_len
    (analysis.theory.THEORY_COLUMNS: `reads_per_token`, `cache_size`, `state_size` -- the
    recorded theory.state_size when there is one --, `hop_diameter`, `congestion`): the one place
    the leaderboard and the plots read them from.
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
    ok["wd_key"] = ok["weight_decay"].fillna(-1.0)
    rows = []
    for (_, _), group in ok.groupby(["_row_key", "_col_key"], sort=True):
        per_hp = group.groupby(["lr_key", "wd_key"]).agg(val=(select_on, "mean"),
                                                         runs=(metric, "count"))
        per_hp = per_hp.assign(val_key=per_hp["val"].fillna(-np.inf)).sort_values(
            ["val_key", "runs"], ascending=[False, False], kind="stable")
        lr_key, wd_key = per_hp.index[0]
        chosen = group[(group["lr_key"] == lr_key) & (group["wd_key"] == wd_key)]
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
            "row_keys": _first(chosen["row_keys"]),
            "column_keys": _first(chosen["column_keys"]),
            "mixer": chosen["mixer"].iloc[0],
            **({group_by: _first(chosen[group_by])} if group_by else {}),
            "task": _first(chosen["task"]),
            "seq_len": chosen["seq_len"].median(),
            "lr": None if lr_key == -1.0 else float(lr_key),
            "weight_decay": None if wd_key == -1.0 else float(wd_key),
            "val_mean": per_hp["val"].iloc[0],
            "lrs": group["lr_key"].nunique(),
            "hparams": len(per_hp),  # (lr, weight decay) pairs tried
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
    cells = _with_theory(pd.DataFrame(rows))
    cells.attrs.update(df.attrs)
    cells.attrs["metric"] = metric
    cells.attrs["group_by"] = group_by
    return cells


@lru_cache(maxsize=2048)
def _theory(mixer_config: str, n: int, d_model: int, num_heads: int) -> tuple:
    try:
        th = layer_theory(json.loads(mixer_config), n, d_model, num_heads)
    except Exception:  # noqa: BLE001 - an unknown kind, a missing optional package: no theory
        return tuple(math.nan for _ in THEORY_NAMES)
    return tuple(float(th[k]) for k in THEORY_NAMES)


def theory_of(mixer_config, n, d_model, num_heads) -> dict:
    """The theory figures (analysis.theory.THEORY_COLUMNS) of a recorded mixer config at length
    n for its model width, each computed once per distinct input; NaN where the registry cannot
    build the config."""
    nums = (n, d_model, 1 if num_heads is None or not np.isfinite(num_heads) else num_heads)
    if not isinstance(mixer_config, Mapping) or not all(
            v is not None and np.isfinite(v) for v in nums):
        return dict.fromkeys(THEORY_NAMES, math.nan)
    key = json.dumps(dict(mixer_config), sort_keys=True, default=str)
    return dict(zip(THEORY_NAMES, _theory(key, *(int(v) for v in nums))))


def _with_theory(cells: pd.DataFrame) -> pd.DataFrame:
    """The theory columns of every cell at its own seq_len; the state size the run recorded
    (the layer's own) wins over the recomputed one."""
    figures = pd.DataFrame([theory_of(r["mixer_config"], r["seq_len"], r["d_model"],
                                      r["num_heads"]) for _, r in cells.iterrows()],
                           index=cells.index, columns=list(THEORY_NAMES))
    recorded = cells["state_size"]
    for key in THEORY_NAMES:
        cells[key] = (recorded.where(recorded.notna(), figures[key]) if key == "state_size"
                      else figures[key])
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
