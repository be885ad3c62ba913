"""Theory figures of a mixer at sequence length n (docs/design.md 1 and 5; docs/analysis.md).

    from analysis.theory import pattern_stats, layer_theory, state_size, capacity_bound
    pattern_stats("pow2_cache", 1024)      # a catalogue mixer: conf/mixer/pow2_cache.yaml
    pattern_stats("kth(8)", 1024)          # a recurrent pattern (direct part: self)
    pattern_stats({"kind": "glr", "direct": "window(16)", "recurrent": "pow2"}, 1024)  # a config
    layer_theory(result_mixer_config, 1024, d_model=64, num_heads=2)   # what the leaderboard uses

The catalogue is the set of `conf/mixer/*.yaml` files (runners.paths.catalogue); a mixer's
family, state and patterns come from the layer its kind builds (mixers.registry), never from a
table of names here: a config of a kind the registry does not know is an error.

A mixer is a direct pattern A and a recurrent pattern B. Every figure is computed on the actual
read sets of `mixers.patterns`, so plain, cache-efficient and user-supplied patterns share one
code path. The graph behind hop diameter and congestion has one node per output y_i and an edge
p -> i for every recurrent read p in B(i); an input v_j reaches y_m through a direct edge when
j is in A(m), at no cost when j = m and at one hop otherwise.

`python -m analysis.theory --n 256 1024` prints the table of every conf/mixer/*.yaml file.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq

from mixers.patterns import (
    DirectPattern,
    RecurrentPattern,
    make_direct,
    make_pattern,
)

__all__ = [
    "Mixer",
    "resolve_mixer",
    "pattern_stats",
    "layer_theory",
    "catalogue_table",
    "state_size",
    "THEORY_COLUMNS",
    "capacity_bound",
    "accuracy_ceiling",
    "task_chance",
    "hop_distances",
    "hop_diameter_all_pairs",
    "paths_to_last",
]


@dataclass(frozen=True)
class Mixer:
    """A resolved mixer: its patterns, both variants of its recurrence, and its family."""

    name: str
    direct: DirectPattern
    plain: RecurrentPattern  # the recurrence on its plain read sets
    efficient: RecurrentPattern  # the same recurrence on the cache-efficient lattice
    cache_efficient: bool  # which of the two the mixer uses
    state_expanded: bool = False

    @property
    def recurrent(self) -> RecurrentPattern:
        return self.efficient if self.cache_efficient else self.plain

    @property
    def window(self) -> int | None:
        """Direct reach: 1 for self, w for window(w), None for full."""
        return self.direct.window


def _variants(pattern: RecurrentPattern) -> tuple[RecurrentPattern, RecurrentPattern]:
    if pattern.cache_efficient:
        plain = RecurrentPattern(pattern.name, pattern.f, pattern.num_terms, False)
        return plain, pattern
    return pattern, make_pattern(pattern, cache_efficient=True)


def _build(name, direct, recurrent, cache_efficient=False, state_expanded=False) -> Mixer:
    d = make_direct(direct)
    if isinstance(recurrent, str):  # make_pattern memoizes these: their index is built once
        r = plain = make_pattern(recurrent)
        eff = make_pattern(recurrent, cache_efficient=True)
    else:
        r = recurrent if isinstance(recurrent, RecurrentPattern) else make_pattern(recurrent)
        plain, eff = _variants(r)
    ce = bool(cache_efficient) or r.cache_efficient
    return Mixer(str(name), d, plain, eff, ce, bool(state_expanded))


def _catalogue() -> dict[str, dict]:
    from runners.paths import catalogue

    return catalogue()


def _layer(config: Mapping, d_model: int = 8, num_heads: int = 1):
    """The layer a mixer config builds (through its kind's registered builder)."""
    from mixers import build_mixer

    return build_mixer(dict(config), d_model, num_heads)


def _from_layer(name: str, layer) -> Mixer:
    patterns = getattr(layer, "patterns", None)
    if patterns is None:
        raise ValueError(f"mixer {name!r} is outside the pattern framework (its layer has no "
                         f"patterns): reads, hops and congestion do not apply")
    direct, recurrent = patterns
    return _build(name, direct, recurrent, recurrent.cache_efficient,
                  bool(getattr(layer, "state_expanded", False)))


def resolve_mixer(what: Any) -> Mixer:
    """A `Mixer` from any of the accepted descriptions.

    - a catalogue name ('pow2_cache'): the file conf/mixer/<name>.yaml;
    - a mapping with the keys of a `conf/mixer/*.yaml` file (a result's recorded mixer config):
      the layer its kind builds (mixers.registry) gives the patterns and the family; an unknown
      kind is a ValueError, as is a kind outside the pattern framework;
    - a tuple (direct, recurrent[, cache_efficient]) of specs or patterns;
    - a recurrent pattern: a `RecurrentPattern`, a spec string ('kth(8)', 'pow2', 'k**3 + 1') or a
      callable f(k); its direct part is `self`.
    """
    if isinstance(what, Mixer):
        return what
    if isinstance(what, str) and what in _catalogue():
        return resolve_mixer({"name": what, **_catalogue()[what]})
    if isinstance(what, Mapping):
        name = str(what.get("name") or "mixer")
        return _from_layer(name, _layer(what))
    if isinstance(what, tuple) and 2 <= len(what) <= 3:
        direct, recurrent, *rest = what
        ce = bool(rest[0]) if rest else False
        name = f"{direct}+{recurrent}{'_cache' if ce else ''}"
        return _build(name, direct, recurrent, ce)
    if isinstance(what, RecurrentPattern):
        name = what.name + ("_cache" if what.cache_efficient else "")
        return _build(name, "self", what, what.cache_efficient)
    if isinstance(what, str) or callable(what):
        p = make_pattern(what)
        return _build(p.name, "self", p, False)
    raise ValueError(f"cannot interpret {what!r} as a mixer: expected a catalogue name "
                     f"({', '.join(_catalogue())}), a pattern spec, a RecurrentPattern or a "
                     f"mixer config mapping")


# ----------------------------------------------------------------------------------------------
# read sets


def _is_plain(p: RecurrentPattern, n: int) -> bool:
    """Whether p's read sets at length n are the translation-invariant ones (lattice steps 1)."""
    return not p.cache_efficient or all(a == 1 for a in p.lattice_steps(n))


def _recurrent_counts(p: RecurrentPattern, n: int) -> np.ndarray:
    """|B(i)| for i = 0 .. n-1."""
    if _is_plain(p, n):
        f = np.asarray(p.distances(n), dtype=np.int64)
        return np.searchsorted(f, np.arange(n), side="right")
    idx = p.index(n).numpy()
    return (idx >= 0).sum(1)


def _direct_counts(d: DirectPattern, n: int) -> np.ndarray:
    """|A(i)| for i = 0 .. n-1."""
    i = np.arange(n) + 1
    return i if d.window is None else np.minimum(i, d.window)


def _expander(p: RecurrentPattern, n: int):
    """expand(rows) -> (tails, heads): every recurrent read p in B(i) of the given rows i."""
    if _is_plain(p, n):
        f = np.asarray(p.distances(n), dtype=np.int64)

        def expand(rows):
            heads = rows[:, None] - f[None, :]
            tails = np.broadcast_to(rows[:, None], heads.shape)
            keep = heads >= 0
            return tails[keep], heads[keep]
    else:
        idx = p.index(n).numpy()

        def expand(rows):
            heads = idx[rows]
            tails = np.broadcast_to(rows[:, None], heads.shape)
            keep = heads >= 0
            return tails[keep], heads[keep]
    return expand


# ----------------------------------------------------------------------------------------------
# hops


def _reach(window: int | None, n: int) -> int:
    """The largest distance a direct edge covers (0 for self)."""
    return n - 1 if window is None else min(window - 1, n - 1)


def _sliding_min_before(x: np.ndarray, reach: int) -> np.ndarray:
    """y[i] = min(x[max(0, i - reach) : i]) (inf when empty), by a sparse table: O(n log reach)."""
    n = len(x)
    if reach <= 0 or n == 0:
        return np.full(n, np.inf)
    reach = min(reach, n)
    table = np.concatenate([np.full(reach, np.inf), np.asarray(x, dtype=float)])
    top = reach.bit_length() - 1
    for k in range(top):  # table[i] = min(pad[i : i + 2^(k+1)])
        table = np.minimum(table[: -(1 << k)], table[1 << k :])
    i = np.arange(n)
    return np.minimum(table[i], table[i + reach - (1 << top)])


def hop_distances(what, n: int) -> np.ndarray:
    """hops[d] for d = 0 .. n-1: the fewest hops from input v_j to output y_{j+d}.

    Only defined through translation invariance, i.e. for plain recurrences (for cache-efficient
    ones see `hop_diameter_all_pairs`). A recurrence step of distance f(k) is one hop, and so is
    a direct edge of distance 1 .. window-1; the direct edge can only be the first hop, since
    direct edges read inputs and recurrence edges read outputs. math.inf where d is unreachable.
    """
    m = resolve_mixer(what)
    p = m.recurrent
    if not _is_plain(p, n):
        raise ValueError(f"hop_distances: {p!r} is not translation invariant at n={n}; "
                         f"use hop_diameter_all_pairs")
    hops = np.full(n, np.inf)
    if n == 0:
        return hops
    hops[0] = 0
    coins = np.asarray(p.distances(n), dtype=np.int64)
    frontier, level = np.array([0]), 0
    unseen = n - 1
    while frontier.size and coins.size and unseen:  # BFS by levels over sums of distances
        level += 1
        cand = (frontier[:, None] + coins[None, :]).ravel()
        mark = np.zeros(n, dtype=bool)
        mark[cand[cand < n]] = True
        frontier = np.flatnonzero(mark & np.isinf(hops))
        hops[frontier] = level
        unseen -= frontier.size
    reach = _reach(m.window, n)
    if reach > 0:  # one direct hop of distance a in 1..reach, then recurrence steps
        hops = np.minimum(hops, 1 + _sliding_min_before(hops, reach))
    return hops


_LOW_BITS = np.array([(1 << k) - 1 for k in range(65)], dtype=np.uint64)  # k low bits set


def _bitrows(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Packed bitsets [n, words] (uint64, bit j of a row = word j // 64, bit j % 64) where row i
    has the bits lo[i] .. hi[i] set."""
    start = 64 * np.arange((n + 63) // 64)
    a = np.clip(lo[:, None] - start[None, :], 0, 64)
    b = np.clip(hi[:, None] + 1 - start[None, :], 0, 64)
    return _LOW_BITS[b] & ~_LOW_BITS[np.minimum(a, b)]


def hop_diameter_all_pairs(what, n: int, max_levels: int | None = None) -> float:
    """max over all pairs j < i of the fewest hops from v_j to y_i, on the actual read graph.

    Level sets as packed bitsets: R_0[i] = {i}, R_t[i] = A(i) | union over p in B(i) of
    R_{t-1}[p] (the sources that reach y_i in at most t hops). The diameter is the first t with
    R_t[i] = {0..i} for every i; math.inf when the sets stop growing before that.
    Memory n^2 / 8 bytes; about 0.2 s at n = 4096 for the cache-efficient catalogue patterns.
    """
    m = resolve_mixer(what)
    if n <= 1:
        return 0
    if m.window is None:
        return 1
    i = np.arange(n)
    full = _bitrows(np.zeros(n, dtype=np.int64), i, n)
    base = _bitrows(np.maximum(0, i - m.window + 1), i, n)  # A(i), self included
    r = _bitrows(i, i, n)
    idx = m.recurrent.index(n).numpy() if m.recurrent.num_terms != 0 else np.zeros((n, 0), int)
    idx = np.where(idx >= 0, idx, n)  # row n is the empty set
    zero = np.zeros((1, r.shape[1]), dtype=np.uint64)
    cap = max_levels if max_levels is not None else n
    for t in range(1, cap + 1):
        ext = np.concatenate([r, zero])
        new = base.copy()
        for k in range(idx.shape[1]):
            new |= ext[idx[:, k]]
        if np.array_equal(new, full):
            return t
        if np.array_equal(new, r):
            return math.inf
        r = new
    return math.inf


def paths_to_last(what, n: int) -> dict:
    """Shortest paths from every input v_j (j < n-1) to the last output y_{n-1}.

    Returns `dist` [n] (the fewest hops from v_j), `sigma` [n] (how many shortest paths), and
    `load` [n]: load[m] is the expected number of sources j whose path passes through y_m when
    every source sends one unit along a shortest path chosen uniformly at random (the source's
    own y_j counts when its path starts there). Brandes' dependency accumulation for one target
    on the reversed graph: a level-synchronous BFS from y_{n-1} for dist and sigma, then the levels
    in reverse for load.
    """
    m = resolve_mixer(what)
    n = int(n)
    if n <= 1:
        z = np.zeros(max(n, 0))
        return {"dist": z, "sigma": z, "load": z}
    t = n - 1
    d = np.full(n, np.inf)
    s = np.zeros(n)
    d[t], s[t] = 0, 1.0
    levels = []  # per level: the shortest-path DAG edges (tail i at level l, head p at l + 1)
    if m.recurrent.num_terms != 0:
        expand = _expander(m.recurrent, n)
        frontier, level, unseen = np.array([t]), 0, n - 1
        while frontier.size and unseen:  # level-synchronous BFS from y_{n-1}, backwards
            tails, heads = expand(frontier)
            keep = np.isinf(d[heads]) | (d[heads] == level + 1)
            tails, heads = tails[keep], heads[keep]
            d[heads] = level + 1
            s += np.bincount(heads, weights=s[tails], minlength=n)
            levels.append((tails, heads))
            frontier = np.unique(heads)
            unseen -= frontier.size
            level += 1
    # sources: v_j enters y_j at no cost, y_m (j < m <= j + reach) at one hop
    reach = min(_reach(m.window, n), t)
    j = np.arange(t)
    best = d[:t].copy()
    sig = np.zeros(t)
    inflow = np.zeros(n)
    if reach > 0:
        # the window of source j is m in [j+1, hi[j]]; windowed sums through prefix sums
        hi = np.minimum(j + reach, t)
        near = _sliding_min_before(d[::-1], reach)[::-1][:t]  # min of d over the window
        best = np.minimum(best, 1 + near)
        for v in np.unique(best[np.isfinite(best)]):  # paths whose first hop is direct
            at = (d == v - 1) * s
            cs = np.concatenate([[0.0], np.cumsum(at)])
            sel = best == v
            sig[sel] += cs[hi[sel] + 1] - cs[j[sel] + 1]
    sig += np.where(d[:t] == best, s[:t], 0.0)
    ok = np.isfinite(best)
    inv = np.zeros(t)
    inv[ok] = 1.0 / sig[ok]
    inflow[:t] += np.where(ok & (d[:t] == best), s[:t] * inv, 0.0)
    if reach > 0:
        # y_m gets s[m] / sig[j] from every source j in [m - reach, m - 1] with best[j] = d[m] + 1
        mm = np.arange(1, n)
        lo = np.maximum(mm - reach, 0)
        for v in np.unique(d[1:][np.isfinite(d[1:])]):
            g = np.where(best == v + 1, inv, 0.0)
            cs = np.concatenate([[0.0], np.cumsum(g)])
            sel = d[1:] == v
            inflow[mm[sel]] += s[mm[sel]] * (cs[mm[sel]] - cs[lo[sel]])
    load = inflow
    for tails, heads in reversed(levels):  # pull each level's load from the level above it
        load += s * np.bincount(tails, weights=load[heads] / s[heads], minlength=n)
    dist = np.append(best, 0.0)
    sigma = np.append(np.where(ok, sig, 0.0), 1.0)
    return {"dist": dist, "sigma": sigma, "load": load}


# ----------------------------------------------------------------------------------------------
# the figures


def _recurrent_cache(p: RecurrentPattern, n: int) -> int:
    """RecurrentPattern.cache_size, without building a plain-equivalent lattice's index."""
    if p.cache_efficient and n > 1 and _is_plain(p, n):
        return len(p.distances(n))  # the lattice is the plain pattern: the last row reads all
    return int(p.cache_size(n))


def _cache(m: Mixer, p: RecurrentPattern, n: int) -> float:
    if m.state_expanded:
        return math.nan  # a matrix state, see state_size
    return int(m.direct.cache_size(n) + _recurrent_cache(p, n))


def pattern_stats(what, n: int) -> dict:
    """Theory figures of a mixer (or a recurrent pattern with direct = self) at length n.

    Keys (definitions in docs/analysis.md):
      name, n, direct, recurrent, cache_efficient_variant (which variant the mixer uses),
      state_expanded;
      reads_per_token_max / _mean  (|A(i)| + |B(i)| over i < n), and the direct_ and recurrent_
      parts; total_work (nonzeros of A plus nonzeros of B);
      cache_plain / cache_efficient (vectors a decoder keeps: direct cache plus recurrent cache,
      with the plain or the cache-efficient recurrence; NaN for the state-expanded family, whose
      state is a matrix), cache (the variant the mixer uses), keeps_all (cache >= n-1: a slot per
      past token), fixed_state (the state does not grow with n);
      hop_diameter (max over pairs j < i of the fewest hops from v_j to y_i; math.inf if some pair
      is unreachable), hop_diameter_to_last (the same, target n-1 only), congestion (max over
      m < n-1 of the shortest-path load through y_m towards y_{n-1}) and congestion_at (that m).
    """
    m = resolve_mixer(what)
    n = int(n)
    if n < 1:
        raise ValueError(f"pattern_stats: n must be >= 1, got {n}")
    p = m.recurrent
    dc, rc = _direct_counts(m.direct, n), _recurrent_counts(p, n)
    reads = dc + rc
    if _is_plain(p, n):
        h = hop_distances(m, n)
        diameter = float(h[1:].max()) if n > 1 else 0.0
    else:
        diameter = float(hop_diameter_all_pairs(m, n))
    paths = paths_to_last(m, n)
    to_last = float(paths["dist"][:-1].max()) if n > 1 else 0.0
    load = paths["load"][:-1]
    fixed = m.state_expanded or (m.direct.window is not None and p.max_distance is not None)
    cache = _cache(m, p, n)
    stats = {
        "name": m.name,
        "n": n,
        "direct": m.direct.name,
        "recurrent": p.name,
        "cache_efficient_variant": m.cache_efficient,
        "state_expanded": m.state_expanded,
        "reads_per_token_max": int(reads.max()),
        "reads_per_token_mean": float(reads.mean()),
        "direct_reads_per_token_max": int(dc.max()),
        "direct_reads_per_token_mean": float(dc.mean()),
        "recurrent_reads_per_token_max": int(rc.max()),
        "recurrent_reads_per_token_mean": float(rc.mean()),
        "total_work": int(reads.sum()),
        "cache_plain": _cache(m, m.plain, n),
        "cache_efficient": _cache(m, m.efficient, n),
        "cache": cache,
        "keeps_all": (not m.state_expanded) and n > 1 and cache >= n - 1,
        "fixed_state": bool(fixed),
        "hop_diameter": _int_or_inf(diameter),
        "hop_diameter_to_last": _int_or_inf(to_last),
        "congestion": float(load.max()) if load.size else 0.0,
        "congestion_at": int(load.argmax()) if load.size else 0,
    }
    return stats


def _int_or_inf(x: float):
    return math.inf if not math.isfinite(x) else int(x)


def catalogue_table(n: int, names=None):
    """pattern_stats for every conf/mixer/*.yaml mixer of the pattern framework at length n, as
    a pandas DataFrame; the mixers outside the framework are listed in df.attrs["outside"]."""
    import pandas as pd

    rows, outside = [], []
    for name in names or _catalogue():
        try:
            rows.append(pattern_stats(name, n))
        except ValueError:  # a layer without patterns (or a config its kind refuses)
            outside.append(name)
    df = pd.DataFrame(rows).set_index("name")
    df.attrs["outside"] = outside
    return df


#: The theory columns the results summary adds to every cell and the leaderboard and plots
#: show: (name, short label, one-line definition). One name per quantity across the code, the
#: tables, the plots and docs/analysis.md.
THEORY_COLUMNS = (
    ("reads_per_token", "reads/token", "mean |A(i)| + |B(i)| over i < n: reads per output"),
    ("cache_size", "cache", "entries per head a decoder keeps to decode token n (- for a "
                            "matrix state)"),
    ("state_size", "state", "floats one layer keeps between decoding steps (the layer's "
                            "state_size(n))"),
    ("hop_diameter", "hops", "fewest hops from v_j to y_i, worst pair j < i (inf: unreachable)"),
    ("congestion", "congestion", "largest shortest-path load on one position towards y_{n-1}"),
)
THEORY_NAMES = tuple(name for name, _, _ in THEORY_COLUMNS)


def layer_theory(mixer_config: Mapping, n: int, d_model: int, num_heads: int = 1) -> dict:
    """The theory figures of a result's recorded mixer config at length n, for its model width.

    From the layer the config's kind builds (mixers.registry): `cache_size` (entries per head to
    decode token n; NaN for the state-expanded family, whose entries are matrices),
    `state_size` (layer.state_size(n)), `flops_per_token`; from its patterns, when it has some:
    `reads_per_token` (mean |A(i)| + |B(i)|), `hop_diameter`, `congestion`. Raises ValueError
    for a config the registry cannot build (an unknown kind): no other mixer's theory is used.
    """
    layer = _layer(mixer_config, int(d_model), int(num_heads))
    out = dict.fromkeys((*THEORY_NAMES, "flops_per_token"), math.nan)
    for key in ("cache_size", "state_size", "flops_per_token"):
        fn = getattr(layer, key, None)
        if callable(fn):
            out[key] = float(fn(int(n)))
    if getattr(layer, "state_expanded", False):
        out["cache_size"] = math.nan
    if getattr(layer, "patterns", None) is not None:
        stats = pattern_stats(_from_layer(str(mixer_config.get("name", "mixer")), layer), n)
        out["reads_per_token"] = stats["reads_per_token_mean"]
        out["hop_diameter"] = stats["hop_diameter"]
        out["congestion"] = stats["congestion"]
    return out


# ----------------------------------------------------------------------------------------------
# state and capacity


def _layer_config(mixer) -> dict:
    """The mixer config a state question is asked of: a catalogue name's file, a config
    mapping as given, a (direct, recurrent[, cache_efficient]) tuple of spec strings or a
    recurrent spec string as the glr layer of those patterns."""
    if isinstance(mixer, str) and mixer in _catalogue():
        return {"name": mixer, **_catalogue()[mixer]}
    if isinstance(mixer, Mapping):
        return dict(mixer)
    if isinstance(mixer, tuple) and 2 <= len(mixer) <= 3 and all(
            isinstance(x, str) for x in mixer[:2]):
        return {"kind": "glr", "direct": mixer[0], "recurrent": mixer[1],
                "cache_efficient": bool(mixer[2]) if len(mixer) == 3 else False}
    if isinstance(mixer, str):
        return {"kind": "glr", "direct": "self", "recurrent": mixer}
    raise ValueError(f"state_size: {mixer!r} names no layer: give a catalogue name, a mixer "
                     f"config mapping, a (direct, recurrent[, cache_efficient]) tuple of specs "
                     f"or a recurrent spec string")


def state_size(mixer, n: int, d_model: int, num_heads: int = 1) -> float:
    """Floats one layer keeps between decoding steps at length n: the built layer's own
    `state_size(n)` (mixers), for d_model and num_heads. Glr layers keep 2 * d_head floats per
    cache entry and head; state-expanded ones a d_head x d_head matrix and a key per state they
    keep; linear attention one matrix and its normalizer; a short convolution adds its window."""
    if d_model % num_heads:
        raise ValueError(f"state_size: d_model={d_model} is not divisible by "
                         f"num_heads={num_heads}")
    layer = _layer(_layer_config(mixer), int(d_model), int(num_heads))
    fn = getattr(layer, "state_size", None)
    if not callable(fn):
        raise ValueError(f"state_size: the layer of {mixer!r} reports no state_size")
    return float(fn(int(n)))


def _binary_entropy(p: float) -> float:
    if p <= 0 or p >= 1:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def accuracy_ceiling(state_bits: float, info_bits: float, chance: float = 0.5) -> float:
    """The largest expected per-item accuracy an S-bit state allows on a task of I bits.

    Model: I bits are K = I / log2(M) independent items, each uniform over M = 1 / chance values,
    and every answer is a function of the state (plus things independent of the items). The
    rate-distortion converse for Hamming distortion gives K * R(D) <= S with
    R(D) = log2 M - h(D) - D log2(M - 1) on 0 <= D <= 1 - 1/M, so accuracy <= 1 - D* where
    R(D*) = S / K. It is >= min(1, S/I) + (1 - min(1, S/I)) * chance, what storing a fraction
    of the items exactly achieves (time sharing is not optimal). Returns 1 when S >= I and
    chance when S = 0.
    """
    if not 0 < chance <= 0.5:
        raise ValueError(f"accuracy_ceiling: chance must be in (0, 0.5] (items of >= 2 values), "
                         f"got {chance}")
    if info_bits <= 0 or state_bits >= info_bits or math.isinf(state_bits):
        return 1.0
    if state_bits <= 0:
        return float(chance)
    big_m = 1.0 / chance
    log_m = math.log2(big_m)
    rate = state_bits / info_bits * log_m  # bits per item
    d_max = 1.0 - chance

    def r_of(dd):  # decreasing from log_m at 0 to 0 at d_max
        extra = dd * math.log2(big_m - 1) if big_m > 1 + 1e-12 else 0.0
        return log_m - _binary_entropy(dd) - extra

    if r_of(d_max) >= rate:  # numerically at the chance end
        return float(chance)
    d_star = brentq(lambda dd: r_of(dd) - rate, 0.0, d_max, xtol=1e-12)
    return float(1.0 - d_star)


def task_chance(task) -> tuple[float, str]:
    """(chance accuracy per item, where it came from): 1 / the task's own `answer_alphabet`
    (tasks.Task); 0.5 for an object without one, the least favourable assumption (the
    ceiling decreases as the alphabet grows at fixed I and S, so 0.5 keeps it a valid bound)."""
    size = getattr(task, "answer_alphabet", None)
    if isinstance(size, int) and size >= 2:
        return 1.0 / size, f"{getattr(task, 'name', 'task')} answer alphabet ({size})"
    return 0.5, "assumed binary items (least favourable)"


def _task_attr(task, attr):
    v = getattr(task, attr, None)
    return v() if callable(v) else v


def capacity_bound(mixer, task, d_model: int, bits_per_float: int = 16, n: int | None = None,
                   *, num_heads: int = 1, num_layers: int = 1, chance: float | None = None) -> dict:
    """What a mixer's state can carry against what the task needs, and the accuracy it caps.

    `task` is a `tasks` task or any object with `info_bits` and `seq_len`.
    S = state_size(mixer, n, d_model, num_heads) (the built layer's) * bits_per_float *
    num_layers bits (every layer's state crosses the cut between the items and the queries);
    I = task.info_bits. A mixer that keeps a slot per past token (attention, dense, plain
    pow2 / sq1: cache >= n - 1) can keep the input itself: no bound, ceiling 1.
    Otherwise ceiling = accuracy_ceiling(S, I, chance). A bound, not a prediction.
    """
    m = resolve_mixer(mixer)
    n = int(n if n is not None else _task_attr(task, "seq_len"))
    info = float(_task_attr(task, "info_bits"))
    if chance is None:
        chance, chance_source = task_chance(task)
    else:
        chance_source = "given"
    floats = state_size(mixer, n, d_model, num_heads)
    keeps_all = (not m.state_expanded) and n > 1 and _cache(m, m.recurrent, n) >= n - 1
    bits = math.inf if keeps_all else floats * bits_per_float * num_layers
    fraction = 1.0 if keeps_all or info <= 0 else min(1.0, bits / info)
    return {
        "mixer": m.name,
        "n": n,
        "state_size": floats,
        "state_bits": bits,
        "info_bits": info,
        "bounded": not keeps_all,
        "fraction": fraction,
        "chance": chance,
        "chance_source": chance_source,
        "ceiling": 1.0 if keeps_all else accuracy_ceiling(bits, info, chance),
        "ceiling_exact_storage": fraction + (1 - fraction) * chance,
    }


# ----------------------------------------------------------------------------------------------


_COLUMNS = [
    ("direct", "direct"), ("recurrent", "recurrent"), ("cache_efficient_variant", "ce"),
    ("reads_per_token_max", "reads max"), ("reads_per_token_mean", "reads mean"),
    ("total_work", "work"), ("cache_plain", "cache plain"), ("cache_efficient", "cache eff."),
    ("hop_diameter", "hops"), ("hop_diameter_to_last", "hops->last"),
    ("congestion", "congestion"),
]


def _cell(v) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else ("-" if math.isnan(v) else
                                            f"{v:.4g}" if v != int(v) else f"{int(v)}")
    return str(v)


def format_table(n: int) -> str:
    """The catalogue table at length n as Markdown (pandas to_markdown)."""
    table = catalogue_table(n)
    df = table[[key for key, _ in _COLUMNS]]
    df = df.rename(columns=dict(_COLUMNS)).map(_cell).rename_axis("mixer")
    out = f"n = {n}\n\n" + df.to_markdown(colalign=["left"] + ["right"] * len(_COLUMNS))
    if table.attrs["outside"]:
        out += ("\n\nOutside the pattern framework (no patterns: see their layers' state_size): "
                + ", ".join(table.attrs["outside"]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.theory",
                                 description="Print the theory table of every conf/mixer/*.yaml "
                                             "mixer.")
    ap.add_argument("--n", type=int, nargs="+", default=[256, 1024], help="sequence lengths")
    args = ap.parse_args(argv)
    for n in args.n:
        print(format_table(n))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
