"""State tracking: running products of group elements (Merrill et al. 2024; Grazzi et al. 2024).

Inputs are element ids g_1 .. g_T (T = seq_len), i.i.d. uniform over the group; the target at
position t is the id of the product g_1 g_2 ... g_t (inclusive of position t: a labelling task,
not next-token prediction). Groups and their ids (vocab_size = group order):

    parity       Z_2, ids 0, 1; the product is the XOR (cyclic with order 2, by its usual name)
    cyclic       Z_m (m = order), ids 0 .. m-1; the product is the sum mod m
    permutation  S_d (d = degree, 3 or 5), id i = the i-th tuple of
                 itertools.permutations(range(d)) (lexicographic; id 0 is the identity);
                 (p q)(x) = p(q(x)), so the running product is s_t = s_{t-1} g_t
    alternating  A_d (d = degree, 4 or 5), the even permutations; id i = the i-th even tuple
                 of itertools.permutations(range(d)) (same order and product as permutation)
    alternating_x_cyclic  A_d x Z_m (degree 4 or 5, order m >= 2): id = a * m + c for the A_d
                 id a and c in Z_m; (a, c)(b, e) = (ab, c + e mod m)

At order 60, A_5 (alternating, degree 5: the smallest non-solvable group), A_4 x Z_5
(alternating_x_cyclic: solvable, not abelian) and Z_60 (cyclic, order 60: abelian) separate the
three classes at one vocabulary size (Merrill et al. 2024).

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
    MAX_SIZE,
    Task,
    TaskData,
    check_choice,
    check_int,
    log2_buckets,
)

GROUPS = ("parity", "cyclic", "permutation", "alternating", "alternating_x_cyclic")
DEGREES = (3, 5)
ALTERNATING_DEGREES = (4, 5)


def is_even(p: tuple) -> bool:
    """Whether a permutation (a tuple of images) has an even number of inversions."""
    return sum(p[i] > p[j] for i in range(len(p)) for j in range(i + 1, len(p))) % 2 == 0


def permutation_table(degree: int, even_only: bool = False) -> np.ndarray:
    """[n, n] int64: table[a, b] = id of (p_a p_b), (p q)(x) = p(q(x)); ids in the order of
    itertools.permutations(range(degree)), the even ones only with even_only (A_d)."""
    perms = [p for p in itertools.permutations(range(degree)) if not even_only or is_even(p)]
    index = {p: i for i, p in enumerate(perms)}
    table = np.empty((len(perms), len(perms)), dtype=np.int64)
    for a, p in enumerate(perms):
        for b, q in enumerate(perms):
            table[a, b] = index[tuple(p[q[x]] for x in range(degree))]
    return table


def running_products(table: np.ndarray, g: np.ndarray) -> np.ndarray:
    """[n, T]: the running products of the ids g [n, T] under `table` (from the identity, id
    0): a scan over positions, vectorized over examples."""
    prod = np.empty_like(g)
    state = np.zeros(g.shape[0], dtype=np.int64)
    for t in range(g.shape[1]):
        state = table[state, g[:, t]]
        prod[:, t] = state
    return prod


@dataclasses.dataclass(frozen=True)
class StateTracking(Task):
    group: str = "parity"
    order: int | None = None  # cyclic (default 5), alternating_x_cyclic (default 5); parity: 2
    degree: int | None = None  # permutation: 3 or 5 (default 5); alternating(_x_cyclic): 4 or 5
    seq_len: int = 256
    score: str = "all"

    name = "state_tracking"
    level = "regular"  # the word problem of a finite group is a regular language
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
        elif self.group in ("cyclic", "alternating_x_cyclic"):
            if self.order is None:
                self._set("order", 5)
            check_int("order", self.order, minimum=2)
        else:
            if self.order is not None:
                raise ValueError(f"order applies to group=cyclic, alternating_x_cyclic or "
                                 f"parity, not {self.group}")
        degrees = {"permutation": DEGREES, "alternating": ALTERNATING_DEGREES,
                   "alternating_x_cyclic": ALTERNATING_DEGREES}
        if self.group in degrees:
            if self.degree is None:
                self._set("degree", 5 if self.group != "alternating_x_cyclic" else 4)
            check_int("degree", self.degree)
            check_choice("degree", self.degree, degrees[self.group])
            if self.group == "alternating_x_cyclic":
                # the ids a * m + c must stay below MAX_SIZE
                check_int("order", self.order, maximum=MAX_SIZE // (math.factorial(self.degree)
                                                                    // 2))
        elif self.degree is not None:
            raise ValueError(f"degree applies to group=permutation, alternating or "
                             f"alternating_x_cyclic only, not {self.group}")

    @property
    def vocab_size(self) -> int:
        if self.group == "permutation":
            return math.factorial(self.degree)
        if self.group == "alternating":
            return math.factorial(self.degree) // 2
        if self.group == "alternating_x_cyclic":
            return math.factorial(self.degree) // 2 * self.order
        return self.order

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
            prod = running_products(permutation_table(self.degree), g)
        elif self.group == "alternating":
            prod = running_products(permutation_table(self.degree, even_only=True), g)
        elif self.group == "alternating_x_cyclic":  # the two factors apart, then the ids
            m = self.order
            table = permutation_table(self.degree, even_only=True)
            prod = running_products(table, g // m) * m + np.cumsum(g % m, axis=1) % m
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
