"""The context-sensitive tasks of the Chomsky-hierarchy benchmark (Deletang et al. 2023); layout
in tasks/chomsky.py (input, then an output tape of blanks, scored token by token).

    duplicate_string       a string over `num_symbols` symbols; output: the string twice (2 L)
    odds_first             a string; output: the symbols at odd positions (1-based: x_1 x_3 ..)
                           first, then those at even positions (x_2 x_4 ..)
    bucket_sort            a string over `num_symbols` symbols; output: it sorted (ids ascending)
    binary_addition        a (little-endian, ids 0, 1), + = 2, b: the two numbers take L - 1
                           bits, a has 1 .. L - 2 of them (uniform), each number uniform in
                           [1, 2^bits - 1]; output: a + b little-endian without trailing zeros,
                           then END = 2 (L + 1 slots, scored up to END)
    binary_multiplication  the same with * = 2 and a * b (L slots: the product has <= L - 1 bits)
    missing_duplicate      a bit string w of L // 2 bits written twice, one of the 2 (L // 2)
                           bits replaced by MISSING = 2, and PAD = 3 at the end when L is odd;
                           answer: the missing bit (one token)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .base import log2_binomial
from .chomsky import ChomskyTask, StringTask, ended

PLUS, END, MISSING, PAD = 2, 2, 2, 3


@dataclasses.dataclass(frozen=True)
class DuplicateString(StringTask):
    name = "duplicate_string"
    level = "cs"
    version = 1
    TEST_PARAMS = {"length": 10}

    def output_len(self, length: int) -> int:
        return 2 * length

    def _answer(self, x):
        return np.concatenate([x, x], axis=1)


@dataclasses.dataclass(frozen=True)
class OddsFirst(StringTask):
    name = "odds_first"
    level = "cs"
    version = 1
    TEST_PARAMS = {"length": 11}

    def _answer(self, x):
        return np.concatenate([x[:, 0::2], x[:, 1::2]], axis=1)


@dataclasses.dataclass(frozen=True)
class BucketSort(StringTask):
    num_symbols: int = 5

    name = "bucket_sort"
    level = "cs"
    version = 1
    TEST_PARAMS = {"length": 12}

    @property
    def info_bits(self) -> float:
        """Only the count of each symbol matters: log2 of the C(L + k - 1, k - 1) multisets."""
        k = self.num_symbols
        return log2_binomial(self.length + k - 1, k - 1)

    def _answer(self, x):
        return np.sort(x, axis=1)


def _nonzero_bits(rng: np.random.Generator, size: np.ndarray, width: int) -> np.ndarray:
    """int64 [n, width]: per row a number uniform in [1, 2^size - 1], little-endian bits
    (zero from column size on): uniform bits, rows that came out all zero drawn again."""
    n = size.shape[0]
    live = np.arange(width) < size[:, None]
    bits = np.where(live, rng.integers(0, 2, size=(n, width), dtype=np.int64), 0)
    todo = np.flatnonzero(bits.sum(axis=1) == 0)
    while todo.size:
        redraw = rng.integers(0, 2, size=(todo.size, width), dtype=np.int64)
        bits[todo] = np.where(live[todo], redraw, 0)
        todo = todo[bits[todo].sum(axis=1) == 0]
    return bits


@dataclasses.dataclass(frozen=True)
class _Binary(ChomskyTask):
    """Two binary numbers a, b (little-endian) around an operator token, then the result."""

    level = "cs"
    MIN_LENGTH = 3

    @property
    def in_symbols(self) -> int:
        return 3

    @property
    def out_symbols(self) -> int:
        return 3

    def _draw(self, n, rng):
        length = self.length
        size_a = rng.integers(1, length - 1, size=n, dtype=np.int64)  # 1 .. L - 2 bits
        size_b = length - 1 - size_a
        a = _nonzero_bits(rng, size_a, length)
        b = _nonzero_bits(rng, size_b, length)
        col = np.arange(length)
        shifted = np.take_along_axis(b, np.clip(col - size_a[:, None] - 1, 0, length - 1), 1)
        x = np.where(col < size_a[:, None], a, np.where(col == size_a[:, None], PLUS, shifted))
        result = self._combine(a, b)  # [n, L] little-endian bits
        width = np.where(result.any(axis=1), length - np.argmax(result[:, ::-1], axis=1), 0)
        y, scored = ended(result, width, self.output_len(length), END)
        return x, y, scored

    def _combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class BinaryAddition(_Binary):
    name = "binary_addition"
    version = 1
    TEST_PARAMS = {"length": 12}

    def output_len(self, length: int) -> int:
        return length + 1

    @property
    def info_bits(self) -> float:
        """The sums are exactly the 2^(L-2) - 1 integers 2 .. 2^(L-2)."""
        k = self.length - 2
        return k + math.log2(1 - 2.0**-k) if k < 1000 else float(k)

    def _combine(self, a, b):
        total = np.zeros_like(a)
        carry = np.zeros(a.shape[0], dtype=np.int64)
        for j in range(a.shape[1]):  # ripple carry, vectorized over examples
            s = a[:, j] + b[:, j] + carry
            total[:, j] = s & 1
            carry = s >> 1
        return total  # a + b < 2^(L-1): no carry out of the last column


@dataclasses.dataclass(frozen=True)
class BinaryMultiplication(_Binary):
    name = "binary_multiplication"
    version = 1
    TEST_PARAMS = {"length": 12}

    def output_len(self, length: int) -> int:
        return length

    @property
    def info_bits(self) -> float:
        """An upper bound: a product has at most L - 1 bits."""
        return float(self.length - 1)

    def _combine(self, a, b):
        # Python's integers multiply exactly at any size; bits in and out through packbits
        n, width = a.shape
        nbytes = (width + 7) // 8
        pa = np.packbits(a.astype(np.uint8), axis=1, bitorder="little")
        pb = np.packbits(b.astype(np.uint8), axis=1, bitorder="little")
        out = np.empty((n, nbytes), dtype=np.uint8)
        for r in range(n):
            p = int.from_bytes(pa[r].tobytes(), "little") * int.from_bytes(pb[r].tobytes(),
                                                                            "little")
            out[r] = np.frombuffer(p.to_bytes(nbytes, "little"), dtype=np.uint8)
        bits = np.unpackbits(out, axis=1, count=width, bitorder="little")
        return bits.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class MissingDuplicate(ChomskyTask):
    name = "missing_duplicate"
    level = "cs"
    version = 1
    TEST_PARAMS = {"length": 12}
    MIN_LENGTH = 2

    @property
    def in_symbols(self) -> int:
        return 4

    @property
    def out_symbols(self) -> int:
        return 2

    def output_len(self, length: int) -> int:
        return 1

    @property
    def info_bits(self) -> float:
        return 1.0

    def _draw(self, n, rng):
        h = self.length // 2
        w = rng.integers(0, 2, size=(n, h), dtype=np.int64)
        x = np.full((n, self.length), PAD, dtype=np.int64)
        x[:, :h] = w
        x[:, h:2 * h] = w
        where = rng.integers(0, 2 * h, size=n, dtype=np.int64)
        rows = np.arange(n)
        y = x[rows, where].copy()
        x[rows, where] = MISSING
        return x, y[:, None], None
