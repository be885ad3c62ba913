"""Copy and selective copy.

Both are next-token tasks: the model reads the sequence left to right and, at each scored
position, must predict the *next* token of the underlying string. `targets[n, t]` is the token
at position t + 1 of the full string; the last token of the full string is not part of the
inputs (it is only a target).

copy (C = copy_len, V = vocab_size): full string  a_0 .. a_{C-1}  SEP  a_0 .. a_{C-1},
with SEP = 0 and a_j i.i.d. uniform in [1, V). inputs = the first 2C tokens, so seq_len = 2C:

    position   0 .. C-1       C      C+1 .. 2C-1
    input      a_0 .. a_{C-1} SEP    a_0 .. a_{C-2}
    target     -100           a_0    a_1 .. a_{C-1}

selective_copy (P = prefix_len, M = num_tokens): a prefix of P tokens, M data tokens d_j i.i.d.
uniform in [2, V) at M distinct uniformly random positions and the NOISE token 0 elsewhere, then
SEP = 1, then d_0 .. d_{M-1}. inputs = the first P + M tokens, so seq_len = P + M; the targets
at positions P .. P+M-1 are d_0 .. d_{M-1}.

selective_copy with layout='mad' is MAD's layout (Poli et al., 2024): the last data token sits
at position P - 1, right before SEP (at P), and each of the P - M NOISE tokens of the prefix is
put before one of the M data tokens, chosen uniformly (as MAD's np.insert at random indices);
then M NOISE tokens (MAD's blanks) at P+1 .. P+M, where the targets d_0 .. d_{M-1} are. So
seq_len = P + 1 + M and the inputs at scored positions are all NOISE. Token ids stay glmix's.
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
    check_choice,
    check_derived_seq_len,
    check_int,
    log2_buckets,
    sample_distinct,
)


@dataclasses.dataclass(frozen=True)
class Copy(Task):
    vocab_size: int = 64
    copy_len: int = 128
    seq_len: int | None = None  # derived: 2 * copy_len

    name = "copy"
    version = 1
    TEST_PARAMS = {"copy_len": 16}
    SEP = 0

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, minimum=3)
        check_int("copy_len", self.copy_len, minimum=1)
        check_derived_seq_len(self, 2 * self.copy_len, "2 * copy_len")

    @property
    def answer_alphabet(self) -> int:
        """A scored token is a data token: one of 1 .. V - 1."""
        return self.vocab_size - 1

    @property
    def info_bits(self) -> float:
        return self.copy_len * math.log2(self.vocab_size - 1)

    def buckets(self) -> list[tuple[str, int, int]]:
        return log2_buckets("idx", self.copy_len - 1)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, c = num_examples, self.copy_len
        data = rng.integers(1, self.vocab_size, size=(n, c), dtype=np.int64)
        inputs = np.empty((n, 2 * c), dtype=np.int64)
        inputs[:, :c] = data
        inputs[:, c] = self.SEP
        inputs[:, c + 1 :] = data[:, :-1]
        targets = np.full((n, 2 * c), IGNORE_INDEX, dtype=np.int64)
        targets[:, c:] = data
        idx = np.broadcast_to(np.arange(c), (n, c))
        slices = bucket_slices(self.buckets(), (n, 2 * c), c + idx, idx)
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)


@dataclasses.dataclass(frozen=True)
class SelectiveCopy(Task):
    vocab_size: int = 16
    prefix_len: int = 240
    num_tokens: int = 16
    seq_len: int | None = None  # derived: prefix_len + num_tokens (+ 1 with layout='mad')
    layout: str = "glmix"  # glmix | mad

    name = "selective_copy"
    version = 1
    TEST_PARAMS = {"prefix_len": 48, "num_tokens": 8}
    NOISE = 0
    SEP = 1

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, minimum=4)
        check_int("num_tokens", self.num_tokens, minimum=1)
        check_int("prefix_len", self.prefix_len, minimum=1)
        if self.num_tokens > self.prefix_len:
            raise ValueError(
                f"num_tokens={self.num_tokens} must be <= prefix_len={self.prefix_len} "
                "(each data token takes its own prefix position)"
            )
        check_choice("layout", self.layout, ("glmix", "mad"))
        if self.layout == "mad":
            derived = self.prefix_len + 1 + self.num_tokens
            check_derived_seq_len(self, derived, "prefix_len + 1 + num_tokens (layout='mad')")
        else:
            derived = self.prefix_len + self.num_tokens
            check_derived_seq_len(self, derived, "prefix_len + num_tokens")

    @property
    def answer_alphabet(self) -> int:
        """A scored token is a data token: one of 2 .. V - 1."""
        return self.vocab_size - 2

    @property
    def info_bits(self) -> float:
        return self.num_tokens * math.log2(self.vocab_size - 2)

    def buckets(self) -> list[tuple[str, int, int]]:
        # data token j sits at or before prefix position prefix_len - num_tokens + j, and at or
        # after position j: the distance to its target position prefix_len + j is in
        # [num_tokens, prefix_len] (MAD's layout: one more, the targets start after SEP).
        shift = self.layout == "mad"
        return log2_buckets("dist", self.prefix_len + shift, min_value=self.num_tokens + shift)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, p, m, length = num_examples, self.prefix_len, self.num_tokens, self.seq_len
        if self.layout == "mad":
            blanks = rng.multinomial(p - m, np.full(m, 1.0 / m), size=n)  # before each token
            pos = np.arange(m) + np.cumsum(blanks, axis=1)
        else:
            pos = np.sort(sample_distinct(rng, n, m, 0, p), axis=1)
        data = rng.integers(2, self.vocab_size, size=(n, m), dtype=np.int64)
        inputs = np.full((n, length), self.NOISE, dtype=np.int64)
        np.put_along_axis(inputs, pos, data, axis=1)
        inputs[:, p] = self.SEP
        first = length - m  # the first scored position: p, or p + 1 in MAD's layout
        if self.layout == "glmix":
            inputs[:, p + 1 :] = data[:, :-1]
        targets = np.full((n, length), IGNORE_INDEX, dtype=np.int64)
        targets[:, first:] = data
        tpos = np.broadcast_to(first + np.arange(m), (n, m))
        slices = bucket_slices(self.buckets(), (n, length), tpos, tpos - pos)
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)
