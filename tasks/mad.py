"""MAD's benchmark protocol (Poli et al., 2024, athms/mad-lab) at the CPU's size: the task
settings of `grid=mad` and the MAD score's grouping.

MAD trains every layer on its synthetic tasks, each at a baseline setting and at "changes" that
move one key at a time (a larger vocabulary, a longer sequence, fewer training examples, more
noise, more tokens to copy), sweeps learning rate x weight decay per setting, and scores a model
per task as the mean over the settings of the best run's test accuracy; the MAD score is the
mean over tasks (analysis/mad.py). This module states which of MAD's settings the CPU grid keeps
and writes one task config per setting: `conf/task/mad/<task>-<change>.yaml` are its output
(tests/tasks/test_mad_protocol.py checks that they stay so); `python -m tasks.mad` rewrites them.

    setting label           MAD task                      glmix task
    mad-recall-<change>     in-context-recall             noisy_recall, no noise
    mad-fuzzy-<change>      fuzzy-in-context-recall       fuzzy_recall, layout=mad
    mad-noisy-<change>      noisy-in-context-recall       noisy_recall
    mad-selcopy-<change>    selective-copying             selective_copy, layout=mad
    mad-memorize-<change>   memorization                  memorization, map_seed = the run's seed

`<change>` is `base` or the changed key and value (`v64`, `n256`, `train800`, `noise0.6`,
`copy32`). The recall tasks train on every next token and test the repeats, as MAD does
(Zoology's train/test settings `mad-train` / `mad-test`); selective copying and memorization
score their outputs in both splits. Compression (MAD's sixth task) needs an encoder-decoder head
and is not part of glmix (docs/tasks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MadTask:
    """One of MAD's tasks: its glmix task and baseline, and the changes the CPU grid keeps.

    `changes`: label -> overrides (task params, or `num_train`); `mad_changes`: MAD's own
    list (configs/tasks/<task>.yml), for the record in docs/tasks.md."""

    mad_name: str
    task: str
    params: dict
    changes: dict[str, dict]
    mad_changes: str
    train_settings: dict = field(default_factory=dict)
    test_settings: dict = field(default_factory=dict)
    num_train: int = 12_800  # MAD's num_train_examples
    num_test: int = 1_280  # MAD's num_test_examples


# MAD trains the recall tasks on every next token and tests the repeats (docs/tasks.md)
_NEXT_TOKEN = {"mad-train": {"score": "next_token"}}
_REPEATS = {"mad-test": {"score": "repeats"}}

PROTOCOL: dict[str, MadTask] = {
    "recall": MadTask(
        "in-context-recall", "noisy_recall",
        {"vocab_size": 16, "seq_len": 128, "noise_vocab_size": 0, "frac_noise": 0.0},
        {"v64": {"vocab_size": 64}, "n256": {"seq_len": 256}, "train800": {"num_train": 800}},
        "vocab_size 32, 64, 128; seq_len 256, 512, 1024; num_train_examples 6400 .. 800",
        _NEXT_TOKEN, _REPEATS),
    "fuzzy": MadTask(
        "fuzzy-in-context-recall", "fuzzy_recall",
        {"vocab_size": 16, "seq_len": 128, "key_len": 3, "value_len": 3, "layout": "mad"},
        {"v64": {"vocab_size": 64}, "n256": {"seq_len": 256}, "train800": {"num_train": 800}},
        "vocab_size 32, 64, 128; seq_len 256, 512, 1024; num_train_examples 6400 .. 800",
        {"mad-train": {"variable_keys": True, "score": "next_token"}},
        {"mad-test": {"variable_keys": False, "score": "repeats"}}),
    "noisy": MadTask(
        "noisy-in-context-recall", "noisy_recall",
        {"vocab_size": 32, "seq_len": 128, "noise_vocab_size": 16, "frac_noise": 0.2},
        {"v80": {"vocab_size": 80}, "n256": {"seq_len": 256}, "train800": {"num_train": 800},
         "noise0.6": {"frac_noise": 0.6}},
        "vocab_size 48, 80, 144; seq_len 256, 512, 1024; num_train_examples 6400 .. 800; "
        "frac_noise 0.4, 0.6, 0.8",
        _NEXT_TOKEN, _REPEATS),
    "selcopy": MadTask(
        "selective-copying", "selective_copy",
        {"vocab_size": 16, "prefix_len": 239, "num_tokens": 16, "layout": "mad"},
        {"v64": {"vocab_size": 64}, "n512": {"prefix_len": 495},
         "train800": {"num_train": 800}, "copy32": {"prefix_len": 223, "num_tokens": 32}},
        "vocab_size 32, 64, 128; seq_len 512, 1024; num_train_examples 6400 .. 800; "
        "num_tokens_to_copy 32, 64, 96"),
    "memorize": MadTask(
        "memorization", "memorization",
        {"vocab_size": 256, "seq_len": 32, "map_seed": "${seed}"},
        {"v1024": {"vocab_size": 1024}},
        "vocab_size 512, 1024, 2048, 4096, 8192", num_train=256),
}


def settings() -> dict[str, str]:
    """setting label -> MAD task key, in protocol order (the base first, then the changes)."""
    return {f"mad-{key}-{change}": key for key, t in PROTOCOL.items()
            for change in ("base", *t.changes)}


def task_of_setting(label: str) -> str | None:
    """The MAD task key of a setting label (`mad-noisy-n256` -> `noisy`; None: not MAD's)."""
    return settings().get(label)


def config(label: str) -> dict:
    """The task config of conf/task/mad/<label minus `mad-`>.yaml (a plain mapping)."""
    key = task_of_setting(label)
    if key is None:
        raise ValueError(f"unknown MAD setting {label!r}; known: {', '.join(settings())}")
    t = PROTOCOL[key]
    change = label.split("-", 2)[2]
    params, num_train = dict(t.params), t.num_train
    for k, v in (t.changes.get(change) or {}).items():
        if k == "num_train":
            num_train = v
        else:
            params[k] = v
    out = {"name": t.task, "setting": label, "params": params}
    if t.train_settings:
        out["train_settings"] = t.train_settings
    if t.test_settings:
        out["test_settings"] = t.test_settings
    # validation picks the learning rate and weight decay (MAD picks on its test split)
    out.update(num_train=num_train, num_val=256, num_test=t.num_test)
    return out


def yaml_text(label: str) -> str:
    import yaml

    key = task_of_setting(label)
    head = ("# @package task\n"
            f"# MAD's {PROTOCOL[key].mad_name}, setting {label} (CPU grid, conf/grid/mad.yaml).\n"
            "# Written by `python -m tasks.mad`; the protocol: tasks/mad.py, docs/tasks.md.\n")
    return head + yaml.safe_dump(config(label), sort_keys=False, default_flow_style=None)


def file_name(label: str) -> str:
    return label.removeprefix("mad-") + ".yaml"


def main(argv: list[str] | None = None) -> int:
    """Write conf/task/mad/<task>-<change>.yaml for every setting (into the folder given, default
    conf/task/mad)."""
    from .configs import write_configs

    return write_configs("mad", {file_name(label): yaml_text(label) for label in settings()}, argv)


if __name__ == "__main__":
    raise SystemExit(main())
