"""Bad configurations raise ValueError naming the field; nothing is clamped."""

from __future__ import annotations

import pytest

from tasks import make_task

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
    ],
)
def test_boundary_configs_are_accepted_unchanged(name, params):
    task = make_task(name, **params)
    for k, v in params.items():
        assert getattr(task, k) == v  # not clamped
    task.generate(16, 0)
