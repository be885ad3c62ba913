"""MAD's in-context recall families (Poli et al., 2024): `noisy_recall` and `fuzzy_recall`.

A sequence is N = seq_len / S slots of S = key_len + value_len tokens (noisy_recall: key_len =
value_len = 1). Tokens: with V = vocab_size, Z = noise_vocab_size and H = (V - Z) // 2, key
tokens are [0, H), value tokens [H, 2H), noise tokens [V - Z, V).

    slot i < N - 1   with probability frac_noise: S noise tokens (i.i.d. uniform); else a
                     key-value pair: a key (key_len distinct key tokens, uniform), then its value
    slot N - 1       the probe: a key presented earlier (uniform over the distinct keys of slots
                     0 .. N-2), then its value

One uniformly chosen slot among 0 .. N-2 is never noise, so the probe always has a key. A key's
value (value_len distinct value tokens, uniform) is drawn where the key first appears and is the
same at each repeat. Scoring is next-token prediction of the value tokens of every repeat (a
slot whose key appeared in an earlier slot, the probe included): the target at the position
before each of its value tokens is that token. Nothing else is scored: a first occurrence's
value cannot be known.

This is MAD's multi-query variant (`multi_query=True`, the setting of its paper's configs).
Differences: glmix has no copy-prefix or pad token; fuzzy_recall's keys and values have fixed
lengths (MAD draws each key's length in 1 .. k_motif_size and each value's in 1 ..
v_motif_size), so seq_len must be a multiple of key_len + value_len; MAD's fuzzy probe also
appears once at a random earlier place, glmix's probe key is any key presented earlier.

fuzzy_recall with layout=mad is MAD's own layout instead (variable lengths, front padding, a pad
token; tasks/recall_mad.py), and score=next_token (both tasks) makes every next token a target,
as MAD's training split does.
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
    check_bool,
    check_choice,
    check_float,
    check_int,
    log2_buckets,
    log2_falling_factorial,
    masked_bucket_slices,
    sample_distinct,
)
from .recall_mad import mad_fuzzy_rows


class _Recall(Task):
    """The shared generator; subclasses are the frozen dataclasses with the fields
    vocab_size, seq_len, noise_vocab_size, frac_noise (and key_len, value_len)."""

    key_len = 1
    value_len = 1
    layout = "glmix"
    variable_keys = False
    BYTES_PER_TOKEN = 96
    SCORES = ("repeats", "next_token")

    def _validate(self) -> None:
        check_choice("score", self.score, self.SCORES)
        check_choice("layout", self.layout, ("glmix", "mad"))
        check_bool("variable_keys", self.variable_keys)
        self._set("variable_keys", bool(self.variable_keys))
        if self.variable_keys and self.layout != "mad":
            raise ValueError("variable_keys=True applies to layout=mad only (MAD's training "
                             "keys of 1 .. key_len tokens)")
        check_int("key_len", self.key_len, minimum=1)
        check_int("value_len", self.value_len, minimum=1)
        check_int("vocab_size", self.vocab_size, minimum=2)
        check_int("noise_vocab_size", self.noise_vocab_size, minimum=0)
        check_int("seq_len", self.seq_len, minimum=2)
        check_float("frac_noise", self.frac_noise, 0.0, 1.0, low_open=False, high_open=True)
        self._set("frac_noise", float(self.frac_noise))
        if self.frac_noise > 0 and self.noise_vocab_size == 0:
            raise ValueError(
                f"frac_noise={self.frac_noise} needs noise tokens: noise_vocab_size must be >= 1"
            )
        longest = max(self.key_len, self.value_len)
        if self.half < longest:
            raise ValueError(
                f"vocab_size={self.vocab_size} with noise_vocab_size={self.noise_vocab_size} "
                f"leaves (vocab_size - noise_vocab_size) // 2 = {self.half} key tokens and as "
                f"many value tokens; a key or value of {longest} distinct tokens needs "
                f"vocab_size >= noise_vocab_size + {2 * longest}"
            )
        if self.key_len * math.log2(self.half) > 62:
            raise ValueError(
                f"key_len={self.key_len} is too long for {self.half} key tokens: "
                "key ids (half ** key_len) must fit in 62 bits"
            )
        s = self.slot_len
        if self.layout == "mad":
            if self.seq_len <= 2 * s:
                raise ValueError(
                    f"seq_len={self.seq_len} is too short for layout=mad: the probe (up to "
                    f"key_len + value_len = {s} tokens) is inserted before index seq_len - 2 * "
                    f"(its length) (need seq_len > {2 * s})"
                )
        elif self.seq_len % s or self.seq_len < 2 * s:
            what = "key_len + value_len" if s > 2 else "2 (key, value)"
            raise ValueError(
                f"seq_len={self.seq_len} must be a multiple of {what} = {s} and at least "
                f"{2 * s} (a key-value pair and the probe)"
            )

    @property
    def half(self) -> int:
        """Key tokens (and, for layout=glmix, value tokens): MAD's layout keeps V - 1 as PAD."""
        return (self.vocab_size - self.noise_vocab_size - (self.layout == "mad")) // 2

    @property
    def num_values(self) -> int:
        """Value tokens: H, or W - H with layout=mad (W = V - 1 - Z: 8 values beside 7 keys
        at MAD's V = 16)."""
        if self.layout == "mad":
            return self.vocab_size - 1 - self.noise_vocab_size - self.half
        return self.half

    @property
    def slot_len(self) -> int:
        return self.key_len + self.value_len

    @property
    def num_slots(self) -> int:
        return self.seq_len // self.slot_len

    @property
    def num_keys(self) -> int:
        """Possible keys: ordered key_len-tuples of distinct key tokens."""
        return math.perm(self.half, self.key_len)

    @property
    def expected_distinct_keys(self) -> float:
        """E[distinct keys in slots 0 .. N-2]: one forced key-value slot and N - 2 others, each
        a key-value pair with probability 1 - frac_noise, each key uniform over num_keys."""
        k, q = self.num_keys, 1.0 - self.frac_noise
        miss = (1 - 1 / k) * (1 - q / k) ** (self.num_slots - 2)
        return k * (1 - miss)

    @property
    def info_bits(self) -> float:
        # the value of every key presented so far (any of them can repeat), in expectation
        return self.expected_distinct_keys * log2_falling_factorial(self.num_values, self.value_len)

    @property
    def answer_alphabet(self) -> int:
        """A scored token is one of the value tokens (score=repeats); with score=next_token
        any token can be a target."""
        return self.num_values if self.score == "repeats" else self.vocab_size

    def num_slices(self) -> int:
        return len(self.buckets()) + (self.score == "next_token")

    def buckets(self) -> list[tuple[str, int, int]]:
        # from the previous occurrence of the key to the repeat: 1 .. N-1 slots (layout=mad:
        # 2 .. seq_len - 2 tokens between the two key starts)
        s = self.slot_len
        if self.layout == "mad":
            return log2_buckets("dist", self.seq_len - 2, min_value=2)
        return log2_buckets("dist", s * (self.num_slots - 1), min_value=s)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        if self.layout == "mad":
            x, repeat, dist = mad_fuzzy_rows(self, num_examples, rng)
            inputs = x[:, :-1]
            targets = np.where(repeat[:, 1:], x[:, 1:], IGNORE_INDEX)
            slices = masked_bucket_slices(self.buckets(), dist[:, 1:], repeat[:, 1:])
            data = TaskData(torch.from_numpy(inputs.copy()), torch.from_numpy(targets), slices)
        else:
            data = self._generate_glmix(num_examples, rng)
        return data if self.score == "repeats" else _next_token_targets(data)

    def _generate_glmix(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, m, kl, vl, s = num_examples, self.num_slots, self.key_len, self.value_len, self.slot_len
        h = self.half
        rows = np.arange(n)[:, None]
        keys = sample_distinct(rng, n * (m - 1), kl, 0, h).reshape(n, m - 1, kl)
        vals = sample_distinct(rng, n * (m - 1), vl, h, 2 * h).reshape(n, m - 1, vl)
        ids = (keys * h ** np.arange(kl, dtype=np.int64)).sum(axis=2)  # [n, m-1], unique per key
        noise = np.zeros((n, m - 1), dtype=bool)
        if self.frac_noise > 0:
            noise = rng.random((n, m - 1)) < self.frac_noise
            noise[rows[:, 0], rng.integers(0, m - 1, size=n)] = False
            ids = np.where(noise, -1 - np.arange(m - 1), ids)  # a noise slot matches nothing

        # runs of equal keys among slots 0 .. m-2 (one sort): each slot takes the value of its
        # run's first slot; a slot that is not first is a repeat of the previous slot of its run
        col = np.arange(m)
        order = np.argsort(ids, axis=1, kind="stable")
        sid = np.take_along_axis(ids, order, axis=1)
        new = np.ones((n, m - 1), dtype=bool)
        new[:, 1:] = sid[:, 1:] != sid[:, :-1]
        start = np.maximum.accumulate(np.where(new, col[:-1], 0), axis=1)
        first_slot = np.empty((n, m), dtype=np.int64)
        np.put_along_axis(first_slot, order, np.take_along_axis(order, start, axis=1), axis=1)
        prev_slot = np.empty((n, m), dtype=np.int64)
        np.put_along_axis(prev_slot, order[:, 1:], order[:, :-1], axis=1)

        # the probe (slot m-1) repeats a first occurrence chosen uniformly; its previous slot
        # is the last slot of that key's run
        score = np.where((first_slot[:, :-1] == col[:-1]) & ~noise, rng.random((n, m - 1)), -1.0)
        probe = score.argmax(axis=1)[:, None]
        is_end = np.ones((n, m - 1), dtype=bool)
        is_end[:, :-1] = new[:, 1:]
        end = np.minimum.accumulate(np.where(is_end, col[:-1], m)[:, ::-1], axis=1)[:, ::-1]
        where = np.empty_like(order)  # the sorted position of each slot
        np.put_along_axis(where, order, col[None, :-1], axis=1)
        probe_end = np.take_along_axis(end, np.take_along_axis(where, probe, axis=1), axis=1)
        first_slot[:, -1:] = probe
        prev_slot[:, -1:] = np.take_along_axis(order, probe_end, axis=1)
        repeat = first_slot != col
        keys = np.concatenate([keys, np.take_along_axis(keys, probe[:, :, None], axis=1)], axis=1)
        vals = np.take_along_axis(vals, first_slot[:, :, None], axis=1)  # [n, m, vl]
        noise = np.concatenate([noise, np.zeros((n, 1), dtype=bool)], axis=1)

        inputs = np.concatenate([keys, vals], axis=2)  # [n, m, s]
        if self.frac_noise > 0:
            z = rng.integers(self.vocab_size - self.noise_vocab_size, self.vocab_size,
                             size=(n, m, s), dtype=np.int64)
            inputs = np.where(noise[:, :, None], z, inputs)
        targets = np.full((n, m, s), IGNORE_INDEX, dtype=np.int64)
        targets[:, :, kl - 1 : kl - 1 + vl] = np.where(repeat[:, :, None], vals, IGNORE_INDEX)
        mask = targets != IGNORE_INDEX
        dist = s * (col - np.where(repeat, prev_slot, col))  # [n, m]
        shape = (n, self.seq_len)
        dist = np.broadcast_to(dist[:, :, None], mask.shape).reshape(shape)
        slices = masked_bucket_slices(self.buckets(), dist, mask.reshape(shape))
        inputs, targets = inputs.reshape(shape), targets.reshape(shape)
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)


@dataclasses.dataclass(frozen=True)
class NoisyRecall(_Recall):
    """MAD's noisy in-context recall: single-token keys and values, noise pairs among them."""

    vocab_size: int = 32
    seq_len: int = 128
    noise_vocab_size: int = 16
    frac_noise: float = 0.2
    score: str = "repeats"

    name = "noisy_recall"
    version = 1
    TEST_PARAMS = {"seq_len": 64}

    def __post_init__(self) -> None:
        self._validate()


@dataclasses.dataclass(frozen=True)
class FuzzyRecall(_Recall):
    """MAD's fuzzy in-context recall: keys of key_len tokens, values of value_len tokens."""

    vocab_size: int = 16
    seq_len: int = 126
    key_len: int = 3
    value_len: int = 3
    noise_vocab_size: int = 0
    frac_noise: float = 0.0
    layout: str = "glmix"
    variable_keys: bool = False
    score: str = "repeats"

    name = "fuzzy_recall"
    version = 1
    TEST_PARAMS = {"seq_len": 60, "key_len": 2, "value_len": 3}

    def __post_init__(self) -> None:
        self._validate()


def _next_token_targets(data: TaskData) -> TaskData:
    """MAD's training targets: every next token of the underlying string (the inputs shifted by
    one, and at the last position its own target when it has one). The repeats keep their
    `dist` slices; every other position is in the slice `other`."""
    targets = data.targets.clone()
    targets[:, :-1] = data.inputs[:, 1:]
    other = torch.ones_like(data.scored)
    for mask in data.slices.values():
        other &= ~mask
    other[:, -1] &= data.targets[:, -1] != IGNORE_INDEX
    return TaskData(data.inputs, targets, {**data.slices, "other": other})
