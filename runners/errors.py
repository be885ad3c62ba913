"""What a user sees when a command stops early: one line, never a traceback of their own doing.

    one_line_errors()   the `glmix-train` wrapper: a config error is one line and exit 2; Ctrl-C
                        is `interrupted: N of M runs finished; rerun the same command to resume`
                        and exit 130 (whatever the launcher: basic, joblib, submitit)
    describe_config_error(e)   the one line for an error in the user's config or command line
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from runners import cluster, progress
from runners.config import ConfigError

PROG = "glmix-train"


def usage_error(message: str):
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Run the Hydra app inside: config errors and Ctrl-C become one line and an exit code;
    other errors keep their traceback."""
    # Hydra then raises errors instead of printing them with a trimmed traceback; the ones a
    # user makes in a config are printed below in one line, the others keep their traceback
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    _INTERRUPTED.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    except KeyboardInterrupt:
        interrupted()
    except SystemExit:
        if _INTERRUPTED:  # Lightning turns Ctrl-C into a graceful shutdown and exit code 1
            interrupted()
        raise
    except Exception as e:
        if _was_interrupted(e):
            interrupted()
        message = describe_config_error(e)
        if message is None:
            raise
        usage_error(message)
    finally:
        signal.signal(signal.SIGINT, previous)


_INTERRUPTED: list[bool] = []


def _on_sigint(signum, frame):
    """Python's own Ctrl-C (KeyboardInterrupt), remembered: a launcher may turn it into an
    error of its own (a joblib worker lost, a submitit job killed) on the way out."""
    _INTERRUPTED.append(True)
    raise KeyboardInterrupt


def interrupted():
    """Print the one line of a Ctrl-C and exit with 130 (128 + SIGINT, the shell's code)."""
    cluster.stop_local_jobs()  # submitit_local's jobs run in sessions of their own
    done, total = progress.finished_runs()
    if total is None:
        line = "interrupted; rerun the same command to resume (finished runs are skipped)"
    else:
        line = (f"interrupted: {done} of {total if total else '?'} runs finished; rerun the "
                f"same command to resume")
    print(f"\n{PROG}: {line}", file=sys.stderr, flush=True)
    sys.exit(130)


def _was_interrupted(e: BaseException) -> bool:
    """Whether an exception is a Ctrl-C seen through a launcher: this process got SIGINT, or a
    worker's KeyboardInterrupt came back inside the launcher's error."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, KeyboardInterrupt):
            return True
        e = e.__cause__ or e.__context__
    return bool(_INTERRUPTED)


def describe_config_error(e: BaseException) -> str | None:
    """One line for an error in the user's config or command line (naming the field and the
    constraint, with a close match for a misspelled key or config name); None for others."""
    import difflib

    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if isinstance(e, ConfigError):
        return str(e)
    if isinstance(e, MissingConfigException):
        options = list(getattr(e, "options", None) or [])
        m = re.search(r"Could not find '([^']+)'", str(e))
        what = m.group(1) if m else str(e).splitlines()[0]
        group, _, name = what.rpartition("/")
        close = difflib.get_close_matches(name, options, n=1)
        hint = f"; did you mean {group}={close[0]}?" if close and group else ""
        known = f" (available: {', '.join(sorted(options))})" if options else ""
        return f"{group or 'config'}: no config named {name!r}{hint}{known}"
    if isinstance(e, OverrideParseException):
        return str(e).strip().splitlines()[0]
    cause = e.__cause__ if isinstance(e, ConfigCompositionException) else e
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None) or ""
        msg = str(getattr(cause, "msg", None) or cause).strip().splitlines()[0]
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and "not in" in msg:
            node = getattr(cause, "object_type", None)
            known = ([f.name for f in dataclasses.fields(node)]
                     if node is not None and dataclasses.is_dataclass(node) else [])
            leaf = key.rpartition(".")[2]
            close = difflib.get_close_matches(leaf, known, n=1)
            parent = key.rpartition(".")[0]
            if close:
                return (f"{key}: no such key; did you mean "
                        f"{(parent + '.') if parent else ''}{close[0]}?")
            return f"{key}: no such key" + (f" (keys: {', '.join(known)})" if known else "")
        return f"{key}: {msg}" if key else msg
    if isinstance(e, ConfigCompositionException):
        return str(e).strip().splitlines()[0]
    if isinstance(e, (PermissionError, NotADirectoryError, FileExistsError)) and e.filename:
        # Hydra makes <results_dir>/_hydra/... before any run: name the file in the way
        blocking = _file_in_the_way(e.filename)
        if blocking is not None:
            return f"results_dir: {blocking} exists and is not a folder"
        return f"results_dir: cannot create {e.filename} ({e.strerror})"
    return None


def _file_in_the_way(path) -> str | None:
    """The nearest of `path` and its parents that exists and is not a folder, if any."""
    from pathlib import Path

    for p in (Path(path), *Path(path).parents):
        if p.exists():
            return None if p.is_dir() else str(p)
    return None
