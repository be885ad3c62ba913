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

power_a is bounded so that the gap law is computable in float64: power_a * log2(S) <= 1000
(S the number of query slots; beyond it (g + 1) ** (power_a - 1) overflows) and power_a >= 1e-300
(below it the products are subnormal floats).
"""

from __future__ import annotations

import dataclasses
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
        k, half = self.num_kv_pairs, self.vocab_size // 2
        if k > half - 1 or k > self.vocab_size - half:
            raise ValueError(
                f"vocab_size={self.vocab_size} is too small for num_kv_pairs={k}: keys come from "
                f"[1, vocab_size // 2) and values from [vocab_size // 2, vocab_size), each needs "
                f"num_kv_pairs distinct tokens (vocab_size >= {2 * k + 2})"
            )
        if 4 * k > self.seq_len:
            raise ValueError(
                f"num_kv_pairs={k} is too large for seq_len={self.seq_len}: the key-value region "
                f"(2 * num_kv_pairs) plus one query slot every 2 tokens for each key needs "
                f"seq_len >= 4 * num_kv_pairs = {4 * k}"
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
    def num_query_slots(self) -> int:
        return (self.seq_len - 2 * self.num_kv_pairs) // 2

    @property
    def answer_alphabet(self) -> int:
        """A scored token is a value: one of the V - V // 2 tokens of [V // 2, V)."""
        return self.vocab_size - self.vocab_size // 2

    @property
    def info_bits(self) -> float:
        # The values of the K keys, given the keys: K distinct values out of V - V // 2.
        return log2_falling_factorial(self.vocab_size - self.vocab_size // 2, self.num_kv_pairs)

    def buckets(self) -> list[tuple[str, int, int]]:
        # key j at 2j, its query at 2K + 2g with 0 <= g < S: distance in [2, 2K + 2S - 2]
        k, s = self.num_kv_pairs, self.num_query_slots
        return log2_buckets("dist", 2 * k + 2 * s - 2, min_value=2)

    def gap_probabilities(self) -> np.ndarray:
        g = np.arange(1, self.num_query_slots + 1, dtype=np.float64)
        p = self.power_a * g ** (self.power_a - 1)
        return p / p.sum()

    # ------------------------------------------------------------------ generation
    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, k, length = num_examples, self.num_kv_pairs, self.seq_len
        half, ctx = self.vocab_size // 2, 2 * self.num_kv_pairs
        keys = sample_distinct(rng, n, k, 1, half)
        values = sample_distinct(rng, n, k, half, self.vocab_size)

        # Weighted sampling without replacement, vectorized: exponential races. The slot whose
        # Exp(1) / p is smallest is the first draw, and so on (same law as successive draws).
        race = rng.standard_exponential((n, self.num_query_slots)) / self.gap_probabilities()
        if k < self.num_query_slots:
            first = np.argpartition(race, k - 1, axis=1)[:, :k]
        else:
            first = np.broadcast_to(np.arange(k), (n, k))
        order = np.argsort(np.take_along_axis(race, first, axis=1), axis=1)
        gaps = np.take_along_axis(first, order, axis=1)  # gap of the j-th key
        qpos = ctx + 2 * gaps

        inputs = np.empty((n, length), dtype=np.int64)
        inputs[:, 0:ctx:2] = keys
        inputs[:, 1:ctx:2] = values
        if self.keys_in_filler:
            inputs[:, ctx:] = rng.integers(0, self.vocab_size, size=(n, length - ctx))
        elif self.random_non_queries:
            sample_excluding(rng, keys, length - ctx, self.vocab_size, out=inputs[:, ctx:])
        else:
            inputs[:, ctx:] = 0
        np.put_along_axis(inputs, qpos, keys, axis=1)
        targets = np.full((n, length), IGNORE_INDEX, dtype=np.int64)
        np.put_along_axis(targets, qpos, values, axis=1)

        dist = qpos - 2 * np.arange(k)  # from the key's position to its query
        slices = bucket_slices(self.buckets(), (n, length), qpos, dist)
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)
