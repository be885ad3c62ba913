"""The statistics analysis and the benchmarks share: intervals over seeds, power-law exponents.

    t_interval(values)            (mean, 95% Student t half-width, n)
    fit_exponent(n, t, n_min)     Fit(exponent, ns): the slope of log t against log n
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = ["t_interval", "fit_exponent", "Fit"]


def t_interval(values, level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width, n) of the Student t interval: mean +- t_{(1+level)/2, n-1} * s / sqrt(n),
    s the sample standard deviation (ddof 1). NaN half-width when n < 2. Non-finite values and
    None are left out."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


class Fit(NamedTuple):
    exponent: float  # NaN when fewer than two lengths >= n_min have a positive time
    ns: list  # the lengths the fit used


def fit_exponent(n, t, n_min: int = 1024) -> Fit:
    """The slope of log t against log n (least squares, np.polyfit) over the points with
    n >= n_min and a finite positive t. Small n sit off the power law (fixed costs dominate),
    so they are never used: with fewer than two distinct usable lengths the exponent is NaN."""
    n = np.asarray(n, dtype=float)
    t = np.asarray([np.nan if v is None else v for v in t], dtype=float)
    keep = (n >= n_min) & np.isfinite(t) & (t > 0)
    used = sorted({int(v) for v in n[keep]})
    if len(used) < 2:
        return Fit(math.nan, used)
    return Fit(float(np.polyfit(np.log(n[keep]), np.log(t[keep]), 1)[0]), used)
