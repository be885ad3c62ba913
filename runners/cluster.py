"""Runs on a cluster: one process per run folder, the job's time limit, where its logs are.

Hooks of `runners.train.run` (docs/runners.md, "Running on a Slurm cluster"):

- `RunLock(out).acquire(finished)`: before training, a run takes an exclusive, non-blocking
  `flock` on `<run folder>/.lock`. If another process holds it (a second grid over the same
  results_dir running the same config), this run does not wait: it is `skipped`, with the
  holder (job id, host, pid, start time) as the reason, and writes nothing. The lock dies
  with its process (a cancelled or killed job leaves at most an unlocked `.lock` file, which
  the next run takes over); `release()` deletes it after the result is written.
- `time_limit()`: while a submitit job trains, the signal that submitit asks Slurm to send
  `hydra.launcher.signal_delay_s` seconds before the job's time limit (USR2) raises
  `TimeLimitReached`, so the run is recorded as `failed` with that reason and the job ends
  normally (the grid goes on). Should code where the signal lands swallow that exception,
  `check_time_limit()` raises it again at the next training, validation or test step; should
  it turn it into another one, `time_limit()` raises TimeLimitReached from that one. The
  same signal long before the limit is a preemption: left to
  submitit, which requeues the job.
- `job_info()`: the launcher, host, pid, job id and the job's stdout / stderr files, for the
  `job` field of result.json.
- `SlurmStates`: a Hydra callback of the submitting process. Where `sacct` does not answer (a
  cluster without an accounting database), submitit reads the jobs' states from `squeue`
  instead, one line says so, and its stream of `Bypassing sacct error` warnings goes away
  (without it, a cancelled job would leave the grid waiting forever).
- `LocalJobSessions`: a Hydra callback of the submitting process. With
  `hydra/launcher=submitit_local`, each job's controller starts in a session of its own, so a
  Ctrl-C in the terminal reaches only `glmix-train`, which stops the jobs quietly
  (`stop_local_jobs`) and prints its one line (runners.errors).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"


# ------------------------------------------------------------------------ the job
def _launcher() -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return str(HydraConfig.get().runtime.choices.get("hydra/launcher", "basic"))
    except Exception:  # noqa: BLE001 - a missing Hydra context is not an error here
        pass
    return "none"


def job_info() -> dict[str, Any]:
    """Where this run executes and where its output goes: `launcher`, `host`, `pid`,
    `job_id` (Slurm's, `<array>_<task>` for an array element; None outside a job) and the
    job's `stdout` / `stderr` files (None when the output is the terminal)."""
    info: dict[str, Any] = {"launcher": _launcher(), "host": socket.gethostname(),
                            "pid": os.getpid(), "job_id": None, "stdout": None, "stderr": None}
    if os.environ.get("SUBMITIT_EXECUTOR") and os.environ.get("SUBMITIT_FOLDER"):
        try:
            import submitit

            env = submitit.JobEnvironment()
            paths = env.paths
            info.update(job_id=str(env.job_id), stdout=str(Path(paths.stdout).absolute()),
                        stderr=str(Path(paths.stderr).absolute()))
        except Exception:  # noqa: BLE001 - an unknown submitit version: the ids still help
            pass
    if info["job_id"] is None and os.environ.get("SLURM_JOB_ID"):  # a plain sbatch job
        aid, tid = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        info["job_id"] = f"{aid}_{tid}" if aid and tid else os.environ["SLURM_JOB_ID"]
        info.update(_scontrol_paths(os.environ["SLURM_JOB_ID"]))
    return info


def _scontrol_paths(job_id: str) -> dict[str, str]:
    if shutil.which("scontrol") is None:
        return {}
    try:
        p = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                           text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return {}
    names = {"StdOut": "stdout", "StdErr": "stderr"}
    out = {}
    for field in p.stdout.split():
        key, _, value = field.partition("=")
        if key in names and value:
            out[names[key]] = value
    return out


# ------------------------------------------------------------------------ one process per run
def _holder(f, wait_s: float = 2.0) -> str:
    """Who holds the lock of the open lock file `f`. The owner writes its name just after taking
    the lock, so an empty file is read again for a moment before it counts as unnamed."""
    deadline = time.monotonic() + wait_s
    while True:
        f.seek(0)
        text = f.read().strip()
        if text or time.monotonic() >= deadline:
            return text or "another process"
        time.sleep(0.05)


class RunLock:
    """An exclusive, non-blocking lock on `<out>/.lock` (flock), held while a run trains."""

    def __init__(self, out: str | os.PathLike):
        self.path = Path(out) / LOCK_NAME
        self._file = None

    def acquire(self, finished: Callable[[], Any] | None = None) -> str | None:
        """Take the lock. Returns None when this process now owns the run; otherwise why not:
        `running in <holder>` (another process holds it) or the result that `finished()`
        found once the lock was taken (another process finished the run meanwhile)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    f.close()  # a file system without locks (Lustre without `flock`)
                    warnings.warn(f"no lock on {self.path} ({e}): two processes could "
                                  "train this run at once", RuntimeWarning, stacklevel=2)
                    done = finished() if finished is not None else None
                    return None if done is None else str(done)
                holder = _holder(f)
                f.close()
                return f"running in {holder}"
            try:  # the file we locked may have been deleted by its previous owner's release
                same = os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        self._file = f
        # name the holder at once, before anything slow (finished() searches the results
        # folder): a second process that finds the lock taken reads who holds it
        j = job_info()
        holder = (f"job {j['job_id']} " if j["job_id"] else "") + (
            f"on {j['host']} (pid {j['pid']}, {j['launcher']} launcher) since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.seek(0)
        f.truncate()
        f.write(holder + "\n")
        f.flush()
        done = finished() if finished is not None else None
        if done is not None:
            self.release()
            return str(done)
        return None

    def release(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        try:
            os.unlink(self.path)  # while still locked: a waiting opener sees a new inode
        except FileNotFoundError:
            pass
        f.close()

    def __del__(self) -> None:  # an exception that left run(): closing the file unlocks
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()


# ------------------------------------------------------------------------ time limit
class TimeLimitReached(RuntimeError):
    """The Slurm job of this run reached (the warning signal before) its time limit."""


# The message of the time-limit signal, once it came. The handler raises at once, but an
# exception raised from a signal handler lands wherever the main thread happens to be, and
# code that swallows exceptions there (logging's emit() prints and drops them) would let
# training go on until Slurm kills the job; `check_time_limit()` raises it again at the next
# training step (runners.lit.StopAtTimeLimit).
_time_limit_message: str | None = None


def check_time_limit() -> None:
    """Raise TimeLimitReached if the time-limit signal came while `time_limit()` was active."""
    if _time_limit_message is not None:
        raise TimeLimitReached(_time_limit_message)


@contextmanager
def time_limit() -> Iterator[None]:
    """While the body runs inside a submitit job: its time-limit signal raises
    TimeLimitReached (a preemption is passed on to submitit's own handler)."""
    if not os.environ.get("SUBMITIT_EXECUTOR") or (
            threading.current_thread() is not threading.main_thread()):
        yield
        return
    try:
        from submitit import JobEnvironment

        sig = JobEnvironment._usr_sig()
        previous = signal.getsignal(sig)
    except Exception:  # noqa: BLE001 - an unknown submitit version: leave its handling
        yield
        return
    global _time_limit_message
    _time_limit_message = None
    t0 = time.time()

    def handler(signum, frame):
        global _time_limit_message
        owner = getattr(previous, "__self__", None)  # submitit's SignalHandler
        if callable(previous) and owner is not None and hasattr(owner, "has_timed_out"):
            if not owner.has_timed_out():  # preempted: submitit checkpoints and requeues
                return previous(signum, frame)
        limit = getattr(getattr(owner, "_delayed", None), "_timeout_min", None)
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get(
            "SLURM_JOB_ID", "?")
        _time_limit_message = (
            f"time limit: Slurm job {job} got {signal.Signals(signum).name}, the warning "
            f"before its time limit" + (f" of {limit} min" if limit else "") +
            f", after {time.time() - t0:.0f} s of training; give it more time "
            "(hydra.launcher.timeout_min) or fewer steps, and run the grid again")
        raise TimeLimitReached(_time_limit_message)

    signal.signal(sig, handler)
    try:
        yield
    except TimeLimitReached:
        raise
    except Exception as e:
        # The signal's exception can land in code that wraps every exception in one of its
        # own (inspect.getfullargspec turns it into `TypeError: unsupported callable`): once
        # the signal came, the reason a run ended is the time limit, whatever it became.
        if _time_limit_message is not None:
            raise TimeLimitReached(_time_limit_message) from e
        raise
    finally:
        signal.signal(sig, previous)
        _time_limit_message = None  # a later run in this process starts without it


# ------------------------------------------------------------------------ sacct
def sacct_works() -> bool:
    """Whether `sacct` answers (False on a cluster without an accounting database)."""
    if shutil.which("sacct") is None:
        return False
    try:
        p = subprocess.run(["sacct", "--noheader", "-X", "-j", "1", "-o", "JobID"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return p.returncode == 0


def use_squeue_for_states() -> None:
    """Make submitit read job states with `squeue --states=all` instead of `sacct`.

    squeue knows a finished job for the controller's MinJobAge (300 s by default); a job it no
    longer knows and that left no result is reported as `PURGED`, so the grid ends (with
    submitit's UncompletedJobError for that job) instead of waiting forever."""
    from submitit.slurm import slurm

    if getattr(slurm.SlurmJob.watcher, "_glmix_squeue", False):
        return

    class SqueueInfoWatcher(slurm.SlurmInfoWatcher):
        _glmix_squeue = True

        def _make_command(self):
            cmd = super()._make_command()
            if cmd is None:
                return None
            ids = sorted({cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a == "-j"})
            self._asked = ids
            return ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N",
                    "--jobs=" + ",".join(ids)]

        def read_info(self, string):
            if not isinstance(string, str):
                string = string.decode()
            info = super().read_info("JobID|State|NodeList\n" + string)
            known = {k.split("_")[0] for k in info}
            for job_id in self._registered - self._finished:
                if job_id.split("_")[0] in getattr(self, "_asked", ()) and (
                        job_id.split("_")[0] not in known):
                    info[job_id] = {"JobID": job_id, "State": "PURGED", "NodeList": ""}
            return info

    slurm.SlurmJob.watcher = SqueueInfoWatcher(delay_s=60)


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - Hydra < 1.1
    Callback = object  # type: ignore[assignment,misc]


class LocalJobSessions(Callback):
    """Hydra callback (conf/config.yaml): submitit_local's job controllers in sessions of their
    own (without it, Ctrl-C reaches them too, and each prints a KeyboardInterrupt traceback)."""

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        launcher = str(config.hydra.runtime.choices.get("hydra/launcher", "basic"))
        if launcher == "submitit_local":
            own_sessions_for_local_jobs()


class _NewSessionPopen:
    """The `subprocess` module as submitit.local sees it, except that Popen starts a session
    (and is remembered, for stop_local_jobs)."""

    started: list = []

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # noqa: N802 - the name submitit calls
        process = subprocess.Popen(*args, **{"start_new_session": True, **kwargs})
        _NewSessionPopen.started.append(process)
        return process


def own_sessions_for_local_jobs() -> None:
    """submitit.local starts each job's controller with subprocess.Popen: in this process,
    from now on, in a session of its own (other users of subprocess are not affected)."""
    from submitit.local import local

    if not isinstance(local.subprocess, _NewSessionPopen):
        local.subprocess = _NewSessionPopen()


def stop_local_jobs() -> int:
    """Kill the submitit_local jobs this process started (each controller's process group: the
    controller and its job); returns how many were running. A run killed so leaves no result
    and its lock dies with it: the same command reruns it."""
    stopped = 0
    for process in _NewSessionPopen.started:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                stopped += 1
            except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                pass
    return stopped


class SlurmStates(Callback):
    """Hydra callback (conf/config.yaml): with `hydra/launcher=submitit_slurm` on a cluster
    where `sacct` does not answer, job states come from `squeue` (use_squeue_for_states)."""

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        launcher = str(config.hydra.runtime.choices.get("hydra/launcher", "basic"))
        if launcher != "submitit_slurm" or sacct_works():
            return
        try:
            use_squeue_for_states()
        except Exception as e:  # noqa: BLE001 - an unknown submitit: its own warnings stay
            print(f"glmix: sacct does not answer and squeue could not replace it ({e})",
                  flush=True)
            return
        print("glmix: sacct does not answer (no Slurm accounting database): job states come "
              "from squeue", flush=True)
