"""Generation is vectorized: 100k MQAR examples of length 256 with 16 pairs in under 3 s of CPU
time on one thread (CPU time, so that other processes on a shared machine do not count)."""

from __future__ import annotations

import time

import pytest
import torch

from tasks import make_task


@pytest.mark.slow
def test_mqar_100k_under_3s():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = make_task("mqar", seq_len=256, num_kv_pairs=16)
        task.generate(1000, 0)  # warm up imports and allocator
        t0 = time.process_time()
        data = task.generate(100_000, 0)
        elapsed = time.process_time() - t0
    finally:
        torch.set_num_threads(threads)
    assert data.inputs.shape == (100_000, 256)
    assert elapsed < 3.0, f"{elapsed:.2f} s"
