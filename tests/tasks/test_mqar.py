"""MQAR specifics: Zoology's power-law query gaps, the filler, the vocabulary split."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import make_task


def query_gaps(data, k: int) -> np.ndarray:
    """[N, k]: gap g (query at 2k + 2g) of each key, in key order, read from the inputs."""
    inputs = data.inputs.numpy()
    keys = inputs[:, 0 : 2 * k : 2]
    region = inputs[:, 2 * k :]
    gaps = np.empty(keys.shape, dtype=np.int64)
    for j in range(k):
        hit = region == keys[:, j : j + 1]
        assert (hit.sum(axis=1) == 1).all()
        gaps[:, j] = hit.argmax(axis=1)
    assert (gaps % 2 == 0).all()
    return gaps // 2


def zoology_p(power_a: float, slots: int) -> np.ndarray:
    x = np.arange(1, slots + 1, dtype=np.float64)
    p = power_a * x ** (power_a - 1)
    return p / p.sum()


@pytest.mark.parametrize("power_a", [0.01, 0.3])
def test_first_query_gap_follows_the_power_law(power_a):
    # The first key's gap is the first draw: exactly distributed as p.
    k, n = 16, 20000
    task = make_task("mqar", power_a=power_a, num_kv_pairs=k)
    slots = (task.seq_len - 2 * k) // 2
    gaps = query_gaps(task.generate(n, 0), k)
    expected = n * zoology_p(power_a, slots)
    observed = np.bincount(gaps[:, 0], minlength=slots)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    dof = slots - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof), chi2


def test_power_law_shortens_gaps():
    k = 16
    near = query_gaps(make_task("mqar", power_a=0.01).generate(2000, 0), k)
    flat = query_gaps(make_task("mqar", power_a=1.0).generate(2000, 0), k)
    assert near.mean() < 0.8 * flat.mean()


def test_uniform_power_uses_every_slot_equally():
    k, n = 8, 20000
    task = make_task("mqar", power_a=1.0, num_kv_pairs=k, seq_len=80, vocab_size=512)
    slots = (80 - 2 * k) // 2
    used = np.bincount(query_gaps(task.generate(n, 1), k).ravel(), minlength=slots)
    p = k / slots  # marginal probability that a slot holds a query
    sigma = np.sqrt(n * p * (1 - p))
    assert np.abs(used - n * p).max() < 5 * sigma


def test_filler_is_uniform_over_non_keys():
    task = make_task("mqar", vocab_size=64, seq_len=256, num_kv_pairs=4)
    data = task.generate(4000, 2)
    inputs = data.inputs.numpy()
    keys = inputs[:, 0:8:2]
    filler = inputs[:, 8:][data.targets.numpy()[:, 8:] == -100]
    counts = np.bincount(filler, minlength=64)
    # Keys are never filler of their own sequence (the queries are the only key tokens).
    for row, ks in zip(inputs, keys):
        region = row[8:]
        assert sum(int((region == x).sum()) for x in ks) == 4
    # Every token, keys of other sequences included, shows up as filler, about uniformly:
    # token t is excluded with probability P(t is a key) = 4 / 31 for t in [1, 32).
    expected = np.full(64, 1.0)
    expected[1:32] = 1 - 4 / 31
    expected *= counts.sum() / expected.sum()
    assert (counts > 0).all()
    assert np.abs(counts / expected - 1).max() < 0.05


def test_zero_filler_when_not_random():
    data = make_task("mqar", random_non_queries=False).generate(200, 0)
    region_inputs = data.inputs[:, 32:]
    region_targets = data.targets[:, 32:]
    assert (region_inputs[region_targets == -100] == 0).all()


def test_info_bits_formula():
    task = make_task("mqar")
    expected = sum(np.log2(4096 - i) for i in range(16))
    assert task.info_bits == pytest.approx(expected)
