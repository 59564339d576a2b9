"""Accuracy and ranking metrics of latency predictions.

Error metrics (``rmse``, ``mape``, ``acc_within``) judge the milliseconds; rank metrics
(``spearman``, ``kendall``, ``topk_overlap``) judge what NAS uses a predictor for: ordering
architectures. ``acc_within(y, p, 10)`` is nn-Meter's "+-10 % accuracy": the share of predictions
within 10 % of the measurement.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from latbench.errors import PredictorError


def _values(x: Any, what: str) -> np.ndarray:
    try:
        v = np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise PredictorError(f"{what} values {x!r:.80}; expected numbers") from None
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PredictorError(
            f"{what}[{i}] = {float(v[i])!r} ({int(bad.sum())} non-finite value(s)); expected "
            "finite numbers (drop unmeasured rows before scoring)"
        )
    return v


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _values(y_true, "measured")
    p = _values(y_pred, "predicted")
    if t.shape != p.shape:
        raise PredictorError(f"got {t.size} measured and {p.size} predicted values; expected equal")
    if t.size == 0:
        raise PredictorError("no values to score; expected at least one")
    return t, p


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the unit of the inputs (ms)."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mape(y_true: Any, y_pred: Any) -> float:
    """Mean absolute percentage error, in percent."""
    t, p = _pair(y_true, y_pred)
    bad = t <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PredictorError(
            f"measured[{i}] = {float(t[i])!r} ({int(bad.sum())} value(s) <= 0); expected "
            "latencies > 0 (a percentage error of a zero or negative measurement is undefined)"
        )
    return float(np.mean(np.abs(p - t) / t) * 100.0)


def acc_within(y_true: Any, y_pred: Any, pct: float = 10.0) -> float:
    """Share (0-1) of predictions within ``pct`` percent of the measurement."""
    if isinstance(pct, bool) or not isinstance(pct, int | float | np.number) or not pct >= 0:
        raise PredictorError(f"pct = {pct!r}; expected a percentage >= 0")
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t) <= np.abs(t) * float(pct) / 100.0))


def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman rank correlation (0.0 when either side is constant: no ranking at all)."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or _constant(t) or _constant(p):
        return 0.0
    return float(stats.spearmanr(t, p).statistic)


def kendall(y_true: Any, y_pred: Any) -> float:
    """Kendall tau-b (ties accounted for; 0.0 when either side is constant)."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or _constant(t) or _constant(p):
        return 0.0
    return float(stats.kendalltau(t, p).statistic)


def topk_overlap(y_true: Any, y_pred: Any, k: int = 50) -> float:
    """Share (0-1) of the ``k`` predicted fastest architectures that are among the ``k`` truly
    fastest.

    Ties do not depend on row order: an architecture tied with the k-th fastest measurement
    counts as among the truly fastest (whole-millisecond devices tie a lot), and the
    predictions tied at the k-th place share the remaining places equally (the expected
    overlap under a random tie break). Without ties this is ``|top_k(true) & top_k(pred)| / k``.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise PredictorError(f"k = {k!r}; expected an integer >= 1")
    t, p = _pair(y_true, y_pred)
    k = min(int(k), t.size)
    fast = t <= np.sort(t)[k - 1]
    kth = np.sort(p)[k - 1]
    below = p < kth
    tied = p == kth
    weight = below.astype(np.float64)
    weight[tied] = (k - int(below.sum())) / int(tied.sum())
    return float(min(1.0, float(weight[fast].sum()) / k))


#: the top-k overlap of the command line and the report looks at the fastest 50 ...
TOP_K = 50
#: ... or at the fastest fifth of a smaller set: top 50 of 50 rows is 1.0 whatever the order
TOP_K_SHARE = 0.2


def top_k_for(n: int) -> int:
    """The k of a top-k overlap over ``n`` scored architectures: :data:`TOP_K`, or the fastest
    fifth of fewer than ``TOP_K / TOP_K_SHARE`` (at least 1), so that the score still depends
    on the ranking (with k = n every ranking scores 1). One k for every row of a table: pass
    the smallest ``n``."""
    return max(1, min(TOP_K, int(n * TOP_K_SHARE)))


def evaluate(y_true: Any, y_pred: Any, k: int = 50) -> dict[str, float]:
    """Every metric at once: rmse_ms, mape_pct, acc5, acc10, spearman, kendall, top{k}."""
    return {
        "rmse_ms": rmse(y_true, y_pred),
        "mape_pct": mape(y_true, y_pred),
        "acc5": acc_within(y_true, y_pred, 5.0),
        "acc10": acc_within(y_true, y_pred, 10.0),
        "spearman": spearman(y_true, y_pred),
        "kendall": kendall(y_true, y_pred),
        f"top{k}": topk_overlap(y_true, y_pred, k),
    }
