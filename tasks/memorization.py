"""MAD's memorization task (Poli et al., 2024): one fixed key -> value map for the whole dataset.

Tokens (V = vocab_size, H = (V - 1) // 2): keys [0, H), values [H, 2H), INSERT = V - 1. The map
is a bijection, value(key) = H + perm[key] with perm = numpy.random.default_rng(map_seed)
.permutation(H): the same for every example, every split and every run seed, so the answer is
never in the context and must be stored in the weights. A sequence is seq_len / 2 slots
(key, INSERT), keys i.i.d. uniform; the target at each INSERT position is the key's value
(a labelling task, as in MAD: the value never appears in the inputs).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

from .base import IGNORE_INDEX, Task, TaskData, check_int, log2_falling_factorial


@functools.lru_cache(maxsize=8)
def value_map(num_keys: int, map_seed: int) -> np.ndarray:
    """int64 [num_keys]: the value token of each key (read-only)."""
    out = num_keys + np.random.default_rng(map_seed).permutation(num_keys).astype(np.int64)
    out.flags.writeable = False
    return out


@dataclasses.dataclass(frozen=True)
class Memorization(Task):
    vocab_size: int = 256
    seq_len: int = 32
    map_seed: int = 12345

    name = "memorization"
    version = 1
    TEST_PARAMS = {"vocab_size": 33, "seq_len": 16}
    BYTES_PER_TOKEN = 40

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, minimum=3)
        check_int("seq_len", self.seq_len, minimum=2)
        check_int("map_seed", self.map_seed, minimum=0, maximum=None)
        if self.seq_len % 2:
            raise ValueError(f"seq_len={self.seq_len} must be even (key, INSERT slots)")

    @property
    def num_keys(self) -> int:
        return (self.vocab_size - 1) // 2

    @property
    def insert_token(self) -> int:
        return self.vocab_size - 1

    @property
    def info_bits(self) -> float:
        # nothing to carry along the sequence: the answer depends on the current key alone
        return 0.0

    @property
    def answer_alphabet(self) -> int:
        """A scored token is one of the H values."""
        return self.num_keys

    @property
    def map_bits(self) -> float:
        """Bits of the map itself (log2 H!), which the weights must hold."""
        return log2_falling_factorial(self.num_keys, self.num_keys)

    def value_map(self) -> np.ndarray:
        return value_map(self.num_keys, self.map_seed)

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, slots = num_examples, self.seq_len // 2
        keys = rng.integers(0, self.num_keys, size=(n, slots), dtype=np.int64)
        inputs = np.empty((n, self.seq_len), dtype=np.int64)
        inputs[:, 0::2] = keys
        inputs[:, 1::2] = self.insert_token
        targets = np.full((n, self.seq_len), IGNORE_INDEX, dtype=np.int64)
        targets[:, 1::2] = self.value_map()[keys]
        slices = {"all": torch.from_numpy(targets != IGNORE_INDEX)}
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)
