"""State tracking: running products of group elements (Merrill et al. 2024; Grazzi et al. 2024).

Inputs are element ids g_1 .. g_T (T = seq_len), i.i.d. uniform over the group; the target at
position t is the id of the product g_1 g_2 ... g_t (inclusive of position t: a labelling task,
not next-token prediction). Groups and their ids (vocab_size = group order):

    parity       Z_2, ids 0, 1; the product is the XOR (cyclic with order 2, by its usual name)
    cyclic       Z_m (m = order), ids 0 .. m-1; the product is the sum mod m
    permutation  S_d (d = degree, 3 or 5), id i = the i-th tuple of
                 itertools.permutations(range(d)) (lexicographic; id 0 is the identity);
                 (p q)(x) = p(q(x)), so the running product is s_t = s_{t-1} g_t

score = 'all' scores every position, score = 'last' only the final one.
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
    check_choice,
    check_int,
    log2_buckets,
)

GROUPS = ("parity", "cyclic", "permutation")
DEGREES = (3, 5)


def permutation_table(degree: int) -> np.ndarray:
    """[d!, d!] int64: table[a, b] = id of (p_a p_b), (p q)(x) = p(q(x))."""
    perms = list(itertools.permutations(range(degree)))
    index = {p: i for i, p in enumerate(perms)}
    table = np.empty((len(perms), len(perms)), dtype=np.int64)
    for a, p in enumerate(perms):
        for b, q in enumerate(perms):
            table[a, b] = index[tuple(p[q[x]] for x in range(degree))]
    return table


@dataclasses.dataclass(frozen=True)
class StateTracking(Task):
    group: str = "parity"
    order: int | None = None  # cyclic only (default 5); parity has order 2
    degree: int | None = None  # permutation only: 3 or 5 (default 5)
    seq_len: int = 256
    score: str = "all"

    name = "state_tracking"
    version = 1
    TEST_PARAMS = {"group": "permutation", "degree": 3, "seq_len": 32}

    def __post_init__(self) -> None:
        check_choice("group", self.group, GROUPS)
        check_choice("score", self.score, ("all", "last"))
        check_int("seq_len", self.seq_len, minimum=1)
        if self.group == "parity":
            if self.order not in (None, 2):
                raise ValueError(f"order={self.order}: group=parity has order 2 (use cyclic)")
            self._set("order", 2)
        elif self.group == "cyclic":
            if self.order is None:
                self._set("order", 5)
            check_int("order", self.order, minimum=2)
        else:
            if self.order is not None:
                raise ValueError("order applies to group=cyclic or parity, not permutation")
        if self.group == "permutation":
            if self.degree is None:
                self._set("degree", 5)
            check_int("degree", self.degree)
            check_choice("degree", self.degree, DEGREES)
        elif self.degree is not None:
            raise ValueError(f"degree applies to group=permutation only, not {self.group}")

    @property
    def vocab_size(self) -> int:
        return math.factorial(self.degree) if self.group == "permutation" else self.order

    @property
    def answer_alphabet(self) -> int:
        """A scored token is a group element: one of the group order's ids."""
        return self.vocab_size

    @property
    def info_bits(self) -> float:
        return math.log2(self.vocab_size)

    def buckets(self) -> list[tuple[str, int, int]]:
        return log2_buckets("pos", self.seq_len - 1)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, length = num_examples, self.seq_len
        g = rng.integers(0, self.vocab_size, size=(n, length), dtype=np.int64)
        if self.group == "permutation":
            table = permutation_table(self.degree)
            prod = np.empty_like(g)
            state = np.zeros(n, dtype=np.int64)  # identity
            for t in range(length):  # a scan over positions, vectorized over examples
                state = table[state, g[:, t]]
                prod[:, t] = state
        else:
            prod = np.cumsum(g, axis=1) % self.order
        mask = np.zeros((n, length), dtype=bool)
        if self.score == "all":
            mask[:] = True
        else:
            mask[:, -1] = True
        targets = np.where(mask, prod, IGNORE_INDEX)
        if self.score == "last":
            slices = {"last": torch.from_numpy(mask)}
        else:  # every position is scored: a bucket is a set of columns
            pos = np.arange(length)
            slices = {
                name: torch.from_numpy(np.repeat(((pos >= lo) & (pos < hi))[None], n, axis=0))
                for name, lo, hi in self.buckets()
            }
        return TaskData(torch.from_numpy(g), torch.from_numpy(targets), slices)
