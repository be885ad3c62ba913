"""The `result.json` schema: one dataclass, written by `runners.train`, read by `analysis`.

A result file is `Result.to_dict()` as JSON; `Result.from_dict` reads one back and fails on a
file of another schema (a missing key, or a `schema` number this code does not know). Nothing
here imports torch or Hydra, so `analysis` can import it cheaply. Field by field:
docs/architecture.md.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 2
"""Bumped when a field of `Result` changes meaning; `from_dict` refuses other numbers."""

STATUSES = ("ok", "failed")
ACC_THRESHOLDS = (0.5, 0.9, 0.99)
"""Validation accuracies whose first step is recorded as `metrics["steps_to_<t>"]`."""

# Fields that say where or how a run is executed, not what is computed: left out of the run's
# identity (its config hash), so a result found by resume does not depend on them.
RUN_ONLY = (
    "results_dir",
    "force",
    "save_checkpoint",
    "model.name",
    "trainer.name",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.threads",
    "trainer.num_workers",
    "trainer.progress_bar",
    "trainer.logger",
    "trainer.log_every",
    "mixer.backend",
)

# Fields added after results existed, with the value that reproduces those older runs: at that
# value they are left out of the identity, so an older result.json (which lacks the field) and a
# new run of the same computation have one config hash and one leaderboard row.
IDENTITY_DEFAULTS = {
    "mixer.short_conv_on": "input",
    "trainer.stop_step": None,  # unset: the run ends at trainer.max_steps
    # glr / expanded coefficient rule (docs/design.md 1.10): softmax is what every older run used
    "mixer.params.coefficients": "softmax",
}

# Fields a leaderboard cell pools over: runs that differ only in these are one experiment
# (seeds are replicates; the optimizer's learning rate and weight decay are chosen on validation
# accuracy, as MAD sweeps them).
POOLED = ("seed", "lr", "trainer.weight_decay")


def drop_defaults(config: dict) -> dict:
    """`config` without the IDENTITY_DEFAULTS fields that hold their default value."""
    flat = flatten(config)
    return drop_keys(config, [k for k, v in IDENTITY_DEFAULTS.items() if flat.get(k, v) == v])


def _parent(config: dict, dotted: str):
    """(the mapping that holds the dotted key's leaf, or None; the leaf's name)."""
    *parents, leaf = dotted.split(".")
    node = config
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), leaf


def fill_defaults(config: dict) -> dict:
    """A copy of `config` with the IDENTITY_DEFAULTS fields an older result lacks filled in (for
    labels: an old run reads `short_conv_on=input`, which is what it computed)."""
    c = copy.deepcopy(config)
    for key, value in IDENTITY_DEFAULTS.items():
        node, leaf = _parent(c, key)
        if node is not None:
            node.setdefault(leaf, value)
    return c


def drop_keys(config: dict, dotted: tuple[str, ...] | list[str]) -> dict:
    """A deep copy of `config` without the dotted keys (`model.name`, ...)."""
    c = copy.deepcopy(config)
    for key in dotted:
        node, leaf = _parent(c, key)
        if node is not None:
            node.pop(leaf, None)
    return c


def identity(config: dict, versions: dict) -> dict:
    """What a run is: its resolved config without the RUN_ONLY fields, and the code versions
    that decide its numbers (`task`: the task generator's, `op`: the mixer op's)."""
    return {"config": drop_defaults(drop_keys(config, RUN_ONLY)), "versions": dict(versions)}


def config_hash(config: dict, versions: dict) -> str:
    """sha256 of `identity(config, versions)` (canonical JSON)."""
    blob = json.dumps(identity(config, versions), sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def flatten(d: Any, prefix: str = "") -> dict:
    """{'model': {'d_model': 64}} -> {'model.d_model': 64} (lists and scalars are leaves)."""
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


@dataclass
class Curve:
    """The learning curve: training loss (mean over the steps since the last point) every
    `trainer.log_every` steps, validation metrics at every validation."""

    train: dict[str, list] = field(default_factory=lambda: {"step": [], "loss": []})
    val: dict[str, list] = field(
        default_factory=lambda: {"step": [], "acc": [], "exact": [], "loss": []})


@dataclass
class Result:
    """One run. `status` is ok or failed; a failed run has `error` (the traceback) and no
    metrics. `config_hash` is `config_hash(config, code_versions)`."""

    status: str
    config: dict
    config_hash: str
    task: str
    task_setting: str
    mixer: str
    seed: int
    lr: float
    code_versions: dict  # {"task": int, "generator": int, "op": int}: part of the hash
    error: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    curve: dict = field(default_factory=lambda: dataclasses.asdict(Curve()))
    num_params: int | None = None
    theory: dict = field(default_factory=dict)  # the layer's own figures at seq_len (per layer)
    info_bits: float | None = None
    steps: int = 0
    wall_time_s: float | None = None
    train_time_s: float | None = None
    early_stopped: bool = False
    hardware: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)  # python, torch, ..., git commit (not hashed)
    job: dict = field(default_factory=dict)  # launcher, host, pid, Slurm job id and output files
    log_dir: str | None = None  # the Lightning logger's folder, relative to the result's
    checkpoint: str | None = None  # relative to the result's folder (save_checkpoint=true)
    schema: int = SCHEMA

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> Result:
        """A Result from a parsed result.json; ValueError naming what does not fit."""
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        if record.get("schema") != SCHEMA:
            raise ValueError(f"schema {record.get('schema')!r}, expected {SCHEMA} (a result of "
                             f"another glmix version: rerun it, or read it with that version)")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(record))
        if missing:
            raise ValueError(f"missing keys {missing}")
        unknown = sorted(set(record) - names)
        if unknown:
            raise ValueError(f"unknown keys {unknown}")
        for key, value in record.items():
            kinds = _FIELD_KINDS.get(key, ())
            if kinds and not (isinstance(value, kinds) and not (
                    isinstance(value, bool) and bool not in kinds)):
                raise ValueError(f"{key} is a {type(value).__name__}, expected "
                                 f"{' or '.join(k.__name__ for k in kinds)}")
        for part in ("task", "mixer", "model", "trainer"):
            if not isinstance(record["config"].get(part, {}), dict):
                raise ValueError(f"config.{part} is not a mapping")
        if record["status"] not in STATUSES:
            raise ValueError(f"status {record['status']!r} is not one of {STATUSES}")
        return cls(**record)


# the JSON types of Result's fields, checked when a file is read (an untrusted file may hold
# anything: docs/design.md 4.1); a bool is accepted only where bool is listed
_NONE = type(None)
_FIELD_KINDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "config": (dict,), "config_hash": (str,), "task": (str,),
    "task_setting": (str,), "mixer": (str,), "seed": (int,), "lr": (int, float),
    "code_versions": (dict,), "error": (str, _NONE), "metrics": (dict,), "curve": (dict,),
    "num_params": (int, _NONE), "theory": (dict,), "info_bits": (int, float, _NONE),
    "steps": (int,), "wall_time_s": (int, float, _NONE), "train_time_s": (int, float, _NONE),
    "early_stopped": (bool,), "hardware": (dict,), "versions": (dict,), "job": (dict,),
    "log_dir": (str, _NONE), "checkpoint": (str, _NONE), "schema": (int,),
}


def steps_to(steps: list[int], accs: list[float | None],
             thresholds=ACC_THRESHOLDS) -> dict[str, int | None]:
    """{'steps_to_0.9': the first step whose validation accuracy is >= 0.9, or None}."""
    out = {}
    for t in thresholds:
        out[f"steps_to_{t:g}"] = next(
            (int(s) for s, a in zip(steps, accs) if a is not None and a >= t), None)
    return out
