"""Slices are subsets of the scored positions and, where they partition them, cover them."""

from __future__ import annotations

import pytest
import torch

from tasks import TASKS, make_task

# every registered task at its defaults and at its TEST_PARAMS, then some edge cases
CONFIGS = [(name, {}) for name in sorted(TASKS)]
CONFIGS += [(name, dict(cls.TEST_PARAMS)) for name, cls in sorted(TASKS.items())]
CONFIGS += [
    ("mqar", {"seq_len": 1024, "num_kv_pairs": 64}),
    ("selective_copy", {"prefix_len": 20, "num_tokens": 4}),
    ("flipflop", {"seq_len": 4}),
    ("state_tracking", {"score": "last"}),
    ("mqar", {"keys_in_filler": True}),
    ("selective_copy", {"layout": "mad"}),
    ("noisy_recall", {"frac_noise": 0.8, "seq_len": 1024, "vocab_size": 144}),
]


@pytest.mark.parametrize(("name", "params"), CONFIGS)
def test_slices_partition_scored_positions(name, params):
    task = make_task(name, **params)
    data = task.generate(500, 11)
    scored = data.targets != -100
    assert data.slices, "every task names its slices"
    cover = torch.zeros_like(scored, dtype=torch.long)
    for sl_name, mask in data.slices.items():
        assert mask.dtype == torch.bool and mask.shape == scored.shape, sl_name
        assert not (mask & ~scored).any(), f"{sl_name} marks an unscored position"
        cover += mask.long()
    # all our tasks' slices partition the scored positions: each exactly once
    assert torch.equal(cover, scored.long())


@pytest.mark.parametrize(("name", "params"), CONFIGS)
def test_slice_names_do_not_depend_on_the_draw(name, params):
    task = make_task(name, **params)
    assert task.generate(3, 0).slices.keys() == task.generate(5, 1).slices.keys()


def test_mqar_slices_cover_short_and_long_distances():
    data = make_task("mqar", seq_len=512, num_kv_pairs=8, power_a=1.0).generate(300, 0)
    counts = {k: int(v.sum()) for k, v in data.slices.items()}
    assert list(counts) == [
        "dist<16",
        "dist16..31",
        "dist32..63",
        "dist64..127",
        "dist128..255",
        "dist256..511",
    ]
    assert all(c > 0 for c in counts.values()), counts
