"""analysis.theory against hand-computed values and against brute force on small graphs."""

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from analysis.theory import (
    THEORY_NAMES,
    accuracy_ceiling,
    capacity_bound,
    hop_diameter_all_pairs,
    hop_distances,
    layer_theory,
    main,
    paths_to_last,
    pattern_stats,
    resolve_mixer,
    state_size,
)
from mixers.patterns import make_pattern
from runners.paths import catalogue

# ------------------------------------------------------------------------------ brute force


def brute_graph(mixer, n):
    """Sources 'v', j and nodes 'y', i with the hop-cost edges, built from reads() alone."""
    m = resolve_mixer(mixer)
    edges = []  # (u, w, cost)
    for i in range(n):
        for j in m.direct.reads(i):
            edges.append((("v", j), ("y", i), 0 if j == i else 1))
        for p in m.recurrent.reads(i):
            edges.append((("y", p), ("y", i), 1))
    return edges


def brute_dist(edges, n):
    """All-pairs fewest hops from v_j to y_i by Bellman-Ford style relaxation (tiny n only)."""
    inf = math.inf
    dist = {}
    for j in range(n):
        d = {("v", j): 0}
        changed = True
        while changed:
            changed = False
            for u, w, c in edges:
                if u in d and d[u] + c < d.get(w, inf):
                    d[w] = d[u] + c
                    changed = True
        for i in range(j, n):
            dist[j, i] = d.get(("y", i), inf)
    return dist


def brute_load(edges, n):
    """Enumerate every shortest path from each v_j to y_{n-1}; load on y_m, as fractions."""
    t = ("y", n - 1)
    out = {}
    for u, w, c in edges:
        out.setdefault(u, []).append((w, c))
    load = np.zeros(n)
    dist = brute_dist(edges, n)

    def walk(node, budget, path):
        if node == t and budget == 0:
            yield path
            return
        for w, c in out.get(node, []):
            if c <= budget and w[1] <= n - 1:
                yield from walk(w, budget - c, path + [w])

    for j in range(n - 1):
        dj = dist[j, n - 1]
        if math.isinf(dj):
            continue
        paths = list(walk(("v", j), dj, []))
        for path in paths:
            for node in path[:-1]:
                load[node[1]] += 1 / len(paths)
    return load


SMALL_MIXERS = [
    "attention", "local_attention", "first_order", "kth_order", "dense_recurrence", "pow2",
    "pow2_cache", "sq1", "sq1_cache", "linear_attention",
    {"direct": "window(3)", "recurrent": "pow2"},
    {"direct": "window(2)", "recurrent": "sq1", "cache_efficient": True},
    {"direct": "window(4)", "recurrent": "kth(2)"},
    {"direct": "self", "recurrent": "3*k + 2"},  # distance 1 unreachable
    {"direct": "self", "recurrent": "k**3 + 1", "cache_efficient": True},
]


@pytest.mark.parametrize("mixer", SMALL_MIXERS, ids=str)
@pytest.mark.parametrize("n", [1, 2, 9, 23])
def test_against_brute_force(mixer, n):
    edges = brute_graph(mixer, n)
    dist = brute_dist(edges, n)
    stats = pattern_stats(mixer, n)
    expect_diam = max((dist[j, i] for j in range(n) for i in range(j + 1, n)), default=0)
    assert stats["hop_diameter"] == expect_diam
    assert hop_diameter_all_pairs(mixer, n) == expect_diam
    expect_last = max((dist[j, n - 1] for j in range(n - 1)), default=0)
    assert stats["hop_diameter_to_last"] == expect_last
    paths = paths_to_last(mixer, n)
    if n > 1:
        np.testing.assert_array_equal(paths["dist"][:-1], [dist[j, n - 1] for j in range(n - 1)])
        load = brute_load(edges, n)
        np.testing.assert_allclose(paths["load"][:-1], load[:-1], atol=1e-9)
        assert stats["congestion"] == pytest.approx(load[:-1].max())
    m = resolve_mixer(mixer)
    reads = [len(m.direct.reads(i)) + len(m.recurrent.reads(i)) for i in range(n)]
    assert stats["reads_per_token_max"] == max(reads)
    assert stats["reads_per_token_mean"] == pytest.approx(np.mean(reads))
    assert stats["total_work"] == sum(reads)
    if m.recurrent.cache_efficient is False and not m.state_expanded:
        hops = hop_distances(mixer, n)
        for d in range(1, n):
            assert hops[d] == min(dist[j, j + d] for j in range(n - d))


# ------------------------------------------------------------------------------ hand values


def test_hop_diameters_by_hand():
    assert pattern_stats("pow2", 1024)["hop_diameter"] == 10  # 1023 = ten binary ones
    assert pattern_stats("pow2", 1025)["hop_diameter"] == 10
    assert pattern_stats("pow2", 1026)["hop_diameter"] == 10  # 1024 is one step
    assert pattern_stats("first", 300)["hop_diameter"] == 299
    assert pattern_stats("first_order", 17)["hop_diameter"] == 16
    assert pattern_stats("kth(8)", 1024)["hop_diameter"] == math.ceil(1023 / 8)
    assert pattern_stats("attention", 500)["hop_diameter"] == 1
    assert pattern_stats("dense_recurrence", 500)["hop_diameter"] == 1
    assert pattern_stats("local_attention", 16)["hop_diameter"] == 1
    assert pattern_stats("local_attention", 17)["hop_diameter"] == math.inf


def test_sq1_four_squares():
    # d = (k1^2 + 1) + ... + (kh^2 + 1): every d >= 4 is 4 + a sum of four squares
    assert pattern_stats("sq1", 100)["hop_diameter"] == 4
    assert pattern_stats("sq1", 4096)["hop_diameter"] == 4
    for n in range(2, 400):
        hops = hop_distances("sq1", n)
        assert hops[1:].max() <= 4
    # 7 = 5 + 1 + 1 or 2 + 5: 2 hops; smallest distance needing 4: found by hand below
    hops = hop_distances("sq1", 100)
    assert hops[1] == hops[2] == hops[5] == hops[10] == 1
    assert hops[3] == 2 and hops[7] == 2
    # distance 3 + 4 * 3 + ...: check one 4-hop distance by exhaustion over squares
    squares = [k * k + 1 for k in range(10)]
    four = [d for d in range(1, 100)
            if not any(sum(c) == d for h in (1, 2, 3)
                       for c in itertools.combinations_with_replacement(squares, h))]
    assert four and all(hops[d] == 4 for d in four)


def test_cache_sizes():
    for name, expect in (("pow2", 12), ("sq1", 42)):
        p = make_pattern(name, cache_efficient=True)
        largest = max(len(p.reads(i)) for i in range(3000))
        assert largest == expect
        assert pattern_stats(name, 3000)["cache_efficient"] == expect
        assert pattern_stats(f"{name}_cache", 3000)["cache"] == expect
    s = pattern_stats("pow2", 3000)
    assert s["cache_plain"] == make_pattern("pow2").cache_size(3000) == 2999
    assert s["cache"] == 2999 and s["keeps_all"]
    assert pattern_stats("attention", 100)["cache"] == 99
    assert pattern_stats("local_attention", 100)["cache"] == 15
    assert pattern_stats("kth_order", 100)["cache"] == 8
    assert not pattern_stats("pow2_cache", 3000)["keeps_all"]
    assert math.isnan(pattern_stats("linear_attention", 100)["cache"])


def test_reads_and_work_by_hand():
    s = pattern_stats("first_order", 10)
    assert s["reads_per_token_max"] == 2 and s["total_work"] == 10 + 9
    s = pattern_stats("attention", 10)
    assert s["reads_per_token_max"] == 10 and s["total_work"] == 55
    s = pattern_stats("pow2", 8)  # recurrent reads 0,1,2,2,3,3,3,3 plus self
    assert s["recurrent_reads_per_token_max"] == 3
    assert s["total_work"] == 8 + (0 + 1 + 2 + 2 + 3 + 3 + 3 + 3)


def test_congestion_by_hand():
    # pow2, n = 4: sources 2 (path 2->3), 1 (1->3), 0 (0->1->3 or 0->2->3, half each)
    np.testing.assert_allclose(paths_to_last("pow2", 4)["load"][:3], [1, 1.5, 1.5])
    assert pattern_stats("pow2", 4)["congestion"] == 1.5
    assert pattern_stats("first_order", 50)["congestion"] == 49  # all through y_48
    assert pattern_stats("dense_recurrence", 50)["congestion"] == 1
    assert pattern_stats("attention", 50)["congestion"] == 0


def test_congestion_at_4096_never_hangs(hang_guard):
    # the shortest-path counts are vectorized: a quadratic Python loop at n = 4096 would run for
    # minutes (a hang guard, not a speed assertion)
    for name in ("pow2_cache", "sq1_cache", "dense_recurrence", "first_order", "kth_order"):
        with hang_guard(60):
            paths = paths_to_last(name, 4096)
        assert np.shape(paths["load"]) == (4096,), name
        assert np.isfinite(paths["dist"][:-1]).all(), name  # every input reaches y_{n-1}


def test_resolve_accepts_config_mappings_and_patterns():
    a = pattern_stats({"name": "x", "kind": "glr", "direct": "self", "recurrent": "pow2",
                       "cache_efficient": True}, 200)
    b = pattern_stats("pow2_cache", 200)
    for key in ("hop_diameter", "congestion", "cache", "total_work"):
        assert a[key] == b[key]
    assert resolve_mixer({"name": "linear_attention", "kind": "linear_attention",
                          "direct": "full", "recurrent": "none"}).state_expanded
    p = make_pattern("pow2", cache_efficient=True)
    assert pattern_stats(p, 200)["cache"] == b["cache"]
    assert set(catalogue()) >= {"attention", "sq1_cache", "linear_attention"}
    with pytest.raises(ValueError):
        resolve_mixer(3.5)


def test_theory_from_the_recorded_config_not_the_name():
    # a local_attention config with a wider window: its own cache, not window(16)'s
    wide = {**catalogue()["local_attention"], "direct": "window(32)"}
    assert layer_theory(wide, 256, 32, 2)["cache_size"] == 31
    assert layer_theory(catalogue()["local_attention"], 256, 32, 2)["cache_size"] == 15
    th = layer_theory({**catalogue()["pow2"], "name": "attention"}, 256, 32, 2)
    assert th["hop_diameter"] == pattern_stats("pow2", 256)["hop_diameter"] > 1  # not the name
    la = layer_theory(catalogue()["linear_attention"], 256, 64, 4)
    assert math.isnan(la["cache_size"]) and la["state_size"] == 4 * (16 * 16 + 16)
    assert set(la) >= set(THEORY_NAMES)
    # a kind the registry does not know is an error, never attention's theory
    with pytest.raises(ValueError, match="kind"):
        layer_theory({"name": "attention", "kind": "mystery"}, 256, 32, 2)
    with pytest.raises(ValueError, match="kind"):
        pattern_stats({"name": "attention", "kind": "mystery"}, 256)


def test_theory_table_enumerates_the_yaml_files(capsys):
    assert main(["--n", "64"]) == 0
    out = capsys.readouterr().out
    table, outside = out.split("Outside") if "Outside" in out else (out, "")
    for name in catalogue():
        assert f"| {name} " in table or name in outside, name


# ------------------------------------------------------------------------------ state, capacity


def test_state_size():
    # GLR: (direct cache + recurrent cache) * 2 * d_head per head
    assert state_size("first_order", 256, 64, 4) == 4 * 2 * 16 * 1
    assert state_size("kth_order", 256, 64, 1) == 2 * 64 * 8
    assert state_size("local_attention", 256, 64, 2) == 2 * 2 * 32 * 15
    assert state_size("pow2_cache", 3000, 32, 1) == 2 * 32 * 12
    assert state_size(("self", "pow2", True), 3000, 32, 1) == 2 * 32 * 12
    # linear attention: d_head^2 + d_head per head, whatever n
    assert state_size("linear_attention", 256, 64, 4) == 4 * (16 * 16 + 16)
    assert state_size("linear_attention", 4096, 64, 4) == 4 * (16 * 16 + 16)
    with pytest.raises(ValueError):
        state_size("attention", 10, 64, 3)


def test_state_size_of_a_state_expanded_mixer_is_the_layers():
    # se_pow2 keeps a d_head x d_head matrix and its key for every past state (plain pow2 reads
    # up to n - 1 back): 2 heads * 1023 * (32^2 + 32) at n = 1024, d_model 64, not one matrix
    from mixers import build_mixer

    expected = 2 * 1023 * (32 * 32 + 32)
    assert expected == 2_160_576
    layer = build_mixer({"name": "se_pow2", **catalogue()["se_pow2"]}, 64, 2)
    assert layer.state_size(1024) == expected
    assert state_size("se_pow2", 1024, 64, 2) == expected
    assert layer_theory(catalogue()["se_pow2"], 1024, 64, 2)["state_size"] == expected
    task = SimpleNamespace(info_bits=1e9, seq_len=1024, answer_alphabet=4)
    assert capacity_bound("se_pow2", task, d_model=64, num_heads=2)["state_size"] == expected


def test_accuracy_ceiling():
    # binary items: R(D) = 1 - h(D); half the bits -> h(D) = 1/2 -> D = 0.11003
    assert accuracy_ceiling(50, 100, 0.5) == pytest.approx(1 - 0.110028, abs=1e-5)
    assert accuracy_ceiling(0, 100, 0.01) == pytest.approx(0.01)
    assert accuracy_ceiling(100, 100, 0.01) == 1
    for chance in (0.5, 0.1, 1e-3):
        prev = chance
        for frac in (0.1, 0.3, 0.6, 0.9):
            c = accuracy_ceiling(frac * 100, 100, chance)
            assert c >= frac + (1 - frac) * chance - 1e-12  # above exact storage of a fraction
            assert c > prev  # grows with the state
            prev = c
    # a larger alphabet at the same bits gives a lower ceiling (so 0.5 is the safe default)
    assert accuracy_ceiling(30, 100, 0.5) > accuracy_ceiling(30, 100, 0.01)


def test_capacity_bound():
    task = SimpleNamespace(info_bits=2000.0, seq_len=256, answer_alphabet=100)
    b = capacity_bound("first_order", task, d_model=16, bits_per_float=16)
    assert b["state_bits"] == 2 * 16 * 16  # 512 bits per layer
    assert b["bounded"] and b["fraction"] == pytest.approx(512 / 2000)
    assert b["ceiling"] == pytest.approx(accuracy_ceiling(512, 2000, 0.01))
    assert b["ceiling_exact_storage"] == pytest.approx(0.256 + 0.744 * 0.01)
    b2 = capacity_bound("first_order", task, d_model=16, num_layers=2)
    assert b2["state_bits"] == 1024 and b2["ceiling"] > b["ceiling"]
    for name in ("attention", "dense_recurrence", "pow2", "sq1"):
        b = capacity_bound(name, task, d_model=16)
        assert not b["bounded"] and b["ceiling"] == 1
    assert capacity_bound("pow2_cache", task, d_model=2)["bounded"]
    big = capacity_bound("linear_attention", task, d_model=64, num_heads=1)
    assert big["state_bits"] == (64 * 64 + 64) * 16 and big["ceiling"] == 1


def test_capacity_bound_with_a_real_task():
    tasks = pytest.importorskip("tasks")
    task = tasks.make_task("mqar", vocab_size=64, seq_len=64, num_kv_pairs=8)
    b = capacity_bound("first_order", task, d_model=2, bits_per_float=1)
    assert b["info_bits"] == pytest.approx(task.info_bits)
    assert b["chance"] == pytest.approx(1 / 32)
    assert b["state_bits"] == 4 and b["ceiling"] < 0.5
