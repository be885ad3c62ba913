"""The schema of a `conf/mixer/*.yaml` file: a mixer is a config, not a class.

Each kind declares the keys it reads (mixers.registry); a config that sets any other key away
from its default is refused, so every key of a valid config either changes the computation or
holds its default, and a key a kind ignores never makes a second run identity (docs/runners.md,
"Run identity").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from .ops import BACKENDS
from .patterns import make_direct, make_pattern
from .registry import get_kind, qkv_conv_kinds

#: where `short_conv` applies (mixers/conv.py): the layer's input, or q, k, v after projection
SHORT_CONV_PLACES = ("input", "qkv")


@dataclass
class MixerConfig:
    name: str = "attention"
    # a registered kind (mixers.registry): glr, linear_attention, ...
    kind: str = "glr"
    # for the kinds that are points of the framework (docs/design.md 1.1):
    direct: str = "full"  # self | window(w) | full
    recurrent: str = "none"  # none | first | kth(K) | pow2 | sq1 | dense | an expression in k
    cache_efficient: bool = False  # the lattice variant of the recurrent pattern
    chunk_size: int = 64
    backend: str = "auto"
    short_conv: int = 0  # kernel size of a causal depthwise short convolution; 0 = off
    short_conv_on: str = "input"  # input: on the layer's input | qkv: on q, k, v (mixers/conv.py)
    params: dict[str, Any] = field(default_factory=dict)  # the kind's own knobs

    def __post_init__(self):
        kind = get_kind(self.kind)  # names the registered kinds when unknown
        if self.backend not in BACKENDS:
            raise ValueError(f"mixer.backend must be one of {BACKENDS}, got {self.backend!r}")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ValueError(f"mixer.chunk_size must be an integer >= 1, got {self.chunk_size!r}")
        if (not isinstance(self.short_conv, int) or isinstance(self.short_conv, bool)
                or self.short_conv < 0):
            raise ValueError(f"mixer.short_conv must be an integer >= 0 (0 = off), got "
                             f"{self.short_conv!r}")
        if self.short_conv_on not in SHORT_CONV_PLACES:
            raise ValueError(f"mixer.short_conv_on must be one of {SHORT_CONV_PLACES}, got "
                             f"{self.short_conv_on!r}")
        if self.short_conv and self.short_conv_on == "qkv" and not kind.qkv_conv:
            raise ValueError(f"mixer.short_conv_on=qkv: kind {self.kind!r} has no q, k, v "
                             f"convolution hook (kinds with one: {qkv_conv_kinds()}); use "
                             f"short_conv_on=input")
        if not isinstance(self.params, dict):
            raise ValueError(f"mixer.params must be a mapping, got {self.params!r}")
        if kind.uses_patterns:
            # parse the patterns now so that a typo fails before any model is built
            make_direct(self.direct)
            make_pattern(self.recurrent, cache_efficient=self.cache_efficient)
        used = kind.keys_for(self)
        ignored = [k for k, default in _defaults().items()
                   if k not in used and getattr(self, k) != default]
        if ignored:
            values = ", ".join(f"mixer.{k}={getattr(self, k)!r}" for k in ignored)
            one = len(ignored) == 1
            raise ValueError(f"{values}: kind {self.kind!r} does not read "
                             f"{'this key' if one else 'these keys'} in this config (it reads "
                             f"{', '.join(used)}); remove {'it' if one else 'them'}")

    def used_keys(self) -> tuple[str, ...]:
        """The keys this config's layer reads (the kind's, mixers.registry)."""
        return get_kind(self.kind).keys_for(self)

    @classmethod
    def from_mapping(cls, cfg) -> MixerConfig:
        """A MixerConfig from itself or a mapping with its keys; unknown keys are an error."""
        if isinstance(cfg, cls):
            return cfg
        if not hasattr(cfg, "keys"):
            raise ValueError(f"mixer config: expected a MixerConfig or a mapping, got {cfg!r}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"mixer config: unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(cfg))


def _defaults() -> dict[str, Any]:
    """{key: default} of every MixerConfig field."""
    return {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING
                     else f.default) for f in dataclasses.fields(MixerConfig)}


def canonical(cfg) -> dict:
    """A mixer mapping (an older result's recorded `config.mixer`, say) with every key its kind
    does not read reset to its default: what such a run computed, and the mapping that builds
    and groups with the runs of today (keys that are no MixerConfig field are left as they are)."""
    mapping, defaults = dict(cfg), _defaults()
    used = get_kind(mapping.get("kind", defaults["kind"])).keys_for(
        SimpleNamespace(**{**defaults, **mapping}))
    return {k: (defaults[k] if k in defaults and k not in used else v)
            for k, v in mapping.items()}
