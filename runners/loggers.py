"""Lightning's standard loggers for one run, all writing into `<run folder>/logs/`.

    trainer.logger=auto          CSVLogger (metrics.csv), and TensorBoardLogger when installed
    trainer.logger=csv           CSVLogger
    trainer.logger=tensorboard   TensorBoardLogger (tensorboard --logdir results/)
    trainer.logger=wandb         WandbLogger: offline (logs/wandb/offline-run-*, `wandb sync`
                                 uploads them) unless WANDB_MODE says otherwise
    trainer.logger=none          none

The learning curve in result.json does not depend on the logger (runners.lit records it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

LOG_DIR = "logs"
LOGGERS = ("auto", "csv", "tensorboard", "wandb", "none")


def installed(kind: str) -> bool:
    """Whether the package a logger needs is importable (csv and none need none)."""
    modules = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}
    return any(importlib.util.find_spec(m) is not None for m in modules.get(kind, ("os",)))


def wandb_names(task: str, task_setting: str, mixer: str, lr: float, seed: int,
                config_hash: str) -> dict:
    """The Weights & Biases project, group and run name of a run: one project per task (or
    WANDB_PROJECT), a group per task setting and mixer, the run named like its folder."""
    return {"project": os.environ.get("WANDB_PROJECT") or f"glmix-{task}",
            "group": f"{task_setting}/{mixer}",
            "name": f"{task_setting}-{mixer}-lr{lr:g}-seed{seed}-{config_hash[:8]}"}


def make_loggers(kind: str, out: Path, names: dict | None = None,
                 config: dict | None = None) -> list:
    """The loggers of `trainer.logger=kind` writing into `<out>/logs/` (a rerun replaces the old
    files). `names`: wandb_names(...) of the run; `config`: the resolved config, logged as the
    wandb run's config."""
    if kind == "none":
        return []
    shutil.rmtree(out / LOG_DIR, ignore_errors=True)
    loggers = []
    if kind in ("auto", "csv"):
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=str(out), name=LOG_DIR, version=""))
    if kind == "tensorboard" or (kind == "auto" and installed("tensorboard")):
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(out), name=LOG_DIR, version="",
                                         default_hp_metric=False))
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        save_dir = out / LOG_DIR
        save_dir.mkdir(parents=True, exist_ok=True)
        online = os.environ.get("WANDB_MODE", "offline") not in ("offline", "disabled", "dryrun")
        loggers.append(WandbLogger(save_dir=str(save_dir), offline=not online,
                                   config=config, reinit="finish_previous", **(names or {})))
    return loggers


def close_loggers(loggers: list) -> None:
    """Flush every logger; end a wandb run, so that the next run of a grid starts its own."""
    for lg in loggers:
        lg.finalize("success")
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
