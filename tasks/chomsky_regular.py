"""The regular tasks of the Chomsky-hierarchy benchmark (Deletang et al. 2023); layout in
tasks/chomsky.py (input, a blank separator that is scored with the one-token answer).

    even_pairs          binary string (ids 0, 1); answer: the number of adjacent unequal pairs
                        ("01" and "10") mod 2, i.e. 1 when the first and last bits differ
    modular_arithmetic  d_0 o_1 d_1 .. o_h d_h (length 2h + 1, odd): digits 0 .. m-1, operators
                        + = m, - = m + 1, * = m + 2; answer: its value mod m with the usual
                        precedence (* before + and -, left to right)
    cycle_navigation    moves 0 = left (-1), 1 = stay, 2 = right (+1) on a cycle of
                        `cycle_length` positions, from 0; answer: the final position
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .base import check_int
from .chomsky import ChomskyTask

OPERATORS = "+-*"


@dataclasses.dataclass(frozen=True)
class _Classify(ChomskyTask):
    """A regular task: the answer is one token at the separator."""

    level = "regular"

    def output_len(self, length: int) -> int:
        return 1

    @property
    def info_bits(self) -> float:
        return math.log2(self.out_symbols)


@dataclasses.dataclass(frozen=True)
class EvenPairs(_Classify):
    name = "even_pairs"
    version = 1
    TEST_PARAMS = {"length": 12}

    @property
    def in_symbols(self) -> int:
        return 2

    @property
    def out_symbols(self) -> int:
        return 2

    def _draw(self, n, rng):
        x = rng.integers(0, 2, size=(n, self.length), dtype=np.int64)
        y = (x[:, 1:] != x[:, :-1]).sum(axis=1, keepdims=True) % 2
        return x, y, None


@dataclasses.dataclass(frozen=True)
class ModularArithmetic(_Classify):
    length: int = 31
    modulus: int = 5
    operators: str = OPERATORS

    name = "modular_arithmetic"
    version = 1
    TEST_PARAMS = {"length": 11}

    def _validate(self) -> None:
        if self.length % 2 == 0:
            raise ValueError(f"length={self.length} must be odd (digit, then operator-digit "
                             "pairs)")
        check_int("modulus", self.modulus, minimum=2)
        if (not isinstance(self.operators, str) or not self.operators
                or set(self.operators) - set(OPERATORS)
                or len(set(self.operators)) != len(self.operators)):
            raise ValueError(f"operators must be distinct characters of {OPERATORS!r}, got "
                             f"{self.operators!r}")

    @property
    def in_symbols(self) -> int:
        return self.modulus + 3

    @property
    def out_symbols(self) -> int:
        return self.modulus

    def _draw(self, n, rng):
        m, h = self.modulus, self.length // 2
        digits = rng.integers(0, m, size=(n, h + 1), dtype=np.int64)
        ops = np.array([m + OPERATORS.index(c) for c in self.operators], dtype=np.int64)
        op = ops[rng.integers(0, len(ops), size=(n, h))]
        x = np.empty((n, self.length), dtype=np.int64)
        x[:, 0::2] = digits
        x[:, 1::2] = op
        # a left-to-right scan: `done` holds the finished additive terms, `term` the signed
        # product being built (* extends it; + and - close it and open the next)
        done = np.zeros(n, dtype=np.int64)
        term = digits[:, 0].copy()
        for j in range(h):
            d, o = digits[:, j + 1], op[:, j]
            times = o == m + 2
            done = np.where(times, done, (done + term) % m)
            term = np.where(times, term * d, np.where(o == m, d, -d)) % m
        return x, ((done + term) % m)[:, None], None


@dataclasses.dataclass(frozen=True)
class CycleNavigation(_Classify):
    cycle_length: int = 5

    name = "cycle_navigation"
    version = 1
    TEST_PARAMS = {"length": 12}

    def _validate(self) -> None:
        check_int("cycle_length", self.cycle_length, minimum=2)

    @property
    def in_symbols(self) -> int:
        return 3

    @property
    def out_symbols(self) -> int:
        return self.cycle_length

    def _draw(self, n, rng):
        x = rng.integers(0, 3, size=(n, self.length), dtype=np.int64)
        y = (x - 1).sum(axis=1, keepdims=True) % self.cycle_length
        return x, y, None
