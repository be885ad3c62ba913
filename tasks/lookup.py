"""Look-up tasks of Jelassi et al. (2024), "Repeat After Me": `ngram_lookup` and `phonebook`.

Both ask for a string that sits somewhere in the context, scored as next tokens; with one query
per sequence the run's sequence exact match (`test_exact`) is the string-level accuracy. Both
can vary the context's size per sequence (`min_context_len`, `min_entries`); a shorter sequence
is right-padded with PAD = 0 (target -100), so a causal model never sees the padding from a real
position.

ngram_lookup (A = vocab_size - 2 data tokens [2, V); PAD = 0, SEP = 1; m = the row's context
length, n = ngram_len, k = answer_len):

    variant=suffix   s_0 .. s_{m-1}  SEP  q_1 .. q_n  SEP  a_1 .. a_{k-1}  PAD ...
    variant=prefix   q_1 .. q_n  SEP  s_0 .. s_{m-1}  SEP  a_1 .. a_{k-1}  PAD ...
    targets          at the second SEP: a_1; at a_j: a_{j+1}

The context s is i.i.d. uniform; the query q = s_i .. s_{i+n-1} is an n-gram of it that occurs
exactly once (rows where it repeats are drawn again), i uniform in [0, m - n - k], and a_j =
s_{i+n+j-1}: the k tokens that follow it. With the query first (prefix), a reader knows what to
keep; with the query after the context (suffix), it must keep the whole context.

phonebook (D = 10 digit tokens [2, 12), name letters [12, V); PAD = 0, QUERY = 1; E = the row's
number of entries, each entry a name of name_len letters then its number of number_len digits):

    entry_0 .. entry_{E-1}  QUERY  name  d_1 .. d_{number_len-1}  PAD ...
    targets                 at the query name's last letter: d_1; at d_j: d_{j+1}

Names are distinct within a phonebook (uniform over sets of distinct names), digits i.i.d.
uniform; the queried entry is uniform.
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
    check_int,
    log2_buckets,
    sample_distinct,
)

PAD = 0
SEP = QUERY = 1
NUM_DIGITS = 10


def _lengths(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """Per-row sizes, uniform in [low, high] (no draw when fixed)."""
    if low == high:
        return np.full(n, high, dtype=np.int64)
    return rng.integers(low, high + 1, size=n, dtype=np.int64)


def _draw_until_valid(num_rows: int, draw, bad) -> None:
    """draw(rows) for every row, then again for the rows that bad(rows) flags, until none is
    (conditioning each row on being valid: a repeated n-gram or name)."""
    todo = np.arange(num_rows)
    while todo.size:
        draw(todo)
        todo = todo[bad(todo)]


def _place(out: np.ndarray, offset: np.ndarray, block: np.ndarray) -> None:
    """Write block [n, w] into out [n, L] at columns offset[r] .. offset[r] + w - 1 of each row."""
    cols = offset[:, None] + np.arange(block.shape[1])
    np.put_along_axis(out, cols, block, axis=1)


@dataclasses.dataclass(frozen=True)
class NgramLookup(Task):
    vocab_size: int = 16
    context_len: int = 64
    min_context_len: int | None = None
    ngram_len: int = 3
    answer_len: int = 4
    variant: str = "suffix"

    name = "ngram_lookup"
    version = 1
    TEST_PARAMS = {"context_len": 24, "min_context_len": 12, "ngram_len": 2, "answer_len": 3}
    BYTES_PER_TOKEN = 96

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, minimum=4)
        check_int("context_len", self.context_len, minimum=2)
        check_int("ngram_len", self.ngram_len, minimum=1)
        check_int("answer_len", self.answer_len, minimum=1)
        check_choice("variant", self.variant, ("suffix", "prefix"))
        if self.min_context_len is None:
            self._set("min_context_len", self.context_len)
        check_int("min_context_len", self.min_context_len, minimum=1, maximum=self.context_len)
        need = self.ngram_len + self.answer_len
        if need > self.min_context_len:
            raise ValueError(
                f"ngram_len={self.ngram_len} is too long for min_context_len="
                f"{self.min_context_len}: the n-gram and the answer_len={self.answer_len} tokens "
                f"after it must fit in the shortest context (need ngram_len + answer_len <= "
                f"{self.min_context_len})"
            )
        alphabet = self.vocab_size - 2
        if self.ngram_len * math.log2(alphabet) < math.log2(2 * self.context_len):
            raise ValueError(
                f"ngram_len={self.ngram_len} is too short for vocab_size={self.vocab_size} and "
                f"context_len={self.context_len}: a query n-gram must be unique in its context, "
                f"so there must be at least 2 * context_len possible n-grams ((vocab_size - 2) "
                f"** ngram_len >= {2 * self.context_len})"
            )

    @property
    def seq_len(self) -> int:
        return self.context_len + self.ngram_len + self.answer_len + 1

    @property
    def answer_alphabet(self) -> int:
        return self.vocab_size - 2

    @property
    def info_bits(self) -> float:
        # prefix: only the k answer tokens; suffix: the followers of every n-gram the query can
        # name, positions n .. m - 1 of the longest context (any of them can be asked for).
        kept = self.answer_len if self.variant == "prefix" else self.context_len - self.ngram_len
        return kept * math.log2(self.answer_alphabet)

    def buckets(self) -> list[tuple[str, int, int]]:
        # distance from an answer token's place in the context to the position that predicts it:
        # (i the n-gram's start): suffix m - i + 1 in [n + k + 1, m + 1]; prefix m - i - n in
        # [k, m - n]
        n, k, m = self.ngram_len, self.answer_len, self.context_len
        if self.variant == "suffix":
            return log2_buckets("dist", m + 1, min_value=n + k + 1)
        return log2_buckets("dist", m - n, min_value=k)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        rows, n, k, cap = num_examples, self.ngram_len, self.answer_len, self.context_len
        m = _lengths(rng, rows, self.min_context_len, cap)
        ctx = np.empty((rows, cap), dtype=np.int64)
        start = np.empty(rows, dtype=np.int64)
        col = np.arange(cap - n + 1)

        def draw(r):
            ctx[r] = rng.integers(2, self.vocab_size, size=(len(r), cap), dtype=np.int64)
            start[r] = (rng.random(len(r)) * (m[r] - n - k + 1)).astype(np.int64)

        def repeated(r):
            c, s = ctx[r], start[r]
            same = np.ones((len(r), col.size), dtype=bool)
            for t in range(n):
                same &= c[:, t : t + col.size] == np.take_along_axis(c, (s + t)[:, None], axis=1)
            same &= col[None, :] <= (m[r] - n)[:, None]  # n-grams inside the row's context
            return same.sum(axis=1) > 1

        _draw_until_valid(rows, draw, repeated)
        query = np.take_along_axis(ctx, start[:, None] + np.arange(n), axis=1)
        answer = np.take_along_axis(ctx, start[:, None] + n + np.arange(k), axis=1)

        inputs = np.full((rows, self.seq_len), PAD, dtype=np.int64)
        sep = np.full((rows, 1), SEP, dtype=np.int64)
        in_ctx = np.arange(cap)[None, :] < m[:, None]
        if self.variant == "suffix":
            inputs[:, :cap][in_ctx] = ctx[in_ctx]
            tail_at = m
            _place(inputs, tail_at, np.concatenate([sep, query, sep, answer[:, :-1]], axis=1))
            dist = m - start + 1
        else:
            inputs[:, :n] = query
            inputs[:, n] = SEP
            inputs[:, n + 1 : n + 1 + cap][in_ctx] = ctx[in_ctx]
            tail_at = n + 1 + m
            _place(inputs, tail_at, np.concatenate([sep, answer[:, :-1]], axis=1))
            dist = m - start - n
        scored = (tail_at + (n + 1 if self.variant == "suffix" else 0))[:, None] + np.arange(k)
        targets = np.full((rows, self.seq_len), IGNORE_INDEX, dtype=np.int64)
        np.put_along_axis(targets, scored, answer, axis=1)
        dist = np.broadcast_to(dist[:, None], scored.shape)
        slices = bucket_slices(self.buckets(), inputs.shape, scored, dist)
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)


@dataclasses.dataclass(frozen=True)
class Phonebook(Task):
    vocab_size: int = 40
    num_entries: int = 16
    min_entries: int | None = None
    name_len: int = 3
    number_len: int = 4

    name = "phonebook"
    version = 1
    TEST_PARAMS = {"num_entries": 6, "min_entries": 2, "name_len": 2, "number_len": 3}
    BYTES_PER_TOKEN = 96
    FIRST_LETTER = 2 + NUM_DIGITS

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, minimum=self.FIRST_LETTER + 1)
        check_int("num_entries", self.num_entries, minimum=1)
        check_int("name_len", self.name_len, minimum=1)
        check_int("number_len", self.number_len, minimum=1)
        if self.min_entries is None:
            self._set("min_entries", self.num_entries)
        check_int("min_entries", self.min_entries, minimum=1, maximum=self.num_entries)
        letters = self.vocab_size - self.FIRST_LETTER
        if self.name_len * math.log2(letters) < math.log2(self.num_entries):
            raise ValueError(
                f"num_entries={self.num_entries} is too large for name_len={self.name_len} and "
                f"vocab_size={self.vocab_size}: names are distinct in a phonebook, so there must "
                f"be at least num_entries possible names ((vocab_size - {self.FIRST_LETTER}) "
                f"** name_len >= {self.num_entries})"
            )
        if self.name_len * math.log2(letters) > 62:
            raise ValueError(
                f"name_len={self.name_len} is too long for vocab_size={self.vocab_size}: a name's "
                f"id (vocab_size - {self.FIRST_LETTER}) ** name_len must fit in 62 bits"
            )

    @property
    def entry_len(self) -> int:
        return self.name_len + self.number_len

    @property
    def seq_len(self) -> int:
        return self.num_entries * self.entry_len + self.name_len + self.number_len

    @property
    def answer_alphabet(self) -> int:
        return NUM_DIGITS

    @property
    def info_bits(self) -> float:
        # every entry's number, given the names (the query reveals one)
        return self.num_entries * self.number_len * math.log2(NUM_DIGITS)

    def buckets(self) -> list[tuple[str, int, int]]:
        # from the entry's last name letter to the query's: (E - j) w + 1, j < E
        w = self.entry_len
        return log2_buckets("dist", self.num_entries * w + 1, min_value=w + 1)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        rows, cap, w, nl, dl = (num_examples, self.num_entries, self.entry_len, self.name_len,
                                self.number_len)
        e = _lengths(rng, rows, self.min_entries, cap)
        letters = self.vocab_size - self.FIRST_LETTER
        ids = sample_distinct(rng, rows, cap, 0, letters**nl)  # distinct names, as numbers
        digits = (ids[:, :, None] // letters ** np.arange(nl - 1, -1, -1)) % letters
        names = self.FIRST_LETTER + digits
        numbers = rng.integers(2, 2 + NUM_DIGITS, size=(rows, cap, dl), dtype=np.int64)
        asked = (rng.random(rows) * e).astype(np.int64)

        inputs = np.full((rows, self.seq_len), PAD, dtype=np.int64)
        book = np.concatenate([names, numbers], axis=2).reshape(rows, cap * w)
        in_book = np.arange(cap * w)[None, :] < (e * w)[:, None]
        inputs[:, : cap * w][in_book] = book[in_book]
        q_name = names[np.arange(rows), asked]
        answer = numbers[np.arange(rows), asked]
        tail = np.concatenate([np.full((rows, 1), QUERY), q_name, answer[:, :-1]], axis=1)
        _place(inputs, e * w, tail)
        scored = (e * w + nl)[:, None] + np.arange(dl)
        targets = np.full((rows, self.seq_len), IGNORE_INDEX, dtype=np.int64)
        np.put_along_axis(targets, scored, answer, axis=1)
        dist = np.broadcast_to(((e - asked) * w + 1)[:, None], scored.shape)
        slices = bucket_slices(self.buckets(), inputs.shape, scored, dist)
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)
