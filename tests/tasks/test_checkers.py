"""Independent checkers: plain-Python solvers that read only `inputs` and the documented token
layout (docs/tasks.md), derive the targets and the slice of every scored position, and compare
them with what the generator produced."""

from __future__ import annotations

import itertools

import pytest

from tasks import make_task

IGNORE = -100


def bucket(prefix: str, d: int, first: int = 16) -> str:
    """The documented log2 bucket name of a non-negative value."""
    if d < first:
        return f"{prefix}<{first}"
    lo = first
    while 2 * lo <= d:
        lo *= 2
    return f"{prefix}{lo}..{2 * lo - 1}"


def check(task, solver, num_examples: int, seed: int = 123) -> None:
    data = task.generate(num_examples, seed)
    inputs = data.inputs.tolist()
    assert data.inputs.shape == (num_examples, task.seq_len)
    assert 0 <= data.inputs.min() and data.inputs.max() < task.vocab_size
    scored = data.targets != IGNORE
    assert scored.any()
    assert data.targets[scored].min() >= 0 and data.targets[scored].max() < task.vocab_size

    expected_targets, expected_slices = [], {}
    for r, row in enumerate(inputs):
        tgt, sl = solver(row)
        assert len(tgt) == task.seq_len
        expected_targets.append(tgt)
        for c, name in sl.items():
            expected_slices[(r, c)] = name
    assert data.targets.tolist() == expected_targets

    got = {}
    for name, mask in data.slices.items():
        for r, c in mask.nonzero().tolist():
            assert (r, c) not in got, f"position {(r, c)} in slices {got[(r, c)]} and {name}"
            got[(r, c)] = name
    assert got == expected_slices


# ---------------------------------------------------------------------------------- MQAR


def mqar_solver(k: int, vocab: int, length: int, random_filler: bool):
    half = vocab // 2

    def solve(row):
        keys, vals = row[0 : 2 * k : 2], row[1 : 2 * k : 2]
        assert all(1 <= x < half for x in keys) and len(set(keys)) == k
        assert all(half <= v < vocab for v in vals) and len(set(vals)) == k
        value_of = dict(zip(keys, vals))
        key_pos = {x: 2 * i for i, x in enumerate(keys)}
        tgt, sl, queried = [IGNORE] * length, {}, []
        for t in range(2 * k, length):
            x = row[t]
            if x in value_of:
                assert (t - 2 * k) % 2 == 0, "queries sit at even offsets from the query region"
                tgt[t] = value_of[x]
                sl[t] = bucket("dist", t - key_pos[x])
                queried.append(x)
            elif not random_filler:
                assert x == 0
        assert sorted(queried) == sorted(keys), "every key is queried exactly once"
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"random_non_queries": False},
        {"vocab_size": 64, "seq_len": 64, "num_kv_pairs": 8, "power_a": 1.0},
        {"vocab_size": 40, "seq_len": 80, "num_kv_pairs": 19},  # all keys, queries fill slots
        {"vocab_size": 1000, "seq_len": 513, "num_kv_pairs": 64, "power_a": 0.5},
    ],
)
def test_mqar_checker(params):
    task = make_task("mqar", **params)
    n = 2000 if task.seq_len <= 256 else 400
    solver = mqar_solver(task.num_kv_pairs, task.vocab_size, task.seq_len, task.random_non_queries)
    check(task, solver, n)


# ---------------------------------------------------------------------------------- copy


def copy_solver(c: int):
    def solve(row):
        assert row[c] == 0, "separator"
        data = row[:c]
        assert row[c + 1 :] == data[:-1], "the copy so far is in the inputs"
        tgt = [IGNORE] * c + data
        sl = {c + j: bucket("idx", j) for j in range(c)}
        return tgt, sl

    return solve


@pytest.mark.parametrize("params", [{}, {"vocab_size": 3, "copy_len": 5}, {"copy_len": 300}])
def test_copy_checker(params):
    task = make_task("copy", **params)
    check(task, copy_solver(task.copy_len), 1000 if task.seq_len <= 256 else 300)


def selective_copy_solver(p: int, m: int):
    def solve(row):
        prefix = row[:p]
        where = [i for i, x in enumerate(prefix) if x != 0]
        data = [prefix[i] for i in where]
        assert len(data) == m and all(x >= 2 for x in data)
        assert row[p] == 1, "separator"
        assert row[p + 1 :] == data[:-1]
        tgt = [IGNORE] * p + data
        sl = {p + j: bucket("dist", p + j - where[j]) for j in range(m)}
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    "params", [{}, {"prefix_len": 16, "num_tokens": 16, "vocab_size": 4}, {"prefix_len": 1000}]
)
def test_selective_copy_checker(params):
    task = make_task("selective_copy", **params)
    check(task, selective_copy_solver(task.prefix_len, task.num_tokens), 1000)


# ---------------------------------------------------------------------------------- multihop


def multihop_solver(num_facts: int, num_queries: int, hops: int):
    def solve(row):
        facts = row[: 2 * num_facts]
        succ = dict(zip(facts[0::2], facts[1::2]))
        assert len(succ) == num_facts, "every key has one value"
        assert all(x > hops for x in facts), "nodes come after the hop markers"
        assert row[2 * num_facts] == 0, "separator"
        tgt = [IGNORE] * (2 * num_facts + 1)
        sl = {}
        for i in range(num_queries):
            h, node = row[2 * num_facts + 1 + 2 * i], row[2 * num_facts + 2 + 2 * i]
            assert 1 <= h <= hops
            pos = 2 * num_facts + 2 + 2 * i
            for _ in range(h):
                node = succ[node]  # a KeyError means the answer is not reachable
            tgt += [IGNORE, node]
            sl[pos] = f"hops={h}"
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"hops": 1, "chain_len": 2, "num_chains": 30},
        {"vocab_size": 32, "num_chains": 3, "chain_len": 8, "hops": 7, "num_queries": 50},
    ],
)
def test_multihop_checker(params):
    task = make_task("multihop", **params)
    solver = multihop_solver(task.num_chains * (task.chain_len - 1), task.num_queries, task.hops)
    check(task, solver, 2000)


# ---------------------------------------------------------------------------------- flipflop

W, R, IGN, B0, B1 = 0, 1, 2, 3, 4


def flipflop_solver(length: int):
    def solve(row):
        instr, bits = row[0::2], row[1::2]
        assert instr[0] == W and instr[-1] == R
        assert set(instr) <= {W, R, IGN} and set(bits) <= {B0, B1}
        tgt, sl, last, last_pos = [IGNORE] * length, {}, None, None
        for i, (op, b) in enumerate(zip(instr, bits)):
            if op == W:
                last, last_pos = b, 2 * i
            elif op == R:
                assert b == last, "the bit after a read is the last written bit"
                tgt[2 * i] = last
                sl[2 * i] = bucket("dist", 2 * i - last_pos)
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    "params", [{}, {"seq_len": 4}, {"seq_len": 1000, "p_write": 0.01, "p_read": 0.5}]
)
def test_flipflop_checker(params):
    task = make_task("flipflop", **params)
    check(task, flipflop_solver(task.seq_len), 2000 if task.seq_len <= 256 else 300)


def test_flipflop_write_rate():
    # p_write is what sets the dependency length: check the instruction frequencies.
    task = make_task("flipflop", seq_len=2002, p_write=0.05, p_read=0.2)
    inputs = task.generate(200, 0).inputs
    instr = inputs[:, 2:-2:2]  # the first and last instructions are fixed
    n = instr.numel()
    for tok, p in ((W, 0.05), (R, 0.2), (IGN, 0.75)):
        freq = (instr == tok).sum().item() / n
        assert abs(freq - p) < 5 * (p * (1 - p) / n) ** 0.5


# ---------------------------------------------------------------------------------- state tracking


def group_solver(group: str, order: int | None, degree: int | None, length: int, score: str):
    if group == "permutation":
        perms = list(itertools.permutations(range(degree)))  # documented id order
        index = {p: i for i, p in enumerate(perms)}

        def mul(a, b):  # (p q)(x) = p(q(x))
            p, q = perms[a], perms[b]
            return index[tuple(p[q[x]] for x in range(degree))]

        identity = index[tuple(range(degree))]
    else:
        m = 2 if group == "parity" else order

        def mul(a, b):
            return (a + b) % m

        identity = 0

    def solve(row):
        state, prods = identity, []
        for g in row:
            state = mul(state, g)
            prods.append(state)
        if score == "all":
            return prods, {t: bucket("pos", t) for t in range(length)}
        return [IGNORE] * (length - 1) + prods[-1:], {length - 1: "last"}

    return solve


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"group": "parity", "score": "last"},
        {"group": "cyclic", "order": 7, "seq_len": 100},
        {"group": "permutation", "degree": 3},
        {"group": "permutation", "degree": 5, "score": "last", "seq_len": 64},
        {"group": "permutation", "seq_len": 40},
    ],
)
def test_state_tracking_checker(params):
    task = make_task("state_tracking", **params)
    sizes = {"parity": 2, "cyclic": 7, "permutation": 6 if task.degree == 3 else 120}
    assert task.vocab_size == sizes[task.group]
    solver = group_solver(task.group, task.order, task.degree, task.seq_len, task.score)
    check(task, solver, 500)


# ---------------------------------------------------------------------- MQAR, Zoology's filler


def test_mqar_keys_in_filler_checker():
    # Zoology's filler can repeat a key without scoring it, so the queries are not derivable
    # from the inputs alone: check what is (every scored position holds a key and its value;
    # each key is scored once; all of [0, V) appears as filler, keys included).
    k, vocab = 6, 64
    task = make_task("mqar", vocab_size=vocab, seq_len=64, num_kv_pairs=k, keys_in_filler=True)
    data = task.generate(2000, 5)
    unscored_key_copies = 0
    for row, tgt in zip(data.inputs.tolist(), data.targets.tolist()):
        keys, vals = row[0 : 2 * k : 2], row[1 : 2 * k : 2]
        value_of = dict(zip(keys, vals))
        scored = [t for t in range(2 * k, 64) if tgt[t] != IGNORE]
        assert sorted(row[t] for t in scored) == sorted(keys)
        assert all(tgt[t] == value_of[row[t]] for t in scored)
        assert all(x == IGNORE for x in tgt[: 2 * k])
        unscored_key_copies += sum(
            1 for t in range(2 * k, 64) if tgt[t] == IGNORE and row[t] in value_of
        )
    # about (64 - 12 - 6) filler tokens per row, each a key with probability 6 / 64
    assert 0.5 * 2000 * 46 * 6 / 64 < unscored_key_copies < 1.5 * 2000 * 46 * 6 / 64


# ---------------------------------------------------------------------------------- MAD layout


def selective_copy_mad_solver(p: int, m: int):
    def solve(row):
        prefix = row[:p]
        where = [i for i, x in enumerate(prefix) if x != 0]
        data = [prefix[i] for i in where]
        assert len(data) == m and all(x >= 2 for x in data)
        assert where[-1] == p - 1, "the last data token is right before the separator"
        assert row[p] == 1 and row[p + 1 :] == [0] * m, "SEP, then blanks"
        tgt = [IGNORE] * (p + 1) + data
        sl = {p + 1 + j: bucket("dist", p + 1 + j - where[j]) for j in range(m)}
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    "params", [{}, {"prefix_len": 16, "num_tokens": 16, "vocab_size": 4}, {"num_tokens": 1}]
)
def test_selective_copy_mad_checker(params):
    task = make_task("selective_copy", layout="mad", **params)
    assert task.seq_len == task.prefix_len + 1 + task.num_tokens
    check(task, selective_copy_mad_solver(task.prefix_len, task.num_tokens), 1000)


# ---------------------------------------------------------------------------------- MAD recall


def recall_solver(task):
    vocab, z = task.vocab_size, task.noise_vocab_size
    half = (vocab - z) // 2
    kl, vl = task.key_len, task.value_len
    s = kl + vl
    slots = task.seq_len // s

    def solve(row):
        tgt, sl = [IGNORE] * task.seq_len, {}
        value_of, last_seen = {}, {}
        for i in range(slots):
            a = i * s
            slot = row[a : a + s]
            if slot[0] >= vocab - z:
                assert z > 0 and i < slots - 1, "noise never takes the probe's slot"
                assert all(x >= vocab - z for x in slot)
                continue
            key, val = tuple(slot[:kl]), tuple(slot[kl:])
            assert all(0 <= x < half for x in key) and len(set(key)) == kl
            assert all(half <= x < 2 * half for x in val) and len(set(val)) == vl
            if key in value_of:
                assert value_of[key] == val, "a key keeps its value"
                for j in range(vl):
                    tgt[a + kl - 1 + j] = val[j]
                    sl[a + kl - 1 + j] = bucket("dist", s * (i - last_seen[key]))
            else:
                assert i < slots - 1, "the last slot repeats a key"
                value_of[key] = val
            last_seen[key] = i
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("noisy_recall", {}),
        ("noisy_recall", {"frac_noise": 0.0, "seq_len": 64, "vocab_size": 200}),
        ("noisy_recall", {"frac_noise": 0.9, "seq_len": 512, "vocab_size": 144}),
        ("noisy_recall", {"seq_len": 4}),
        ("fuzzy_recall", {}),
        ("fuzzy_recall", {"key_len": 1, "value_len": 2, "vocab_size": 8, "seq_len": 99}),
        ("fuzzy_recall", {"key_len": 2, "value_len": 1, "noise_vocab_size": 4, "frac_noise": 0.5,
                          "vocab_size": 12, "seq_len": 300}),
    ],
)
def test_recall_checker(name, params):
    task = make_task(name, **params)
    check(task, recall_solver(task), 1000)


def test_noisy_recall_noise_rate_and_probe():
    task = make_task("noisy_recall", seq_len=256, frac_noise=0.4)
    inputs = task.generate(2000, 3).inputs
    slots = inputs[:, 0::2]
    noise = slots >= task.vocab_size - task.noise_vocab_size
    assert not noise[:, -1].any()
    # slots 0 .. N-2: one forced key-value slot, the others noise with probability 0.4
    rate = noise[:, :-1].float().mean().item()
    expected = 0.4 * (task.num_slots - 2) / (task.num_slots - 1)
    assert abs(rate - expected) < 0.01


def test_recall_info_bits_is_the_expected_number_of_keys():
    task = make_task("noisy_recall", seq_len=64, frac_noise=0.3)
    inputs = task.generate(4000, 1).inputs[:, :-2]  # slots 0 .. N-2
    keys = inputs[:, 0::2]
    distinct = [len({x for x in row if x < task.half}) for row in keys.tolist()]
    mean = sum(distinct) / len(distinct)
    assert abs(mean - task.expected_distinct_keys) < 0.05
    assert task.info_bits == pytest.approx(task.expected_distinct_keys * 3)  # log2(8 values)


# ---------------------------------------------------------------------------------- memorization


def memorization_map(vocab: int, map_seed: int) -> dict:
    """The documented map, rebuilt here: value(key) = H + permutation(H)[key]."""
    import numpy as np

    h = (vocab - 1) // 2
    perm = np.random.default_rng(map_seed).permutation(h).tolist()
    return {key: h + perm[key] for key in range(h)}


@pytest.mark.parametrize("params", [{}, {"vocab_size": 9, "seq_len": 64, "map_seed": 3}])
def test_memorization_checker(params):
    task = make_task("memorization", **params)
    value_of = memorization_map(task.vocab_size, task.map_seed)
    h = (task.vocab_size - 1) // 2
    assert sorted(value_of.values()) == list(range(h, 2 * h)), "a bijection onto the values"

    def solve(row):
        tgt, sl = [IGNORE] * task.seq_len, {}
        for t in range(0, task.seq_len, 2):
            assert 0 <= row[t] < h and row[t + 1] == task.vocab_size - 1
            tgt[t + 1] = value_of[row[t]]
            sl[t + 1] = "all"
        return tgt, sl

    for seed in (0, 1):  # the same map for every seed: it is in the weights, not the context
        check(task, solve, 500, seed=seed)
    other = make_task("memorization", **{**params, "map_seed": task.map_seed + 1})
    assert memorization_map(other.vocab_size, other.map_seed) != value_of
