"""Sparsity patterns of the generalized linear recurrence (docs/design.md 1.1).

A mixer is a pair of patterns: a *direct* set A(i) (which inputs v_j token i reads) and a
*recurrent* set B(i) (which past outputs y_j it reads). Both answer the same two questions:

    reads(i) -> sorted list of absolute positions
    index(n) -> LongTensor [n, K] of absolute positions, padded with -1

The index tensor is what the `glr` op consumes, so plain, cache-efficient and user-supplied
patterns all share one code path.

Recurrent patterns are translation invariant: a strictly increasing distance function
f(0) < f(1) < ... with f(0) >= 1 gives B(i) = {i - f(k) : f(k) <= i}. The cache-efficient variant
snaps each read onto a coarser lattice so that reads(i) is a subset of reads(i-1) + {i-1}; a
decoder then only ever keeps the current read set.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache

import torch

__all__ = [
    "DirectPattern",
    "RecurrentPattern",
    "make_direct",
    "make_pattern",
    "parse_spec",
    "RECURRENT_NAMES",
    "DIRECT_NAMES",
]

RECURRENT_NAMES = ("none", "first", "kth", "pow2", "sq1", "dense")
DIRECT_NAMES = ("self", "window", "full")

_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\(\s*([^()]*)\s*\))?\s*$")


def parse_spec(spec: str) -> tuple[str, list[int]]:
    """'kth(8)' -> ('kth', [8]); 'pow2' -> ('pow2', []). Raises ValueError on anything else."""
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(f"pattern spec {spec!r} is not of the form name or name(int, ...)")
    name, args = m.group(1), m.group(2)
    values = []
    for a in (args or "").split(","):
        if a.strip():
            try:
                values.append(int(a))
            except ValueError:
                raise ValueError(
                    f"pattern spec {spec!r}: argument {a.strip()!r} is not an integer") from None
    return name, values


# ----------------------------------------------------------------------------------------------
# user-supplied distance functions given as config strings ("k**3 + 1", "3*k + 1")

_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load,
    ast.Add, ast.Sub, ast.Mult, ast.Pow, ast.FloorDiv, ast.Mod, ast.USub, ast.UAdd,
)

#: the bound on every value of an expression, intermediate ones included: positions and
#: distances are int64, so nothing larger can ever be an index (docs/design.md 1.1)
EXPRESSION_BOUND = 2**63 - 1
#: the longest expression accepted (it keeps parsing and the tree walk shallow and fast)
EXPRESSION_MAX_CHARS = 200


class _Bounded:
    """Evaluates a whitelisted expression tree in k with every value checked against
    EXPRESSION_BOUND *before* it is computed, so that `9**9**9` is refused in microseconds
    instead of building a 370-million-digit integer. Raises ValueError (one line naming the
    expression and the bound) for a value out of bounds, a negative power (a fraction) and a
    division by zero."""

    def __init__(self, expr: str, tree: ast.Expression):
        self.expr, self.body = expr, tree.body

    def __call__(self, k: int) -> int:
        return self._eval(self.body, k)

    def _refuse(self, what: str, k: int):
        raise ValueError(f"recurrent pattern {self.expr!r}: at k = {k}, {what}")

    def _out_of_bounds(self, what: str, k: int):
        self._refuse(f"{what}; every value must stay within +-(2**63 - 1) (positions are int64)",
                     k)

    def _check(self, value: int, k: int) -> int:
        if abs(value) > EXPRESSION_BOUND:
            self._out_of_bounds(f"a value exceeds the bound ({_digits(value)})", k)
        return value

    def _eval(self, node, k: int) -> int:
        if isinstance(node, ast.Constant):
            return self._check(node.value, k)
        if isinstance(node, ast.Name):
            return self._check(k, k)
        if isinstance(node, ast.UnaryOp):
            x = self._eval(node.operand, k)
            return -x if isinstance(node.op, ast.USub) else x
        a, b = self._eval(node.left, k), self._eval(node.right, k)
        op = node.op
        if isinstance(op, ast.Add):
            return self._check(a + b, k)
        if isinstance(op, ast.Sub):
            return self._check(a - b, k)
        if isinstance(op, ast.Mult):  # both factors are within 64 bits: the product is cheap
            return self._check(a * b, k)
        if isinstance(op, (ast.FloorDiv, ast.Mod)):
            if b == 0:
                self._refuse("division by zero", k)
            return a // b if isinstance(op, ast.FloorDiv) else a % b
        # ast.Pow: decided before it is computed
        if b < 0:
            self._refuse(f"a negative power {a}**({b}) is a fraction, not a distance", k)
        if abs(a) >= 2 and b > 63:  # |a|**b >= 2**64
            self._out_of_bounds(f"a power exceeds the bound ({a}**{b})", k)
        return self._check(a**b, k)  # at most 63 factors of 64 bits


def _digits(value: int) -> str:
    """'about 10**N' for a large integer, without converting it to a decimal string."""
    return f"about 10**{int(value.bit_length() * math.log10(2))}"


def _compile_expression(expr: str) -> Callable[[int], int]:
    if len(expr) > EXPRESSION_MAX_CHARS:
        raise ValueError(f"recurrent pattern of {len(expr)} characters: an expression in k may "
                         f"have at most {EXPRESSION_MAX_CHARS}")
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        reason = getattr(e, "msg", None) or type(e).__name__
        raise ValueError(f"recurrent pattern {expr!r} is neither a known name {RECURRENT_NAMES} "
                         f"nor an integer expression in k ({reason})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"recurrent pattern {expr!r}: only integer arithmetic in k is allowed "
                             f"(+ - * ** // %), found {type(node).__name__}")
        if isinstance(node, ast.Name) and node.id != "k":
            raise ValueError(
                f"recurrent pattern {expr!r}: the only variable is k, found {node.id!r}")
        if isinstance(node, ast.Constant) and (not isinstance(node.value, int)
                                               or isinstance(node.value, bool)):
            raise ValueError(f"recurrent pattern {expr!r}: constants must be integers")
    return _Bounded(expr, tree)


# ----------------------------------------------------------------------------------------------
# recurrent patterns


@dataclass(frozen=True, eq=False)
class RecurrentPattern:
    """B(i) = {i - f(k) : k < num_terms, f(k) <= i}, optionally on the cache-efficient lattice."""

    name: str
    f: Callable[[int], int]
    num_terms: int | None = None  # None: unbounded (every distance up to n - 1 is candidate)
    cache_efficient: bool = False
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    # -- the distance sequence ----------------------------------------------------------------
    def distances(self, n: int) -> list[int]:
        """f(0) < f(1) < ... restricted to f(k) <= n - 1 (the distances a length-n input uses)."""
        key = ("dist", n)
        if key not in self._memo:
            out: list[int] = []
            k = 0
            while self.num_terms is None or k < self.num_terms:
                d = int(self.f(k))
                if k == 0 and d < 1:
                    raise ValueError(f"pattern {self.name}: f(0) = {d}, distances must be >= 1")
                if out and d <= out[-1]:
                    raise ValueError(f"pattern {self.name}: f must be strictly increasing, "
                                     f"but f({k}) = {d} <= f({k - 1}) = {out[-1]}")
                if d > n - 1:
                    break
                out.append(d)
                k += 1
            self._memo[key] = out
        return self._memo[key]

    @property
    def max_distance(self) -> int | None:
        """The largest distance ever read, or None when the pattern reaches arbitrarily far."""
        if self.num_terms is None:
            return None
        return int(self.f(self.num_terms - 1)) if self.num_terms > 0 else 0

    def lattice_steps(self, n: int) -> list[int]:
        """a_0 = 1, a_{k+1} = a_k * ceil((f(k+1) - f(k)) / a_k)  (docs/design.md 1.1)."""
        f = self.distances(n)
        steps = [1] * len(f)
        for k in range(1, len(f)):
            steps[k] = steps[k - 1] * math.ceil((f[k] - f[k - 1]) / steps[k - 1])
        return steps

    # -- the read sets --------------------------------------------------------------------------
    def reads(self, i: int) -> list[int]:
        """Sorted positions that token i reads through the recurrence."""
        f = self.distances(i + 1)
        if not self.cache_efficient:
            return sorted(i - d for d in f)
        a = self.lattice_steps(i + 1)
        return sorted({ak * -(-(i + 1 - fk) // ak) - 1 for fk, ak in zip(f, a)})

    def index(self, n: int) -> torch.Tensor:
        """LongTensor [n, K]: row i holds reads(i) (descending), padded with -1. Cached per n."""
        key = ("index", n)
        if key not in self._memo:
            self._memo[key] = self._build_index(n)
        return self._memo[key]

    def index_on(self, n: int, device) -> torch.Tensor:
        """index(n) on `device`, checked once: see _index_on."""
        return _index_on(self, n, _device_key(device), True)

    def _build_index(self, n: int) -> torch.Tensor:
        f = torch.tensor(self.distances(n), dtype=torch.long)
        i = torch.arange(n).unsqueeze(1)
        if len(f) == 0:
            return torch.full((n, 0), -1, dtype=torch.long)
        if not self.cache_efficient:
            idx = i - f
            return torch.where(idx >= 0, idx, -1)
        a = torch.tensor(self.lattice_steps(n), dtype=torch.long)
        base = i + 1 - f
        pos = a * torch.div(base + a - 1, a, rounding_mode="floor") - 1
        pos = torch.where(base >= 1, pos, -1)
        # merge duplicates: sort descending, drop repeats, sort again so -1 padding goes last
        pos = pos.sort(dim=1, descending=True).values
        dup = torch.zeros_like(pos, dtype=torch.bool)
        dup[:, 1:] = pos[:, 1:] == pos[:, :-1]
        pos = torch.where(dup, -1, pos).sort(dim=1, descending=True).values
        width = int((pos >= 0).sum(1).max()) if n > 0 else 0
        return pos[:, :width].contiguous()

    # -- what a decoder has to keep -------------------------------------------------------------
    def live(self, i: int) -> list[int]:
        """Positions <= i that some later token will still read.

        Exactly the decoder's cache after step i: for the cache-efficient lattice this is
        reads(i + 1) (by the subset property nothing else is read again), for a bounded pattern
        the last max_distance positions, and for an unbounded plain pattern every position.
        """
        if self.cache_efficient:
            return self.reads(i + 1)
        reach = self.max_distance if self.max_distance is not None else i + 1
        return list(range(max(0, i + 1 - reach), i + 1))

    def cache_size(self, n: int) -> int:
        """Vectors a decoder keeps (the largest live set) to decode n tokens."""
        if n <= 1:
            return 0
        if self.cache_efficient:
            idx = self.index(n)
            return int((idx >= 0).sum(1).max())
        return min(n - 1, self.max_distance if self.max_distance is not None else n - 1)

    def __repr__(self) -> str:
        return f"RecurrentPattern({self.name}{', cache_efficient' if self.cache_efficient else ''})"


@cache
def _pattern(name: str, args: tuple, cache_efficient: bool) -> RecurrentPattern:
    if name == "none":
        return RecurrentPattern("none", lambda k: k + 1, 0, cache_efficient)
    if name == "first":
        return RecurrentPattern("first", lambda k: k + 1, 1, cache_efficient)
    if name == "kth":
        (order,) = args
        return RecurrentPattern(f"kth({order})", lambda k: k + 1, order, cache_efficient)
    if name == "pow2":
        return RecurrentPattern("pow2", lambda k: 2**k, None, cache_efficient)
    if name == "sq1":
        return RecurrentPattern("sq1", lambda k: k * k + 1, None, cache_efficient)
    if name == "dense":
        return RecurrentPattern("dense", lambda k: k + 1, None, cache_efficient)
    (expr,) = args  # a user expression in k
    return RecurrentPattern(expr, _compile_expression(expr), None, cache_efficient)


def make_pattern(name, cache_efficient: bool = False, **params) -> RecurrentPattern:
    """A recurrent pattern by name ('first', 'kth', 'pow2', 'sq1', 'dense', 'none'), by spec string
    ('kth(8)'), by an integer expression in k ('k**3 + 1'), or from a Python callable f(k).

    >>> make_pattern("kth", order=4).reads(10)
    [6, 7, 8, 9]
    """
    if isinstance(name, RecurrentPattern):
        if params:
            raise ValueError(
                f"make_pattern: parameters {sorted(params)} given with a pattern object")
        if cache_efficient and not name.cache_efficient:
            return RecurrentPattern(name.name, name.f, name.num_terms, True)
        return name
    if callable(name):
        num_terms = params.pop("num_terms", None)
        if params:
            raise ValueError(f"make_pattern: unknown parameters {sorted(params)} for a callable f")
        label = getattr(name, "__name__", "custom")
        return RecurrentPattern(label, name, num_terms, cache_efficient)
    if not isinstance(name, str):
        raise ValueError(f"recurrent pattern must be a name, spec string or callable, got {name!r}")
    try:
        base, args = parse_spec(name)
    except ValueError:
        base, args = None, []
    if base in RECURRENT_NAMES:
        if base == "kth":
            if args and "order" in params:
                raise ValueError(f"kth: order given twice ({name!r} and order={params['order']})")
            order = args[0] if args else params.pop("order", 8)
            params.pop("order", None)
            if not isinstance(order, int) or order < 1:
                raise ValueError(f"kth: order must be an integer >= 1, got {order!r}")
            args = [order]
        elif args:
            raise ValueError(f"recurrent pattern {base!r} takes no arguments, got {name!r}")
        if params:
            raise ValueError(f"recurrent pattern {base!r}: unknown parameters {sorted(params)}")
        return _pattern(base, tuple(args), bool(cache_efficient))
    if params:
        raise ValueError(f"recurrent pattern {name!r}: unknown parameters {sorted(params)}")
    _compile_expression(name)  # validates, with a clear message for unknown names
    pattern = _pattern("expr", (name,), bool(cache_efficient))
    pattern.distances(64)  # fail early if f(0) < 1 or f is not increasing
    return pattern


# ----------------------------------------------------------------------------------------------
# direct patterns


@dataclass(frozen=True)
class DirectPattern:
    """A(i): 'self' = {i}; 'window(w)' = {i-w+1 .. i}; 'full' = {0 .. i}."""

    name: str
    window: int | None  # None: full

    def reads(self, i: int) -> list[int]:
        lo = 0 if self.window is None else max(0, i - self.window + 1)
        return list(range(lo, i + 1))

    def width(self, n: int) -> int:
        return n if self.window is None else min(self.window, n)

    def index(self, n: int) -> torch.Tensor:
        """[n, width] with row i = (i, i-1, ..., i-w+1), padded with -1."""
        idx = torch.arange(n).unsqueeze(1) - torch.arange(self.width(n))
        return torch.where(idx >= 0, idx, -1)

    def index_on(self, n: int, device) -> torch.Tensor:
        """index(n) on `device`, checked once: see _index_on."""
        return _index_on(self, n, _device_key(device), False)

    def cache_size(self, n: int) -> int:
        """(k, v) pairs a decoder keeps between steps to decode n tokens."""
        return max(0, min(n - 1, self.width(n) - 1))

    def live(self, i: int) -> list[int]:
        if self.window is None:
            return list(range(i + 1))
        return list(range(max(0, i - self.window + 2), i + 1))


# ----------------------------------------------------------------------------------------------
# index tensors on a device, checked once


def _device_key(device) -> torch.device:
    """'cuda' and 'cuda:0' are one cache entry: the index a bare 'cuda' means is filled in."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


@lru_cache(maxsize=64)
def _index_on(pattern, n: int, device: torch.device, strict: bool) -> torch.Tensor:
    """The pattern's index tensor on `device`, built and checked once per (pattern, n, device).

    A layer's forward needs it on every call: building it, checking its values on the device
    (a device-to-host sync) and copying it over would cost every step. Patterns are
    deterministic, so it is checked here once on the host, before the copy, and marked as
    checked (mixers.ops.validate_index), which `glr` then trusts: no sync per call. Callers
    must not modify it in place (a change would unmark it, and the next call would re-check).
    At most 64 entries (a `full` direct index is n x n).
    """
    from mixers.ops import mark_checked, validate_index  # mixers.ops does not import patterns

    # built as a normal tensor even when the first call at this n comes from evaluation under
    # torch.inference_mode (a test length never trained): an inference tensor has no version
    # counter to mark, and the cached tensor is shared with later training calls
    with torch.inference_mode(False):
        idx = validate_index(pattern.index(n), strict=strict)
        if idx.device == device:
            return idx
        return mark_checked(idx.to(device), strict=strict)  # a copy of the values checked above


def make_direct(spec: str) -> DirectPattern:
    """'self', 'window(16)' or 'full'."""
    if isinstance(spec, DirectPattern):
        return spec
    name, args = parse_spec(str(spec))
    if name == "self" and not args:
        return DirectPattern("self", 1)
    if name == "full" and not args:
        return DirectPattern("full", None)
    if name == "window" and len(args) == 1:
        if args[0] < 1:
            raise ValueError(f"direct: window size must be >= 1, got {args[0]}")
        return DirectPattern(f"window({args[0]})", args[0])
    raise ValueError(
        f"direct pattern {spec!r} unknown: expected one of 'self', 'window(w)', 'full'")
