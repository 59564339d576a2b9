"""Latency monotonicity across devices: is one proxy device enough?

"One Proxy Device Is Enough" (Lu et al., SIGMETRICS 2022) observes that the latency *ranking* of
architectures is often nearly the same on different devices (high latency monotonicity), so a
search can run on one proxy device; where it is not, a few measurements of the target adapt
the proxy's predictor. This module measures that on a latency table:

* :func:`rank_correlations` -- Spearman and Kendall matrices across devices (pairwise over the
  architectures both devices have);
* :func:`cluster_order` -- a hierarchical-clustering order of the devices (average linkage on
  ``1 - Spearman``) so that the heat-map shows blocks of mutually monotone devices;
* :func:`best_proxies` -- for a target with K measured architectures, the devices whose
  latencies rank those K best, and whether one proxy is enough (its Spearman on the samples at
  or above a threshold) or adaptation is needed;
* :func:`proxy_adaptation` -- adapt the proxy's predictor with the K target samples (a
  calibration plus a fine-tuned residual on architecture features, :mod:`adapt`) and report
  its rank correlation on the target's other architectures before and after;
* :func:`plot_heatmap` -- the clustered heat-map (matplotlib, written to a file).

Tables are *wide*: one row per architecture (index = canonical arch string), one column per
device, latencies in ms, NaN where a device did not measure an architecture.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from latbench.errors import PredictorError
from latbench.predictors.metrics import kendall, spearman

log = logging.getLogger(__name__)

#: Spearman on the target's samples at or above which one proxy device is called enough
DEFAULT_THRESHOLD = 0.9
#: fewest shared architectures for a correlation to be reported (NaN below)
MIN_SHARED = 10


def wide_table(long: pd.DataFrame, devices: Sequence[str] | None = None) -> pd.DataFrame:
    """Long ``arch, device, latency_ms`` rows -> wide (arch x device), median of repeats."""
    for col in ("arch", "device", "latency_ms"):
        if col not in long.columns:
            raise PredictorError(
                f"latency table has columns {list(long.columns)}; expected arch, device, latency_ms"
            )
    w = long.pivot_table(index="arch", columns="device", values="latency_ms", aggfunc="median")
    w.columns = [str(c) for c in w.columns]
    if devices:
        w = w[select_devices(list(w.columns), devices)]
    return w


def select_devices(known: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Devices of ``known`` matching any of ``patterns`` (exact names, globs, or ``all``)."""
    import fnmatch

    if not patterns or list(patterns) == ["all"]:
        return list(known)
    out: list[str] = []
    for p in patterns:
        hit = [
            d
            for d in known
            if fnmatch.fnmatch(d, p)
            or d == p
            or d.split("/")[-1] == p
            or fnmatch.fnmatch(d.split("/")[-1], p)
        ]
        if not hit:
            raise PredictorError(f"device {p!r} matches nothing; expected one of {list(known)}")
        out += [d for d in hit if d not in out]
    return out


def rank_correlations(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(spearman, kendall)`` device x device matrices over shared architectures."""
    cols = list(table.columns)
    if len(cols) < 2:
        raise PredictorError(f"got {len(cols)} device(s); a monotonicity matrix needs at least 2")
    n = len(cols)
    sp = np.eye(n)
    kd = np.eye(n)
    vals = table.to_numpy(dtype=np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            m = np.isfinite(vals[:, i]) & np.isfinite(vals[:, j])
            if m.sum() < MIN_SHARED:
                sp[i, j] = sp[j, i] = kd[i, j] = kd[j, i] = np.nan
                continue
            sp[i, j] = sp[j, i] = spearman(vals[m, i], vals[m, j])
            kd[i, j] = kd[j, i] = kendall(vals[m, i], vals[m, j])
    return pd.DataFrame(sp, index=cols, columns=cols), pd.DataFrame(kd, index=cols, columns=cols)


def cluster_order(corr: pd.DataFrame) -> list[str]:
    """Device order of an average-linkage clustering on ``1 - corr`` (NaN counts as 0)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    names = list(corr.index)
    if len(names) < 3:
        return names
    dist = 1.0 - np.nan_to_num(corr.to_numpy(dtype=np.float64), nan=0.0)
    dist = np.clip((dist + dist.T) / 2.0, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    order = leaves_list(linkage(squareform(dist, checks=False), method="average"))
    return [names[i] for i in order]


def plot_heatmap(
    corr: pd.DataFrame, path: str | os.PathLike[str], *, title: str = "Spearman"
) -> list[str]:
    """Write the clustered heat-map of ``corr`` to ``path``; returns the device order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = cluster_order(corr)
    m = corr.loc[order, order].to_numpy(dtype=np.float64)
    size = max(4.0, 0.35 * len(order) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(m, vmin=min(0.0, float(np.nanmin(m))), vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(order)), order, rotation=90, fontsize=7)
    ax.set_yticks(range(len(order)), order, fontsize=7)
    if len(order) <= 16:
        for i in range(len(order)):
            for j in range(len(order)):
                if np.isfinite(m[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{m[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if m[i, j] < 0.8 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=title)
    ax.set_title(f"{title} rank correlation of latency (clustered)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return order


@dataclass(frozen=True)
class ProxyReport:
    """The best proxies of a target and the verdict."""

    target: str
    n_samples: int
    threshold: float
    ranking: list[tuple[str, float, float]]  # (device, spearman, kendall) on the samples
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> str:
        return self.ranking[0][0]

    @property
    def one_proxy_enough(self) -> bool:
        return self.ranking[0][1] >= self.threshold

    def verdict(self) -> str:
        dev, s, _ = self.ranking[0]
        if self.one_proxy_enough:
            return (
                f"one proxy is enough: {dev} ranks the {self.n_samples} samples with Spearman "
                f"{s:.3f} >= {self.threshold}"
            )
        return (
            f"adaptation needed: the best proxy {dev} reaches Spearman {s:.3f} < "
            f"{self.threshold} on the {self.n_samples} samples"
        )


def best_proxies(
    table: pd.DataFrame,
    archs: Sequence[str],
    latency_ms: Any,
    *,
    target: str = "target",
    exclude: Sequence[str] = (),
    threshold: float = DEFAULT_THRESHOLD,
) -> ProxyReport:
    """Rank the devices of ``table`` as proxies of a target measured on ``archs``."""
    y = pd.Series(np.asarray(latency_ms, dtype=np.float64), index=list(archs))
    if y.size < 3:
        raise PredictorError(f"got {y.size} target samples; expected at least 3")
    shared = [a for a in y.index if a in table.index]
    if len(shared) < 3:
        raise PredictorError(
            f"only {len(shared)} of the {y.size} target architectures are in the table; "
            "expected at least 3 shared (same space and canonical strings?)"
        )
    ranking = []
    for dev in table.columns:
        if dev in exclude or dev == target:
            continue
        col = table.loc[shared, dev].to_numpy(dtype=np.float64)
        m = np.isfinite(col)
        if m.sum() < 3:
            continue
        yt = y[shared].to_numpy()[m]
        ranking.append((dev, spearman(yt, col[m]), kendall(yt, col[m])))
    if not ranking:
        raise PredictorError(
            "no device of the table shares 3 or more architectures with the target"
        )
    ranking.sort(key=lambda r: (-r[1], -r[2]))
    return ProxyReport(target, len(shared), threshold, ranking)


@dataclass(frozen=True)
class AdaptationReport:
    """Rank correlation of the proxy's predictor on the target, before and after adaptation."""

    proxy: str
    target: str
    k: int
    n_eval: int
    spearman_before: float
    spearman_after: float
    kendall_before: float
    kendall_after: float
    method: str


def proxy_adaptation(
    table: pd.DataFrame,
    space: str,
    proxy: str,
    target: str,
    *,
    k: int = 10,
    seed: int = 0,
    method: str = "meta",
) -> AdaptationReport:
    """Adapt the proxy's predictor with K target samples; score it on the target's other archs.

    The proxy's predictor is the ``meta`` model fitted on the proxy's column alone; adaptation
    (:func:`latbench.predictors.adapt.adapt`) calibrates it and, with ``method="meta"``, fits a
    residual on architecture features that can re-rank. "Before" is the proxy predictor's own
    ranking, "after" the adapted one's, both on every target architecture not among the K.
    """
    from latbench.predictors.adapt import adapt
    from latbench.predictors.base import create

    for d in (proxy, target):
        if d not in table.columns:
            raise PredictorError(
                f"device {d!r} is not in the table; expected one of {list(table.columns)}"
            )
    src = table[proxy].dropna()
    tgt = table[target].dropna()
    if len(tgt) < k + 10:
        raise PredictorError(
            f"target {target!r} has {len(tgt)} measured architectures; expected at least {k + 10}"
        )
    base = create("meta").fit(
        list(src.index), src.to_numpy(), space=space, devices=[proxy] * len(src)
    )
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(tgt), size=k, replace=False)
    rest = np.setdiff1d(np.arange(len(tgt)), pick)
    ka = [tgt.index[i] for i in pick]
    ea = [tgt.index[i] for i in rest]
    ey = tgt.to_numpy()[rest]
    before = base.predict(ea, device=proxy)
    adapted = adapt(base, ka, tgt.to_numpy()[pick], method=method, device=target)
    after = adapted.predict(ea)
    return AdaptationReport(
        proxy,
        target,
        k,
        len(ea),
        spearman(ey, before),
        spearman(ey, after),
        kendall(ey, before),
        kendall(ey, after),
        adapted.method_,
    )
