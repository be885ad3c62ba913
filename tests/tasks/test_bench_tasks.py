"""bench/tasks.py (`make bench`'s task part) runs and covers every registered task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.tasks import VARIANTS
from tasks import TASKS

REPO = Path(__file__).resolve().parents[2]


def test_bench_tasks_covers_the_registry(tmp_path):
    out = tmp_path / "tasks.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(
        [sys.executable, "-m", "bench.tasks", "--num-examples", "20", "--repeats", "1",
         "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=300,
    )
    report = json.loads(out.read_text())
    assert {row["task"] for row in report["results"]} == set(TASKS)
    labels = [row["label"] for row in report["results"]]
    assert set(VARIANTS) <= set(labels) and len(labels) == len(TASKS) + len(VARIANTS)
    levels = {row["label"]: row["level"] for row in report["results"]}
    assert levels["bucket_sort"] == "cs" and levels["state_tracking[A5]"] == "regular"
    assert levels["mqar"] is None
    assert all(row["examples_per_s"] > 0 for row in report["results"])
