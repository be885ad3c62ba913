"""Train one model on one task, evaluate it, write `result.json`.

    python -m runners.train task=mqar mixer=pow2 seed=1          # one run (also: glmix-train)
    python -m runners.train -m mixer=pow2,sq1 seed=0,1,2         # a grid (Hydra multirun)
    python -m runners.train -m grid=smoke hydra/launcher=joblib  # a named grid, in parallel

Each run goes to `<results_dir>/<task_setting>/<mixer>/lr<lr>-seed<seed>-<hash8>/result.json`
(runners.store; the schema is runners.schema.Result), with the logger's files in `logs/` beside
it (runners.loggers). The config hash is the run's identity (docs/runners.md, "Run identity"):
a run whose hash already has an `ok` result under results_dir is skipped (`force=true` reruns
it); a run that fails writes a `failed` result with the traceback and returns normally, so the
rest of the grid goes on. A config error prints one line and exits with code 2; Ctrl-C prints
one line and exits with 130 (runners.errors).
"""

from __future__ import annotations

import math
import platform
import sys
import time
import traceback
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from runners import cluster, errors
from runners.checkpoint import save_state_dict
from runners.config import ConfigError, validate
from runners.environment import configure_threads, hydra_config, multirun, quiet_lightning
from runners.loggers import LOG_DIR, close_loggers, make_loggers, wandb_names
from runners.machine import versions
from runners.paths import CONF_DIR  # conf/ in a checkout, runners/conf in an installed wheel
from runners.progress import print_progress, swept_values
from runners.schema import Result, config_hash, steps_to
from runners.store import (
    check_results_dir,
    code_versions,
    find_finished,
    result_dir,
    task_setting,
    write_json_atomic,
)

_failed_single_run = False


# ------------------------------------------------------------------------ one run
def run(cfg: DictConfig) -> dict:
    """Validate, skip if finished (unless `force`), else train and evaluate; write
    result.json; return a summary {status, task_setting, mixer, seed, lr, metrics, result_path}.

    A config error (a bad task parameter, a pattern that does not parse, an unwritable
    results_dir) raises ConfigError before anything is built. Any error while training is
    recorded as a `failed` result instead.
    """
    task = validate(cfg)
    check_results_dir(cfg.results_dir)
    result, out = new_result(cfg, task)
    summary = {"task_setting": result.task_setting, "mixer": result.mixer, "seed": result.seed,
               "lr": result.lr, "result_path": str((out / "result.json").resolve())}
    lock = cluster.RunLock(out)  # one process per run; another one skips it (runners.cluster)
    finished = claim(cfg, result.config_hash, out, lock)
    if finished is not None:
        skipped = {**summary, "status": "skipped", "skipped_because": finished, "metrics": {}}
        report(skipped)
        return skipped
    train_and_record(cfg, task, result, out)
    write_json_atomic(out / "result.json", result.to_dict())
    lock.release()
    report(result.to_dict())
    if not multirun():
        print(f"result: {summary['result_path']}", flush=True)
    return {**summary, "status": result.status, "metrics": result.metrics}


def new_result(cfg: DictConfig, task) -> tuple[Result, Path]:
    """The run's identity and folder: a `failed` Result holding its config, hash and labels
    (filled in by training), and the folder its result.json goes to."""
    config = OmegaConf.to_container(cfg, resolve=True)
    code = code_versions(task)
    h = config_hash(config, code)
    setting = task_setting(cfg, task)
    result = Result(
        status="failed", config=config, config_hash=h, task=str(cfg.task.name),
        task_setting=setting, mixer=str(cfg.mixer.name), seed=int(cfg.seed), lr=float(cfg.lr),
        code_versions=code, theory={"seq_len": int(task.seq_len)},
        info_bits=_finite_or_none(float(task.info_bits)), versions=versions(),
        job=cluster.job_info(),
    )
    return result, result_dir(cfg.results_dir, setting, result.mixer, result.lr, result.seed, h)


def claim(cfg: DictConfig, h: str, out: Path, lock: cluster.RunLock) -> str | None:
    """Take the run: None when this process trains it, else why not (a finished result's path,
    or `running in <holder>`). With force, a finished result does not count, but a run in
    progress elsewhere does."""
    if not cfg.force:
        found = find_finished(cfg.results_dir, h, out)
        if found is not None:
            return str(found)
    return lock.acquire(lambda: None if cfg.force else find_finished(cfg.results_dir, h, out))


def train_and_record(cfg: DictConfig, task, result: Result, out: Path) -> None:
    """Train and evaluate into `result`: status ok with the figures, or failed with the
    traceback (the grid goes on). Ctrl-C is not caught: the run stays unfinished."""
    global _failed_single_run
    t0 = time.time()
    try:
        if cfg.debug.fail:
            raise RuntimeError("debug.fail=true: this run was asked to fail")
        with cluster.time_limit():  # a Slurm job's time limit: a failed result (the reason)
            _import_training_stack()  # not timed: the first run of a worker process pays for it
            t0 = time.time()
            for key, value in train(cfg, task, out, result).items():
                setattr(result, key, value)
        result.status = "ok"
    except Exception:  # recorded, and the grid goes on
        result.status = "failed"
        result.error = traceback.format_exc()
        if not multirun():
            _failed_single_run = True
    result.wall_time_s = round(time.time() - t0, 3)


def report(record: dict) -> None:
    """The run's progress line (runners.progress), naming the keys its grid sweeps."""
    hc = hydra_config()
    k = hc.job.num + 1 if multirun() else None
    sweep_dir = str(Path(hc.runtime.output_dir).parent) if multirun() else None
    extra = swept_values(list(hc.overrides.task)) if multirun() else {}
    print_progress(k, record, sweep_dir, extra)


def _import_training_stack() -> None:
    import lightning.pytorch  # noqa: F401

    import runners.lit  # noqa: F401
    import runners.model  # noqa: F401


def _finite_or_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ------------------------------------------------------------------------ training
def train(cfg: DictConfig, task, out: Path, result: Result) -> dict:
    """Fit the model of `cfg` on `task`, validate at the last step, test; the Result fields
    this run computed (metrics, curve, theory, steps, times, hardware, logs, checkpoint)."""
    import lightning.pytorch as pl
    import torch

    from runners.lit import LitModel, StopAtAccuracy, StopAtTimeLimit, TaskDataModule
    from runners.model import build_model

    quiet_lightning()  # after the import: importing lightning sets its loggers to INFO
    t = cfg.trainer
    threads = configure_threads(t.threads)
    torch.set_float32_matmul_precision(t.matmul_precision)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = TaskDataModule(task, cfg.seed, cfg.task.num_train, cfg.task.num_val, cfg.task.num_test,
                        t.batch_size, t.eval_batch_size, t.num_workers)
    dm.setup()
    model = build_model(cfg, task.vocab_size, task.seq_len)
    # the schedule (warm-up, cosine decay) spans max_steps; stop_step may end training earlier
    lit = LitModel(model, task.vocab_size, cfg.lr, dm.slice_names, warmup_steps=t.warmup_steps,
                   max_steps=t.max_steps, min_lr_ratio=t.min_lr_ratio,
                   weight_decay=t.weight_decay, betas=(t.beta1, t.beta2), log_every=t.log_every)
    stop = StopAtAccuracy(t.target_acc) if t.target_acc is not None else None
    loggers = make_loggers(t.logger, out, wandb_names(
        result.task, result.task_setting, result.mixer, result.lr, result.seed,
        result.config_hash), result.config)
    trainer = make_trainer(t, out, loggers, [StopAtTimeLimit()] + ([stop] if stop else []))

    t_fit = time.time()
    trainer.fit(lit, datamodule=dm)
    t_fit = time.time() - t_fit
    checkpoint = None
    if cfg.save_checkpoint:
        save_state_dict(model, out / "final.ckpt")  # tensors only (runners/checkpoint.py)
        checkpoint = "final.ckpt"
    if lit.results.get("val", {}).get("at_step") != trainer.global_step:  # validated earlier
        trainer.validate(lit, datamodule=dm, verbose=False)
    trainer.test(lit, datamodule=dm, verbose=False)
    close_loggers(loggers)
    return {
        "metrics": {k: _finite_or_none(v) for k, v in final_metrics(lit).items()},
        "num_params": model.num_params(),
        "theory": model.theory(task.seq_len),
        "steps": int(trainer.global_step),
        "train_time_s": round(t_fit, 3),
        "early_stopped": bool(stop and stop.reached_at is not None),
        "hardware": {"accelerator": str(t.accelerator), "device": _device(t.accelerator),
                     "threads": threads},
        "curve": lit.curve,
        "log_dir": LOG_DIR if loggers else None,
        "checkpoint": checkpoint,
    }


def make_trainer(t: DictConfig, out: Path, loggers: list, callbacks: list):
    """Lightning's Trainer for the trainer config `t`: step-based (no epochs), validation every
    val_every steps, `stop_step` (when set) ending the run on max_steps' schedule."""
    import lightning.pytorch as pl

    from runners.lit import StepProgressBar

    bar = t.progress_bar
    if bar is None:
        bar = not multirun() and sys.stderr.isatty()
    return pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, precision=t.precision,
        max_steps=t.stop_step or t.max_steps, max_epochs=-1, check_val_every_n_epoch=None,
        val_check_interval=t.val_every, num_sanity_val_steps=0,
        gradient_clip_val=t.grad_clip if t.grad_clip > 0 else None,
        logger=loggers or False, log_every_n_steps=t.log_every,
        enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=bool(bar), callbacks=callbacks + ([StepProgressBar()] if bar else []),
        default_root_dir=str(out),
    )


def final_metrics(lit) -> dict:
    """result.json's metrics: the last validation and the test (overall, per slice, per test
    setting), the recent training loss, and the steps to each accuracy threshold."""
    val, test = lit.results["val"], lit.results["test"]
    metrics = {"val_acc": val["val_acc"], "val_exact": val["val_exact"],
               "val_loss": val["val_loss"], "test_acc": test["test_acc"],
               "test_exact": test["test_exact"], "test_loss": test["test_loss"],
               "val_acc_macro": val["val_acc_macro"], "test_acc_macro": test["test_acc_macro"]}
    for key, v in test.items():
        if key.startswith("test_slice_acc/"):
            metrics[key[len("test_"):]] = v
        elif "@" in key:  # per test setting: test_acc@<label>, ... (docs/tasks.md)
            metrics[key] = v
    losses = lit.recent_losses
    metrics["train_loss"] = sum(losses) / len(losses) if losses else None
    metrics.update(steps_to(lit.curve["val"]["step"], lit.curve["val"]["acc"]))
    return metrics


def _device(accelerator: str) -> str:
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return platform.processor() or "cpu"


# ------------------------------------------------------------------------ entry point
def task_function(cfg: DictConfig) -> dict:
    """Hydra's task function: one job of a run or a grid. A plain module-level function, so
    that parallel launchers (joblib, submitit) pickle it by reference."""
    try:
        return run(cfg)
    except ConfigError as e:
        if multirun():  # the launcher reports it; main() prints it and exits with 2
            raise
        errors.usage_error(str(e))  # before Hydra adds its own line about the failed job


_hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(
    task_function
)


def main() -> None:
    """The `glmix-train` entry point: Hydra's command line (see docs/runners.md).

    Exit codes: 0 done (a grid also when some runs failed: see their results), 1 a single run
    failed while training, 2 a config or validation error (one line on stderr, no traceback),
    130 interrupted (Ctrl-C: one line; the same command resumes).
    """
    with errors.one_line_errors():
        _hydra_main()
    if _failed_single_run:
        sys.exit(1)


if __name__ == "__main__":
    # run the copy imported as runners.train, not this __main__ module, so that parallel
    # launchers find the task function by its module path
    from runners.train import main as _main

    _main()
