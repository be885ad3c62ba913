"""Ctrl-C on a grid, for every launcher: one line, no traceback, and the same command resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import REPO

LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"],
}


def _progress_lines(root) -> int:
    return sum(len(p.read_text().splitlines()) for p in root.glob("_hydra/multirun/*/progress.txt"))


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_ctrl_c_prints_one_line_and_the_grid_resumes(launcher, tiny, tmp_path, read_results):
    # two runs: a 3-step one that finishes, a long one that is running when Ctrl-C comes
    args = ["-m", *LAUNCHERS[launcher], *tiny, "trainer.max_steps=3,100000",
            "trainer.target_acc=null", "trainer.val_every=100000", f"results_dir={tmp_path}"]
    env = dict(os.environ, HYDRA_FULL_ERROR="1", PYTHONPATH=str(REPO))
    # a session of its own: Ctrl-C in a terminal signals the whole foreground process group
    p = subprocess.Popen([sys.executable, "-m", "runners.train", *args], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.time() + 240
    while _progress_lines(tmp_path) < 1 and time.time() < deadline and p.poll() is None:
        time.sleep(0.5)
    assert p.poll() is None, p.communicate()
    time.sleep(2)  # the long run is training now
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["glmix-train: interrupted: 1 of 2 runs finished; rerun the same command "
                     "to resume"], err[-3000:]
    (done,) = read_results(tmp_path)  # the interrupted run left no result: a rerun trains it
    assert done["status"] == "ok" and done["steps"] == 3
