"""The Slurm tests run only under `make test-slurm` (GLMIX_SLURM_TESTS=1), against a one-node
cluster that the session fixture `cluster` starts and stops (tests/slurm/cluster.py).

In the ordinary `make test` this folder collects nothing: CI runs `make test`, then
`make test-slurm`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = "GLMIX_SLURM_TESTS"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

if os.environ.get(ENV) != "1":
    collect_ignore_glob = ["test_*.py"]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(f"glmix_slurm_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# a task and a trainer small enough for seconds per run; threads=1 matches cpus_per_task=1
TINY = [
    "task.params.vocab_size=16", "task.params.seq_len=16", "task.params.num_kv_pairs=2",
    "task.num_train=64", "task.num_val=32", "task.num_test=32",
    "trainer.batch_size=16", "trainer.eval_batch_size=32", "trainer.warmup_steps=1",
    "trainer.threads=1", "trainer.target_acc=null", "trainer.val_every=100000",
]
SLURM = [
    "hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    m = _load("cluster", HERE / "cluster.py")
    reason = m.missing()
    if reason:
        pytest.skip(f"no Slurm test cluster: {reason}")
    c = m.Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.stop()  # also registered with atexit; the daemons die with this process (PDEATHSIG)


class Grid:
    """`python -m runners.train -m <SLURM> <TINY> <args>` submitted to the test cluster."""

    def __init__(self, cluster, results_dir, *args: str):
        self.cluster = cluster
        self.cmd = [sys.executable, "-m", "runners.train", "-m", *SLURM, *TINY, *args,
                    f"results_dir={results_dir}"]
        env = dict(cluster.env, HYDRA_FULL_ERROR="1", PYTHONPATH=str(REPO))
        env.pop("GLMIX_SWEEP_SIZE", None)
        self.log = Path(results_dir).with_name(Path(results_dir).name + f"-{time.time_ns()}.log")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout: float = 600) -> tuple[int, str]:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"grid still running after {timeout} s:\n{self.output()}\n"
                                 f"{self.cluster.jobs()}\n{self.cluster.logs()}") from None
        self._out.close()
        return rc, self.output()

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture
def grid(cluster):
    started: list[Grid] = []

    def submit(results_dir, *args: str) -> Grid:
        g = Grid(cluster, results_dir, *args)
        started.append(g)
        return g

    yield submit
    for g in started:  # whatever happened: no grid process outlives its test
        g.kill()


@pytest.fixture
def read_results():
    """The result files under a folder, each with its `_path` (tests/runners/conftest.py)."""
    return _load("runners_conftest", REPO / "tests" / "runners" / "conftest.py")._results
