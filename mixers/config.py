"""The schema of a `conf/mixer/*.yaml` file: a mixer is a config, not a class."""

from __future__ import annotations

from dataclasses import dataclass

from .ops import BACKENDS
from .patterns import make_direct, make_pattern

KINDS = ("glr", "linear_attention")


@dataclass
class MixerConfig:
    name: str = "attention"
    # glr: Y = (I - B)^-1 A V with joint-softmax coefficients; or linear_attention
    kind: str = "glr"
    direct: str = "full"  # self | window(w) | full
    recurrent: str = "none"  # none | first | kth(K) | pow2 | sq1 | dense | an expression in k
    cache_efficient: bool = False  # the lattice variant of the recurrent pattern (DESIGN.md 1.1)
    chunk_size: int = 64
    backend: str = "auto"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"mixer.kind must be one of {KINDS}, got {self.kind!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"mixer.backend must be one of {BACKENDS}, got {self.backend!r}")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ValueError(f"mixer.chunk_size must be an integer >= 1, got {self.chunk_size!r}")
        # parse the patterns now so that a typo fails before any model is built
        make_direct(self.direct)
        make_pattern(self.recurrent, cache_efficient=self.cache_efficient)
