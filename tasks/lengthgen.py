"""Length generalization (docs/design.md 3.1): train on lengths up to L, test at L, 2L, 4L, 8L.

The protocol is the train/test settings of tasks/mixture.py: an equal-share training mixture of
lengths up to L and one test setting per test length, each scored alone (test_acc@<label>,
test_exact@<label>). This module says how each task's size follows one length, and writes the
settings; `conf/task/lengthgen/*.yaml` are its output (tests/tasks/test_lengthgen.py checks that
they stay so), and `python -m tasks.lengthgen` prints them.

    length_settings("copy", [8, 16, 32, 64])   ->  {"n8": {"copy_len": 4}, ..., "n64": {...}}

Labels are `n<length>` (a variant after a dash: `n128-sparse`), so analysis/lengthgen.py reads the
length of every setting from its label. The length is the task's `seq_len`:

    copy            copy_len = L / 2 (seq_len = 2 copy_len)
    selective_copy  num_tokens = L / 8 data tokens in a prefix of L - L / 8 (seq_len = L)
    mqar            seq_len = L, num_kv_pairs = L / 8 (the pairs grow with the length)
    flipflop        seq_len = L
    state_tracking  seq_len = L (parity, cyclic, permutation, alternating, alternating_x_cyclic)
    the Chomsky-hierarchy tasks (tasks/chomsky.py)
                    length = L input tokens (the reference's length; seq_len adds the output
                    tape); modular_arithmetic, whose expressions have odd lengths, takes an
                    even L and holds L - 1 tokens (the reference's rule)

`task_length(task)` is the length a setting of a task has under this rule.

Any other task's size does not follow one length (memorization's table is fixed, multihop and
the recall families have several independent sizes): asking for it is a ValueError saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .chomsky import ChomskyTask
from .registry import TASKS

LABEL = re.compile(r"^n(\d+)(?:-[A-Za-z0-9_.=+]+)?$")


def _copy(n: int) -> dict:
    _need(n % 2 == 0, "copy", n, "even (seq_len = 2 copy_len)")
    return {"copy_len": n // 2}


def _selective_copy(n: int) -> dict:
    _need(n % 8 == 0, "selective_copy", n, "a multiple of 8 (num_tokens = length / 8)")
    return {"prefix_len": n - n // 8, "num_tokens": n // 8}


def _mqar(n: int) -> dict:
    _need(n % 8 == 0, "mqar", n, "a multiple of 8 (num_kv_pairs = length / 8)")
    return {"seq_len": n, "num_kv_pairs": n // 8}


def _seq_len(n: int) -> dict:
    return {"seq_len": n}


def _input_length(n: int) -> dict:
    return {"length": n}


def _odd_length(n: int) -> dict:
    _need(n % 2 == 0, "modular_arithmetic", n, "even (its expression holds L - 1 tokens, the "
          "reference's rule)")
    return {"length": n - 1}


CHOMSKY = tuple(name for name, cls in TASKS.items() if issubclass(cls, ChomskyTask))


SCALES: dict[str, Callable[[int], dict]] = {
    "copy": _copy,
    "selective_copy": _selective_copy,
    "mqar": _mqar,
    "flipflop": _seq_len,
    "state_tracking": _seq_len,
    **{name: _input_length for name in CHOMSKY},
    "modular_arithmetic": _odd_length,
}


def task_length(task) -> int:
    """The protocol length of a built task: its seq_len, or for a Chomsky-hierarchy task its
    input length (modular_arithmetic's length L - 1 stands for the even L)."""
    if isinstance(task, ChomskyTask):
        return task.length + (task.name == "modular_arithmetic")
    return task.seq_len


def _need(ok: bool, task: str, n: int, what: str) -> None:
    if not ok:
        raise ValueError(f"length {n} of task {task!r} must be {what}")


def overrides(task: str, length: int) -> dict:
    """The task parameters that set its length to `length`."""
    if task not in SCALES:
        raise ValueError(f"task {task!r}: its size does not scale with one length, so it has no "
                         f"length-generalization protocol; tasks that do: {sorted(SCALES)}")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ValueError(f"length must be an integer >= 1, got {length!r}")
    return SCALES[task](length)


def length_settings(task: str, lengths: Iterable[int], variant: str = "",
                    extra: dict | None = None) -> dict[str, dict]:
    """label -> overrides, one setting per length (label n<length>[-variant]); `extra` joins
    every setting's overrides (e.g. a test distribution's probabilities)."""
    suffix = f"-{variant}" if variant else ""
    return {f"n{n}{suffix}": {**overrides(task, n), **(extra or {})} for n in lengths}


def label_length(label: str) -> int | None:
    """The length a lengthgen label names (n128-sparse -> 128), None for another label."""
    m = LABEL.match(label)
    return int(m.group(1)) if m else None


# -- the committed protocols (conf/task/lengthgen/) -------------------------------------------
TRAIN_MAX = 32
TRAIN_LENGTHS = tuple(range(8, TRAIN_MAX + 1, 8))  # the equal mixture of lengths up to L (CPU: 32)
TEST_LENGTHS = tuple(TRAIN_MAX * f for f in (1, 2, 4, 8))
# Liu et al.'s flip-flop: train with ignores 80% of the time, test sparse (98%) and dense (10%)
FLIPFLOP_TRAIN = {"p_write": 0.1, "p_read": 0.1}
FLIPFLOP_TESTS = {"sparse": {"p_write": 0.01, "p_read": 0.01},
                  "dense": {"p_write": 0.45, "p_read": 0.45}}

PROTOCOLS: dict[str, dict] = {
    "copy": {"name": "copy", "params": {"vocab_size": 16}},
    "selective_copy": {"name": "selective_copy", "params": {"vocab_size": 16}},
    "mqar": {"name": "mqar", "params": {"vocab_size": 256, "power_a": 0.01,
                                        "random_non_queries": True}},
    "flipflop": {"name": "flipflop", "params": dict(FLIPFLOP_TRAIN)},
    "parity": {"name": "state_tracking", "params": {"group": "parity", "score": "all"}},
    "cyclic": {"name": "state_tracking", "params": {"group": "cyclic", "order": 5,
                                                    "score": "all"}},
    "permutation": {"name": "state_tracking", "params": {"group": "permutation", "degree": 3,
                                                         "score": "all"}},
    # order 60: non-solvable (A_5), solvable and not abelian (A_4 x Z_5), abelian (Z_60)
    "alternating": {"name": "state_tracking", "params": {"group": "alternating", "degree": 5,
                                                         "score": "all"}},
    "alternating_x_cyclic": {"name": "state_tracking",
                             "params": {"group": "alternating_x_cyclic", "degree": 4,
                                        "order": 5, "score": "all"}},
    "cyclic60": {"name": "state_tracking", "params": {"group": "cyclic", "order": 60,
                                                      "score": "all"}},
    # the Chomsky-hierarchy tasks at the reference's alphabets (their defaults)
    **{name: {"name": name, "params": {}} for name in CHOMSKY},
}


def protocol(key: str) -> dict:
    """The task config of conf/task/lengthgen/<key>.yaml (a plain mapping)."""
    p = PROTOCOLS[key]
    train = length_settings(p["name"], TRAIN_LENGTHS)
    if key == "flipflop":
        test = {}
        for n in TEST_LENGTHS:
            for variant, probs in FLIPFLOP_TESTS.items():
                test.update(length_settings("flipflop", [n], variant, probs))
    else:
        test = length_settings(p["name"], TEST_LENGTHS)
    return {"name": p["name"], "setting": f"lengthgen-{key}-L{TRAIN_MAX}",
            "params": dict(p["params"]), "train_settings": train, "test_settings": test,
            "num_train": 10000, "num_val": 500, "num_test": 200}


def yaml_text(key: str) -> str:
    import yaml

    head = ("# @package task\n"
            f"# length generalization, {key}: train on an equal mixture of lengths "
            f"{TRAIN_LENGTHS[0]}..{TRAIN_MAX}, test each of {', '.join(map(str, TEST_LENGTHS))}\n"
            "# alone (test_acc@n<length>, test_exact@n<length>). Written by "
            "`python -m tasks.lengthgen`;\n# the protocol: docs/tasks.md (Length "
            "generalization), tasks/lengthgen.py.\n")
    return head + yaml.safe_dump(protocol(key), sort_keys=False, default_flow_style=None)


def main(argv: list[str] | None = None) -> int:
    """Write conf/task/lengthgen/<key>.yaml for every protocol (into the folder given, default
    conf/task/lengthgen)."""
    from .configs import write_configs

    return write_configs("lengthgen", {f"{key}.yaml": yaml_text(key) for key in PROTOCOLS}, argv)


if __name__ == "__main__":
    raise SystemExit(main())
