"""runners.cluster without a cluster: the per-run lock, the time-limit signal, squeue for sacct.

The same behaviour on a real Slurm cluster: tests/slurm/ (`make test-slurm`).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from runners import cluster
from runners.train import run

REPO = Path(__file__).resolve().parents[2]


def test_lock_one_holder_then_the_next(tmp_path):
    a, b = cluster.RunLock(tmp_path / "run"), cluster.RunLock(tmp_path / "run")
    assert a.acquire() is None
    held = b.acquire()
    assert held.startswith("running in ") and f"pid {os.getpid()}" in held
    a.release()
    assert not (tmp_path / "run" / ".lock").exists()
    assert b.acquire() is None
    b.release()


def test_lock_rechecks_for_a_result_once_taken(tmp_path):
    lock = cluster.RunLock(tmp_path / "run")
    assert lock.acquire(lambda: "elsewhere/result.json") == "elsewhere/result.json"
    assert not (tmp_path / "run" / ".lock").exists()  # released again
    assert cluster.RunLock(tmp_path / "run").acquire() is None


def test_no_locks_on_this_file_system_warns_and_runs(tmp_path, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(cluster.fcntl, "flock", no_flock)
    with pytest.warns(RuntimeWarning, match="no lock on"):
        assert cluster.RunLock(tmp_path / "run").acquire() is None


def test_lock_of_a_killed_process_is_free(tmp_path):
    code = ("import os, signal, sys; from runners.cluster import RunLock; "
            "assert RunLock(sys.argv[1]).acquire() is None; os.kill(os.getpid(), signal.SIGKILL)")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert p.returncode == -signal.SIGKILL
    assert (tmp_path / "run" / ".lock").exists()  # left behind, but nobody holds it
    lock = cluster.RunLock(tmp_path / "run")
    assert lock.acquire() is None
    lock.release()


def test_run_skips_a_config_that_another_process_is_running(compose, tiny, tmp_path,
                                                            read_results):
    cfg = compose([*tiny, f"results_dir={tmp_path}", "debug.fail=true"])
    first = run(cfg)  # fails at once; gives the run's folder
    folder = Path(first["result_path"]).parent
    before = (folder / "result.json").read_bytes()
    other = cluster.RunLock(folder)
    assert other.acquire() is None
    try:
        again = run(cfg)
    finally:
        other.release()
    assert again["status"] == "skipped" and again["skipped_because"].startswith("running in ")
    assert (folder / "result.json").read_bytes() == before  # untouched
    (r,) = read_results(tmp_path)
    assert r["job"]["launcher"] == "none" and r["job"]["job_id"] is None
    assert r["job"]["pid"] == os.getpid()


class _FakeSubmititHandler:  # what submitit installs for USR2: SignalHandler(...).checkpoint...
    def __init__(self, timed_out: bool):
        self.timed_out, self.calls = timed_out, 0
        self._delayed = type("D", (), {"_timeout_min": 2})()

    def has_timed_out(self) -> bool:
        return self.timed_out

    def checkpoint_and_try_requeue(self, signum, frame=None):
        self.calls += 1


@contextmanager
def _in_slurm_job_42(monkeypatch, timed_out: bool = True):
    """Inside Slurm job 42 of submitit, with its USR2 handler installed (restored after)."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    fake = _FakeSubmititHandler(timed_out)
    original = signal.signal(signal.SIGUSR2, fake.checkpoint_and_try_requeue)
    try:
        yield fake
    finally:
        signal.signal(signal.SIGUSR2, original)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers live in the main thread")
@pytest.mark.parametrize("timed_out", [True, False])
def test_time_limit_signal(monkeypatch, timed_out):
    sig = signal.SIGUSR2
    with _in_slurm_job_42(monkeypatch, timed_out) as fake:
        if timed_out:
            with pytest.raises(cluster.TimeLimitReached, match="Slurm job 42 got SIGUSR2") as e:
                with cluster.time_limit():
                    os.kill(os.getpid(), sig)
                    time.sleep(5)
            assert "of 2 min" in str(e.value) and fake.calls == 0
        else:  # a preemption: submitit's handler does its job
            with cluster.time_limit():
                os.kill(os.getpid(), sig)
                time.sleep(0.2)
            assert fake.calls == 1
        assert signal.getsignal(sig) == fake.checkpoint_and_try_requeue  # restored


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers live in the main thread")
def test_time_limit_swallowed_where_it_landed_is_raised_at_the_next_check(monkeypatch):
    # the signal can land inside code that drops exceptions (logging's emit() does): the next
    # check raises it again, and the next run starts without it
    with _in_slurm_job_42(monkeypatch):
        with cluster.time_limit():
            cluster.check_time_limit()  # no signal yet: nothing raised
            swallowed = False
            try:
                os.kill(os.getpid(), signal.SIGUSR2)
                time.sleep(5)
            except Exception:  # noqa: BLE001 - what logging.Handler.emit does
                swallowed = True
            assert swallowed
            with pytest.raises(cluster.TimeLimitReached, match="Slurm job 42 got SIGUSR2"):
                cluster.check_time_limit()
        with cluster.time_limit():  # the next run of this worker
            cluster.check_time_limit()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers live in the main thread")
def test_time_limit_turned_into_another_exception_is_still_the_time_limit(monkeypatch):
    # the signal can land inside code that wraps any exception in its own:
    # inspect.getfullargspec re-raises it as `TypeError: unsupported callable`. The run's
    # reason (the last line of its traceback) must still be the time limit; an error
    # without the signal passes through as it is
    import inspect

    class SignalledWhileInspected:  # its signature is looked up while the signal lands
        @property
        def __signature__(self):
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(5)

        def __call__(self):
            pass

    with _in_slurm_job_42(monkeypatch):
        with pytest.raises(cluster.TimeLimitReached, match="Slurm job 42 got SIGUSR2") as e:
            with cluster.time_limit():
                inspect.getfullargspec(SignalledWhileInspected())
        assert isinstance(e.value.__cause__, TypeError)
        assert "unsupported callable" in str(e.value.__cause__)
        with pytest.raises(ValueError, match="not the time limit"):
            with cluster.time_limit():
                raise ValueError("not the time limit")


def test_stop_at_time_limit_callback_raises_at_each_kind_of_step(monkeypatch):
    from runners.lit import StopAtTimeLimit

    cb = StopAtTimeLimit()
    monkeypatch.setattr(cluster, "_time_limit_message", None)
    cb.on_train_batch_start(None, None, None, 0)
    monkeypatch.setattr(cluster, "_time_limit_message", "time limit: Slurm job 7 got SIGUSR2")
    for hook in (cb.on_train_batch_start, cb.on_validation_batch_start, cb.on_test_batch_start):
        with pytest.raises(cluster.TimeLimitReached, match="Slurm job 7"):
            hook(None, None, None, 0)


def test_squeue_replaces_sacct(monkeypatch):
    from submitit.slurm import slurm

    monkeypatch.setattr(slurm.SlurmJob, "watcher", slurm.SlurmJob.watcher)
    cluster.use_squeue_for_states()
    w = slurm.SlurmJob.watcher
    assert w is not None and getattr(w, "_glmix_squeue", False)
    for job in ("7_0", "7_1", "7_2", "9_0"):
        w.register_job(job)
    cmd = w._make_command()
    assert cmd[0] == "squeue" and cmd[-1] == "--jobs=7,9"
    info = w.read_info("7_0|COMPLETED|vm\n7_1|CANCELLED|vm\n7_[2]|PENDING|\n")
    assert info["7_0"]["State"] == "COMPLETED" and info["7_1"]["State"] == "CANCELLED"
    assert info["7_2"]["State"] == "PENDING"
    assert info["9_0"]["State"] == "PURGED"  # squeue forgot it: done, not waited for forever
    w._info_dict.update(info)
    assert w.is_done("7_1", mode="cache") and w.is_done("9_0", mode="cache")
    assert not w.is_done("7_2", mode="cache")
