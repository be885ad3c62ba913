"""The shared layout of the Chomsky-hierarchy tasks (Deletang et al. 2023, "Neural Networks and the
Chomsky Hierarchy"): an input string, then an output tape of blank tokens that the model fills.

Every task of tasks/chomsky_regular.py, tasks/chomsky_dcf.py and tasks/chomsky_cs.py maps an
input string x_0 .. x_{L-1} (L = `length`, the reference's "length") to an output string
y_0 .. y_{K-1} (K = the task's output length for L). The sequence is

    inputs:   x_0 .. x_{L-1}  BLANK  BLANK .. BLANK          (seq_len = L + K)
    targets:  -100  ..  -100  y_0    y_1   .. y_{K-1}

The first BLANK is the separator; the model reads blanks at every output position (the
reference's non-autoregressive output tape: it never sees its own or the true earlier outputs)
and is scored there token by token. Tasks whose output has a variable length (a result, then
an END token) score up to and including END and nothing after it, the reference's accuracy
mask. The runner's sequence exact match (test_exact) is then the reference's per-sequence
correctness. Input symbols are ids 0 .. k-1, BLANK = k (the task's `in_symbols`); the answers are
ids 0 .. `out_symbols` - 1, so vocab_size = max(k + 1, out_symbols) unless a larger one is given.

Each class states its level of the hierarchy in the class attribute `level`
(`regular`, `dcf` or `cs`), which analysis/levels.py averages over.
"""

from __future__ import annotations

import dataclasses
import math
from abc import abstractmethod
from typing import ClassVar

import numpy as np
import torch

from .base import (
    IGNORE_INDEX,
    MAX_SIZE,
    Task,
    TaskData,
    check_derived_seq_len,
    check_int,
    log2_buckets,
    masked_bucket_slices,
)

LEVELS = ("regular", "dcf", "cs")
"""The levels of the Chomsky hierarchy the tasks are placed on (regular, deterministic
context-free, context-sensitive), in the reference's order."""


@dataclasses.dataclass(frozen=True)
class ChomskyTask(Task):
    """Base of the Chomsky-hierarchy tasks: fields `length` (the input length L), `seq_len`
    (derived: L + output length) and `vocab_size` (derived when unset; if given it must hold
    the input symbols, the blank and the answers). Subclasses set `level`, `MIN_LENGTH`,
    `in_symbols`, `out_symbols`, `output_len(L)`, `_validate()` and `_draw(n, rng)`."""

    length: int = 32
    seq_len: int | None = None
    vocab_size: int | None = None

    level: ClassVar[str] = ""
    MIN_LENGTH: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_int("length", self.length, minimum=self.MIN_LENGTH)
        self._validate()
        derived = self.length + self.output_len(self.length)
        if derived > MAX_SIZE:
            raise ValueError(f"length={self.length} is too long: seq_len = length + output "
                             f"length = {derived} must be <= {MAX_SIZE}")
        check_derived_seq_len(self, derived, f"length + output length ({self._formula()})")
        need = max(self.in_symbols + 1, self.out_symbols)
        if self.vocab_size is None:
            self._set("vocab_size", need)
        else:
            check_int("vocab_size", self.vocab_size, minimum=1)
            if self.vocab_size < need:
                raise ValueError(
                    f"vocab_size={self.vocab_size} must be >= {need}: the task's "
                    f"{self.in_symbols} input symbols and the blank, and its "
                    f"{self.out_symbols} answers (ids 0..{need - 1})")

    # -- what a subclass says ------------------------------------------------------------------
    def _validate(self) -> None:
        """Check the subclass's own fields (and `length` beyond MIN_LENGTH)."""

    @property
    @abstractmethod
    def in_symbols(self) -> int:
        """How many input symbols (ids 0 .. in_symbols - 1); the blank is id in_symbols."""

    @property
    @abstractmethod
    def out_symbols(self) -> int:
        """How many answer values (ids 0 .. out_symbols - 1)."""

    @abstractmethod
    def output_len(self, length: int) -> int:
        """The length K of the output tape for an input of `length` tokens."""

    def _formula(self) -> str:
        return f"{self.length} + {self.output_len(self.length)}"

    @abstractmethod
    def _draw(self, n: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(x int64 [n, L], y int64 [n, K], scored bool [n, K] or None for all)."""

    # -- the Task interface --------------------------------------------------------------------
    @property
    def blank(self) -> int:
        return self.in_symbols

    @property
    def answer_alphabet(self) -> int:
        return self.out_symbols

    def buckets(self) -> list[tuple[str, int, int]]:
        """log2 buckets of the output index (`out<16`, `out16..31`, ...)."""
        return log2_buckets("out", self.output_len(self.length) - 1)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, length = num_examples, self.length
        k = self.output_len(length)
        x, y, scored = self._draw(n, rng)
        if scored is None:
            scored = np.ones((n, k), dtype=bool)
        inputs = np.full((n, length + k), self.blank, dtype=np.int64)
        inputs[:, :length] = x
        targets = np.full((n, length + k), IGNORE_INDEX, dtype=np.int64)
        targets[:, length:] = np.where(scored, y, IGNORE_INDEX)
        mask = np.zeros((n, length + k), dtype=bool)
        mask[:, length:] = scored
        index = np.zeros((n, length + k), dtype=np.int64)
        index[:, length:] = np.arange(k)
        slices = masked_bucket_slices(self.buckets(), index, mask)
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)


@dataclasses.dataclass(frozen=True)
class StringTask(ChomskyTask):
    """A task on a uniform string over `num_symbols` symbols, answered by a string of the same
    symbols (`_answer`; L of them unless `output_len` says otherwise)."""

    num_symbols: int = 2

    def _validate(self) -> None:
        check_int("num_symbols", self.num_symbols, minimum=2)

    @property
    def in_symbols(self) -> int:
        return self.num_symbols

    @property
    def out_symbols(self) -> int:
        return self.num_symbols

    def output_len(self, length: int) -> int:
        return length

    @property
    def info_bits(self) -> float:
        """The whole string must be held at the separator: L log2 k."""
        return self.length * math.log2(self.num_symbols)

    def _draw(self, n, rng):
        x = rng.integers(0, self.num_symbols, size=(n, self.length), dtype=np.int64)
        return x, self._answer(x), None

    def _answer(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def ended(result: np.ndarray, size: np.ndarray, width: int, end: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """A variable-length result written as the reference writes it: per row, result[:size]
    then the END token; scored up to and including END. result int [n, >= max size];
    returns (y [n, width], scored [n, width])."""
    n = result.shape[0]
    col = np.arange(width)
    y = np.zeros((n, width), dtype=np.int64)
    w = min(width, result.shape[1])
    y[:, :w] = result[:, :w]
    y = np.where(col == size[:, None], end, y)
    return y, col <= size[:, None]
