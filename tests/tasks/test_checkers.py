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


# ----------------------------------- MQAR variants: forgetting, compositional, multi-pass


def mqar_variant_solver(task):
    k, u, c, passes = task.num_kv_pairs, task.num_updates, task.key_len, task.num_passes
    vocab, length, w = task.vocab_size, task.seq_len, task.key_len + 1
    part = vocab // w
    units = k + u
    ctx = passes * units * w

    def solve(row):
        pass_len = units * w
        first = row[:pass_len]
        for p in range(passes):  # every pass is the same text
            assert row[p * pass_len : (p + 1) * pass_len] == first
        latest, latest_pos, assigned = {}, {}, {}
        for t in range(0, ctx, w):  # reading in order: a later assignment replaces an earlier one
            key, value = tuple(row[t : t + c]), row[t + c]
            assert all(i * part <= x < (i + 1) * part and x > 0 for i, x in enumerate(key))
            assert c * part <= value < vocab
            latest[key], latest_pos[key] = value, t + c - 1
            assigned.setdefault(key, set()).add(value)
        assert len(latest) == k
        pools = [sorted({key[i] for key in latest}) for i in range(c)]
        assert len({len(p) for p in pools}) == 1 and len(pools[0]) ** c == k  # the whole grid
        values_in_pass = first[c::w]
        assert len(set(values_in_pass)) == units  # every value of a sequence is distinct
        reassigned = {key for key, vals in assigned.items() if len(vals) > 1}
        assert len(reassigned) == u
        key_tokens = {x for key in latest for x in key}

        tgt, sl, queried = [IGNORE] * length, {}, []
        for t in range(ctx, length):
            if row[t] in key_tokens and (t - ctx) % w == 0:
                key = tuple(row[t : t + c])
                assert key in latest
                end = t + c - 1
                tgt[end] = latest[key]
                prefix = "upd_dist" if key in reassigned else "dist"
                sl[end] = bucket(prefix, end - latest_pos[key])
                queried.append(key)
            elif not task.random_non_queries and not any(t - j in sl for j in range(c)):
                assert row[t] == 0  # filler is token 0
        assert sorted(queried) == sorted(latest), "every key is queried exactly once"
        # filler never holds a key token (the queries are the only key tokens after the context)
        n_key_tokens = sum(1 for x in row[ctx:] if x in key_tokens)
        assert n_key_tokens == c * k
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    "params",
    [
        {"vocab_size": 64, "seq_len": 64, "num_kv_pairs": 4, "num_updates": 4},
        {"vocab_size": 64, "seq_len": 96, "num_kv_pairs": 8, "num_updates": 3, "power_a": 1.0},
        {"vocab_size": 40, "seq_len": 80, "num_kv_pairs": 12, "num_updates": 7},
        {"vocab_size": 150, "seq_len": 61, "num_kv_pairs": 9, "key_len": 2},
        {"vocab_size": 64, "seq_len": 128, "num_kv_pairs": 8, "key_len": 3, "power_a": 0.5},
        {"vocab_size": 256, "seq_len": 128, "num_kv_pairs": 8, "num_passes": 2},
        {"vocab_size": 256, "seq_len": 200, "num_kv_pairs": 9, "num_updates": 2, "key_len": 2,
         "num_passes": 3, "random_non_queries": False},
        {"vocab_size": 61, "seq_len": 37, "num_kv_pairs": 1, "num_updates": 1, "num_passes": 2},
    ],
)
def test_mqar_variant_checker(params):
    task = make_task("mqar", **params)
    check(task, mqar_variant_solver(task), 800)


def test_forgetting_answers_the_new_value_and_every_bucket_fills():
    task = make_task("mqar", vocab_size=64, seq_len=96, num_kv_pairs=8, num_updates=3)
    data = task.generate(3000, 1)
    assert set(data.slices) == {name for name, _, _ in task.buckets()}
    assert any(name.startswith("upd_dist") for name in data.slices)
    for name, mask in data.slices.items():
        assert mask.any(), name
    # about 3 of 8 scored answers are reassigned values, which never equal the first value
    upd = sum(int(m.sum()) for n, m in data.slices.items() if n.startswith("upd_"))
    assert upd == 3 * 3000


@pytest.mark.parametrize(
    "params, field",
    [
        ({"num_kv_pairs": 4, "num_updates": 5}, "num_updates"),
        ({"num_kv_pairs": 8, "key_len": 2}, "num_kv_pairs"),
        ({"vocab_size": 14, "seq_len": 64, "num_kv_pairs": 4, "num_updates": 4}, "vocab_size"),
        ({"vocab_size": 64, "seq_len": 46, "num_kv_pairs": 8, "num_passes": 2}, "num_kv_pairs"),
        ({"num_passes": 0}, "num_passes"),
        ({"key_len": 0}, "key_len"),
        ({"num_updates": -1}, "num_updates"),
    ],
)
def test_mqar_variant_validation(params, field):
    with pytest.raises(ValueError, match=field) as err:
        make_task("mqar", **params)
    assert "\n" not in str(err.value)


def test_plain_mqar_is_the_default_of_every_option():
    a = make_task("mqar", seq_len=64, num_kv_pairs=8, vocab_size=256).generate(50, 3)
    b = make_task("mqar", seq_len=64, num_kv_pairs=8, vocab_size=256, num_updates=0, key_len=1,
                  num_passes=1).generate(50, 3)
    assert a.content_hash == b.content_hash


# ------------------------------------------- n-gram lookup and phonebook (Jelassi et al.)

LOOKUP_PAD, LOOKUP_SEP = 0, 1


def ngram_solver(task):
    n, k, length = task.ngram_len, task.answer_len, task.seq_len

    def solve(row):
        if task.variant == "suffix":
            m = row.index(LOOKUP_SEP)
            ctx, query = row[:m], row[m + 1 : m + 1 + n]
            assert row[m + 1 + n] == LOOKUP_SEP
            first_scored = m + n + 1
        else:
            query = row[:n]
            assert row[n] == LOOKUP_SEP
            m = row.index(LOOKUP_SEP, n + 1) - n - 1
            ctx = row[n + 1 : n + 1 + m]
            first_scored = n + 1 + m
        assert task.min_context_len <= m <= task.context_len
        assert all(2 <= x < task.vocab_size for x in ctx + query)
        hits = [i for i in range(m - n + 1) if ctx[i : i + n] == query]
        assert len(hits) == 1, "the query n-gram occurs once in the context"
        i = hits[0]
        answer = ctx[i + n : i + n + k]
        assert len(answer) == k
        assert row[first_scored + 1 : first_scored + k] == answer[:-1]
        assert all(x == LOOKUP_PAD for x in row[first_scored + k :])
        tgt, sl = [IGNORE] * length, {}
        for j in range(k):
            t = first_scored + j
            tgt[t] = answer[j]
            source = i + n + j + (0 if task.variant == "suffix" else n + 1)
            sl[t] = bucket("dist", t - source)
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"variant": "prefix"},
        {"vocab_size": 6, "context_len": 40, "min_context_len": 9, "ngram_len": 4, "answer_len": 5},
        {"vocab_size": 6, "context_len": 40, "min_context_len": 9, "ngram_len": 4, "answer_len": 5,
         "variant": "prefix"},
        {"vocab_size": 100, "context_len": 40, "min_context_len": 2, "ngram_len": 1,
         "answer_len": 1, "variant": "prefix"},
        {"vocab_size": 100, "context_len": 7, "ngram_len": 2, "answer_len": 5},
    ],
)
def test_ngram_lookup_checker(params):
    task = make_task("ngram_lookup", **params)
    check(task, ngram_solver(task), 600)


def phonebook_solver(task):
    nl, dl, w, length = task.name_len, task.number_len, task.entry_len, task.seq_len
    first_letter = task.FIRST_LETTER

    def solve(row):
        q = row.index(1)  # QUERY: no name letter or digit is 1
        assert q % w == 0
        e = q // w
        assert task.min_entries <= e <= task.num_entries
        book = {}
        for j in range(e):
            name, number = tuple(row[j * w : j * w + nl]), row[j * w + nl : (j + 1) * w]
            assert all(x >= first_letter for x in name) and all(2 <= d < 12 for d in number)
            assert name not in book, "names are distinct in a phonebook"
            book[name] = (j, number)
        j, number = book[tuple(row[q + 1 : q + 1 + nl])]
        assert row[q + 1 + nl : q + nl + dl] == number[:-1]
        assert all(x == LOOKUP_PAD for x in row[q + nl + dl :])
        tgt, sl = [IGNORE] * length, {}
        for d in range(dl):
            t = q + nl + d
            tgt[t] = number[d]
            sl[t] = bucket("dist", (q + nl) - (j * w + nl - 1))
        return tgt, sl

    return solve


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"num_entries": 40, "min_entries": 1, "name_len": 2, "number_len": 1, "vocab_size": 21},
        {"num_entries": 5, "name_len": 1, "number_len": 6, "vocab_size": 22},
    ],
)
def test_phonebook_checker(params):
    task = make_task("phonebook", **params)
    check(task, phonebook_solver(task), 600)


def test_lookup_sizes_vary_when_asked():
    data = make_task("ngram_lookup", context_len=30, min_context_len=10).generate(400, 2)
    first_sep = (data.inputs == LOOKUP_SEP).int().argmax(dim=1)
    assert first_sep.min() == 10 and first_sep.max() == 30
    book = make_task("phonebook", num_entries=8, min_entries=2).generate(400, 2)
    queries = (book.inputs == 1).int().argmax(dim=1) // 7
    assert queries.min() == 2 and queries.max() == 8


@pytest.mark.parametrize(
    "name, params, field",
    [
        ("ngram_lookup", {"context_len": 6, "ngram_len": 3, "answer_len": 4}, "ngram_len"),
        ("ngram_lookup", {"context_len": 64, "min_context_len": 5}, "ngram_len"),
        ("ngram_lookup", {"context_len": 64, "min_context_len": 65}, "min_context_len"),
        ("ngram_lookup", {"vocab_size": 4, "ngram_len": 2}, "ngram_len"),
        ("ngram_lookup", {"variant": "middle"}, "variant"),
        ("phonebook", {"vocab_size": 14, "name_len": 2, "num_entries": 5}, "num_entries"),
        ("phonebook", {"num_entries": 4, "min_entries": 5}, "min_entries"),
        ("phonebook", {"name_len": 20}, "name_len"),
        ("phonebook", {"vocab_size": 12}, "vocab_size"),
    ],
)
def test_lookup_validation(name, params, field):
    with pytest.raises(ValueError, match=field) as err:
        make_task(name, **params)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- fuzzy recall in MAD's layout


def mad_fuzzy_solver(task):
    """Parse the runs: PAD in front, then slots of a key run (key tokens) and a value run (value
    tokens), or a run of noise tokens; a key presented before is asked, its value is what it was
    first given (the probe's key, wherever it first shows, always carries the probe's value)."""
    w = task.vocab_size - 1 - task.noise_vocab_size
    half, pad, length = w // 2, task.vocab_size - 1, task.seq_len

    def kind(x):
        return "key" if x < half else "value" if x < w else "noise" if x < pad else "pad"

    def solve(row):
        t = 0
        while row[t] == pad:
            t += 1
        assert t >= 1 or len(row) < length
        runs = []  # (kind, start, tokens)
        for i in range(t, length):
            k = kind(row[i])
            assert k != "pad", "padding only in front"
            if runs and runs[-1][0] == k:
                runs[-1][2].append(row[i])
            else:
                runs.append((k, i, [row[i]]))
        tgt, sl = [IGNORE] * length, {}
        value_of, last_start = {}, {}
        slots = []
        i = 0
        while i < len(runs):
            k, start, toks = runs[i]
            if k == "noise":
                i += 1
                continue
            assert k == "key"
            # a value run follows (the inputs drop the string's last token: the final value may
            # have lost its only token)
            has_value = i + 1 < len(runs) and runs[i + 1][0] == "value"
            assert has_value or i == len(runs) - 1
            slots.append((tuple(toks), start + len(toks), runs[i + 1][2] if has_value else [],
                          start))
            i += 2
        for n_slot, (key, vstart, vals, kstart) in enumerate(slots):
            last = n_slot == len(slots) - 1
            assert len(set(key)) == len(key) and len(set(vals)) == len(vals)
            assert 1 <= len(key) <= task.key_len
            if not task.variable_keys:
                assert len(key) == task.key_len
            if key in value_of:
                full = value_of[key]
                assert tuple(vals) == full[: len(vals)]  # the last value loses its last token
                if not last:
                    assert len(vals) == len(full)
                for j, v in enumerate(full):
                    pos = vstart + j - 1
                    tgt[pos] = v
                    sl[pos] = bucket("dist", kstart - last_start[key])
            elif not last:
                value_of[key] = tuple(vals)
            # else: the final probe's key was never presented (MAD's probe insertion index lay
            # past the last slot): nothing can be known, nothing is scored
            last_start[key] = kstart
        return tgt, sl

    return solve


@pytest.mark.parametrize("params", [
    {"layout": "mad", "seq_len": 128},
    {"layout": "mad", "seq_len": 128, "variable_keys": True},
    {"layout": "mad", "seq_len": 64, "vocab_size": 12, "key_len": 2, "value_len": 4,
     "noise_vocab_size": 3, "frac_noise": 0.3, "variable_keys": True},
    {"layout": "mad", "seq_len": 13, "vocab_size": 9, "key_len": 1, "value_len": 1},
])
def test_fuzzy_recall_mad_layout_checker(params):
    task = make_task("fuzzy_recall", **params)
    check(task, mad_fuzzy_solver(task), 600)


@pytest.mark.parametrize("name, params", [
    ("noisy_recall", {"score": "next_token"}),
    ("fuzzy_recall", {"score": "next_token"}),
    ("fuzzy_recall", {"score": "next_token", "layout": "mad", "seq_len": 128,
                      "variable_keys": True}),
])
def test_recall_next_token_scoring(name, params):
    # every position's target is the next token of the string; the repeats keep their slices
    task = make_task(name, **params)
    repeats = make_task(name, **{**params, "score": "repeats"}).generate(300, 4)
    data = task.generate(300, 4)
    assert (data.inputs == repeats.inputs).all()
    assert (data.targets[:, :-1] == data.inputs[:, 1:]).all()
    assert (data.targets[:, -1] == repeats.targets[:, -1]).all()
    for name_, mask in repeats.slices.items():
        assert (data.slices[name_] == mask).all()
    assert (data.slices["other"] == (data.scored & ~repeats.scored)).all()


def test_mad_fuzzy_training_keys_are_mostly_short():
    # MAD's training split draws key lengths 1..3: most scored repeats have short keys
    task = make_task("fuzzy_recall", layout="mad", seq_len=128, variable_keys=True)
    data = task.generate(400, 0)
    short = total = 0
    for row, tgt in zip(data.inputs.tolist(), data.targets.tolist()):
        for t in range(1, len(row)):
            if tgt[t] != IGNORE and row[t] < 7:  # the first value token of a repeat
                k = 0
                while t - k >= 0 and row[t - k] < 7:
                    k += 1
                total += 1
                short += k < 3
    assert 0.8 < short / total < 0.99


@pytest.mark.parametrize("params, field", [
    ({"variable_keys": True}, "variable_keys"),
    ({"layout": "mad", "seq_len": 12}, "seq_len"),
    ({"layout": "zoology"}, "layout"),
    ({"score": "all"}, "score"),
])
def test_fuzzy_recall_layout_validation(params, field):
    with pytest.raises(ValueError, match=field) as err:
        make_task("fuzzy_recall", **params)
    assert "\n" not in str(err.value)
