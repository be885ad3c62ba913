"""Widths that match a state or parameter budget: every mixer at the same state, or the same size.

    python -m analysis.match --state-floats 4096 --mixers attention,se_first,deltanet --seq-len 64
    attention d_model=32 num_heads=1 state_floats=4032 params=4096
    ...

For each mixer (a catalogue name, conf/mixer/<name>.yaml), the layer is built through the mixer
registry at each candidate (d_model, num_heads) and measured: its state is
`analysis.theory.state_size(mixer, seq_len, d_model, num_heads)` (floats one layer keeps to decode
token seq_len), its size the parameter count of that one layer (the mixer, not the model's MLP or
embeddings). The line printed is the candidate whose measure (state, or parameters with
--params) is closest to the target, relatively; ties go to fewer heads, then the smaller width.

Candidates: num_heads from --heads (default 1,2,4,8), d_model = num_heads * d_head for every
d_head >= 1 up to --max-d-model (widths a kind cannot build, e.g. an fla layer whose head size
must be even, are skipped). A measure grows with the width at fixed heads, so each head count is a
bisection, not a scan. When the closest candidate is more than --tolerance (default 10%) off the
target, the command prints one line naming the mixer, the field and the closest value, and exits
2: no width reaches it.

A grid (docs/analysis.md, "Matched widths"): `--format overrides` prints one line of Hydra
overrides per mixer (`mixer=<m> model.d_model=<d> model.num_heads=<h>`), which a shell loop hands
to glmix-train, so "every mixer at state N" is one pipeline and no width is typed by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
from dataclasses import dataclass

from analysis.theory import _catalogue, _layer, _layer_config, state_size

__all__ = ["Match", "match", "main"]

DEFAULT_HEADS = (1, 2, 4, 8)
DEFAULT_MAX_D_MODEL = 4096
DEFAULT_TOLERANCE = 0.10


@dataclass(frozen=True)
class Match:
    mixer: str
    d_model: int
    num_heads: int
    state_floats: int
    params: int

    def line(self) -> str:
        return (f"{self.mixer} d_model={self.d_model} num_heads={self.num_heads} "
                f"state_floats={self.state_floats} params={self.params}")

    def overrides(self) -> str:
        return f"mixer={self.mixer} model.d_model={self.d_model} model.num_heads={self.num_heads}"


class NoMatch(ValueError):
    """No candidate width comes within the tolerance of the target."""


def _quiet(fn, *args):
    """fn(*args) with the layers' import-time chatter (fla, mamba fallbacks) kept off stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _params(mixer: str, d_model: int, num_heads: int) -> int:
    layer = _quiet(_layer, _layer_config(mixer), d_model, num_heads)
    return int(sum(p.numel() for p in layer.parameters()))


def _measure_fn(mixer: str, n: int, by: str):
    """d_model, num_heads -> the measure (None where the kind cannot build that width)."""
    cache: dict[tuple[int, int], float | None] = {}

    def measure(d_model: int, num_heads: int) -> float | None:
        key = (d_model, num_heads)
        if key not in cache:
            try:
                if by == "state_floats":
                    cache[key] = _quiet(state_size, mixer, n, d_model, num_heads)
                else:
                    cache[key] = float(_params(mixer, d_model, num_heads))
            except (ValueError, AssertionError, RuntimeError, TypeError, ZeroDivisionError):
                cache[key] = None  # this kind cannot build this width (a head-size constraint)
        return cache[key]

    return measure


def _buildable_at_or_above(measure, h: int, d_head: int, limit: int) -> tuple[int, float] | None:
    """The first d_head' in [d_head, limit] whose width builds, with its measure."""
    for dh in range(d_head, limit + 1):
        value = measure(h * dh, h)
        if value is not None:
            return dh, value
    return None


def _candidates_for_heads(measure, h: int, target: float, max_d_model: int):
    """The buildable widths on either side of the target at num_heads = h (at most two)."""
    limit = max_d_model // h
    if limit < 1:
        return []
    first = _buildable_at_or_above(measure, h, 1, limit)
    if first is None:
        return []
    if first[1] >= target:
        return [first]
    lo = first  # measure(lo) < target
    step, hi = 1, None
    while hi is None:  # doubling until a width reaches the target (or the limit)
        probe = min(lo[0] + step, limit)
        found = _buildable_at_or_above(measure, h, probe, limit)
        if found is None:
            return [lo]
        if found[1] >= target:
            hi = found
        else:
            lo = found
            if lo[0] >= limit:
                return [lo]
            step *= 2
    while hi[0] - lo[0] > 1:  # bisection between a width below and one at or above the target
        mid = _buildable_at_or_above(measure, h, (lo[0] + hi[0]) // 2, hi[0] - 1)
        if mid is None:
            break
        if mid[1] >= target:
            hi = mid
        else:
            lo = mid
    return [lo, hi]


def match(mixer: str, n: int, target: float, by: str = "state_floats",
          heads=DEFAULT_HEADS, max_d_model: int = DEFAULT_MAX_D_MODEL,
          tolerance: float = DEFAULT_TOLERANCE) -> Match:
    """The (d_model, num_heads) whose layer's `by` (state_floats or params) is closest to target.

    Raises NoMatch (a ValueError) naming the mixer and `by` when the closest is more than
    `tolerance` (relative) away, and ValueError for an unknown mixer or a bad target."""
    if by not in ("state_floats", "params"):
        raise ValueError(f"by must be state_floats or params, got {by!r}")
    if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
        raise ValueError(f"--{by.replace('_', '-')} must be a positive number, got {target!r}")
    if mixer not in _catalogue():
        known = ", ".join(sorted(_catalogue()))
        raise ValueError(f"--mixers: unknown mixer {mixer!r}; known: {known}")
    measure = _measure_fn(mixer, n, by)
    best = None
    for h in sorted(set(heads)):
        for dh, value in _candidates_for_heads(measure, h, float(target), max_d_model):
            rank = (abs(value - target) / target, h, h * dh)
            if best is None or rank < best[0]:
                best = (rank, h * dh, h)
    if best is None:
        raise NoMatch(f"{mixer}: no width up to d_model={max_d_model} builds with num_heads in "
                      f"{sorted(set(heads))}")
    (error, _, _), d_model, h = best
    state = _quiet(state_size, mixer, n, d_model, h)
    result = Match(mixer, d_model, h, int(round(state)), _params(mixer, d_model, h))
    if error > tolerance:
        got = result.state_floats if by == "state_floats" else result.params
        raise NoMatch(f"{mixer}: no width reaches {by}={target:g} within {tolerance:.0%} "
                      f"(closest: d_model={d_model} num_heads={h} {by}={got}; widths up to "
                      f"--max-d-model={max_d_model}, heads {sorted(set(heads))})")
    return result


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need integers >= 1, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.match", description=__doc__.split("\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--state-floats", type=float, help="target: floats one layer keeps")
    target.add_argument("--params", type=float, help="target: parameters of one mixer layer")
    p.add_argument("--mixers", required=True, help="comma-separated catalogue names")
    p.add_argument("--seq-len", type=int, required=True, help="the length the state is read at")
    p.add_argument("--heads", type=_int_list, default=list(DEFAULT_HEADS),
                   help="candidate num_heads (default 1,2,4,8)")
    p.add_argument("--max-d-model", type=int, default=DEFAULT_MAX_D_MODEL)
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest relative distance to the target accepted (default 0.1)")
    p.add_argument("--format", choices=("lines", "overrides"), default="lines",
                   help="lines (the default) or Hydra overrides for glmix-train, one per mixer")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    by = "state_floats" if args.state_floats is not None else "params"
    target = args.state_floats if by == "state_floats" else args.params
    mixers = [m.strip() for m in args.mixers.split(",") if m.strip()]
    try:
        if args.seq_len < 1:
            raise ValueError(f"--seq-len must be >= 1, got {args.seq_len}")
        if not mixers:
            raise ValueError("--mixers names no mixer")
        for mixer in mixers:
            found = match(mixer, args.seq_len, target, by, args.heads, args.max_d_model,
                          args.tolerance)
            print(found.line() if args.format == "lines" else found.overrides(), flush=True)
    except ValueError as err:
        print(f"analysis.match: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
