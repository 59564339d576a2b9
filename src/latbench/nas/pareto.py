"""Pareto fronts of latency (lower is better) against quality (higher is better)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["dominates", "pareto_front"]


def pareto_front(
    latency_ms: Sequence[float] | np.ndarray, quality: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Indices of the non-dominated points, ordered by increasing latency.

    A point is dominated when another one is at least as fast *and* at least as good, and strictly
    better in one of the two. Points with a NaN in either value are left out. ``O(n log n)``: sort
    by latency (ties: best quality first) and keep each point that beats the best quality so far.
    """
    lat = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    q = np.asarray(quality, dtype=np.float64).reshape(-1)
    if lat.shape != q.shape:
        raise ValueError(f"latency has {lat.shape[0]} values, quality {q.shape[0]}; expected equal")
    ok = np.flatnonzero(~np.isnan(lat) & ~np.isnan(q))
    if ok.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = ok[np.lexsort((-q[ok], lat[ok]))]
    keep: list[int] = []
    best = -np.inf
    for i in order:
        if q[i] > best:
            keep.append(int(i))
            best = q[i]
    return np.asarray(keep, dtype=np.int64)


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``(latency_ms, quality)`` point ``a`` dominates ``b``."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])
