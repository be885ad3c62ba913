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
PROGRESS_FILE = "progress.txt"


def sweep_size(config: DictConfig) -> int | None:
    """The number of jobs of the multirun `config` (the basic sweeper's expansion)."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = config.hydra.sweeper.get("params") or {}
        args = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
        overrides = OverridesParser.create().parse_overrides(args)
        batches = BasicSweeper.split_arguments(overrides, None)
        return sum(len(b) for b in batches)
    except Exception:  # another sweeper, or a Hydra internal that moved: no count
        return None


class SweepProgress(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        n = sweep_size(config)
        if n is not None:
            os.environ[ENV_SIZE] = str(n)
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


def progress_line(k: int | None, result: dict) -> str:
    """`[k/N] task_setting mixer lr=.. seed=..: status acc=.. (time)`."""
    n = os.environ.get(ENV_SIZE)
    head = f"[{k}/{n}]" if k is not None and n else (f"[{k}]" if k is not None else "")
    what = (f"{result.get('task_setting')} {result.get('mixer')} "
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


def print_progress(k: int | None, result: dict, sweep_dir: str | None = None) -> None:
    line = progress_line(k, result)
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
