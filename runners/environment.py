"""The process a run executes in: Hydra's job context, torch's thread count, quiet libraries."""

from __future__ import annotations

import logging
import os
import warnings

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from runners.progress import ENV_SIZE


def hydra_config():
    """Hydra's config of this job, or None outside a Hydra app (tests call run() directly)."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def multirun() -> bool:
    hc = hydra_config()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def configure_threads(requested: int) -> int:
    """torch threads for this run: `requested`, or (0) the cores shared by the jobs that run
    at once (joblib: n_jobs; submitit_local: the whole sweep; submitit_slurm: cpus_per_task).
    On a machine shared with other work, set it (docs/runners.md, "Threads")."""
    import torch

    n = requested
    if n <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        jobs = 1
        hc = hydra_config()
        if multirun():
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
    """Lightning at WARNING, and without the advice that does not apply to these runs (call it
    after importing lightning: the import sets its loggers to INFO)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                 "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*number of training batches.*",
                    ".*LeafSpec.*", ".*isinstance.*treespec.*", ".*Tensor Cores.*",
                    ".*`srun` command is available.*"):  # a login node of a Slurm cluster
        warnings.filterwarnings("ignore", message=pattern)
