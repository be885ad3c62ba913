"""Independent checkers of the recall variants (docs/tasks.md): forgetting, compositional and
multi-pass MQAR. Each solver reads only `inputs` and the documented layout and derives every
target and slice in plain Python; the forgetting solver takes each key's latest assignment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test_checkers (--import-mode=importlib)
from test_checkers import IGNORE, bucket, check  # noqa: E402

from tasks import make_task  # noqa: E402


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
