"""The GPU check's `expanded` stage (bench/gpu_check_expanded.py) runs end to end in its smoke
form (on the CPU: Triton's interpreter), and its mapping of se_first with the decay rule onto
fla's simple GLA is exact (checked on fla's own PyTorch form of it)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from bench import gpu_check_expanded as gx  # noqa: E402


def test_smoke_stage_checks_every_case_and_times_every_backend():
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lines = []
    res = gx.stage_expanded(device, True, lines.append, float("inf"), torch.float32,
                            timer=lambda fn: fn() or 1.0)
    assert res["ok"], res["errors"]
    assert {(r["recurrent"], r["n"]) for r in res["errors"]} == \
        {(c[0], c[3]) for c in gx.SMOKE_CHECKS}
    for r in res["errors"]:
        assert set(r["errors"]) == {"o", "dq", "dk", "dv", "dalpha", "dbeta"}
    timed = {(r["mixer"], r["backend"]) for r in res["speed"] if "fwdbwd_ms" in r}
    assert timed >= {(m, b) for m in gx.MIXERS for b in ("triton", "chunked")}, res["speed"]


def test_a_wrong_backend_is_caught(monkeypatch):
    """The error check can fail: a backend that drops the recurrence is reported."""
    from mixers.ops import expanded_flat

    real = expanded_flat._GLR["triton"]
    monkeypatch.setitem(expanded_flat._GLR, "triton",
                        lambda x, alpha, a_idx, beta, b_idx, c: real(x, alpha, a_idx, beta * 0,
                                                                     b_idx, c))
    inputs = gx.make_inputs("pow2", True, "self", 33, 4, 1, 2, torch.float32,
                            torch.device("cpu"), seed=3)
    assert max(gx._errors(inputs, torch.float32, 16).values()) > 1e-2


def test_se_first_with_decay_is_fla_simple_gla():
    from fla.ops.simple_gla.naive import naive_recurrent_simple_gla

    from mixers.ops import glr_expanded

    inputs = gx.make_inputs("first", False, "self", 37, 5, 2, 3, torch.float64,
                            torch.device("cpu"), seed=0, coefficients="decay")
    q, k, v, alpha, a_idx, beta, b_idx = inputs
    ours = glr_expanded(q, k, v, alpha, a_idx, beta, b_idx, backend="reference")
    fq, fk, fv, g, scale = gx.as_simple_gla(q, k, v, alpha, beta)
    theirs, _ = naive_recurrent_simple_gla(fq, fk, fv, g, scale=scale)
    torch.testing.assert_close(theirs.transpose(1, 2).double(), ours, atol=1e-5, rtol=1e-5)
