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
from .chomsky import ChomskyTask, ended

POP, PUSH0, PUSH1, END = 2, 3, 4, 2


@dataclasses.dataclass(frozen=True)
class ReverseString(ChomskyTask):
    num_symbols: int = 2

    name = "reverse_string"
    level = "dcf"
    version = 1
    TEST_PARAMS = {"length": 12}

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
        return self.length * math.log2(self.num_symbols)

    def _draw(self, n, rng):
        x = rng.integers(0, self.num_symbols, size=(n, self.length), dtype=np.int64)
        return x, x[:, ::-1], None


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
        # A context-free grammar has no vectorized sampler that keeps the distribution: one
        # expression at a time, from 2 L uniforms drawn up front (a node uses at most two).
        length, m = self.length, self.modulus
        u = rng.random((n, 2 * length))
        x = np.empty((n, length), dtype=np.int64)
        y = np.empty((n, 1), dtype=np.int64)
        for r in range(n):
            tokens, value = self._expression(length, iter(u[r].tolist()), m)
            x[r] = tokens
            y[r, 0] = value
        return x, y, None

    def _expression(self, length: int, u, m: int) -> tuple[list[int], int]:
        """One expression of exactly `length` tokens and its value mod m, expanded with an
        explicit stack (no recursion limit): ('node', len) expands, ('tok', id) writes a token,
        ('op', id) combines the two values on top of the value stack."""
        plus, minus, times, opening, closing = m, m + 1, m + 2, m + 3, m + 4
        ops = (plus, minus, times) if self.mult else (plus, minus)
        tokens: list[int] = []
        values: list[int] = []
        todo = [("node", length)]
        while todo:
            kind, a = todo.pop()
            if kind == "tok":
                tokens.append(a)
            elif kind == "op":
                right, left = values.pop(), values.pop()
                values.append((left + right if a == plus else left - right if a == minus
                               else left * right) % m)
            elif a <= 4:  # d, -d, (d), (-d)
                d = int(next(u) * m)
                negative = a in (2, 4)
                body = [minus, d] if negative else [d]
                tokens.extend([opening, *body, closing] if a >= 3 else body)
                values.append(-d % m if negative else d)
            else:  # (E op E): the left part takes 1 .. a - 4 tokens, the rest the right part
                left = 1 + int(next(u) * (a - 4))
                op = ops[int(next(u) * len(ops))]
                # pushed last to first: "(", left, op, right, ")", then combine
                todo.extend([("op", op), ("tok", closing), ("node", a - 3 - left), ("tok", op),
                             ("node", left), ("tok", opening)])
        return tokens, values[0]
