"""Mixer kinds, each registered once (docs/design.md, section 1.3).

A *kind* is a family of layers (`glr`, `linear_attention`, ...); a *mixer* is a config of a kind,
one `conf/mixer/<name>.yaml` file. The YAML files are the only list of mixers: benchmarks, tests
and analysis enumerate them through `runners.paths.catalogue()` (the config folder is the
runners' Hydra config).

    @register_kind("glr", keys=("direct", "recurrent", "cache_efficient", "chunk_size", "backend"))
    def _build_glr(cfg: MixerConfig, d_model: int, num_heads: int) -> nn.Module: ...

A kind declares the MixerConfig keys it reads; `MixerConfig` refuses any other key set away from
its default (one line naming the kind and the keys it takes), so a key a kind ignores can never
make two leaderboard rows of one computation.

Every layer a kind builds states its own theory (docs/design.md 1.7), read instead of a name table:

    state_size(n)        floats kept to decode token n (all heads of one layer)
    flops_per_token(n)   mixing flops of token n - 1 (projections excluded)
    cache_size(n)        entries (vectors or matrix states) kept per head to decode token n
    patterns             (DirectPattern, RecurrentPattern) when the layer is a point of the
                         framework Y = (I - B)^{-1} A V, else None (hop figures then do not apply)
    state_expanded       True when each cache entry is a d x d matrix (docs/design.md 1.4)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MixerKind", "register_kind", "get_kind", "kind_names", "qkv_conv_kinds",
           "position_kinds", "COMMON_KEYS"]

#: the MixerConfig keys every kind takes: its name, its kind, and the short convolution in front
#: of the layer (mixers.conv; short_conv_on=qkv only for the kinds registered with qkv_conv)
COMMON_KEYS = ("name", "kind", "short_conv", "short_conv_on")


@dataclass(frozen=True)
class MixerKind:
    name: str
    build: Callable  # (MixerConfig, d_model, num_heads) -> nn.Module
    keys: tuple[str, ...]  # the MixerConfig keys its builder reads, beyond COMMON_KEYS
    qkv_conv: bool = False  # whether its builder honours mixer.short_conv_on=qkv
    # (MixerConfig) -> the keys of `keys` that this config's layer does not read after all
    # (attention, glr with direct=full and no recurrence, runs on SDPA: no chunk_size, backend)
    unused: Callable | None = None

    @property
    def uses_patterns(self) -> bool:
        """Whether `direct` / `recurrent` / `cache_efficient` mean anything to this kind."""
        return "recurrent" in self.keys

    def keys_for(self, cfg) -> tuple[str, ...]:
        """Every MixerConfig key the layer of `cfg` reads (COMMON_KEYS first)."""
        dropped = set(self.unused(cfg)) if self.unused is not None else set()
        return COMMON_KEYS + tuple(k for k in self.keys if k not in dropped)
    positions: bool = False  # whether its builder takes pos_emb=rope | alibi (its own scores)


_KINDS: dict[str, MixerKind] = {}


def register_kind(name: str, *, keys: tuple[str, ...] = (), qkv_conv: bool = False,
                  unused: Callable | None = None, positions: bool = False):
    """Decorator: register `build(cfg, d_model, num_heads) -> nn.Module` as mixer kind `name`.

    A builder may import heavy optional dependencies inside its body: registration is free.
    `keys`: the MixerConfig keys the builder reads beyond COMMON_KEYS; MixerConfig refuses any
    other key set away from its default, and so a key a kind ignores never changes a run's
    identity. `unused(cfg)`: keys of `keys` that a particular config does not read.
    `qkv_conv`: the builder puts mixer.short_conv on q, k, v itself when short_conv_on=qkv
    (mixers/conv.py); other kinds accept only short_conv_on=input.
    `positions`: the builder takes a keyword `pos_emb` (rope | alibi, mixers/positions.py) and
    applies it to the layer's q . k scores; other kinds refuse those two schemes.
    """

    def decorate(build):
        if name in _KINDS and _KINDS[name].build is not build:
            raise ValueError(f"mixer kind {name!r} is registered twice")
        _KINDS[name] = MixerKind(name, build, tuple(keys), qkv_conv, unused, positions)
        return build

    return decorate


def kind_names() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def qkv_conv_kinds() -> tuple[str, ...]:
    return tuple(sorted(k for k, v in _KINDS.items() if v.qkv_conv))


def position_kinds() -> tuple[str, ...]:
    return tuple(sorted(k for k, v in _KINDS.items() if v.positions))


def get_kind(name: str) -> MixerKind:
    if name not in _KINDS:
        raise ValueError(f"mixer.kind must be one of {kind_names()}, got {name!r}")
    return _KINDS[name]
