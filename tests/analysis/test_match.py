"""analysis.match: widths whose layer's state (or size) is closest to a target."""

from __future__ import annotations

import pytest

from analysis import match as m
from analysis.theory import state_size


@pytest.mark.parametrize("mixer, target", [
    ("pow2_cache", 1500),      # glr
    ("se_first", 1500),        # expanded
    ("deltanet", 1500),        # fla
])
def test_state_match_within_ten_percent(mixer, target):
    found = m.match(mixer, 32, target, heads=(1, 2))
    assert abs(found.state_floats - target) <= 0.1 * target
    # the printed figures are the layer's own, at the printed width
    assert found.state_floats == round(state_size(mixer, 32, found.d_model, found.num_heads))
    assert found.d_model % found.num_heads == 0
    assert found.params == m._params(mixer, found.d_model, found.num_heads)


def test_bisection_finds_the_closest_width_a_scan_finds():
    target, n = 300, 16
    scan = []
    for h in (1, 2):
        for d in range(h, 25, h):
            s = state_size("se_pow2_cache", n, d, h)
            scan.append((abs(s - target) / target, h, d))
    _, h, d = min(scan)
    found = m.match("se_pow2_cache", n, target, heads=(1, 2), max_d_model=24, tolerance=1.0)
    assert (found.d_model, found.num_heads) == (d, h)


def test_params_target():
    found = m.match("first_order", 16, 5000, by="params", heads=(1,))
    assert abs(found.params - 5000) <= 500


def test_cli_lines_and_overrides(capsys):
    assert m.main(["--state-floats", "1500", "--mixers", "pow2_cache,se_first", "--seq-len",
                   "32", "--heads", "1,2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == ["pow2_cache", "se_first"]
    for ln in lines:
        fields = dict(kv.split("=") for kv in ln.split()[1:])
        assert set(fields) == {"d_model", "num_heads", "state_floats", "params"}
        assert all(v.isdigit() for v in fields.values())
    assert m.main(["--state-floats", "1500", "--mixers", "se_first", "--seq-len", "32",
                   "--heads", "1,2", "--format", "overrides"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("mixer=se_first model.d_model=") and "model.num_heads=" in out


@pytest.mark.parametrize("argv, words", [
    (["--state-floats", "1e9", "--mixers", "se_first", "--seq-len", "16", "--max-d-model", "32"],
     ["se_first", "state_floats"]),
    (["--state-floats", "1", "--mixers", "attention", "--seq-len", "64"],
     ["attention", "state_floats"]),
    (["--params", "1e12", "--mixers", "first_order", "--seq-len", "16", "--max-d-model", "16"],
     ["first_order", "params"]),
    (["--state-floats", "100", "--mixers", "no_such_mixer", "--seq-len", "16"],
     ["--mixers", "no_such_mixer"]),
    (["--state-floats", "-5", "--mixers", "se_first", "--seq-len", "16"], ["--state-floats"]),
])
def test_unreachable_or_bad_target_exits_2_with_one_line(argv, words, capsys):
    assert m.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and err.startswith("analysis.match: ")
    assert all(w in err for w in words)
