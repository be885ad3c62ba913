"""A run's identity and where its result lives (docs/runners.md, "Run identity").

    code_versions(task)     the code versions hashed with the config (runners.schema)
    task_setting(cfg, task) the task's label: task.setting, or <name>-n<seq_len>
    result_dir(...)         <results_dir>/<task_setting>/<mixer>/lr<lr>-seed<seed>-<hash8>/
    find_finished(...)      an `ok` result of a config hash under results_dir
    write_json_atomic(...)  a result file written whole or not at all
    check_results_dir(...)  ConfigError unless results_dir is a folder this process can write
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from runners.config import ConfigError


def code_versions(task) -> dict:
    """The code versions that are part of a run's identity: the task's generator (its class
    `version` and tasks' GENERATOR_VERSION) and the mixer op (mixers.ops.OP_VERSION)."""
    from mixers.ops import OP_VERSION
    from tasks.base import GENERATOR_VERSION

    return {"task": _task_version(task), "generator": int(GENERATOR_VERSION),
            "op": int(OP_VERSION)}


def _task_version(task):
    """The task class's `version`; for a tasks.TaskMixture, its tasks' (one number when they
    agree, else the sorted list)."""
    if getattr(task, "version", None) is not None:
        return int(task.version)
    parts = {**getattr(task, "train", {}), **getattr(task, "test", {})}
    found = sorted({int(t.version) for t in parts.values()})
    return found[0] if len(found) == 1 else found


def task_setting(cfg, task) -> str:
    return str(cfg.task.setting) if cfg.task.setting else f"{cfg.task.name}-n{task.seq_len}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", str(name)) or "_"


def result_dir(results_dir: str, setting: str, mixer: str, lr: float, seed: int, h: str) -> Path:
    return Path(results_dir) / _safe(setting) / _safe(mixer) / f"lr{lr:g}-seed{seed}-{h[:8]}"


def find_finished(results_dir: str, h: str, expected: Path) -> Path | None:
    """An `ok` result.json with config hash h under results_dir (its usual place first)."""
    candidates = [expected / "result.json"]
    root = Path(results_dir)
    if root.is_dir():
        candidates += sorted(root.glob(f"**/*{h[:8]}*/result.json"))
    for path in candidates:
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError, RecursionError):  # not a result: it never counts as one
            continue
        if isinstance(r, dict) and r.get("status") == "ok" and r.get("config_hash") == h:
            return path
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write to a temporary file in the same folder, then os.replace: never a partial file.
    The file gets the mode a plain open() would give (0644 under the usual umask 022), not
    mkstemp's private 0600, so colleagues on a shared filesystem can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".result.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_results_dir(results_dir: str) -> None:
    """ConfigError naming results_dir when it is not a folder this process can write."""
    root = Path(results_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"results_dir: {results_dir} exists and is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as e:
        raise ConfigError(f"results_dir: cannot write to {results_dir} "
                          f"({e.strerror or e})") from None
