"""Strategies for hostile config values and the bound every draw runs under.

THE BOUND of one draw (docs/design.md 4.1): it finishes within DRAW_SECONDS (a SIGALRM hang
guard, loose on purpose: a shared 2-core machine; the test modules warm their imports up
first, outside the guard, so that it never interrupts an import), under the memory guard
$GLMIX_MAX_BYTES = GUARD_BYTES, and the process's peak resident memory grows by at most
PEAK_GROWTH_BYTES. Either it works or it raises one ValueError whose message is one line.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal

from hypothesis import strategies as st

DRAW_SECONDS = 120
GUARD_BYTES = 64 * 2**20
PEAK_GROWTH_BYTES = 1 * 2**30

# integers a user might type, small ones first, then the edges of every integer type
EDGE_INTS = [0, 1, 2, 3, -1, -2, 7, 8, 63, 64, 65, 255, 256, 1023, 2**31 - 1, 2**31, 2**32,
             2**53 + 1, 2**62, 2**63 - 1, -(2**63), 10**12]
ints = st.one_of(st.integers(-2, 70), st.sampled_from(EDGE_INTS))
floats = st.one_of(st.floats(-2.0, 2.0), st.sampled_from([0.0, 1.0, -0.0, 1e-300, 1e300]),
                   st.floats(allow_nan=True, allow_infinity=True))
text = st.text(max_size=12)
scalars = st.one_of(ints, floats, st.booleans(), st.none(), text)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)), max_leaves=8)

# expressions in k: the grammar of mixers/patterns.py, explosive powers included
_atoms = st.one_of(st.just("k"), st.integers(0, 12).map(str), st.sampled_from(EDGE_INTS).map(str))
expressions = st.recursive(_atoms, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(["+", "-", "*", "**", "//", "%"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"),
    inner.map(lambda e: f"-{e}")), max_leaves=6)
recurrent_specs = st.one_of(
    st.sampled_from(["none", "first", "pow2", "sq1", "dense", "kth", "9**9**9", "9**9**(9*k)"]),
    ints.map(lambda n: f"kth({n})"), expressions, text)
direct_specs = st.one_of(st.sampled_from(["self", "full", "window", "window()"]),
                         ints.map(lambda w: f"window({w})"), text)


def typed(annotation: str, default):
    """Values for a dataclass field: mostly of its type (edges included), sometimes anything."""
    ann = str(annotation)
    if "bool" in ann:
        base = st.booleans()
    elif "int" in ann:
        base = ints
    elif "float" in ann:
        base = floats
    elif "str" in ann:
        base = st.one_of(st.just(default), text) if isinstance(default, str) else text
    else:
        base = st.just(default)
    if "None" in ann:
        base = st.one_of(base, st.none())
    return st.one_of(base, base, base, scalars)


def one_line(e: BaseException) -> str:
    message = str(e)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


@contextlib.contextmanager
def bounded():
    """Run one draw under THE BOUND above (restores the environment and the alarm after)."""
    def expire(signum, frame):
        raise TimeoutError(f"a draw ran past {DRAW_SECONDS} s: a hang")

    old_env = os.environ.get("GLMIX_MAX_BYTES")
    os.environ["GLMIX_MAX_BYTES"] = str(GUARD_BYTES)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, DRAW_SECONDS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_env is None:
            os.environ.pop("GLMIX_MAX_BYTES", None)
        else:
            os.environ["GLMIX_MAX_BYTES"] = old_env
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
    assert grown <= PEAK_GROWTH_BYTES, f"a draw grew the peak memory by {grown / 2**20:.0f} MiB"
