"""The metric table: every metric a run records, with its direction, label and format.

    from runners.metrics import metric, EVAL_METRICS
    metric("test_acc")            # Metric(name='test_acc', higher_is_better=True, ...)
    metric("test_acc@n512")       # a test setting's own value: the table entry of test_acc
    metric("steps_to_0.9")        # a family entry, matched by its pattern `steps_to_*`

The Lightning module (runners.lit) computes EVAL_METRICS for validation and test, the runner
records them in result.json's `metrics`, and the results loader, the leaderboard and the plots
read direction, label and format from here. A new metric is one `register(Metric(...))` call
(here, or in the module that computes a derived one) plus its test (docs/analysis.md). No heavy
import: runners and analysis both import this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["Metric", "METRICS", "EVAL_METRICS", "register", "metric", "split_setting"]


@dataclass(frozen=True)
class Metric:
    """One metric: `name` (a key of result.json's `metrics`, or a pattern such as `steps_to_*`
    for a family), `higher_is_better`, `label` (axis and table text), `fmt` (a format spec of
    its value), `accuracy` (a fraction in [0, 1]: drawn against the chance level and the
    capacity bound), `missing` (the value of a run that recorded None: inf for a threshold never
    reached)."""

    name: str
    higher_is_better: bool
    label: str
    fmt: str = ".3f"
    accuracy: bool = False
    missing: float = math.nan

    def format(self, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, float) and math.isinf(value):
            return "never" if self.missing == math.inf else "∞"
        return format(value, self.fmt)


METRICS: dict[str, Metric] = {}

EVAL_METRICS = ("acc", "exact", "loss")
"""What runners.lit computes for each evaluation split: `<split>_<name>`."""


def register(m: Metric) -> Metric:
    """Add (or replace) a metric of the table; returns it."""
    METRICS[m.name] = m
    return m


for _split, _word in (("val", "validation"), ("test", "test")):
    register(Metric(f"{_split}_acc", True, f"{_word} accuracy", accuracy=True))
    register(Metric(f"{_split}_exact", True, f"{_word} exact match", accuracy=True))
    register(Metric(f"{_split}_loss", False, f"{_word} loss"))
    # MAD's accuracy: averaged per class (runners.lit), beside the per-token (micro) acc
    register(Metric(f"{_split}_acc_macro", True, f"{_word} accuracy (macro)", accuracy=True))
register(Metric("train_loss", False, "training loss"))
register(Metric("slice_acc/*", True, "accuracy on a slice", accuracy=True))
register(Metric("steps_to_*", False, "steps to validation accuracy", fmt=".0f",
                missing=math.inf))


def split_setting(name: str) -> tuple[str, str | None]:
    """(`test_acc`, `n512`) for `test_acc@n512`; (name, None) without a test setting."""
    base, _, label = name.partition("@")
    return base, (label or None)


def metric(name: str) -> Metric:
    """The table entry of a metric name (a test setting's `@<label>` suffix is the metric of its
    base); ValueError naming the known metrics when there is none."""
    base, _ = split_setting(name)
    if base in METRICS:
        return METRICS[base]
    for m in METRICS.values():
        if any(c in m.name for c in "*?[") and fnmatchcase(base, m.name):
            return m
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))} (a test "
                     f"setting's own value: <metric>@<label>)")
