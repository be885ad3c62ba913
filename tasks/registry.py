"""The task registry: name -> class, `make_task`, `content_hash` and `split_seed`."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from .base import GENERATOR_VERSION, Task, check_int
from .chomsky_cs import (
    BinaryAddition,
    BinaryMultiplication,
    BucketSort,
    DuplicateString,
    MissingDuplicate,
    OddsFirst,
)
from .chomsky_dcf import ModularArithmeticBrackets, ReverseString, StackManipulation
from .chomsky_regular import CycleNavigation, EvenPairs, ModularArithmetic
from .copy import Copy, SelectiveCopy
from .flipflop import FlipFlop
from .lookup import NgramLookup, Phonebook
from .memorization import Memorization
from .mqar import MQAR
from .multihop import MultiHop
from .recall import FuzzyRecall, NoisyRecall
from .state_tracking import StateTracking

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        MQAR,
        Copy,
        SelectiveCopy,
        MultiHop,
        FlipFlop,
        StateTracking,
        NoisyRecall,
        FuzzyRecall,
        Memorization,
        # the Chomsky-hierarchy tasks (Deletang et al. 2023): regular, dcf, cs
        EvenPairs,
        ModularArithmetic,
        CycleNavigation,
        ReverseString,
        StackManipulation,
        ModularArithmeticBrackets,
        DuplicateString,
        OddsFirst,
        BinaryAddition,
        BucketSort,
        MissingDuplicate,
        BinaryMultiplication,
        # look-ups beyond a fixed state (Jelassi et al. 2024)
        NgramLookup,
        Phonebook,
    )
}

SPLITS = ("train", "val", "test")


def make_task(name: str, **params) -> Task:
    """A validated task of registry `name`; every parameter has a default.

    Raises ValueError for an unknown name (listing the known ones), an unknown parameter
    (naming it and listing the accepted ones) or a bad value (naming the field).
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    accepted = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for task {name!r}; "
            f"accepted: {', '.join(accepted)}"
        )
    return cls(**params)


def split_seed(seed: int, split: str) -> int:
    """The generator seed of `split` for run seed `seed`: 3 * seed + (0, 1, 2) for
    (train, val, test). Distinct (seed, split) pairs never share a seed."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    check_int("seed", seed, minimum=0, maximum=None)
    return 3 * int(seed) + SPLITS.index(split)


def content_hash(task: Task, seed: int, num_examples: int | None = None) -> str:
    """sha256 (hex) of the task name, its config fields, the seed, the generator versions
    (package and task) and, when given, num_examples. It identifies a data set without
    generating it: generation is deterministic in exactly these inputs. (`TaskData.content_hash`
    is the hash of the generated tensors themselves.)"""
    check_int("seed", seed, minimum=0, maximum=None)
    if num_examples is not None:
        check_int("num_examples", num_examples, minimum=1)
    payload = {
        "task": task.name,
        "task_version": task.version,
        "generator_version": GENERATOR_VERSION,
        "config": {k: _jsonable(v) for k, v in task.config().items()},
        "seed": int(seed),
        "num_examples": None if num_examples is None else int(num_examples),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _jsonable(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return repr(float(v))  # exact, and 1 vs 1.0 stay distinct types
    # numpy scalars and the like
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return repr(v)
