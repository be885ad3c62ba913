"""The metric table (runners.metrics): one entry per metric, found by name or family."""

import math

import pytest

from runners.metrics import EVAL_METRICS, METRICS, Metric, metric, register


def test_every_recorded_metric_has_an_entry():
    for split in ("val", "test"):
        for name in EVAL_METRICS:
            m = metric(f"{split}_{name}")
            assert m.higher_is_better == (name != "loss")
    assert metric("test_acc@mqar-n512-kv32") is metric("test_acc")
    assert metric("slice_acc/kv_0-1").accuracy
    steps = metric("steps_to_0.9")
    assert not steps.higher_is_better and steps.missing == math.inf
    assert steps.format(math.inf) == "never" and steps.format(125.0) == "125"
    with pytest.raises(ValueError, match="unknown metric 'nonsense'"):
        metric("nonsense")


def test_a_derived_metric_registers_in_one_place():
    try:
        register(Metric("lengthgen_score", True, "length generalization", accuracy=True))
        assert metric("lengthgen_score").label == "length generalization"
        from analysis.results import higher_is_better

        assert higher_is_better("lengthgen_score")
    finally:
        METRICS.pop("lengthgen_score", None)
