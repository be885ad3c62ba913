"""Fuzz every task's parameters through the runner's task builder (runners.config.build_task):
each draw builds a task and generates a small data set that meets the task contract, or
raises one ConfigError line (a ValueError) naming the field, within the bound of fuzz_helpers."""

from __future__ import annotations

import dataclasses

import torch
from fuzz_helpers import bounded, ints, json_values, one_line, text, typed
from hypothesis import event, example, given
from hypothesis import strategies as st
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runners.config import ConfigError, build_task
from tasks import TASKS
from tasks.base import IGNORE_INDEX


def _params(cls) -> st.SearchStrategy:
    fields = {f.name: typed(f.type, f.default) for f in dataclasses.fields(cls) if f.init}
    known = st.fixed_dictionaries({}, optional=fields)
    return st.one_of(known, known, known, st.dictionaries(text, json_values, max_size=2).map(
        lambda extra: extra), st.tuples(known, st.dictionaries(text, json_values, max_size=1))
        .map(lambda t: {**t[1], **t[0]}))


task_configs = st.sampled_from(sorted(TASKS)).flatmap(lambda name: st.fixed_dictionaries(
    {"name": st.one_of(st.just(name), st.just(name), text), "params": _params(TASKS[name])},
    optional={"num_train": ints, "num_val": ints, "num_test": ints,
              "train_settings": st.dictionaries(text, _params(TASKS[name]), max_size=2),
              "test_settings": st.dictionaries(text, _params(TASKS[name]), max_size=2)}))


def check_task_data(task, num: int, seed: int) -> None:
    data = task.generate(num, seed)
    n = task.seq_len
    assert data.inputs.shape == data.targets.shape and data.inputs.shape[1] == n
    assert data.inputs.dtype == torch.long and data.targets.dtype == torch.long
    assert int(data.inputs.min()) >= 0 and int(data.inputs.max()) < task.vocab_size
    scored = data.targets != IGNORE_INDEX
    assert bool(((data.targets >= 0) & (data.targets < task.vocab_size) | ~scored).all())
    for mask in data.slices.values():
        assert not bool((mask & ~scored).any())


@given(tc=task_configs, num=st.integers(1, 4), seed=st.integers(0, 2**31))
@example(tc={"name": "copy", "params": {"\n": None}}, num=1, seed=0)  # found by the fuzzer
@example(tc={"name": "\n", "params": {}}, num=1, seed=0)  # found by the fuzzer
def test_task_parameters_work_or_fail_in_one_line(tc, num, seed):
    try:
        cfg = OmegaConf.create({"num_train": 10, "num_val": 5, "num_test": 5,
                                "train_settings": {}, "test_settings": {}, **tc})
    except OmegaConfBaseException:
        return  # not a config Hydra could hold (the runner's composition error, fuzzed below)
    with bounded():
        try:
            task = build_task(cfg)
        except ConfigError as e:
            one_line(e)
            event("refused")
            return
        event("valid")
        parts = ([*task.train.values(), *task.test.values()] if hasattr(task, "train")
                 else [task])  # a tasks.TaskMixture: each setting's own task
        for t in parts:
            check_task_data(t, num, seed)
