"""Flip-flop language modelling (Liu et al., 2023): remember the last written bit.

Tokens: 0 = W (write), 1 = R (read), 2 = I (ignore), 3 = bit 0, 4 = bit 1; vocab_size = 5.
A sequence is seq_len / 2 (instruction, bit) pairs. The first instruction is W and the last is
R; the others are W with probability p_write, R with probability p_read, I otherwise. The bit
after W or I is uniform; the bit after R equals the bit of the most recent W. Next-token
alignment: the target at each R position is the bit token that follows it (the last written
bit); nothing else is scored. The bit is also in the inputs, one position later, as in the
flip-flop language.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .base import (
    IGNORE_INDEX,
    Task,
    TaskData,
    check_float,
    check_int,
    log2_buckets,
    masked_bucket_slices,
)


@dataclasses.dataclass(frozen=True)
class FlipFlop(Task):
    seq_len: int = 256
    p_write: float = 0.05
    p_read: float = 0.1

    name = "flipflop"
    version = 1
    TEST_PARAMS = {"seq_len": 64}
    WRITE, READ, IGNORE, BIT0, BIT1 = 0, 1, 2, 3, 4

    def __post_init__(self) -> None:
        check_int("seq_len", self.seq_len, minimum=4)
        if self.seq_len % 2:
            raise ValueError(f"seq_len={self.seq_len} must be even (instruction, bit pairs)")
        check_float("p_write", self.p_write, 0.0, 1.0, low_open=True, high_open=False)
        check_float("p_read", self.p_read, 0.0, 1.0, low_open=True, high_open=False)
        self._set("p_write", float(self.p_write))
        self._set("p_read", float(self.p_read))
        if self.p_write + self.p_read > 1.0:
            raise ValueError(
                f"p_write + p_read = {self.p_write + self.p_read} must be <= 1 "
                f"(p_write={self.p_write}, p_read={self.p_read}; the rest are ignores)"
            )

    @property
    def vocab_size(self) -> int:
        return 5

    @property
    def answer_alphabet(self) -> int:
        """A scored token is a bit: 0 or 1."""
        return 2

    @property
    def info_bits(self) -> float:
        return 1.0

    def buckets(self) -> list[tuple[str, int, int]]:
        # a read is at least one pair after its write, at most seq_len - 2 tokens
        return log2_buckets("dist", self.seq_len - 2, min_value=2)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, pairs = num_examples, self.seq_len // 2
        u = rng.random((n, pairs))
        # W (0) below p_write, R (1) below p_write + p_read, I (2) above: the token ids.
        instr = (u >= self.p_write).astype(np.int8)
        instr += u >= self.p_write + self.p_read
        instr[:, 0] = self.WRITE
        instr[:, -1] = self.READ
        bits = rng.integers(0, 2, size=(n, pairs), dtype=np.int8)
        is_write = instr == self.WRITE
        is_read = instr == self.READ
        idx_dtype = np.int16 if pairs < 2**15 else np.int64
        steps = np.arange(pairs, dtype=idx_dtype)
        last_write = np.maximum.accumulate(np.where(is_write, steps, -1), axis=1)
        read_bits = np.take_along_axis(bits, last_write.astype(np.intp), axis=1)
        np.copyto(bits, read_bits, where=is_read)
        bit_tok = bits + np.int8(self.BIT0)

        inputs = np.stack([instr, bit_tok], axis=2).reshape(n, self.seq_len)
        tgt = np.where(is_read, bit_tok, np.int8(IGNORE_INDEX))
        targets = np.stack([tgt, np.full_like(tgt, IGNORE_INDEX)], axis=2).reshape(n, -1)
        mask = np.stack([is_read, np.zeros_like(is_read)], axis=2).reshape(n, -1)
        dist = 2 * (steps - last_write)
        dist = np.stack([dist, np.zeros_like(dist)], axis=2).reshape(n, -1)
        slices = masked_bucket_slices(self.buckets(), dist, mask)
        return TaskData(
            torch.from_numpy(inputs.astype(np.int64)),
            torch.from_numpy(targets.astype(np.int64)),
            slices,
        )
