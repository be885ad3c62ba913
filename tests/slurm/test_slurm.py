"""Grids through Hydra's submitit_slurm launcher on a real one-node Slurm cluster.

Run by `make test-slurm` (conftest.py starts the cluster; nothing here runs in `make test`).
Each test submits real grids with `python -m runners.train -m hydra/launcher=submitit_slurm`
and checks the result files they leave.
"""

from __future__ import annotations

import re
import time
from pathlib import Path


def _wait_for(what, timeout, grid=None, every=0.5):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = what()
        if value:
            return value
        if grid is not None and grid.proc.poll() is not None:
            raise AssertionError(f"the grid ended first:\n{grid.output()}")
        time.sleep(every)
    raise AssertionError(f"nothing after {timeout} s" + (f":\n{grid.output()}" if grid else ""))


def _state(cluster, job_id: str) -> str | None:
    return {j["id"]: j["state"] for j in cluster.jobs()}.get(job_id)


def _run_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"\[\d+/\d+\] ", line)]


def test_grid_writes_four_results_and_the_rerun_skips_them(grid, tmp_path, read_results):
    res = tmp_path / "results"
    args = ("mixer=attention,first_order", "seed=0,1", "trainer.max_steps=5",
            "hydra.launcher.timeout_min=10")
    rc, out = grid(res, *args).wait()
    assert rc == 0, out
    rs = read_results(res)
    assert len(rs) == 4 and {r["status"] for r in rs} == {"ok"}, out
    assert {(r["mixer"], r["seed"]) for r in rs} == {
        ("attention", 0), ("attention", 1), ("first_order", 0), ("first_order", 1)}
    assert all(r["steps"] == 5 for r in rs)
    # one job array, one element per run; the job's logs are named in its result
    jobs = [r["job"] for r in rs]
    assert {j["launcher"] for j in jobs} == {"submitit_slurm"}
    assert len({j["job_id"] for j in jobs}) == 4
    assert len({j["job_id"].split("_")[0] for j in jobs}) == 1
    for r in rs:
        stdout, stderr = Path(r["job"]["stdout"]), Path(r["job"]["stderr"])
        assert stdout.is_file() and stderr.is_file()
        line = f"{r['mixer']} lr=0.001 seed={r['seed']}: ok  test_acc="
        assert line in stdout.read_text()  # the job's own progress line
    lines = _run_lines(out)
    assert len(lines) == 4 and all(": ok  test_acc=" in line for line in lines), out
    # the sacct warnings are replaced by one line
    assert "Bypassing sacct" not in out and "sacct does not answer" in out, out
    before = {r["_path"]: r["_path"].read_bytes() for r in rs}

    rc, out = grid(res, *args).wait()
    assert rc == 0, out
    lines = _run_lines(out)
    assert len(lines) == 4 and all("skipped (finished: " in line for line in lines), out
    after = read_results(res)
    assert {r["_path"]: r["_path"].read_bytes() for r in after} == before  # never rewritten


def test_cancelled_job_leaves_no_result_and_the_rerun_finishes_it(cluster, grid, tmp_path,
                                                                    read_results):
    res = tmp_path / "results"
    # long enough that the cancel lands mid-run on an idle machine too (300 steps took 3 s there
    # and finished before a cancel sent 2 s after the lock appeared)
    args = ("mixer=first_order", "trainer.max_steps=3000", "trainer.target_acc=null",
            "hydra.launcher.timeout_min=20")
    g = grid(res, *args)
    _wait_for(lambda: list(res.glob("**/.lock")), 300, g)  # the job has claimed the run
    (job,) = [j for j in cluster.jobs() if j["state"] == "RUNNING"]
    cluster.run("scancel", job["id"])
    rc, out = g.wait(300)
    # the launcher ends, reporting the job that produced nothing
    assert rc != 0 and "CANCELLED" in out, out
    assert _state(cluster, job["id"]) == "CANCELLED"
    assert read_results(res) == []
    assert not list(res.glob("**/*.tmp")) and not list(res.glob("**/.result.*"))

    rc, out = grid(res, *args).wait(900)
    assert rc == 0, out
    (r,) = read_results(res)
    assert r["status"] == "ok" and r["steps"] == 3000, out
    assert not list(res.glob("**/.lock"))  # released after the result was written


def test_time_limit_is_a_failed_result_with_the_reason_and_the_grid_goes_on(cluster, grid,
                                                                              tmp_path,
                                                                              read_results):
    res = tmp_path / "results"
    # the second run cannot finish in 2 minutes. submitit asks Slurm for USR2 30 s before the
    # limit, which Slurm sends 30 to 60 s before it (it looks every 30 s): 60 to 90 s after the
    # start, time enough for a slow start on a busy machine
    rc, out = grid(res, "mixer=first_order", "trainer.max_steps=5,10000000",
                   "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=30").wait(480)
    assert rc == 0, out  # both jobs ended normally: the grid went on
    rs = {r["config"]["trainer"]["max_steps"]: r for r in read_results(res)}
    assert set(rs) == {5, 10000000}, out
    assert rs[5]["status"] == "ok" and rs[5]["steps"] == 5
    late = rs[10000000]
    assert late["status"] == "failed", late["error"]
    assert "TimeLimitReached: time limit: Slurm job" in late["error"]
    assert "of 2 min" in late["error"] and late["job"]["job_id"] in late["error"]
    assert Path(late["job"]["stdout"]).is_file()
    # the job itself ends normally (its result reached the launcher a moment before)
    job_id = late["job"]["job_id"]
    _wait_for(lambda: _state(cluster, job_id) not in ("RUNNING", "COMPLETING"), 60)
    assert _state(cluster, job_id) == "COMPLETED"
    assert any("FAILED (runners.cluster.TimeLimitReached: time limit" in line
               for line in _run_lines(out)), out


def test_two_grids_over_one_results_dir_train_each_run_once(grid, tmp_path, read_results):
    res = tmp_path / "results"
    # long enough (no early stop) that the second job starts while the first still trains, on an
    # idle machine too
    args = ("mixer=first_order", "trainer.max_steps=3000", "trainer.target_acc=null",
            "hydra.launcher.timeout_min=20")
    a, b = grid(res, *args), grid(res, *args)  # submitted at once, same config
    (ra, oa), (rb, ob) = a.wait(900), b.wait(900)
    assert ra == 0 and rb == 0, oa + ob
    (r,) = read_results(res)  # one file, complete
    assert r["status"] == "ok" and r["steps"] == 3000
    lines = _run_lines(oa) + _run_lines(ob)
    assert len(lines) == 2, oa + ob
    trained = [line for line in lines if ": ok  test_acc=" in line]
    skipped = [line for line in lines if ": skipped (running in job " in line]
    assert len(trained) == 1 and len(skipped) == 1, lines
    # the second run named the job that trained: the one whose logs the result points to
    assert f"running in job {r['job']['job_id']} on " in skipped[0], (skipped, r["job"])
    assert not list(res.glob("**/.lock")) and not list(res.glob("**/*.tmp"))
