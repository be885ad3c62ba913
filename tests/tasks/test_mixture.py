"""tasks.TaskMixture: Zoology's train-mixture / test-list protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tasks import IGNORE_INDEX, TaskMixture, make_mixture, make_task, split_seed
from tasks.mixture import PAD

TRAIN = {"a": {"seq_len": 16, "num_kv_pairs": 2}, "b": {"seq_len": 32, "num_kv_pairs": 4},
         "c": {"seq_len": 64, "num_kv_pairs": 8}}
TEST = {"b": {"seq_len": 32, "num_kv_pairs": 4}, "long": {"seq_len": 128, "num_kv_pairs": 8}}


def mixture() -> TaskMixture:
    return make_mixture("mqar", {"vocab_size": 64}, TRAIN, TEST)


def test_sizes_cover_every_setting():
    mix = mixture()
    assert mix.vocab_size == 64 and mix.seq_len == 128 and mix.train_seq_len == 64
    assert list(mix.train) == ["a", "b", "c"] and list(mix.test) == ["b", "long"]
    assert mix.info_bits == max(t.info_bits for t in [*mix.train.values(), *mix.test.values()])
    assert mix.config()["test"]["long"]["seq_len"] == 128


def test_equal_shares_padded_in_setting_order():
    mix = mixture()
    data = mix.generate(100, 7)
    assert data.inputs.shape == (100, 64)
    shares = TaskMixture.shares(100, 3)
    assert shares == [34, 33, 33]
    row = 0
    for i, (label, task) in enumerate(mix.train.items()):
        rows = slice(row, row + shares[i])
        # the documented stream: setting i of seed q draws from SeedSequence(q, spawn_key=(i,))
        rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(i,)))
        alone = task._generate(shares[i], rng)
        assert torch.equal(data.inputs[rows, : task.seq_len], alone.inputs), label
        assert torch.equal(data.targets[rows, : task.seq_len], alone.targets), label
        assert (data.inputs[rows, task.seq_len :] == PAD).all()
        assert (data.targets[rows, task.seq_len :] == IGNORE_INDEX).all()
        for name, mask in alone.slices.items():
            assert torch.equal(data.slices[name][rows, : task.seq_len], mask)
        row += shares[i]
    # slices: the union of the settings' names, partitioning the scored positions
    cover = sum(m.long() for m in data.slices.values())
    assert torch.equal(cover, data.scored.long())


def test_deterministic_and_streams_disjoint():
    mix = mixture()
    assert mix.generate(30, 3).content_hash == mix.generate(30, 3).content_hash
    assert mix.generate(30, 3).content_hash != mix.generate(30, 4).content_hash
    tests = mix.generate_test_settings(20, split_seed(0, "test"))
    assert list(tests) == ["b", "long"]
    assert tests["long"].inputs.shape == (20, 128)  # test sets are not padded
    again = mix.generate_test_settings(20, split_seed(0, "test"))
    assert all(tests[k].content_hash == again[k].content_hash for k in tests)
    # setting "b" is in both lists: its test rows are not its training rows
    train = mix.generate(60, split_seed(0, "train"))
    b_rows = train.inputs[20:40, :32]
    b_test = tests["b"].inputs
    assert not any(torch.equal(b_rows[i], b_test[j]) for i in range(20) for j in range(20))


def test_empty_test_list_tests_the_training_settings():
    mix = make_mixture("mqar", {"vocab_size": 64}, TRAIN, {})
    assert list(mix.test) == list(TRAIN)


@pytest.mark.parametrize(
    ("train", "test", "match"),
    [
        ({"a": {"seq_len": 8, "num_kv_pairs": 4}}, {}, r"train_settings\.a: .*num_kv_pairs"),
        (TRAIN, {"x": {"bogus": 1}}, r"test_settings\.x: .*bogus"),
        (TRAIN, {"a@b": {}}, r"test_settings: label 'a@b'"),
        (TRAIN, {"a/b": {}}, "label"),
        ({}, TEST, "at least one training setting"),
    ],
)
def test_bad_settings_are_named(train, test, match):
    with pytest.raises(ValueError, match=match):
        make_mixture("mqar", {"vocab_size": 64}, train, test)


def test_guards_apply_to_each_share():
    mix = mixture()
    with pytest.raises(ValueError, match="num_examples=2 is fewer than the 3 training settings"):
        mix.generate(2, 0)
    need = mix.estimated_bytes(100)
    # at least the shares and the padded copy
    assert need > sum(t.estimated_bytes(34) for t in mix.train.values()) + 100 * 64 * 16
    with pytest.raises(ValueError, match=r"num_examples=100 of the training.*max_bytes"):
        mix.generate(100, 0, max_bytes=need - 1)
    mix.generate(100, 0, max_bytes=need)
    need = mix.estimated_bytes(100, test=True)
    assert need == sum(t.estimated_bytes(100) for t in mix.test.values())
    with pytest.raises(ValueError, match=r"of the test settings.*max_bytes"):
        mix.generate_test_settings(100, 0, max_bytes=need - 1)


def test_a_single_setting_mixture_matches_its_task_shapes():
    mix = make_mixture("copy", {}, {"c8": {"copy_len": 8}}, {"c16": {"copy_len": 16}})
    assert mix.seq_len == 32 and mix.train_seq_len == 16
    assert make_task("copy", copy_len=8).seq_len == mix.generate(4, 0).inputs.shape[1]
