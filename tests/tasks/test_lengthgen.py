"""The length-generalization protocol (tasks/lengthgen.py, conf/task/lengthgen/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks import make_mixture
from tasks.lengthgen import (
    PROTOCOLS,
    TEST_LENGTHS,
    TRAIN_LENGTHS,
    TRAIN_MAX,
    label_length,
    length_settings,
    overrides,
    protocol,
    task_length,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "task" / "lengthgen"


@pytest.mark.parametrize("key", sorted(PROTOCOLS))
def test_committed_configs_are_the_protocol(key):
    text = (CONF / f"{key}.yaml").read_text()
    assert text.startswith("# @package task\n")
    assert yaml.safe_load(text) == protocol(key)


@pytest.mark.parametrize("key", sorted(PROTOCOLS))
def test_every_setting_has_the_length_its_label_names(key):
    p = protocol(key)
    mix = make_mixture(p["name"], p["params"], p["train_settings"], p["test_settings"])
    for settings in (mix.train, mix.test):
        for label, task in settings.items():
            assert task_length(task) == label_length(label), (key, label)
    assert sorted({task_length(t) for t in mix.train.values()}) == list(TRAIN_LENGTHS)
    assert sorted({task_length(t) for t in mix.test.values()}) == list(TEST_LENGTHS)
    assert TEST_LENGTHS == (TRAIN_MAX, 2 * TRAIN_MAX, 4 * TRAIN_MAX, 8 * TRAIN_MAX)


def test_mqar_pairs_grow_with_the_length():
    p = protocol("mqar")
    assert [o["num_kv_pairs"] for o in p["test_settings"].values()] == \
        [n // 8 for n in TEST_LENGTHS]


def test_flipflop_tests_sparse_and_dense_at_every_length():
    test = protocol("flipflop")["test_settings"]
    assert sorted(test) == sorted(f"n{n}-{v}" for n in TEST_LENGTHS for v in ("sparse", "dense"))
    assert test[f"n{TRAIN_MAX}-sparse"]["p_write"] < protocol("flipflop")["params"]["p_write"]
    assert test[f"n{TRAIN_MAX}-dense"]["p_read"] > protocol("flipflop")["params"]["p_read"]


def test_labels():
    assert length_settings("copy", [8, 16]) == {"n8": {"copy_len": 4}, "n16": {"copy_len": 8}}
    assert length_settings("flipflop", [8], "sparse", {"p_read": 0.1}) == \
        {"n8-sparse": {"seq_len": 8, "p_read": 0.1}}
    assert label_length("n128-sparse") == 128 and label_length("n64") == 64
    assert label_length("mqar-n64-kv4") is None


def test_a_task_that_does_not_scale_says_so():
    with pytest.raises(ValueError, match="task 'memorization': its size does not scale with "
                                         "one length.*tasks that do:.*'copy'"):
        overrides("memorization", 64)


@pytest.mark.parametrize("task, n, what", [("copy", 33, "even"),
                                           ("mqar", 36, "multiple of 8"),
                                           ("selective_copy", 12, "multiple of 8")])
def test_lengths_that_do_not_fit_a_layout_are_named(task, n, what):
    with pytest.raises(ValueError, match=f"length {n} of task '{task}' must be .*{what}"):
        overrides(task, n)
    with pytest.raises(ValueError, match="length must be an integer >= 1"):
        overrides(task, 0)


def test_the_chomsky_tasks_and_the_order_60_groups_have_protocols():
    from tasks import TASKS

    levelled = {name for name, cls in TASKS.items() if cls.level in ("regular", "dcf", "cs")}
    assert levelled - {"state_tracking"} <= set(PROTOCOLS)
    groups = {k: protocol(k)["params"] for k in ("alternating", "alternating_x_cyclic",
                                                  "cyclic60")}
    assert {make_mixture("state_tracking", p, {"a": {"seq_len": 8}}, {}).vocab_size
            for p in groups.values()} == {60}


def test_the_chomsky_length_is_the_input_length():
    # the reference's length: the input; the output tape comes on top of it
    assert overrides("duplicate_string", 64) == {"length": 64}
    p = protocol("duplicate_string")
    mix = make_mixture(p["name"], p["params"], p["train_settings"], p["test_settings"])
    assert mix.test[f"n{TEST_LENGTHS[-1]}"].seq_len == 3 * TEST_LENGTHS[-1]
    # modular arithmetic's expressions have odd lengths: an even L holds L - 1 tokens
    assert overrides("modular_arithmetic", 32) == {"length": 31}
    with pytest.raises(ValueError, match="length 33 of task 'modular_arithmetic' must be even"):
        overrides("modular_arithmetic", 33)
