"""Pareto fronts of latency (lower is better) against quality (higher is better)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["dominates", "pareto_front"]


def pareto_front(
    latency_ms: Sequence[float] | np.ndarray, quality: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Indices of the non-dominated points, ordered by increasing latency (ties: index order).

    A point is dominated when another one is at least as fast *and* at least as good, and strictly
    better in one of the two (:func:`dominates`); every point no other point dominates is on the
    front. So exact ties (equal latency and equal quality: neither dominates the other) are all
    kept. Infinities are ordinary values: a quality of ``-inf`` (NASWOT of a singular kernel) is
    the worst quality there is, so such a point is on the front only when no point with a finite
    quality is at least as fast; ``+inf`` latency is the slowest. Points with a NaN in either value
    (not computed) are left out. ``O(n log n)``: sort by latency (ties: best quality first) and
    keep each point that beats the best quality of the faster points, or that repeats the point
    which set it exactly.
    """
    lat = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    q = np.asarray(quality, dtype=np.float64).reshape(-1)
    if lat.shape != q.shape:
        raise ValueError(f"latency has {lat.shape[0]} values, quality {q.shape[0]}; expected equal")
    ok = np.flatnonzero(~np.isnan(lat) & ~np.isnan(q))
    if ok.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = ok[np.lexsort((ok, -q[ok], lat[ok]))]
    keep: list[int] = [int(order[0])]  # the fastest point (best quality first) always: even -inf
    best_lat, best_q = lat[order[0]], q[order[0]]
    for i in order[1:]:
        if q[i] > best_q:
            keep.append(int(i))
            best_lat, best_q = lat[i], q[i]
        elif q[i] == best_q and lat[i] == best_lat:  # an exact tie of the point that set best_q
            keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``(latency_ms, quality)`` point ``a`` dominates ``b``."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])
