"""Statistics of raw latency samples (standard library only; shipped to on-device agents)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def mean(xs: Sequence[float]) -> float:
    return float(statistics.fmean(xs))


def std(xs: Sequence[float]) -> float:
    return float(statistics.stdev(xs)) if len(xs) > 1 else 0.0


def percentile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100] (numpy's default method)."""
    s = sorted(xs)
    if not s:
        raise ValueError("percentile of no samples")
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def iqr(xs: Sequence[float]) -> float:
    return percentile(xs, 75) - percentile(xs, 25)


def median_ci(xs: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    Uses the normal approximation of the binomial(n, 1/2) for the ranks:
    ``j, k = n/2 -+ z * sqrt(n)/2``. With fewer than 6 samples the interval is (min, max).
    """
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("confidence interval of no samples")
    if n < 6:
        return float(s[0]), float(s[-1])
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    return float(s[lo]), float(s[hi])
