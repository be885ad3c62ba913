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
