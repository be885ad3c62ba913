"""Train one model on one task, evaluate it, write `result.json`.

    python -m runners.train task=mqar mixer=pow2 seed=1          # one run (also: glmix-train)
    python -m runners.train -m mixer=pow2,sq1 seed=0,1,2         # a grid (Hydra multirun)
    python -m runners.train -m grid=smoke hydra/launcher=joblib  # a named grid, in parallel

Each run goes to `<results_dir>/<task_setting>/<mixer>/lr<lr>-seed<seed>-<hash8>/result.json`
(hash8: the first 8 hex digits of the config hash; the schema is runners.schema.Result), with
the Lightning logger's files in `logs/` beside it. The config hash is the run's identity: its
resolved config and the versions of the task generator and of the op (runners.schema). A run
whose hash already has an `ok` result under results_dir is skipped (`force=true` reruns it); a
run that fails writes a `failed` result with the traceback and returns normally, so the rest of
the grid goes on. A config error prints one line and exits with code 2. See docs/runners.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mixers.registry import CONF_DIR  # conf/ in a checkout, runners/conf in an installed wheel
from runners import cluster
from runners.checkpoint import save_state_dict
from runners.config import ConfigError, validate
from runners.machine import versions
from runners.progress import ENV_SIZE, print_progress
from runners.schema import Result, config_hash, steps_to

_failed_single_run = False


# ------------------------------------------------------------------------ identity, paths
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


def task_setting(cfg: DictConfig, task) -> str:
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


def _finite_or_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ------------------------------------------------------------------------ environment
def _hydra():
    return HydraConfig.get() if HydraConfig.initialized() else None


def _multirun() -> bool:
    hc = _hydra()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def configure_threads(requested: int) -> int:
    """torch threads for this run: `requested`, or (0) the cores shared by the jobs that run
    at once (joblib: n_jobs; submitit_local: the whole sweep; submitit_slurm: cpus_per_task)."""
    import torch

    n = requested
    if n <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        jobs = 1
        hc = _hydra()
        if _multirun():
            launcher = hc.launcher
            choice = str(hc.runtime.choices.get("hydra/launcher", "basic"))
            if "n_jobs" in launcher:  # joblib: -1 = all cores, -2 = all but one, ...
                nj = int(launcher.n_jobs)
                jobs = nj if nj > 0 else max(cores + 1 + nj, 1)
            elif launcher.get("cpus_per_task"):
                cores, jobs = int(launcher.cpus_per_task), 1
            elif choice == "submitit_local":
                jobs = int(os.environ.get(ENV_SIZE, cores))
        n = max(1, cores // max(jobs, 1))
    torch.set_num_threads(n)
    return n


def quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                 "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*number of training batches.*",
                    ".*LeafSpec.*", ".*isinstance.*treespec.*", ".*Tensor Cores.*",
                    ".*`srun` command is available.*"):  # a login node of a Slurm cluster
        warnings.filterwarnings("ignore", message=pattern)


# ------------------------------------------------------------------------ one run
def run(cfg: DictConfig) -> dict:
    """Validate, skip if finished (unless `force`), else train and evaluate; write
    result.json; return a summary {status, task_setting, mixer, seed, lr, metrics, result_path}.

    A config error (a bad task parameter, a pattern that does not parse, an unwritable
    results_dir) raises ConfigError before anything is built. Any error while training is
    recorded as a `failed` result instead.
    """
    global _failed_single_run
    task = validate(cfg)
    check_results_dir(cfg.results_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    code = code_versions(task)
    h = config_hash(config, code)
    setting = task_setting(cfg, task)
    out = result_dir(cfg.results_dir, setting, cfg.mixer.name, cfg.lr, cfg.seed, h)
    hc = _hydra()
    k = hc.job.num + 1 if _multirun() else None
    sweep_dir = str(Path(hc.runtime.output_dir).parent) if _multirun() else None
    result = Result(
        status="failed", config=config, config_hash=h, task=str(cfg.task.name),
        task_setting=setting, mixer=str(cfg.mixer.name), seed=int(cfg.seed), lr=float(cfg.lr),
        code_versions=code, theory={"seq_len": int(task.seq_len)},
        info_bits=_finite_or_none(float(task.info_bits)), versions=versions(),
        job=cluster.job_info(),
    )
    summary = {"task_setting": setting, "mixer": result.mixer, "seed": result.seed,
               "lr": result.lr, "result_path": str((out / "result.json").resolve())}
    finished = None if cfg.force else find_finished(cfg.results_dir, h, out)
    lock = cluster.RunLock(out)  # one process per run; another one skips it (runners.cluster)
    if finished is None:
        # with force, a finished result does not count, but a run in progress elsewhere does
        finished = lock.acquire(lambda: None if cfg.force else
                                find_finished(cfg.results_dir, h, out))
    if finished is not None:
        skipped = {**summary, "status": "skipped", "skipped_because": str(finished),
                   "metrics": {}}
        print_progress(k, skipped, sweep_dir)
        return skipped
    t0 = time.time()
    try:
        if cfg.debug.fail:
            raise RuntimeError("debug.fail=true: this run was asked to fail")
        with cluster.time_limit():  # a Slurm job's time limit: a failed result (the reason)
            _import_training_stack()  # not timed: the first run of a worker process pays for it
            t0 = time.time()
            for key, value in _train(cfg, task, out).items():
                setattr(result, key, value)
        result.status = "ok"
    except Exception:  # recorded, and the grid goes on
        result.status = "failed"
        result.error = traceback.format_exc()
        if not _multirun():
            _failed_single_run = True
    result.wall_time_s = round(time.time() - t0, 3)
    record = result.to_dict()
    write_json_atomic(out / "result.json", record)
    lock.release()
    print_progress(k, record, sweep_dir)
    if not _multirun():
        print(f"result: {summary['result_path']}", flush=True)
    return {**summary, "status": result.status, "metrics": result.metrics}


def _import_training_stack() -> None:
    import lightning.pytorch  # noqa: F401

    import runners.lit  # noqa: F401
    import runners.model  # noqa: F401


def _train(cfg: DictConfig, task, out: Path) -> dict:
    import lightning.pytorch as pl
    import torch

    quiet_lightning()  # after the import: importing lightning sets its loggers to INFO

    from runners.lit import LitModel, StepProgressBar, StopAtAccuracy, TaskDataModule
    from runners.model import build_model

    t = cfg.trainer
    threads = configure_threads(t.threads)
    torch.set_float32_matmul_precision(t.matmul_precision)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = TaskDataModule(task, cfg.seed, cfg.task.num_train, cfg.task.num_val, cfg.task.num_test,
                        t.batch_size, t.eval_batch_size, t.num_workers)
    dm.setup()
    model = build_model(cfg, task.vocab_size, task.seq_len)
    lit = LitModel(model, task.vocab_size, cfg.lr, dm.slice_names, warmup_steps=t.warmup_steps,
                   max_steps=t.max_steps, min_lr_ratio=t.min_lr_ratio,
                   weight_decay=t.weight_decay, betas=(t.beta1, t.beta2), log_every=t.log_every)
    stop = StopAtAccuracy(t.target_acc) if t.target_acc is not None else None
    bar = t.progress_bar
    if bar is None:
        bar = not _multirun() and sys.stderr.isatty()
    callbacks = ([stop] if stop else []) + ([StepProgressBar()] if bar else [])
    loggers = make_loggers(t.logger, out)
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, precision=t.precision,
        max_steps=t.max_steps, max_epochs=-1, check_val_every_n_epoch=None,
        val_check_interval=t.val_every, num_sanity_val_steps=0,
        gradient_clip_val=t.grad_clip if t.grad_clip > 0 else None,
        logger=loggers or False, log_every_n_steps=t.log_every,
        enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=bool(bar), callbacks=callbacks, default_root_dir=str(out),
    )
    t_fit = time.time()
    trainer.fit(lit, datamodule=dm)
    t_fit = time.time() - t_fit
    steps = trainer.global_step
    checkpoint = None
    if cfg.save_checkpoint:
        save_state_dict(model, out / "final.ckpt")  # tensors only (runners/checkpoint.py)
        checkpoint = "final.ckpt"
    if lit.results.get("val", {}).get("at_step") != steps:  # the last validation was earlier
        trainer.validate(lit, datamodule=dm, verbose=False)
    trainer.test(lit, datamodule=dm, verbose=False)

    val, test = lit.results["val"], lit.results["test"]
    metrics = {"val_acc": val["val_acc"], "val_exact": val["val_exact"],
               "val_loss": val["val_loss"], "test_acc": test["test_acc"],
               "test_exact": test["test_exact"], "test_loss": test["test_loss"]}
    for key, v in test.items():
        if key.startswith("test_slice_acc/"):
            metrics[key[len("test_"):]] = v
        elif "@" in key:  # per test setting: test_acc@<label>, ... (docs/tasks.md)
            metrics[key] = v
    losses = lit.recent_losses
    metrics["train_loss"] = sum(losses) / len(losses) if losses else None
    curve = lit.curve
    metrics.update(steps_to(curve["val"]["step"], curve["val"]["acc"]))
    for lg in loggers:
        lg.finalize("success")
    device = (torch.cuda.get_device_name() if t.accelerator in ("gpu", "cuda", "auto")
              and torch.cuda.is_available() else platform.processor() or "cpu")
    return {
        "metrics": {k: _finite_or_none(v) for k, v in metrics.items()},
        "num_params": model.num_params(),
        "theory": model.theory(task.seq_len),
        "steps": int(steps),
        "train_time_s": round(t_fit, 3),
        "early_stopped": bool(stop and stop.reached_at is not None),
        "hardware": {"accelerator": str(t.accelerator), "device": device, "threads": threads},
        "curve": curve,
        "log_dir": LOG_DIR if loggers else None,
        "checkpoint": checkpoint,
    }


LOG_DIR = "logs"


def make_loggers(kind: str, out: Path) -> list:
    """Lightning's standard loggers writing into `<run folder>/logs/`: CSVLogger (metrics.csv)
    for `csv`, TensorBoardLogger for `tensorboard`, both for `auto` (TensorBoard only when the
    tensorboard package is installed), none for `none`. A rerun replaces the old files."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from runners.config import has_tensorboard

    if kind == "none":
        return []
    shutil.rmtree(out / LOG_DIR, ignore_errors=True)
    has_tb = has_tensorboard()
    loggers = []
    if kind in ("auto", "csv"):
        loggers.append(CSVLogger(save_dir=str(out), name=LOG_DIR, version=""))
    if kind == "tensorboard" or (kind == "auto" and has_tb):
        loggers.append(TensorBoardLogger(save_dir=str(out), name=LOG_DIR, version="",
                                         default_hp_metric=False))
    return loggers


# ------------------------------------------------------------------------ entry point
def task_function(cfg: DictConfig) -> dict:
    """Hydra's task function: one job of a run or a grid. A plain module-level function, so
    that parallel launchers (joblib, submitit) pickle it by reference."""
    try:
        return run(cfg)
    except ConfigError as e:
        if _multirun():  # the launcher reports it; main() prints it and exits with 2
            raise
        _usage_error(str(e))  # before Hydra adds its own line about the failed job


def _usage_error(message: str):
    print(f"glmix-train: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


_hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(
    task_function
)


def main() -> None:
    """The `glmix-train` entry point: Hydra's command line (see docs/runners.md).

    Exit codes: 0 done (a grid also when some runs failed: see their results), 1 a single run
    failed while training, 2 a config or validation error (one line on stderr, no traceback).
    """
    # Hydra then raises errors instead of printing them with a trimmed traceback; the ones a
    # user makes in a config are printed below in one line, the others keep their traceback
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        _hydra_main()
    except Exception as e:
        message = describe_config_error(e)
        if message is None:
            raise
        _usage_error(message)
    if _failed_single_run:
        sys.exit(1)


def describe_config_error(e: BaseException) -> str | None:
    """One line for an error in the user's config or command line (naming the field and the
    constraint, with a close match for a misspelled key or config name); None for others."""
    import difflib

    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if isinstance(e, ConfigError):
        return str(e)
    if isinstance(e, MissingConfigException):
        options = list(getattr(e, "options", None) or [])
        m = re.search(r"Could not find '([^']+)'", str(e))
        what = m.group(1) if m else str(e).splitlines()[0]
        group, _, name = what.rpartition("/")
        close = difflib.get_close_matches(name, options, n=1)
        hint = f"; did you mean {group}={close[0]}?" if close and group else ""
        known = f" (available: {', '.join(sorted(options))})" if options else ""
        return f"{group or 'config'}: no config named {name!r}{hint}{known}"
    if isinstance(e, OverrideParseException):
        return str(e).strip().splitlines()[0]
    cause = e.__cause__ if isinstance(e, ConfigCompositionException) else e
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None) or ""
        msg = str(getattr(cause, "msg", None) or cause).strip().splitlines()[0]
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and "not in" in msg:
            node = getattr(cause, "object_type", None)
            known = ([f.name for f in dataclasses.fields(node)]
                     if node is not None and dataclasses.is_dataclass(node) else [])
            leaf = key.rpartition(".")[2]
            close = difflib.get_close_matches(leaf, known, n=1)
            parent = key.rpartition(".")[0]
            if close:
                return (f"{key}: no such key; did you mean "
                        f"{(parent + '.') if parent else ''}{close[0]}?")
            return f"{key}: no such key" + (f" (keys: {', '.join(known)})" if known else "")
        return f"{key}: {msg}" if key else msg
    if isinstance(e, ConfigCompositionException):
        return str(e).strip().splitlines()[0]
    if isinstance(e, (PermissionError, NotADirectoryError, FileExistsError)) and e.filename:
        return f"results_dir: cannot create {e.filename} ({e.strerror})"
    return None


if __name__ == "__main__":
    # run the copy imported as runners.train, not this __main__ module, so that parallel
    # launchers find the task function by its module path
    from runners.train import main as _main

    _main()
