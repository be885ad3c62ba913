"""Train one model on one task, evaluate it, write `result.json`.

    python -m runners.train task=mqar mixer=pow2 seed=1          # one run (also: glmix-train)
    python -m runners.train -m mixer=pow2,sq1 seed=0,1,2         # a grid (Hydra multirun)
    python -m runners.train -m grid=smoke hydra/launcher=joblib  # a named grid, in parallel

Each run goes to `<results_dir>/<task_setting>/<mixer>/lr<lr>-seed<seed>-<hash8>/result.json`
(hash8: the first 8 hex digits of the config hash). A run whose config hash already has an `ok`
result under results_dir is skipped; a run that fails writes a `failed` result with the
traceback and returns normally, so the rest of the grid goes on. See docs/runners.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from functools import lru_cache
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from runners import cluster
from runners.config import RUN_ONLY, validate
from runners.progress import ENV_SIZE, print_progress

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"  # the configs live beside the package (an editable install)
_failed_single_run = False


# ------------------------------------------------------------------------ identity, paths
def config_hash(config: dict) -> str:
    """sha256 of the resolved config without the RUN_ONLY fields (runners.config)."""
    c = copy.deepcopy(config)
    for dotted in RUN_ONLY:
        *parents, leaf = dotted.split(".")
        node = c
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    blob = json.dumps(c, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


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
        except (OSError, ValueError):
            continue
        if r.get("status") == "ok" and r.get("config_hash") == h:
            return path
    return None


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write to a temporary file in the same folder, then os.replace: never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".result.", suffix=".tmp")
    try:
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


@lru_cache(maxsize=1)
def versions() -> dict:
    from importlib import metadata

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("triton", "lightning", "hydra-core", "glmix"):
        try:
            out[dist.replace("-core", "")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist.replace("-core", "")] = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], text=True,
                                capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "-uno"],
                               text=True, capture_output=True, timeout=10).stdout.strip()
        out["git_commit"] = (commit + ("-dirty" if dirty else "")) if commit else None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


# ------------------------------------------------------------------------ one run
def run(cfg: DictConfig) -> dict:
    """Validate, skip if finished, else train and evaluate; write result.json; return it.

    A config error (a bad task parameter, a pattern that does not parse) raises before anything
    is built. Any error while training is recorded as a `failed` result instead.
    """
    global _failed_single_run
    task = validate(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    h = config_hash(config)
    setting = task_setting(cfg, task)
    out = result_dir(cfg.results_dir, setting, cfg.mixer.name, cfg.lr, cfg.seed, h)
    hc = _hydra()
    k = hc.job.num + 1 if _multirun() else None
    sweep_dir = str(Path(hc.runtime.output_dir).parent) if _multirun() else None
    result = {
        "status": None, "error": None, "config": config, "config_hash": h,
        "task": str(cfg.task.name), "task_setting": setting, "mixer": str(cfg.mixer.name),
        "seed": int(cfg.seed), "lr": float(cfg.lr),
        "metrics": {}, "num_params": None,
        "theory": {"seq_len": int(task.seq_len), "state_size": None, "flops_per_token": None},
        "wall_time_s": None, "steps": 0, "versions": versions(),
        "info_bits": _finite_or_none(float(task.info_bits)),
        "result_path": str((out / "result.json").resolve()),
        "hydra_dir": str(hc.runtime.output_dir) if hc is not None else None,
        "job": cluster.job_info(),
    }
    finished = find_finished(cfg.results_dir, h, out)
    lock = cluster.RunLock(out)  # one process per run; another one skips it (runners.cluster)
    if finished is None:
        finished = lock.acquire(lambda: find_finished(cfg.results_dir, h, out))
    if finished is not None:
        skipped = {k_: result[k_] for k_ in ("task", "task_setting", "mixer", "seed", "lr",
                                            "config_hash")}
        skipped.update(status="skipped", skipped_because=str(finished))
        print_progress(k, skipped, sweep_dir)
        return skipped
    t0 = time.time()
    try:
        if cfg.debug.fail:
            raise RuntimeError("debug.fail=true: this run was asked to fail")
        with cluster.time_limit():  # a Slurm job's time limit: a failed result (the reason)
            _import_training_stack()  # not timed: the first run of a worker process pays for it
            t0 = time.time()
            result.update(_train(cfg, task, out))
        result["status"] = "ok"
    except Exception:  # recorded, and the grid goes on
        result["status"] = "failed"
        result["error"] = traceback.format_exc()
        if not _multirun():
            _failed_single_run = True
    result["wall_time_s"] = round(time.time() - t0, 3)
    write_json_atomic(out / "result.json", result)
    lock.release()
    print_progress(k, result, sweep_dir)
    if not _multirun():
        print(f"result: {result['result_path']}", flush=True)
    return {key: result[key] for key in ("status", "task_setting", "mixer", "seed", "lr",
                                         "metrics", "result_path")}


def _import_training_stack() -> None:
    import lightning.pytorch  # noqa: F401

    import runners.lit  # noqa: F401
    import runners.model  # noqa: F401


def _train(cfg: DictConfig, task, out: Path) -> dict:
    import lightning.pytorch as pl
    import torch

    quiet_lightning()  # after the import: importing lightning sets its loggers to INFO

    from runners.lit import LitModel, StopAtAccuracy, TaskDataModule
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
                   weight_decay=t.weight_decay, betas=(t.beta1, t.beta2))
    stop = StopAtAccuracy(t.target_acc) if t.target_acc is not None else None
    bar = t.progress_bar
    if bar is None:
        bar = not _multirun() and sys.stderr.isatty()
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, precision=t.precision,
        max_steps=t.max_steps, max_epochs=-1, check_val_every_n_epoch=None,
        val_check_interval=t.val_every, num_sanity_val_steps=0,
        gradient_clip_val=t.grad_clip if t.grad_clip > 0 else None,
        logger=False, enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=bool(bar), callbacks=[stop] if stop else [],
        default_root_dir=str(out),
    )
    t_fit = time.time()
    trainer.fit(lit, datamodule=dm)
    t_fit = time.time() - t_fit
    steps = trainer.global_step
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
    }


# ------------------------------------------------------------------------ entry point
def task_function(cfg: DictConfig) -> dict:
    """Hydra's task function: one job of a run or a grid. A plain module-level function, so
    that parallel launchers (joblib, submitit) pickle it by reference."""
    return run(cfg)


_hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(
    task_function
)


def main() -> None:
    """The `glmix-train` entry point: Hydra's command line (see docs/runners.md)."""
    _hydra_main()
    if _failed_single_run:
        sys.exit(1)


if __name__ == "__main__":
    # run the copy imported as runners.train, not this __main__ module, so that parallel
    # launchers find the task function by its module path
    from runners.train import main as _main

    _main()
