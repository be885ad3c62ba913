"""Common pieces of every task: the `Task` base class, `TaskData`, validation and sampling helpers.

A task is a frozen dataclass whose fields are its configuration. It is validated in
`__post_init__` (a `ValueError` naming the field and the constraint; nothing is clamped) and
generates data with `generate(num_examples, seed)`. All randomness comes from
`numpy.random.default_rng(seed)`, so the same (config, seed) gives the same tensors in any
process on any machine (numpy's PCG64 stream is platform independent).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

IGNORE_INDEX = -100
"""Target value at positions that are not scored (PyTorch's cross-entropy default)."""

GENERATOR_VERSION = 2
"""Bumped whenever a change to any generator changes the tensors it makes for some (config, seed).
Each task class also has its own `version`; both go into `content_hash`. (2: `sample_distinct`
draws k > 64 distinct values from n >= 2 k by per-entry redraws, in time linear in k.)"""

MAX_SIZE = 2**31 - 1
"""The largest value of any integer size field (vocab_size, seq_len, counts): larger values are
rejected at construction, so that no index arithmetic in int64 can overflow."""

MAX_BYTES = 8 * 2**30
"""Default limit (8 GiB) on the estimated memory of one `generate` call; `generate(...,
max_bytes=...)` or the environment variable GLMIX_MAX_BYTES (bytes) raises or lowers it. See
`Task.estimated_bytes`."""


@dataclasses.dataclass
class TaskData:
    """A generated data set.

    inputs:  LongTensor [N, seq_len], token ids in [0, vocab_size).
    targets: LongTensor [N, seq_len], the token to predict at each position, IGNORE_INDEX (-100)
             where nothing is scored.
    slices:  name -> BoolTensor [N, seq_len], True only at scored positions of that slice.
    content_hash: sha256 (hex) of the tensors (shapes, dtypes, bytes, slice names), computed here.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    slices: dict[str, torch.Tensor]
    content_hash: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        if self.inputs.dtype != torch.long or self.targets.dtype != torch.long:
            raise ValueError("inputs and targets must be LongTensors")
        if self.inputs.dim() != 2 or self.inputs.shape != self.targets.shape:
            raise ValueError(
                f"inputs {tuple(self.inputs.shape)} and targets {tuple(self.targets.shape)} "
                "must both be [N, seq_len]"
            )
        for name, mask in self.slices.items():
            if mask.dtype != torch.bool or mask.shape != self.inputs.shape:
                raise ValueError(f"slice {name!r} must be a BoolTensor of shape [N, seq_len]")
        self.content_hash = tensors_hash(self.inputs, self.targets, self.slices)

    @property
    def scored(self) -> torch.Tensor:
        """BoolTensor [N, seq_len]: the scored positions."""
        return self.targets != IGNORE_INDEX

    def __len__(self) -> int:
        return self.inputs.shape[0]


def tensors_hash(inputs: torch.Tensor, targets: torch.Tensor, slices: dict) -> str:
    """sha256 over, for inputs, targets and each slice (sorted by name): its name, dtype, shape
    and raw bytes (little-endian int64 / bool)."""
    h = hashlib.sha256()
    items = [("inputs", inputs), ("targets", targets)]
    items += [(f"slice:{name}", slices[name]) for name in sorted(slices)]
    for name, t in items:
        arr = np.ascontiguousarray(t.detach().cpu().numpy())
        dtype = arr.dtype.newbyteorder("<")
        arr = arr.astype(dtype, copy=False)
        h.update(f"{name}|{dtype.str}|{tuple(arr.shape)}|".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


class Task(ABC):
    """Base of every task dataclass. Subclasses are `@dataclasses.dataclass(frozen=True)`.

    Subclasses set the class attributes `name` (the registry name) and `version` (bumped when
    their generator's output changes), and provide `vocab_size`, `seq_len` (fields or
    properties), `info_bits`, `answer_alphabet` and `_generate(num_examples, rng) -> TaskData`.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    TEST_PARAMS: ClassVar[dict] = {}
    """Small, valid parameters that generate quickly: what the generic tests in tests/tasks use
    (every registered task sets its own)."""
    level: ClassVar[str | None] = None
    """The task's level of the Chomsky hierarchy (`regular`, `dcf` or `cs`, tasks/chomsky.py),
    which analysis/levels.py groups and averages by; None for a task outside it."""
    BYTES_PER_TOKEN: ClassVar[int] = 48
    """Peak bytes per (example, position) of `_generate`, besides one byte per slice: int64
    inputs and targets (16) plus the generator's temporaries. An estimate, used by the guard."""

    vocab_size: int
    seq_len: int

    @property
    @abstractmethod
    def info_bits(self) -> float:
        """Bits a model must carry to score 100% (see docs/tasks.md for each task's formula)."""

    @property
    @abstractmethod
    def answer_alphabet(self) -> int:
        """How many values one scored answer token can take (the task's own token layout):
        a guess is right with probability 1 / answer_alphabet, the task's chance level."""

    @property
    def chance(self) -> float:
        """Chance accuracy per scored token: 1 / answer_alphabet."""
        return 1.0 / self.answer_alphabet

    @abstractmethod
    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData: ...

    def generate(self, num_examples: int, seed: int, max_bytes: int | None = None) -> TaskData:
        """`num_examples` examples drawn from `numpy.random.default_rng(seed)` alone.

        Raises ValueError, before allocating anything, when `estimated_bytes(num_examples)`
        exceeds `max_bytes` (default `MAX_BYTES`, 8 GiB)."""
        check_int("num_examples", num_examples, minimum=1)
        check_int("seed", seed, minimum=0, maximum=None)
        self.check_memory(int(num_examples), max_bytes)
        return self._generate(int(num_examples), np.random.default_rng(int(seed)))

    def num_slices(self) -> int:
        """How many slices `generate` returns (an upper bound is enough): for the estimate."""
        return len(self.buckets()) if hasattr(self, "buckets") else 1

    def estimated_bytes(self, num_examples: int) -> int:
        """Estimated peak memory of `generate(num_examples, ...)`: num_examples * seq_len *
        (BYTES_PER_TOKEN + num_slices())."""
        return int(num_examples) * int(self.seq_len) * (self.BYTES_PER_TOKEN + self.num_slices())

    def check_memory(self, num_examples: int, max_bytes: int | None = None) -> None:
        """ValueError naming num_examples and seq_len when the estimate exceeds the limit."""
        limit = memory_limit(max_bytes)
        need = self.estimated_bytes(num_examples)
        if need > limit:
            raise ValueError(
                f"num_examples={num_examples} x seq_len={self.seq_len} of task {self.name!r} "
                f"needs about {need / 2**30:.3g} GiB, over the limit max_bytes={limit} "
                f"({limit / 2**30:.3g} GiB): generate fewer or shorter examples, or raise the "
                "limit (generate's max_bytes, or the environment variable GLMIX_MAX_BYTES)"
            )

    def config(self) -> dict:
        """The configuration fields as a plain dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def _set(self, field: str, value) -> None:
        """Normalise a field of the frozen dataclass in `__post_init__`."""
        object.__setattr__(self, field, value)


# ---------------------------------------------------------------- validation helpers


def memory_limit(max_bytes: int | None = None) -> int:
    """The limit of the memory guard: `max_bytes`, else $GLMIX_MAX_BYTES, else MAX_BYTES."""
    limit = max_bytes
    if limit is None:
        limit = int(os.environ.get("GLMIX_MAX_BYTES", MAX_BYTES))
    check_int("max_bytes", limit, minimum=1, maximum=None)
    return limit


def check_int(field: str, value, minimum: int | None = None, maximum: int | None = MAX_SIZE):
    """An integer (not a bool) in [minimum, maximum]; maximum defaults to MAX_SIZE (None: no
    upper bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{field} must be <= {maximum}, got {value}")


def check_float(field: str, value, low: float, high: float, low_open: bool, high_open: bool):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number, got {value!r}")
    bad_low = value <= low if low_open else value < low
    bad_high = value >= high if high_open else value > high
    if bad_low or bad_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{field} must be in {lo}{low}, {high}{hi}, got {value}")


def check_choice(field: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{field} must be one of {list(choices)}, got {value!r}")


def check_bool(field: str, value) -> None:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{field} must be a bool, got {value!r}")


def check_derived_seq_len(task, derived: int, formula: str) -> None:
    """A derived seq_len: filled in when unset (None), else it must equal `derived`."""
    if task.seq_len is None:
        task._set("seq_len", derived)
        return
    check_int("seq_len", task.seq_len, minimum=1)
    if task.seq_len != derived:
        raise ValueError(
            f"seq_len={task.seq_len} does not match {formula} = {derived}; "
            "leave seq_len unset to derive it"
        )


def log2_falling_factorial(n: int, k: int) -> float:
    """log2(n! / (n - k)!)."""
    return (math.lgamma(n + 1) - math.lgamma(n - k + 1)) / math.log(2)


def log2_binomial(n: int, k: int) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


# ---------------------------------------------------------------- sampling helpers


def sample_distinct(rng: np.random.Generator, rows: int, k: int, low: int, high: int) -> np.ndarray:
    """int64 [rows, k]: per row, k distinct integers from [low, high) in uniformly random order.

    Vectorized over rows, by one of four exact methods chosen from (k, n = high - low) alone:
    when k (k - 1) <= n, i.i.d. draws with the rows that hold a repeat drawn again (at most about
    half of the rows repeat, so few rounds); else, for k <= 64: Floyd's algorithm when
    k^2 <= 16 n (k draws, O(rows k^2)) then a random shuffle, or, when k^2 > 16 n, the k smallest
    of n i.i.d. uniform scores, in increasing order of score (O(rows n)); for k > 64: the same
    dense method when n < 2 k (O(rows k)), else i.i.d. draws with each entry that repeats an
    earlier entry of its row drawn again (O(rows k log k) per round, a repeat has probability
    <= 1/2). Each method is uniform over ordered k-subsets: it commutes with any relabelling of
    the n values, and relabellings act transitively on ordered k-subsets.
    """
    n = high - low
    if not 0 <= k <= n:
        raise ValueError(f"cannot draw {k} distinct values from a range of {n}")
    if k == 0:
        return np.zeros((rows, 0), dtype=np.int64)
    if k * (k - 1) <= n:
        out = rng.integers(0, n, size=(rows, k), dtype=np.int64)
        todo = np.arange(rows)
        while todo.size:
            s = np.sort(out[todo], axis=1)
            todo = todo[(s[:, 1:] == s[:, :-1]).any(axis=1)]
            out[todo] = rng.integers(0, n, size=(todo.size, k), dtype=np.int64)
    elif k <= 64 and k * k <= 16 * n:
        out = np.empty((rows, k), dtype=np.int64)
        for i, j in enumerate(range(n - k, n)):
            t = rng.integers(0, j + 1, size=rows, dtype=np.int64)
            dup = (out[:, :i] == t[:, None]).any(axis=1)
            out[:, i] = np.where(dup, j, t)
        perm = np.argsort(rng.random((rows, k)), axis=1)
        out = np.take_along_axis(out, perm, axis=1)
    elif k > 64 and n >= 2 * k:
        out = rng.integers(0, n, size=(rows, k), dtype=np.int64)
        todo = np.arange(rows)
        while todo.size:
            order = np.argsort(out[todo], axis=1, kind="stable")  # ties: earlier entry first
            s = np.take_along_axis(out[todo], order, axis=1)
            r, c = np.nonzero(s[:, 1:] == s[:, :-1])
            out[todo[r], order[r, c + 1]] = rng.integers(0, n, size=r.size, dtype=np.int64)
            todo = todo[np.unique(r)]
    else:
        score = rng.random((rows, n))
        out = np.argpartition(score, k - 1, axis=1)[:, :k] if k < n else np.argsort(score, axis=1)
        order = np.argsort(np.take_along_axis(score, out, axis=1), axis=1)
        out = np.take_along_axis(out, order, axis=1).astype(np.int64)
    return out + low


def sample_excluding(
    rng: np.random.Generator, excluded: np.ndarray, size: int, high: int, out=None
) -> np.ndarray:
    """int64 [rows, size]: per row, i.i.d. uniform integers from [0, high) minus that row's
    `excluded` values (int [rows, k], distinct within a row, all in [0, high)). Written into
    `out` when given."""
    rows, k = excluded.shape
    r = rng.integers(0, high - k, size=(rows, size), dtype=np.int64)
    # The r-th allowed value (0-based) is r + #{i : t_i <= r} with t_i = s_i - i, s sorted.
    t = np.sort(excluded, axis=1) - np.arange(k)
    out = np.empty_like(r) if out is None else out
    if k > 32:  # O(rows (size + k) log) rather than O(rows size k): the same values
        offset = (np.arange(rows, dtype=np.int64) * high)[:, None]
        cnt = np.searchsorted((t + offset).ravel(), (r + offset).ravel(), side="right")
        out[:] = r + (cnt.reshape(rows, size) - np.arange(rows)[:, None] * k)
        return out
    dtype = np.int16 if high < 2**15 else np.int64
    chunk = 2048  # rows per block, to stay in cache; it does not change the result
    for a in range(0, rows, chunk):
        rr = r[a : a + chunk].astype(dtype)
        tt = t[a : a + chunk].astype(dtype)
        cnt = np.zeros_like(rr)
        for i in range(k):
            cnt += rr >= tt[:, i, None]
        out[a : a + chunk] = rr + cnt
    return out


# ---------------------------------------------------------------- slice helpers


def log2_buckets(
    prefix: str, max_value: int, min_value: int = 0, first: int = 16
) -> list[tuple[str, int, int]]:
    """Buckets [lo, hi) over [0, first), [first, 2 first), [2 first, 4 first), ..., keeping those
    that meet [min_value, max_value] (the values a task can produce, so no slice is empty by
    construction).

    Names: f"{prefix}<{first}", then f"{prefix}{lo}..{hi - 1}" (e.g. 'dist<16', 'dist16..31').
    """
    buckets = [(f"{prefix}<{first}", 0, first)]
    lo = first
    while lo <= max_value:
        buckets.append((f"{prefix}{lo}..{2 * lo - 1}", lo, 2 * lo))
        lo *= 2
    return [b for b in buckets if b[2] > min_value]


def bucket_slices(
    buckets: list[tuple[str, int, int]],
    shape: tuple[int, int],
    positions: np.ndarray,
    values: np.ndarray,
) -> dict[str, torch.Tensor]:
    """One BoolTensor [N, seq_len] per bucket: True at `positions[n, j]` (column indices of the
    scored items of row n) when `values[n, j]` falls in that bucket. Every value must fall in
    some bucket, so the slices partition the given positions."""
    rows = np.broadcast_to(np.arange(shape[0])[:, None], positions.shape)
    return bucket_slices_flat(buckets, shape, rows, positions, values)


def masked_bucket_slices(
    buckets: list[tuple[str, int, int]], values: np.ndarray, mask: np.ndarray
) -> dict[str, torch.Tensor]:
    """Like `bucket_slices`, from dense arrays: `values` [N, seq_len] (small non-negative ints)
    is read where `mask` [N, seq_len] is True (the scored positions); each such value must fall in
    some bucket."""
    edges = np.array([lo for _, lo, _ in buckets] + [buckets[-1][2]])
    # lut[v + 1] = bucket of v for v in [-1, edges[-1]]; -1 (none) below edges[0] and at the top
    lut = np.full(edges[-1] + 2, -1, dtype=np.int8)
    for b in range(len(buckets)):
        lut[edges[b] + 1 : edges[b + 1] + 1] = b
    ids = lut[np.clip(np.where(mask, values, edges[-1]), -1, edges[-1]) + 1]
    slices = {name: ids == b for b, (name, _, _) in enumerate(buckets)}
    if sum(int(np.count_nonzero(s)) for s in slices.values()) != int(np.count_nonzero(mask)):
        raise AssertionError("bucket values out of range")  # a generator bug, not user input
    return {name: torch.from_numpy(s) for name, s in slices.items()}


def bucket_slices_flat(buckets, shape, rows, cols, values) -> dict[str, torch.Tensor]:
    """Slices from the scored positions (rows[i], cols[i]) and their values."""
    edges = np.array([lo for _, lo, _ in buckets] + [buckets[-1][2]])
    if values.size and (values.min() < edges[0] or values.max() >= edges[-1]):
        raise AssertionError("bucket values out of range")  # a generator bug, not user input
    grid = np.full(shape, -1, dtype=np.int8)
    grid[rows, cols] = np.searchsorted(edges, values, side="right") - 1
    return {name: torch.from_numpy(grid == b) for b, (name, _, _) in enumerate(buckets)}
