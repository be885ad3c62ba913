"""The registry, reproducibility, seeds and hashes."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tasks
from tasks import TASKS, TaskData, content_hash, make_task, split_seed

REPO = Path(__file__).resolve().parents[2]
# small but valid configurations, to keep tests fast: each task class declares its own
SMALL = {name: dict(cls.TEST_PARAMS) for name, cls in TASKS.items()}


def test_registry_lists_every_task():
    assert {"mqar", "copy", "selective_copy", "multihop", "flipflop", "state_tracking"} <= set(
        TASKS
    )
    for name, cls in TASKS.items():
        assert cls.name == name
        assert dataclasses.is_dataclass(cls)
        assert "TEST_PARAMS" in vars(cls), f"{name} declares no TEST_PARAMS"
        assert isinstance(cls.version, int) and cls.version >= 1


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_has_its_yaml_and_checker(name):
    # the four places of a task (docs/tasks.md, "Adding a task"): module and registry (above),
    # its YAML, and a checker test that calls make_task with its name
    assert (REPO / "conf" / "task" / f"{name}.yaml").is_file()
    checkers = "".join(p.read_text() for p in (REPO / "tests" / "tasks").glob("test_checkers*.py"))
    assert f'"{name}"' in checkers, f"no checker test for {name} in test_checkers*.py"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_small_params_generate(name):
    task = make_task(name, **SMALL[name])
    data = task.generate(16, 0)
    assert data.inputs.shape == (16, task.seq_len)
    assert data.scored.any()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_defaults_generate(name):
    task = make_task(name)  # every parameter has a default
    assert isinstance(task, TASKS[name])
    data = task.generate(8, 0)
    assert isinstance(data, TaskData)
    assert data.inputs.dtype == torch.long and data.targets.dtype == torch.long
    assert data.inputs.shape == data.targets.shape == (8, task.seq_len)
    assert 0 <= data.inputs.min() and data.inputs.max() < task.vocab_size
    assert task.info_bits >= 0 and math.isfinite(task.info_bits)
    assert isinstance(data.content_hash, str) and len(data.content_hash) == 64


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError) as e:
        make_task("nope")
    for name in TASKS:
        assert name in str(e.value)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_unknown_parameter_is_named(name):
    with pytest.raises(ValueError, match="bogus_param"):
        make_task(name, bogus_param=3)


def test_public_api():
    for symbol in ("make_task", "TaskData", "TASKS", "content_hash", "split_seed"):
        assert hasattr(tasks, symbol)


# ------------------------------------------------------------------------ reproducibility

SCRIPT = """
import json, sys
from tasks import make_task
small = json.loads(sys.argv[1])
print(json.dumps({n: make_task(n, **p).generate(50, 7).content_hash for n, p in small.items()}))
"""


def test_same_config_and_seed_same_tensors_across_processes():
    here = {n: make_task(n, **p).generate(50, 7).content_hash for n, p in SMALL.items()}
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED="123")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(SMALL)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


@pytest.mark.parametrize("name", sorted(TASKS))
def test_same_seed_same_data_different_seed_different_data(name):
    task = make_task(name, **SMALL[name])
    a, b, c = task.generate(64, 3), task.generate(64, 3), task.generate(64, 4)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert a.slices.keys() == b.slices.keys()
    assert all(torch.equal(a.slices[k], b.slices[k]) for k in a.slices)
    assert a.content_hash == b.content_hash
    assert not torch.equal(a.inputs, c.inputs)
    assert a.content_hash != c.content_hash


def test_taskdata_hash_depends_on_every_tensor():
    data = make_task("mqar", **SMALL["mqar"]).generate(16, 0)
    base = data.content_hash
    inputs = data.inputs.clone()
    inputs[3, 5] += 1
    assert TaskData(inputs, data.targets, data.slices).content_hash != base
    targets = data.targets.clone()
    targets[0, -1] = 1 if targets[0, -1] != 1 else 2
    assert TaskData(data.inputs, targets, data.slices).content_hash != base
    name = next(iter(data.slices))
    slices = dict(data.slices, **{name: ~data.slices[name]})
    assert TaskData(data.inputs, data.targets, slices).content_hash != base
    renamed = {k + "_": v for k, v in data.slices.items()}
    assert TaskData(data.inputs, data.targets, renamed).content_hash != base
    assert TaskData(data.inputs, data.targets, data.slices).content_hash == base


# ------------------------------------------------------------------------ seeds


def test_split_seeds_never_collide():
    seen = {}
    for seed in range(2000):
        for split in ("train", "val", "test"):
            s = split_seed(seed, split)
            assert isinstance(s, int) and s >= 0
            assert s not in seen, f"{(seed, split)} and {seen[s]} share seed {s}"
            seen[s] = (seed, split)


def test_split_seed_rejects_bad_input():
    with pytest.raises(ValueError, match="split"):
        split_seed(0, "dev")
    with pytest.raises(ValueError, match="seed"):
        split_seed(-1, "train")


def test_split_data_differ():
    task = make_task("copy", **SMALL["copy"])
    hashes = {task.generate(32, split_seed(5, s)).content_hash for s in ("train", "val", "test")}
    assert len(hashes) == 3


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_generate_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        make_task("flipflop").generate(4, bad)


@pytest.mark.parametrize("bad", [0, -3, 2.0])
def test_generate_rejects_bad_num_examples(bad):
    with pytest.raises(ValueError, match="num_examples"):
        make_task("flipflop").generate(bad, 0)


# ------------------------------------------------------------------------ content_hash

@pytest.mark.parametrize("name", sorted(TASKS))
def test_content_hash_changes_with_every_field(name):
    # content_hash reads the fields through config(): set each one to a value no real config
    # has (bypassing validation; content_hash does not validate) and the hash must change.
    base = make_task(name, **SMALL[name])
    fields = [f.name for f in dataclasses.fields(base)]
    assert set(base.config()) == set(fields)
    h0 = content_hash(base, 0)
    assert h0 == content_hash(make_task(name, **SMALL[name]), 0)
    assert content_hash(base, 1) != h0
    assert content_hash(base, 0, num_examples=10) != h0
    for field in fields:
        other = copy.copy(base)
        object.__setattr__(other, field, "changed")
        assert content_hash(other, 0) != h0, field


def test_content_hash_rejects_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        content_hash(make_task("copy"), -2)


def test_config_round_trip():
    # config() gives back the (normalised) fields: make_task on it rebuilds an equal task.
    for name in TASKS:
        task = make_task(name, **SMALL[name])
        again = make_task(name, **task.config())
        assert again == task
        assert content_hash(again, 3) == content_hash(task, 3)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_states_its_answer_alphabet(name):
    # the chance level analysis draws comes from the task itself: every scored target of a
    # generated batch is one of answer_alphabet distinct tokens, and there are that many
    task = make_task(name, **TASKS[name].TEST_PARAMS)
    size = task.answer_alphabet
    assert isinstance(size, int) and 2 <= size <= task.vocab_size
    assert task.chance == 1 / size
    data = task.generate(64, seed=0)
    scored = data.targets[data.targets != -100]
    assert 1 <= len(set(scored.tolist())) <= size
