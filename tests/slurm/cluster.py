"""A one-node Slurm cluster on this machine, for the tests of tests/slurm/ (`make test-slurm`).

munged, slurmctld and slurmd run as root in the foreground, as children of this process, with
a configuration written under a temporary folder: their own ports, munge socket, state, spool
and logs, so nothing in /etc is touched and nothing outlives `stop()`. One partition `debug`
with the node's CPUs (at most 2), `select/cons_tres` with CPUs and memory as consumable
resources, no accounting database (`sacct` does not work; see runners/cluster.py), `KillWait=5`
(a cancelled or timed-out job is killed 5 s after its SIGTERM).

    python tests/slurm/cluster.py     # start one by hand; prints `export SLURM_CONF=...`;
                                      # Ctrl-C stops it

The client commands (sbatch, squeue, scancel, scontrol) find the cluster through the
SLURM_CONF environment variable (`Cluster.env`).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "debug"


def missing() -> str | None:
    """Why a cluster cannot start here (None: it can)."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "not a POSIX system"
    if os.geteuid() != 0:
        return "not root (slurmd and munged of the test cluster run as root)"
    absent = [d for d in (*DAEMONS, "sbatch", "squeue", "scancel", "scontrol")
              if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if absent:
        return f"not installed: {', '.join(absent)} (apt-get install slurm-wlm munge)"
    return None


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # preexec_fn: the daemon gets SIGTERM if this process dies
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Cluster:
    def __init__(self, root: str | os.PathLike | None = None, cpus: int | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="glmix-slurm-"))
        self.host = socket.gethostname().split(".")[0]
        self.cpus = cpus or min(2, os.cpu_count() or 1)
        self.mem_mb = 2048 * self.cpus
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    # ----------------------------------------------------------------- configuration
    def write_config(self) -> None:
        r = self.root
        for d in ("munge", "state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r, 0o755)
        os.chmod(r / "munge", 0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.conf.write_text(f"""\
# one-node test cluster of glmix (tests/slurm/cluster.py)
ClusterName=glmixtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")

    # ----------------------------------------------------------------- daemons
    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(
            [_which(name), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.root, preexec_fn=_die_with_parent)
        log.close()

    def start(self, timeout: float = 60) -> Cluster:
        reason = missing()
        if reason:
            raise RuntimeError(f"no Slurm test cluster: {reason}")
        atexit.register(self.stop)
        self.write_config()
        m = self.root / "munge"
        self._spawn("munged", ["-F", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={m / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
                               f"--seed-file={m / 'munged.seed'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}"])
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged")
        self._spawn("slurmctld", ["-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), timeout, "slurmctld")
        self._spawn("slurmd", ["-D", "-N", self.host, "-f", str(self.conf)])
        self._wait(lambda: self._ok(["sinfo", "-h", "-o", "%T"], "idle"), timeout, "slurmd")
        return self

    def _ok(self, cmd: list[str], word: str) -> bool:
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        return p.returncode == 0 and word in p.stdout

    def _wait(self, ready, timeout: float, name: str) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            for n, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{n} exited with {p.returncode}:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{name} not ready after {timeout:.0f} s:\n{self.logs()}")

    def logs(self, tail: int = 30) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path}\n" + "\n".join(lines))
        return "\n".join(out)

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """A client command (squeue, scancel, ...) against this cluster."""
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                              timeout=60, check=check)

    def jobs(self) -> list[dict]:
        """The cluster's jobs (pending, running, and finished ones it still remembers)."""
        p = self.run("squeue", "-h", "-t", "all", "-o", "%i|%T|%j|%r", check=False)
        rows = [line.split("|") for line in p.stdout.splitlines() if line.strip()]
        return [dict(zip(("id", "state", "name", "reason"), r)) for r in rows]

    def active(self) -> list[dict]:
        return [j for j in self.jobs()
                if j["state"] in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")]

    def stop(self) -> None:
        """Cancel the jobs, wait for them to end, stop the daemons (by their process ids)."""
        if not self.procs:
            return
        try:
            if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
                self.run("scancel", "--full", "-u", "root", check=False)
                t0 = time.time()
                while self.active() and time.time() - t0 < 30:
                    time.sleep(1)
                self._kill_job_processes()
        except (OSError, subprocess.SubprocessError):
            pass
        for name in reversed(DAEMONS):  # slurmd, slurmctld, munged
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(15)
        self.procs.clear()

    def _kill_job_processes(self) -> None:
        """Processes of jobs that outlived their cancellation (scontrol listpids): SIGKILL."""
        p = self.run("scontrol", "listpids", check=False)
        for line in p.stdout.splitlines()[1:]:
            pid = line.split()[0] if line.split() else ""
            if pid.isdigit() and int(pid) > 1:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass


def main() -> int:
    reason = missing()
    if reason:
        print(f"no Slurm test cluster: {reason}", file=sys.stderr)
        return 1
    c = Cluster()
    try:
        c.start()
        print(f"cluster up in {c.root}\n  export SLURM_CONF={c.conf}\n(Ctrl-C stops it)",
              flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(p.poll() is None for p in c.procs.values()):
            time.sleep(1)
        print("a daemon exited:\n" + c.logs(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
