"""Bad configurations raise ValueError naming the field; nothing is clamped."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import make_task
from tasks.base import MAX_BYTES

CASES = [
    # (task, params, the field the message must name)
    ("mqar", {"seq_len": 64, "num_kv_pairs": 17}, "num_kv_pairs"),
    ("mqar", {"seq_len": 256, "num_kv_pairs": 65}, "num_kv_pairs"),
    ("mqar", {"vocab_size": 32, "num_kv_pairs": 16}, "vocab_size"),
    ("mqar", {"vocab_size": 33, "num_kv_pairs": 16, "seq_len": 64}, "vocab_size"),
    ("mqar", {"num_kv_pairs": -1}, "num_kv_pairs"),
    ("mqar", {"num_kv_pairs": 0}, "num_kv_pairs"),
    ("mqar", {"seq_len": -5}, "seq_len"),
    ("mqar", {"vocab_size": -1}, "vocab_size"),
    ("mqar", {"vocab_size": 8192.0}, "vocab_size"),
    ("mqar", {"power_a": 0}, "power_a"),
    ("mqar", {"power_a": -0.5}, "power_a"),
    ("mqar", {"power_a": float("nan")}, "power_a"),
    ("mqar", {"random_non_queries": "yes"}, "random_non_queries"),
    ("copy", {"vocab_size": 2}, "vocab_size"),
    ("copy", {"copy_len": 0}, "copy_len"),
    ("copy", {"copy_len": -4}, "copy_len"),
    ("copy", {"copy_len": 10, "seq_len": 21}, "seq_len"),
    ("selective_copy", {"num_tokens": 20, "prefix_len": 10}, "num_tokens"),
    ("selective_copy", {"vocab_size": 3}, "vocab_size"),
    ("selective_copy", {"prefix_len": -1}, "prefix_len"),
    ("selective_copy", {"num_tokens": 0}, "num_tokens"),
    ("selective_copy", {"seq_len": 100}, "seq_len"),
    ("multihop", {"hops": 4, "chain_len": 4}, "hops"),
    ("multihop", {"hops": 0}, "hops"),
    ("multihop", {"chain_len": 1, "hops": 1}, "chain_len"),
    ("multihop", {"num_chains": 0}, "num_chains"),
    ("multihop", {"num_queries": -2}, "num_queries"),
    ("multihop", {"vocab_size": 67, "num_chains": 16, "chain_len": 4, "hops": 3}, "vocab_size"),
    ("multihop", {"seq_len": 100}, "seq_len"),
    ("flipflop", {"seq_len": 255}, "seq_len"),
    ("flipflop", {"seq_len": 2}, "seq_len"),
    ("flipflop", {"p_write": 0.0}, "p_write"),
    ("flipflop", {"p_write": 1.5}, "p_write"),
    ("flipflop", {"p_read": -0.1}, "p_read"),
    ("flipflop", {"p_write": 0.6, "p_read": 0.5}, "p_write"),
    ("flipflop", {"p_write": 0.6, "p_read": 0.5}, "p_read"),
    ("state_tracking", {"group": "dihedral"}, "group"),
    ("state_tracking", {"score": "first"}, "score"),
    ("state_tracking", {"group": "permutation", "degree": 4}, "degree"),
    ("state_tracking", {"group": "cyclic", "order": 1}, "order"),
    ("state_tracking", {"group": "parity", "order": 3}, "order"),
    ("state_tracking", {"group": "permutation", "order": 3}, "order"),
    ("state_tracking", {"group": "cyclic", "degree": 3}, "degree"),
    ("state_tracking", {"seq_len": 0}, "seq_len"),
    # guards: sizes beyond MAX_SIZE, power_a beyond float64, options that do not apply
    ("mqar", {"vocab_size": 2**70}, "vocab_size"),
    ("copy", {"vocab_size": 2**31}, "vocab_size"),
    ("multihop", {"num_queries": 2**40}, "num_queries"),
    ("mqar", {"power_a": 151}, "power_a"),
    ("mqar", {"power_a": 1e6}, "power_a"),
    ("mqar", {"power_a": 1e-310}, "power_a"),
    ("mqar", {"random_non_queries": False, "keys_in_filler": True}, "keys_in_filler"),
    ("mqar", {"keys_in_filler": 1}, "keys_in_filler"),
    ("selective_copy", {"layout": "zoology"}, "layout"),
    ("selective_copy", {"layout": "mad", "seq_len": 256}, "seq_len"),
    ("noisy_recall", {"frac_noise": 1.0}, "frac_noise"),
    ("noisy_recall", {"frac_noise": -0.1}, "frac_noise"),
    ("noisy_recall", {"noise_vocab_size": 0}, "noise_vocab_size"),
    ("noisy_recall", {"seq_len": 127}, "seq_len"),
    ("noisy_recall", {"seq_len": 2}, "seq_len"),
    ("noisy_recall", {"vocab_size": 17}, "vocab_size"),
    ("fuzzy_recall", {"seq_len": 128}, "seq_len"),
    ("fuzzy_recall", {"key_len": 0}, "key_len"),
    ("fuzzy_recall", {"value_len": 9}, "vocab_size"),
    ("fuzzy_recall", {"vocab_size": 2**20, "key_len": 9, "seq_len": 120}, "key_len"),
    ("memorization", {"seq_len": 33}, "seq_len"),
    ("memorization", {"vocab_size": 2}, "vocab_size"),
    ("memorization", {"map_seed": -1}, "map_seed"),
]


@pytest.mark.parametrize(("name", "params", "field"), CASES)
def test_bad_config_names_the_field(name, params, field):
    with pytest.raises(ValueError, match=field):
        make_task(name, **params)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mqar", {"seq_len": 64, "num_kv_pairs": 16}),  # exactly fills the query slots
        ("mqar", {"vocab_size": 34, "num_kv_pairs": 16, "seq_len": 64}),  # smallest vocabulary
        ("multihop", {"vocab_size": 68, "num_chains": 16, "chain_len": 4, "hops": 3}),
        ("multihop", {"hops": 3, "chain_len": 4}),
        ("selective_copy", {"num_tokens": 10, "prefix_len": 10}),
        ("flipflop", {"p_write": 0.5, "p_read": 0.5}),
        ("mqar", {"power_a": 146.0}),  # just below the float64 bound at seq_len 256
        ("noisy_recall", {"vocab_size": 18, "seq_len": 4}),
        ("fuzzy_recall", {"value_len": 8, "seq_len": 22}),  # 8 value tokens: all of them
        ("memorization", {"vocab_size": 3, "seq_len": 2}),
    ],
)
def test_boundary_configs_are_accepted_unchanged(name, params):
    task = make_task(name, **params)
    for k, v in params.items():
        assert getattr(task, k) == v  # not clamped
    task.generate(16, 0)


def test_power_a_at_the_bound_gives_a_proper_law():
    task = make_task("mqar", power_a=146.0)
    p = task.gap_probabilities()
    assert np.isfinite(p).all() and (p > 0).all() and p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "params", "num_examples"),
    [
        ("mqar", {"seq_len": 10**9}, 1),
        ("copy", {"copy_len": 10**9}, 1),
        ("mqar", {}, 10**7),
        ("noisy_recall", {}, 10**8),
    ],
)
def test_memory_guard_refuses_before_allocating(name, params, num_examples, hang_guard):
    task = make_task(name, **params)
    # refused from the estimate: allocating these sizes would take minutes or fail (the guard
    # bounds hangs, it does not time the refusal)
    with hang_guard(30), pytest.raises(ValueError,
                                       match=r"num_examples=\d+ x seq_len=\d+.*max_bytes"):
        task.generate(num_examples, 0)


def test_max_bytes_raises_or_lowers_the_limit():
    task = make_task("copy", copy_len=16)
    need = task.estimated_bytes(100)
    assert need == 100 * 32 * (task.BYTES_PER_TOKEN + task.num_slices())
    task.generate(100, 0, max_bytes=need)
    with pytest.raises(ValueError, match="max_bytes"):
        task.generate(100, 0, max_bytes=need - 1)
    with pytest.raises(ValueError, match="max_bytes"):
        task.generate(100, 0, max_bytes=0)
    big = make_task("mqar")
    assert big.estimated_bytes(10**7) > MAX_BYTES
    big.check_memory(10**7, max_bytes=2**50)  # allowed when the caller raises the limit
