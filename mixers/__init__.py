"""Token mixers of the generalized linear recurrence Y = (I - B)^{-1} A V."""

from . import chacal as chacal  # registers the kind "chacal" (docs/design.md, ChaCAL)
from . import expanded as expanded  # registers the kind "expanded" (docs/design.md 1.4)
from . import fla_adapter  # noqa: F401  registers kind: fla (fla itself loads only when built)
from .config import MixerConfig
from .layers import GLRMixer, LinearAttention, build_mixer
from .ops import BACKENDS, glr, poisoned_outputs
from .patterns import make_direct, make_pattern
from .registry import get_kind, kind_names, register_kind

__all__ = [
    "glr", "BACKENDS", "poisoned_outputs", "make_pattern", "make_direct",
    "MixerConfig", "GLRMixer", "LinearAttention", "build_mixer",
    "register_kind", "get_kind", "kind_names",
]
