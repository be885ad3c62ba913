"""Zoology's protocol: train on a mixture of settings of one task, test on a list of settings.

    mix = make_mixture("mqar", {"vocab_size": 8192},
                       train={"mqar-n64-kv4": {"seq_len": 64, "num_kv_pairs": 4},
                              "mqar-n128-kv8": {"seq_len": 128, "num_kv_pairs": 8}},
                       test={"mqar-n256-kv16": {"seq_len": 256, "num_kv_pairs": 16}})
    train = mix.generate(10_000, seed=split_seed(0, "train"))      # equal shares, padded
    tests = mix.generate_test_settings(1_000, seed=split_seed(0, "test"))   # label -> TaskData

A setting is the task's shared parameters updated by its own overrides, under a label. The
training mixture gives each training setting an equal share of the examples (the first
`num_examples % len(train)` settings get one more), in setting order, each right-padded to the
longest training setting with token PAD = 0 and target -100 (nothing scored); a causal model
never sees the padding from a real position. Its slices are the union of the settings' slices.
Setting i of a draw with seed q uses numpy.random.SeedSequence(q, spawn_key=(i,)), so settings,
splits and seeds never share a random stream. An empty test list tests the training settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import torch

from .base import IGNORE_INDEX, TaskData, check_int, memory_limit
from .registry import make_task

LABEL = re.compile(r"[A-Za-z0-9_.=+-]+")
PAD = 0


class TaskMixture:
    """Settings of one task: `train` (mixed, equal shares) and `test` (each scored alone).

    Duck-types the parts of `Task` that the runners read: `name`, `vocab_size` and `seq_len`
    (the largest over all settings, train and test: the model must hold every one), `info_bits`
    (the largest over all settings), `generate`, `check_memory` and `config()`.
    """

    def __init__(self, name: str, train: Mapping, test: Mapping):
        if not train:
            raise ValueError("a task mixture needs at least one training setting")
        self.name = name
        self.train = dict(train)  # label -> Task
        self.test = dict(test) if test else dict(train)
        tasks = list(self.train.values()) + list(self.test.values())
        self.vocab_size = max(t.vocab_size for t in tasks)
        self.seq_len = max(t.seq_len for t in tasks)
        self.train_seq_len = max(t.seq_len for t in self.train.values())
        self.info_bits = max(float(t.info_bits) for t in tasks)

    def config(self) -> dict:
        return {
            "train": {label: t.config() for label, t in self.train.items()},
            "test": {label: t.config() for label, t in self.test.items()},
        }

    @staticmethod
    def shares(num_examples: int, parts: int) -> list[int]:
        return [num_examples // parts + (i < num_examples % parts) for i in range(parts)]

    @staticmethod
    def _rng(seed: int, i: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(i,)))

    def estimated_bytes(self, num_examples: int, test: bool = False) -> int:
        """Estimated peak memory of `generate(num_examples)`: the settings' shares and the padded
        copy (or, test=True, of `generate_test_settings`: every test setting at num_examples)."""
        if test:
            return sum(t.estimated_bytes(num_examples) for t in self.test.values())
        tasks = list(self.train.values())
        parts = sum(t.estimated_bytes(n) for t, n in
                    zip(tasks, self.shares(num_examples, len(tasks))))
        slices = sum(t.num_slices() for t in tasks)
        return parts + num_examples * self.train_seq_len * (16 + slices)

    def check_memory(self, num_examples: int, max_bytes: int | None = None, test: bool = False):
        """The guard of `Task.check_memory` for `generate` (test=True: `generate_test_settings`)."""
        if not test and num_examples < len(self.train):
            raise ValueError(
                f"num_examples={num_examples} is fewer than the {len(self.train)} training "
                "settings: each needs at least one example"
            )
        limit = memory_limit(max_bytes)
        need = self.estimated_bytes(num_examples, test)
        if need > limit:
            kind = "test settings" if test else "training settings"
            lengths = [t.seq_len for t in (self.test if test else self.train).values()]
            raise ValueError(
                f"num_examples={num_examples} of the {kind} of task {self.name!r} (seq_len "
                f"{lengths}) need about {need / 2**30:.3g} GiB, over the limit max_bytes={limit} "
                f"({limit / 2**30:.3g} GiB): generate fewer or shorter examples, or raise the "
                "limit (max_bytes, or the environment variable GLMIX_MAX_BYTES)"
            )

    def generate(self, num_examples: int, seed: int, max_bytes: int | None = None) -> TaskData:
        """The training mixture: equal shares of every training setting, padded to
        `train_seq_len`."""
        check_int("num_examples", num_examples, minimum=1)
        check_int("seed", seed, minimum=0, maximum=None)
        self.check_memory(num_examples, max_bytes)
        parts = [
            task._generate(n, self._rng(seed, i))
            for i, (task, n) in enumerate(
                zip(self.train.values(), self.shares(num_examples, len(self.train)))
            )
        ]
        return pad_and_stack(parts, self.train_seq_len)

    def generate_test_settings(
        self, num_examples: int, seed: int, max_bytes: int | None = None
    ) -> dict[str, TaskData]:
        """label -> num_examples examples of that test setting (not padded)."""
        check_int("num_examples", num_examples, minimum=1)
        check_int("seed", seed, minimum=0, maximum=None)
        self.check_memory(num_examples, max_bytes, test=True)
        return {
            label: task._generate(num_examples, self._rng(seed, i))
            for i, (label, task) in enumerate(self.test.items())
        }


def pad_and_stack(parts: list[TaskData], length: int) -> TaskData:
    """One TaskData of all rows, each right-padded to `length` (inputs PAD, targets -100, slices
    False); slices are the union of the parts' slice names."""
    names = sorted({name for d in parts for name in d.slices})
    n = sum(len(d) for d in parts)
    inputs = torch.full((n, length), PAD, dtype=torch.long)
    targets = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    slices = {name: torch.zeros((n, length), dtype=torch.bool) for name in names}
    row = 0
    for d in parts:
        rows, width = d.inputs.shape
        inputs[row : row + rows, :width] = d.inputs
        targets[row : row + rows, :width] = d.targets
        for name, mask in d.slices.items():
            slices[name][row : row + rows, :width] = mask
        row += rows
    return TaskData(inputs, targets, slices)


def make_mixture(
    name: str, params: Mapping, train: Mapping[str, Mapping], test: Mapping[str, Mapping]
) -> TaskMixture:
    """A TaskMixture of task `name`: each setting is make_task(name, **{**params, **overrides}).

    Raises ValueError naming the setting (`train_settings.<label>` / `test_settings.<label>`)
    and the field for a bad setting, and for a label outside [A-Za-z0-9_.=+-].
    """

    def build(kind: str, settings: Mapping) -> dict:
        out = {}
        for label, overrides in settings.items():
            if not isinstance(label, str) or not LABEL.fullmatch(label):
                raise ValueError(
                    f"{kind}: label {label!r} must be letters, digits and _ . = + - only"
                )
            try:
                out[label] = make_task(name, **{**params, **(overrides or {})})
            except (ValueError, TypeError) as e:
                raise ValueError(f"{kind}.{label}: {e}") from e
        return out

    return TaskMixture(name, build("train_settings", train), build("test_settings", test))


def task_of_config(name: str, params: Mapping | None = None,
                   train_settings: Mapping[str, Mapping] | None = None,
                   test_settings: Mapping[str, Mapping] | None = None):
    """The task of a task config's fields (conf/task/*.yaml: name, params, train_settings,
    test_settings): a TaskMixture when either settings mapping is non-empty (training on
    `params` alone when train_settings is empty), else make_task(name, **params). ValueError /
    TypeError as make_task and make_mixture raise them."""
    params = dict(params or {})
    if train_settings or test_settings:
        return make_mixture(name, params, train_settings or {str(name): {}}, test_settings or {})
    return make_task(name, **params)
