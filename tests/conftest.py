"""Shared pytest setup."""

import contextlib
import os
import signal

import pytest
import torch

# Without a GPU, the Triton kernels (mixers/ops/triton_kernels.py) run in Triton's CPU
# interpreter. Triton reads TRITON_INTERPRET when a kernel is defined (at import of the kernel
# module), so it has to be set here, before any test module imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def hang_guard():
    """`with hang_guard(seconds):` fails the test with TimeoutError when the block runs longer
    (SIGALRM, main thread). A guard against hangs, not a speed assertion: the bound is loose."""
    return _hang_guard


@contextlib.contextmanager
def _hang_guard(seconds: float):
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
