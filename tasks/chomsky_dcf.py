"""The deterministic context-free tasks of the Chomsky-hierarchy benchmark (Deletang et al.
2023); layout in tasks/chomsky.py (input, then an output tape of blanks, scored token by token).

    reverse_string               a string over `num_symbols` symbols; output: it reversed
    stack_manipulation           a stack of bits (ids 0, 1; bottom first), then actions POP = 2,
                                 PUSH 0 = 3, PUSH 1 = 4 (a POP on the empty stack does nothing);
                                 output: the final stack top first, then END = 2 (L + 1 slots,
                                 scored up to END)
    modular_arithmetic_brackets  an expression of exactly `length` tokens from the grammar
                                 E -> d | -d | (d) | (-d) | (E op E), digits 0 .. m-1, + = m,
                                 - = m + 1, * = m + 2 (only with mult=true), ( = m + 3,
                                 ) = m + 4; answer: its value mod m (one token)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .base import check_bool, check_int
from .chomsky import ChomskyTask, StringTask, ended

POP, PUSH0, PUSH1, END = 2, 3, 4, 2


@dataclasses.dataclass(frozen=True)
class ReverseString(StringTask):
    name = "reverse_string"
    level = "dcf"
    version = 1
    TEST_PARAMS = {"length": 12}

    def _answer(self, x):
        return x[:, ::-1]


@dataclasses.dataclass(frozen=True)
class StackManipulation(ChomskyTask):
    name = "stack_manipulation"
    level = "dcf"
    version = 1
    TEST_PARAMS = {"length": 12}

    @property
    def in_symbols(self) -> int:
        return 5

    @property
    def out_symbols(self) -> int:
        return 3

    def output_len(self, length: int) -> int:
        return length + 1

    @property
    def info_bits(self) -> float:
        """The 2^L final stacks of L bits alone (L - 1 initial bits and one push) need L bits."""
        return float(self.length)

    def _draw(self, n, rng):
        length = self.length
        # the initial stack has s in [1, L - 1] bits (the whole input when L = 1), then actions
        s = (rng.integers(1, length, size=n, dtype=np.int64) if length > 1
             else np.ones(n, dtype=np.int64))
        bits = rng.integers(0, 2, size=(n, length), dtype=np.int64)
        actions = rng.integers(POP, PUSH1 + 1, size=(n, length), dtype=np.int64)
        col = np.arange(length)
        initial = col < s[:, None]
        x = np.where(initial, bits, actions)
        stack = np.where(initial, bits, 0)  # [n, L]: a stack never holds more than L bits
        top = s.copy()  # the number of bits on each stack
        rows = np.arange(n)
        for t in range(1, length):  # one action per column, vectorized over examples
            act = x[:, t]
            live = t >= s
            top -= live & (act == POP) & (top > 0)
            push = live & (act >= PUSH0)
            stack[rows[push], top[push]] = act[push] - PUSH0
            top += push
        # top first: slot j holds stack[top - 1 - j]
        idx = np.clip(top[:, None] - 1 - np.arange(length), 0, length - 1)
        y, scored = ended(np.take_along_axis(stack, idx, axis=1), top, length + 1, END)
        return x, y, scored


@dataclasses.dataclass(frozen=True)
class ModularArithmeticBrackets(ChomskyTask):
    modulus: int = 5
    mult: bool = False

    name = "modular_arithmetic_brackets"
    level = "dcf"
    version = 1
    TEST_PARAMS = {"length": 15}
    BYTES_PER_TOKEN = 96  # the node arrays of the expansion besides inputs and targets

    def _validate(self) -> None:
        check_int("modulus", self.modulus, minimum=2)
        check_bool("mult", self.mult)
        self._set("mult", bool(self.mult))

    @property
    def in_symbols(self) -> int:
        return self.modulus + 5

    @property
    def out_symbols(self) -> int:
        return self.modulus

    def output_len(self, length: int) -> int:
        return 1

    @property
    def info_bits(self) -> float:
        return math.log2(self.modulus)

    def _draw(self, n, rng):
        # The grammar expanded breadth first over all rows at once: each round writes the
        # tokens of the current nodes and draws their children's sizes (vectorized); the values
        # are then combined bottom-up, the rounds in reverse (children come after parents).
        length, m = self.length, self.modulus
        plus, minus, times, opening, closing = m, m + 1, m + 2, m + 3, m + 4
        ops = np.array([plus, minus, times] if self.mult else [plus, minus], dtype=np.int64)
        x = np.empty((n, length), dtype=np.int64)
        # a value per node, roots first (node r = row r); a row has at most L / 2 + 1 nodes
        value = np.zeros(n * (length // 2 + 1), dtype=np.int64)
        count = n
        row, start, size = np.arange(n), np.zeros(n, dtype=np.int64), np.full(n, length)
        node = np.arange(n)
        rounds = []  # per round: (node, op, left child, right child) of its inner nodes
        while node.size:
            leaf = size <= 4  # d, -d, (d), (-d)
            r, s0, k = row[leaf], start[leaf], size[leaf]
            d = rng.integers(0, m, size=r.size, dtype=np.int64)
            bracket, negative = k >= 3, (k == 2) | (k == 4)
            x[r, s0] = np.where(bracket, opening, np.where(negative, minus, d))
            at = s0 + bracket  # where the sign or the digit goes inside a bracket
            x[r[bracket], at[bracket]] = np.where(negative[bracket], minus, d[bracket])
            x[r[negative], at[negative] + 1] = d[negative]
            x[r[bracket], s0[bracket] + k[bracket] - 1] = closing
            value[node[leaf]] = np.where(negative, -d % m, d)
            inner = ~leaf  # (E op E): the left part takes 1 .. size - 4 tokens
            r, s0, k = row[inner], start[inner], size[inner]
            left = rng.integers(1, k - 3, dtype=np.int64) if r.size else k
            op = ops[rng.integers(0, ops.size, size=r.size)]
            x[r, s0] = opening
            x[r, s0 + 1 + left] = op
            x[r, s0 + k - 1] = closing
            children = np.arange(count, count + 2 * r.size).reshape(2, -1)
            count += 2 * r.size
            rounds.append((node[inner], op, children[0], children[1]))
            row = np.concatenate([r, r])
            start = np.concatenate([s0 + 1, s0 + 2 + left])
            size = np.concatenate([left, k - 3 - left])
            node = children.ravel()
        for parent, op, a, b in reversed(rounds):
            va, vb = value[a], value[b]
            value[parent] = np.where(op == plus, va + vb,
                                     np.where(op == minus, va - vb, va * vb)) % m
        return x, value[:n, None], None
