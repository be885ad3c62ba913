"""Progress of a grid: one line per finished run, `[k/N] task mixer lr seed: status acc time`.

A Hydra callback (registered in conf/config.yaml) counts the runs of a multirun when it starts
and exports the count as GLMIX_SWEEP_SIZE, which the jobs (local, joblib or submitit workers,
which inherit the environment) read to print `k of N`. Each job prints its line and appends it
to `<sweep dir>/progress.txt`; submitit jobs print into their own log files, so for those
launchers the callback prints the collected lines when the grid ends. Nothing here imports
torch.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

ENV_SIZE = "GLMIX_SWEEP_SIZE"
ENV_SWEPT = "GLMIX_SWEPT_KEYS"  # the keys a grid sweeps, comma-separated (for the lines)
PROGRESS_FILE = "progress.txt"
# keys every line names already (the task setting, the mixer, lr, seed)
SHOWN = ("task", "mixer", "lr", "seed")

_sweep: dict[str, Any] = {}  # the multirun of this process: its folder and size (for Ctrl-C)


def sweeps(config: DictConfig) -> dict[str, int] | None:
    """{key: number of values} of the multirun `config` (`hydra.sweeper.params`, then the
    command line, which wins for a key given in both), as the basic sweeper expands them; None
    for a sweep it cannot count (a glob over a config group, another sweeper)."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = config.hydra.sweeper.get("params") or {}
        args = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
        out = {}
        for o in OverridesParser.create().parse_overrides(args):
            out[o.get_key_element()] = (len(list(o.sweep_iterator()))
                                        if o.is_sweep_override() else 1)
        return out
    except Exception:  # another sweeper, or a sweep this does not expand: no count
        return None


def sweep_size(config: DictConfig) -> int | None:
    """The number of jobs of the multirun `config`: the product of its sweeps' lengths."""
    found = sweeps(config)
    if found is None:
        return None
    n = 1
    for count in found.values():
        n *= count
    return n


def swept_values(job_overrides: list[str]) -> dict[str, str]:
    """{name: value} of a job's overrides that its grid sweeps, beyond the keys every line
    shows: `model.d_model=32` -> {"d_model": "32"} (the full key when two swept keys end in the
    same name)."""
    swept = [k for k in os.environ.get(ENV_SWEPT, "").split(",") if k and k not in SHOWN]
    leaves = [k.rpartition(".")[2] for k in swept]
    out = {}
    for override in job_overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in swept:
            leaf = key.rpartition(".")[2]
            out[leaf if leaves.count(leaf) == 1 else key] = value
    return out


def finished_runs() -> tuple[int, int | None]:
    """(runs of this process's grid that have a progress line, the grid's size or None);
    (0, 1) for a single run."""
    folder = _sweep.get("dir")
    if folder is None:
        return 0, 1
    try:
        done = len((Path(folder) / PROGRESS_FILE).read_text().splitlines())
    except OSError:
        done = 0
    return done, _sweep.get("size")


class SweepProgress(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        n = sweep_size(config)
        if n is not None:
            os.environ[ENV_SIZE] = str(n)
        os.environ[ENV_SWEPT] = ",".join(k for k, c in (sweeps(config) or {}).items() if c > 1)
        _sweep.update(dir=str(config.hydra.sweep.dir), size=n)
        self._t0 = time.time()
        launcher = config.hydra.runtime.choices.get("hydra/launcher", "basic")
        print(f"glmix: {n if n is not None else '?'} runs, launcher {launcher}, "
              f"results in {os.path.abspath(str(config.results_dir))}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        t = time.time() - getattr(self, "_t0", time.time())
        launcher = str(config.hydra.runtime.choices.get("hydra/launcher", "basic"))
        log = Path(str(config.hydra.sweep.dir)) / PROGRESS_FILE
        if launcher.startswith("submitit") and log.exists():  # the jobs printed elsewhere
            lines = log.read_text().splitlines()
            for line in sorted(lines, key=_run_number):
                print(line, flush=True)
        print(f"glmix: grid done in {t:.0f} s; results in "
              f"{os.path.abspath(str(config.results_dir))}", flush=True)


def progress_line(k: int | None, result: dict, extra: dict | None = None) -> str:
    """`[k/N] task_setting mixer [d_model=32 ...] lr=.. seed=..: status acc=.. (time)`, with
    `extra` the other keys the grid sweeps (swept_values)."""
    n = os.environ.get(ENV_SIZE)
    head = f"[{k}/{n}]" if k is not None and n else (f"[{k}]" if k is not None else "")
    swept = "".join(f" {key}={value}" for key, value in (extra or {}).items())
    what = (f"{result.get('task_setting')} {result.get('mixer')}{swept} "
            f"lr={result.get('lr'):g} seed={result.get('seed')}")
    status = result.get("status")
    if status == "ok":
        m = result.get("metrics", {})
        tail = (f"ok  test_acc={m.get('test_acc', float('nan')):.4f} "
                f"val_acc={m.get('val_acc', float('nan')):.4f} steps={result.get('steps')} "
                f"({result.get('wall_time_s', 0):.1f} s)")
    elif status == "skipped":
        why = str(result.get("skipped_because"))  # a result file, or `running in <holder>`
        tail = f"skipped ({why if why.startswith('running') else 'finished: ' + why})"
    else:
        err = (result.get("error") or "").strip().splitlines()
        tail = f"FAILED ({err[-1] if err else 'unknown error'})"
    return f"{head} {what}: {tail}".strip()


def print_progress(k: int | None, result: dict, sweep_dir: str | None = None,
                   extra: dict | None = None) -> None:
    line = progress_line(k, result, extra)
    print(line, file=sys.stdout, flush=True)
    if sweep_dir:
        try:
            with open(Path(sweep_dir) / PROGRESS_FILE, "a") as f:  # one short line per write
                f.write(line + "\n")
        except OSError:
            pass


def _run_number(line: str) -> int:
    m = re.match(r"\[(\d+)", line)
    return int(m.group(1)) if m else 0
