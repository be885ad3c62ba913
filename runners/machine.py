"""Machine and code facts recorded beside results and benchmarks (one helper for all of them).

    versions()          python, torch, triton, lightning, hydra, glmix, git_commit
    git_state(paths)    {"commit", "dirty", "modified"} of the checkout, or None outside git
    machine_info()      platform, cpu model, cores, memory, GPU, and versions()

Nothing here is part of a run's identity: two machines computing the same config give one
experiment (runners.schema).
"""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

__all__ = ["git_state", "versions", "machine_info", "cpu_model"]


def git_state(paths: tuple[str, ...] = (), root: Path = REPO) -> dict | None:
    """The commit checked out at `root` and the tracked files under `paths` (all when empty)
    that differ from it; None when `root` is not a git checkout (an installed wheel)."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], text=True,
                              capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno", "--",
                                *paths], text=True, capture_output=True, timeout=10,
                               check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    modified = [line[3:] for line in dirty.splitlines() if line.strip()]
    return {"commit": head, "dirty": bool(modified), "modified": modified}


@lru_cache(maxsize=1)
def versions() -> dict:
    """Package versions and the git commit (`<sha>-dirty` with uncommitted changes)."""
    out = {"python": platform.python_version()}
    for dist in ("torch", "triton", "lightning", "hydra-core", "glmix"):
        try:
            out[dist.replace("-core", "")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist.replace("-core", "")] = None
    git = git_state()
    out["git_commit"] = None if git is None else git["commit"] + ("-dirty" if git["dirty"] else "")
    return out


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def machine_info() -> dict:
    """The machine a benchmark or run measured on, with versions()."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = None
    info = {"platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "memory_bytes": mem, "gpu": None, **versions()}
    try:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info["gpu"] = {"name": p.name, "sms": p.multi_processor_count,
                           "capability": f"{p.major}.{p.minor}",
                           "memory_gib": round(p.total_memory / 2**30, 1)}
    except ImportError:
        pass
    return info
