"""Synthetic tasks: generators, one module per family, and a registry.

    from tasks import make_task
    task = make_task("mqar", seq_len=512, num_kv_pairs=32)
    data = task.generate(num_examples=1000, seed=split_seed(0, "train"))

See docs/tasks.md for every task's token layout, parameters, info_bits and slices.
"""

from .base import GENERATOR_VERSION, IGNORE_INDEX, Task, TaskData
from .copy import Copy, SelectiveCopy
from .flipflop import FlipFlop
from .memorization import Memorization
from .mixture import TaskMixture, make_mixture, task_of_config
from .mqar import MQAR
from .multihop import MultiHop
from .recall import FuzzyRecall, NoisyRecall
from .registry import SPLITS, TASKS, content_hash, make_task, split_seed
from .state_tracking import StateTracking

__all__ = [
    "GENERATOR_VERSION",
    "IGNORE_INDEX",
    "SPLITS",
    "TASKS",
    "Copy",
    "FlipFlop",
    "FuzzyRecall",
    "MQAR",
    "Memorization",
    "MultiHop",
    "NoisyRecall",
    "SelectiveCopy",
    "StateTracking",
    "Task",
    "TaskData",
    "TaskMixture",
    "content_hash",
    "make_mixture",
    "make_task",
    "task_of_config",
    "split_seed",
]
