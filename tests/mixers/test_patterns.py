"""Patterns: exact read sets, the cache-efficient lattice and its subset property, errors."""

import pytest
import torch

from mixers.patterns import make_direct, make_pattern

PLAIN = {
    "first": [1],
    "kth(3)": [1, 2, 3],
    "pow2": [1, 2, 4, 8, 16, 32, 64],
    "sq1": [1, 2, 5, 10, 17, 26, 37, 50, 65],
    "dense": list(range(1, 80)),
    "3*k + 2": list(range(2, 80, 3)),
}


@pytest.mark.parametrize("spec", sorted(PLAIN))
def test_plain_pattern_reads_exactly_i_minus_f(spec):
    pattern = make_pattern(spec)
    n = 80
    idx = pattern.index(n)
    for i in range(n):
        expected = sorted(i - d for d in PLAIN[spec] if d <= i)
        assert pattern.reads(i) == expected
        assert sorted(j for j in idx[i].tolist() if j >= 0) == expected
        assert (idx[i] < 0).sum() == idx.shape[1] - len(expected)


def test_callable_pattern():
    pattern = make_pattern(lambda k: 3**k)
    assert pattern.reads(30) == [3, 21, 27, 29]


@pytest.mark.parametrize("spec", ["pow2", "sq1", "kth(8)", "first", "k**3 + 1", "dense"])
def test_cache_efficient_lattice(spec):
    pattern = make_pattern(spec, cache_efficient=True)
    n = 300 if spec == "dense" else 3000  # dense reads are O(i): keep the loop short
    f = pattern.distances(n)
    a = pattern.lattice_steps(n)
    idx = pattern.index(n)
    previous: set[int] = set()
    for i in range(n):
        reads = pattern.reads(i)
        assert reads == sorted(set(reads))
        assert all(0 <= p < i for p in reads)
        # each read lands in [i - f(k), i - f(k) + a_k - 1] on the lattice (p + 1) % a_k == 0
        expected = set()
        for fk, ak in zip(f, a):
            if fk <= i:
                p = next(p for p in range(i - fk, i - fk + ak) if (p + 1) % ak == 0)
                expected.add(p)
        assert set(reads) == expected
        assert set(reads) <= previous | {i - 1}, f"subset property fails at i={i}"
        assert sorted(j for j in idx[i].tolist() if j >= 0) == reads
        previous = set(reads)


@pytest.mark.parametrize("spec,largest", [("pow2", 12), ("sq1", 42)])
def test_largest_read_set_up_to_3000(spec, largest):
    pattern = make_pattern(spec, cache_efficient=True)
    assert max(len(pattern.reads(i)) for i in range(3000)) == largest
    assert pattern.cache_size(3000) == largest
    assert make_pattern(spec).cache_size(3000) == 2999  # the plain pattern keeps everything


def test_direct_patterns():
    assert make_direct("self").reads(5) == [5]
    assert make_direct("window(3)").reads(5) == [3, 4, 5]
    assert make_direct("window(3)").reads(1) == [0, 1]
    assert make_direct("full").reads(3) == [0, 1, 2, 3]
    idx = make_direct("window(4)").index(6)
    assert idx.shape == (6, 4)
    assert idx[1].tolist() == [1, 0, -1, -1]


@pytest.mark.parametrize("spec,message", [
    ("pow3", "only variable is k"),
    ("kth(0)", "order must be an integer >= 1"),
    ("pow2(3)", "takes no arguments"),
    ("k - 5", "distances must be >= 1"),
    ("5 - k", "strictly increasing"),
    ("k.real", "only integer arithmetic"),
])
def test_bad_recurrent_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        make_pattern(spec).distances(100)


@pytest.mark.parametrize("spec", ["window(0)", "window", "fulll", "self(2)"])
def test_bad_direct_specs(spec):
    with pytest.raises(ValueError, match="direct"):
        make_direct(spec)


def test_index_is_long_and_cached():
    pattern = make_pattern("pow2")
    assert pattern.index(100).dtype == torch.long
    assert pattern.index(100) is pattern.index(100)


# expressions whose value explodes: refused before the integer is built (docs/design.md 1.1)
EXPLOSIVE = ["9**9**9", "9**9**(9*k)", "(9**9)**(9**9)", "-(9**9**9) + k", "k + 2**(10**18)",
             "2**(64*k) + 1", "(k + 2)**(k**9)", "99999999999999999999 + k", "3**40 * 3**40 + k",
             "k**63 * k**63 + 1"]


@pytest.mark.parametrize("expr", EXPLOSIVE)
def test_explosive_expressions_fail_fast_with_one_line(expr, hang_guard):
    with hang_guard(5), pytest.raises(ValueError) as info:
        make_pattern(expr).index(64)
    message = str(info.value)
    assert "\n" not in message and repr(expr) in message and "2**63 - 1" in message


def test_explosive_expressions_fail_wherever_they_are_parsed(hang_guard):
    from analysis.theory import pattern_stats
    from mixers.config import MixerConfig

    with hang_guard(5):
        with pytest.raises(ValueError, match="2\\*\\*63 - 1"):
            MixerConfig(kind="glr", direct="self", recurrent="9**9**(9*k)")
        with pytest.raises(ValueError, match="2\\*\\*63 - 1"):
            pattern_stats("9**9**9", 64)


def test_expressions_within_the_bound_still_work():
    # values past n are never read: 2**k at n = 64 stops at 64, long before 2**63
    assert make_pattern("2**k").distances(65) == [1, 2, 4, 8, 16, 32, 64]
    assert make_pattern("k**3 + 1").distances(30) == [1, 2, 9, 28]
    assert make_pattern("(k + 1) * 2**50 // 2**50").distances(4) == [1, 2, 3]  # 2**56 fits


@pytest.mark.parametrize("expr, message", [
    ("k // 0 + 1", "division by zero"), ("k % (k - k) + 1", "division by zero"),
    ("2**(-1)", "negative power"), ("True + k", "integers"), ("k" + " + 1" * 100, "at most 200"),
    ("(" * 150 + "k" + ")" * 150, "at most 200"),
])
def test_expressions_that_are_not_distances(expr, message):
    with pytest.raises(ValueError, match=message):
        make_pattern(expr)
