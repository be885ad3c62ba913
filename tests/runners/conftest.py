"""Shared helpers of the runners tests: composing configs and running the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"

# a task and a trainer small enough for a few seconds per run
TINY = [
    "task.params.vocab_size=16", "task.params.seq_len=16", "task.params.num_kv_pairs=2",
    "task.num_train=64", "task.num_val=32", "task.num_test=32",
    "trainer.max_steps=3", "trainer.batch_size=16", "trainer.eval_batch_size=32",
    "trainer.val_every=2", "trainer.warmup_steps=1", "trainer.threads=1",
]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _compose(overrides=(), return_hydra_config=False):
    """The composed config of `glmix-train <overrides>` (Hydra's compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import runners.config  # noqa: F401  (registers the schema)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides),
                             return_hydra_config=return_hydra_config)


def _cli(*args, timeout=300):
    """`python -m runners.train *args` in the repository; returns the CompletedProcess."""
    env = dict(os.environ, HYDRA_FULL_ERROR="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "runners.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _results(root) -> list[dict]:
    out = []
    for path in sorted(Path(root).glob("**/result.json")):
        r = json.loads(path.read_text())
        r["_path"] = path
        out.append(r)
    return out


@pytest.fixture
def compose():
    return _compose


@pytest.fixture
def cli():
    return _cli


@pytest.fixture
def read_results():
    return _results


@pytest.fixture
def tiny():
    return list(TINY)
