"""The sampling helpers of tasks/base.py: exact laws, every method, and linear time."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tasks import make_task
from tasks.base import sample_distinct, sample_excluding


@pytest.mark.parametrize(
    ("k", "n"),
    [(5, 40), (8, 20), (20, 24), (80, 200), (70, 100), (100, 100)],  # one per method and edge
)
def test_sample_distinct_is_uniform_over_ordered_subsets(k, n):
    rows = 20000
    x = sample_distinct(np.random.default_rng(k * n), rows, k, 3, 3 + n) - 3
    srt = np.sort(x, axis=1)
    assert (srt[:, 1:] != srt[:, :-1]).all() and x.min() >= 0 and x.max() < n
    for col in (0, k - 1):  # each position uniform over the n values
        counts = np.bincount(x[:, col], minlength=n)
        chi2 = ((counts - rows / n) ** 2 / (rows / n)).sum()
        assert chi2 < (n - 1) + 6 * np.sqrt(2 * (n - 1)), (col, chi2)
    # positions are exchangeable: the first entry is below the last half the time
    p = (x[:, 0] < x[:, -1]).mean()
    assert abs(p - 0.5) < 5 * np.sqrt(0.25 / rows)


@pytest.mark.parametrize("k", [3, 40])  # the per-column loop and the searchsorted path
def test_sample_excluding_matches_a_plain_reference(k):
    rng = np.random.default_rng(k)
    excluded = sample_distinct(rng, 300, k, 0, 100)
    got = sample_excluding(np.random.default_rng(1), excluded, 50, 100)
    r = np.random.default_rng(1).integers(0, 100 - k, size=(300, 50), dtype=np.int64)
    for row in range(300):
        allowed = np.setdiff1d(np.arange(100), excluded[row])
        assert (got[row] == allowed[r[row]]).all()


@pytest.mark.slow
def test_mqar_time_is_linear_in_num_kv_pairs():
    def per_token(k):
        task = make_task("mqar", vocab_size=2**20, seq_len=4 * k, num_kv_pairs=k)
        rows = 2**19 // (4 * k)
        task.generate(rows, 1)
        t0 = time.process_time()
        task.generate(rows, 0)
        return (time.process_time() - t0) / (rows * 4 * k)

    small, large = per_token(128), per_token(4096)
    assert large < 4 * small, (small, large)  # quadratic time would be about 32 times
