"""Multi-query associative recall (MQAR), with Zoology's semantics (Arora et al., 2023).

Layout of one sequence (K = num_kv_pairs, V = vocab_size, L = seq_len, H = V // 2):

    positions 0 .. 2K-1   key, value, key, value, ...   keys in [1, H), values in [H, V)
    positions 2K .. L-1   the query region: every key once, at an even offset 2 g from 2K,
                          all other positions are filler

Keys are distinct within a sequence, and so are values. The query gap g of the k-th key (in
key-value order) is the k-th draw without replacement from {0 .. S-1}, S = (L - 2K) // 2, with
probability proportional to power_a * (g + 1) ** (power_a - 1), as in Zoology. The target at a
query's position is its key's value (the token that follows the query); nothing else is scored.

Filler is token 0 when random_non_queries is False; when it is True (the default), filler is
drawn uniformly from [0, V) minus this sequence's keys. Zoology draws filler from all of [0, V),
so a filler token can equal a key (an unscored distractor); excluding the keys here keeps the
scored positions derivable from the inputs: in the query region, a token is a query exactly when
it is one of the sequence's keys. keys_in_filler=True gives Zoology's filler (all of [0, V)).

Three options give Zoology's later probes, each 0/1 by default (plain MQAR) and combinable:

    num_updates   forgetting MQAR: after the K pairs, U of the keys (distinct, in random order)
                  are assigned a new value; a query answers its key's latest value
    key_len       compositional MQAR (key_len = 2): each key is key_len tokens, one from each of
                  key_len pools, the keys the whole grid of g ** key_len combinations of g tokens
                  per pool, in random order, so no single token determines the value
    num_passes    multi-pass ("just read twice"): the context (pairs and updates) is written
                  num_passes times before the query region

With key_len = c the vocabulary is cut in c + 1 parts of P = V // (c + 1) tokens: key token i
from [i P, (i + 1) P) (token 0 excluded), values from [c P, V). A context unit is c key tokens
then the value, and so is a query slot (the value's place is filler): S = (L - ctx) // (c + 1)
slots, and the target sits on the query's last key token.

power_a is bounded so that the gap law is computable in float64: power_a * log2(S) <= 1000
(S the number of query slots; beyond it (g + 1) ** (power_a - 1) overflows) and power_a >= 1e-300
(below it the products are subnormal floats).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import torch

from .base import (
    IGNORE_INDEX,
    Task,
    TaskData,
    bucket_slices,
    check_bool,
    check_float,
    check_int,
    log2_buckets,
    log2_falling_factorial,
    sample_distinct,
    sample_excluding,
)


@dataclasses.dataclass(frozen=True)
class MQAR(Task):
    vocab_size: int = 8192
    seq_len: int = 256
    num_kv_pairs: int = 16
    power_a: float = 0.01
    random_non_queries: bool = True
    keys_in_filler: bool = False
    num_updates: int = 0
    key_len: int = 1
    num_passes: int = 1

    name = "mqar"
    version = 1
    TEST_PARAMS = {"seq_len": 64, "num_kv_pairs": 8, "vocab_size": 256}
    POWER_A_MIN = 1e-300
    POWER_A_LOG2_MAX = 1000.0  # power_a * log2(num_query_slots) <= this

    def __post_init__(self) -> None:
        check_int("num_kv_pairs", self.num_kv_pairs, minimum=1)
        check_int("vocab_size", self.vocab_size, minimum=4)
        check_int("seq_len", self.seq_len, minimum=4)
        check_float("power_a", self.power_a, 0.0, float("inf"), low_open=True, high_open=True)
        check_bool("random_non_queries", self.random_non_queries)
        check_bool("keys_in_filler", self.keys_in_filler)
        self._set("power_a", float(self.power_a))
        self._set("random_non_queries", bool(self.random_non_queries))
        self._set("keys_in_filler", bool(self.keys_in_filler))
        if self.keys_in_filler and not self.random_non_queries:
            raise ValueError(
                "keys_in_filler=True applies to random filler only (random_non_queries=True); "
                "with random_non_queries=False the filler is token 0"
            )
        check_int("num_updates", self.num_updates, minimum=0)
        check_int("key_len", self.key_len, minimum=1)
        check_int("num_passes", self.num_passes, minimum=1)
        k, u, c = self.num_kv_pairs, self.num_updates, self.key_len
        if u > k:
            raise ValueError(
                f"num_updates={u} exceeds num_kv_pairs={k}: each update reassigns one of the "
                f"num_kv_pairs keys (need num_updates <= {k})"
            )
        g = self.grid_size
        if g**c != k:
            raise ValueError(
                f"num_kv_pairs={k} is not g ** {c} for a whole g (key_len={c}): the keys are the "
                f"grid of every combination of g tokens per key position (num_kv_pairs = g ** "
                f"{c}, e.g. {g**c} or {(g + 1) ** c})"
            )
        part, vocab = self.part_size, self.vocab_size
        if g > part - 1 or k + u > self.answer_alphabet:
            need = self._min_vocab()
            raise ValueError(
                f"vocab_size={vocab} is too small for num_kv_pairs={k} (num_updates={u}, "
                f"key_len={c}): key token i comes from [i * P, (i + 1) * P) with P = vocab_size "
                f"// {c + 1} (token 0 excluded) and needs {g} distinct tokens, the values come "
                f"from [{c} * P, vocab_size) and need num_kv_pairs + num_updates distinct tokens "
                f"(vocab_size >= {need})"
            )
        if self.num_query_slots < k:
            w = c + 1
            need = self.context_len + w * k
            raise ValueError(
                f"num_kv_pairs={k} is too large for seq_len={self.seq_len}: the context "
                f"({self.num_passes} pass(es) of num_kv_pairs + num_updates units of {w} tokens) "
                f"plus one query slot of {w} tokens for each key needs seq_len >= {need}"
            )
        self._check_power_a()

    def _check_power_a(self) -> None:
        a, slots = self.power_a, self.num_query_slots
        if a < self.POWER_A_MIN:
            raise ValueError(
                f"power_a={a} is below {self.POWER_A_MIN}: the gap probabilities "
                "power_a * (g + 1) ** (power_a - 1) would be subnormal floats"
            )
        log2_slots = math.log2(slots) if slots > 1 else 0.0
        if a * log2_slots > self.POWER_A_LOG2_MAX:
            raise ValueError(
                f"power_a={a} is too large for seq_len={self.seq_len} and num_kv_pairs="
                f"{self.num_kv_pairs}: (g + 1) ** (power_a - 1) over the {slots} query slots "
                f"overflows float64 (need power_a * log2(num_query_slots) <= "
                f"{self.POWER_A_LOG2_MAX:g}, i.e. power_a <= "
                f"{self.POWER_A_LOG2_MAX / log2_slots:.4g})"
            )

    # ------------------------------------------------------------------ layout
    @property
    def grid_size(self) -> int:
        """g: tokens per key position (num_kv_pairs = g ** key_len)."""
        g = max(1, round(self.num_kv_pairs ** (1 / self.key_len)))
        while g**self.key_len > self.num_kv_pairs:
            g -= 1
        while (g + 1) ** self.key_len <= self.num_kv_pairs:
            g += 1
        return g

    @property
    def part_size(self) -> int:
        """P = V // (key_len + 1): the size of each key token's pool."""
        return self.vocab_size // (self.key_len + 1)

    def _min_vocab(self) -> int:
        v = (self.key_len + 1) * (self.grid_size + 1)
        while v // (self.key_len + 1) - 1 < self.grid_size or (
            v - self.key_len * (v // (self.key_len + 1)) < self.num_kv_pairs + self.num_updates
        ):
            v += 1
        return v

    @property
    def context_len(self) -> int:
        """Tokens before the query region: num_passes copies of (K + U) units of key_len + 1."""
        return self.num_passes * (self.num_kv_pairs + self.num_updates) * (self.key_len + 1)

    @property
    def num_query_slots(self) -> int:
        return (self.seq_len - self.context_len) // (self.key_len + 1)

    @property
    def answer_alphabet(self) -> int:
        """A scored token is a value: one of the V - key_len * P tokens of [key_len * P, V)
        (V - V // 2 for plain MQAR)."""
        return self.vocab_size - self.key_len * self.part_size

    @property
    def info_bits(self) -> float:
        # The latest values of the K keys, given the keys: K distinct values (updates included:
        # every value of a sequence is distinct) out of the answer alphabet.
        return log2_falling_factorial(self.answer_alphabet, self.num_kv_pairs)

    def buckets(self) -> list[tuple[str, int, int]]:
        # Distance from the last key token of the key's latest unit (unit j of the last pass) to
        # that of its query in slot q: w (K + U - j + q), with j < K for a key never reassigned
        # and K <= j < K + U for a reassigned one, 0 <= q < S.
        k, u, s, w = self.num_kv_pairs, self.num_updates, self.num_query_slots, self.key_len + 1
        kept = log2_buckets("dist", w * (k + u + s - 1), min_value=w * (u + 1)) if u < k else []
        updated = log2_buckets("upd_dist", w * (u + s - 1), min_value=w) if u else []
        return kept + updated

    def gap_probabilities(self) -> np.ndarray:
        g = np.arange(1, self.num_query_slots + 1, dtype=np.float64)
        p = self.power_a * g ** (self.power_a - 1)
        return p / p.sum()

    # ------------------------------------------------------------------ generation
    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, k, u, c, length = (num_examples, self.num_kv_pairs, self.num_updates, self.key_len,
                              self.seq_len)
        w, part, ctx = c + 1, self.part_size, self.context_len
        keys, key_tokens = self._draw_keys(rng, n)  # [n, k, c]; the distinct tokens [n, g c]
        values = sample_distinct(rng, n, k + u, c * part, self.vocab_size)
        updated = sample_distinct(rng, n, u, 0, k)  # which keys are reassigned, in order

        # Weighted sampling without replacement, vectorized: exponential races. The slot whose
        # Exp(1) / p is smallest is the first draw, and so on (same law as successive draws).
        race = rng.standard_exponential((n, self.num_query_slots)) / self.gap_probabilities()
        if k < self.num_query_slots:
            first = np.argpartition(race, k - 1, axis=1)[:, :k]
        else:
            first = np.broadcast_to(np.arange(k), (n, k))
        order = np.argsort(np.take_along_axis(race, first, axis=1), axis=1)
        gaps = np.take_along_axis(first, order, axis=1)  # gap of the j-th key
        qpos = ctx + w * gaps + c - 1  # the query's last key token: where its value is scored

        units = np.empty((n, k + u, w), dtype=np.int64)
        units[:, :k, :c] = keys
        units[:, k:, :c] = np.take_along_axis(keys, updated[:, :, None], axis=1)
        units[:, :, c] = values
        latest_unit = np.broadcast_to(np.arange(k), (n, k)).copy()
        np.put_along_axis(latest_unit, updated, k + np.arange(u), axis=1)
        answers = np.take_along_axis(values, latest_unit, axis=1)

        inputs = np.empty((n, length), dtype=np.int64)
        inputs[:, :ctx] = np.tile(units.reshape(n, -1), (1, self.num_passes))
        if self.keys_in_filler:
            inputs[:, ctx:] = rng.integers(0, self.vocab_size, size=(n, length - ctx))
        elif self.random_non_queries:
            sample_excluding(rng, key_tokens, length - ctx, self.vocab_size, out=inputs[:, ctx:])
        else:
            inputs[:, ctx:] = 0
        for i in range(c):
            np.put_along_axis(inputs, qpos - (c - 1 - i), keys[:, :, i], axis=1)
        targets = np.full((n, length), IGNORE_INDEX, dtype=np.int64)
        np.put_along_axis(targets, qpos, answers, axis=1)

        dist = w * (k + u - latest_unit + gaps)
        if u == 0:
            slices = bucket_slices(self.buckets(), (n, length), qpos, dist)
        else:
            is_updated = latest_unit >= k
            slices = {}
            for mask, prefix, count in ((~is_updated, "dist", k - u), (is_updated, "upd_dist", u)):
                if count:
                    bks = [b for b in self.buckets() if b[0].startswith(prefix)]
                    slices.update(bucket_slices(
                        bks, (n, length), qpos[mask].reshape(n, count), dist[mask].reshape(n, count)
                    ))
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)

    def _draw_keys(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The keys [n, K, key_len] in context order, and each row's distinct key tokens."""
        k, c, part = self.num_kv_pairs, self.key_len, self.part_size
        if c == 1:
            keys = sample_distinct(rng, n, k, 1, part)
            return keys[:, :, None], keys
        g = self.grid_size
        pools = [sample_distinct(rng, n, g, max(1, i * part), (i + 1) * part) for i in range(c)]
        grid = np.array(list(itertools.product(range(g), repeat=c)))  # [K, c]
        keys = np.stack([pools[i][:, grid[:, i]] for i in range(c)], axis=2)
        order = np.argsort(rng.random((n, k)), axis=1)  # the grid in random order
        return np.take_along_axis(keys, order[:, :, None], axis=1), np.concatenate(pools, axis=1)
