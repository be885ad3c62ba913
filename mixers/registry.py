"""Mixer kinds, each registered once, and the catalogue of configs (docs/design.md, section 1.3).

A *kind* is a family of layers (`glr`, `linear_attention`, ...); a *mixer* is a config of a kind,
one `conf/mixer/<name>.yaml` file. The YAML files are the only list of mixers: benchmarks, tests
and analysis enumerate them through `catalogue()`.

    @register_kind("glr")
    def _build_glr(cfg: MixerConfig, d_model: int, num_heads: int) -> nn.Module: ...

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
from pathlib import Path

__all__ = ["MixerKind", "register_kind", "get_kind", "kind_names", "qkv_conv_kinds",
           "position_kinds", "catalogue", "CONF_DIR"]

#: the Hydra config folder; conf/mixer/*.yaml is the catalogue. In a checkout (or an editable
#: install) it is conf/ at the repository root; an installed wheel ships it as runners/conf
#: (pyproject.toml maps the package `runners.conf` to conf/).
_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = next((d for d in (_ROOT / "runners" / "conf", _ROOT / "conf") if d.is_dir()),
                _ROOT / "conf")


@dataclass(frozen=True)
class MixerKind:
    name: str
    build: Callable  # (MixerConfig, d_model, num_heads) -> nn.Module
    uses_patterns: bool  # whether `direct` / `recurrent` / `cache_efficient` mean anything
    qkv_conv: bool = False  # whether its builder honours mixer.short_conv_on=qkv
    positions: bool = False  # whether its builder takes pos_emb=rope | alibi (its own scores)


_KINDS: dict[str, MixerKind] = {}


def register_kind(name: str, *, uses_patterns: bool = True, qkv_conv: bool = False,
                  positions: bool = False):
    """Decorator: register `build(cfg, d_model, num_heads) -> nn.Module` as mixer kind `name`.

    A builder may import heavy optional dependencies inside its body: registration is free.
    `qkv_conv`: the builder puts mixer.short_conv on q, k, v itself when short_conv_on=qkv
    (mixers/conv.py); other kinds accept only short_conv_on=input.
    `positions`: the builder takes a keyword `pos_emb` (rope | alibi, mixers/positions.py) and
    applies it to the layer's q . k scores; other kinds refuse those two schemes.
    """

    def decorate(build):
        if name in _KINDS and _KINDS[name].build is not build:
            raise ValueError(f"mixer kind {name!r} is registered twice")
        _KINDS[name] = MixerKind(name, build, uses_patterns, qkv_conv, positions)
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


def catalogue(conf_dir: Path | str | None = None) -> dict[str, dict]:
    """Every `conf/mixer/*.yaml` as {file stem: mapping}, in name order."""
    from omegaconf import OmegaConf

    folder = Path(conf_dir) if conf_dir is not None else CONF_DIR
    files = sorted((folder / "mixer").glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no mixer configs under {folder / 'mixer'}")
    return {f.stem: OmegaConf.to_container(OmegaConf.load(f), resolve=True) for f in files}
