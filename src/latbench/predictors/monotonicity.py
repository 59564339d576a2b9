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
* :func:`adapt_proxy` -- adapt the proxy's predictor with the K target samples: its
  calibration plus an op-count residual whose prior is learned from how the table's other
  devices depart from the proxy (``embed+proxy``, :mod:`latbench.predictors.fewshot_embed`);
* :func:`proxy_adaptation` -- that adaptation for a device of the table, with its rank
  correlation on the target's other architectures before and after;
  :func:`proxy_adaptation_cv` -- the same for a new device, scored by leave-one-out on its K
  samples (the only measurements there are);
* :func:`plot_heatmap` -- the clustered heat-map (matplotlib, written to a file).

Tables are *wide*: one row per architecture (index = canonical arch string), one column per
device, latencies in ms, NaN where a device did not measure an architecture.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from latbench._atomic import atomic_path
from latbench._validate import expected_number
from latbench.errors import PredictorError
from latbench.predictors.base import sample_latencies
from latbench.predictors.metrics import kendall, spearman

log = logging.getLogger(__name__)

#: Spearman on the target's samples at or above which one proxy device is called enough
DEFAULT_THRESHOLD = 0.9
#: fewest shared architectures for a correlation to be reported (NaN below)
MIN_SHARED = 10
#: a proxy candidate must have measured this share of the samples the best-covered device did
COVERAGE = 0.9


#: the columns of a long table that tell two configurations of one device apart, and how a
#: column name shows each value (as the report's groups do: ``local · b32``)
CONFIG_COLUMNS = {"runtime": "{}", "threads": "t{}", "batch": "b{}"}


def wide_table(long: pd.DataFrame, devices: Sequence[str] | None = None) -> pd.DataFrame:
    """Long ``arch, device, latency_ms`` rows -> wide (arch x device), median of repeats.

    A device measured in more than one configuration (``runtime``, ``threads`` or ``batch``
    columns holding several values for it, as a store of ``collect`` runs at batch 1 and 32
    does) gives one column per configuration, named as the report names them
    (``local · b32``), with a warning: the median of a batch-1 and a batch-32 latency is
    neither, and ranks like neither. Devices of one configuration keep their plain name.
    """
    for col in ("arch", "device", "latency_ms"):
        if col not in long.columns:
            raise PredictorError(
                f"latency table has columns {list(long.columns)}; expected arch, device, latency_ms"
            )
    long = long.assign(device=_configuration_labels(long))
    w = long.pivot_table(index="arch", columns="device", values="latency_ms", aggfunc="median")
    w.columns = [str(c) for c in w.columns]
    if devices:
        w = w[select_devices(list(w.columns), devices)]
    return w


def _configuration_labels(long: pd.DataFrame) -> pd.Series:
    """The device of each row, with the configuration added where that device has several."""
    dev = long["device"].astype(str)
    label = dev
    split: dict[str, set[str]] = {}
    for col, fmt in CONFIG_COLUMNS.items():
        if col not in long.columns:
            continue
        text = long[col].astype(object).where(long[col].notna(), "").astype(str)
        if col == "threads":
            text = text.where(text != "0", "default")  # 0: the runtime's own thread count
        varies = text.groupby(dev).transform("nunique").to_numpy() > 1
        if not varies.any():
            continue
        shown = text.map(lambda v, fmt=fmt, col=col: fmt.format(v) if v else f"no {col}")
        label = label.where(~varies, label + " · " + shown)
        for d in dev[varies].unique():
            split.setdefault(d, set()).add(col)
    if split:
        log.warning(
            "%d device(s) were measured in several configurations; each configuration is a "
            "device of its own: %s",
            len(split),
            "; ".join(
                f"{d} ({', '.join(sorted(cols))}): "
                + ", ".join(sorted(label[dev == d].unique())[:4])
                for d, cols in list(split.items())[:4]
            ),
        )
    return label


def select_devices(known: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Devices of ``known`` matching any of ``patterns`` (exact names, globs, or ``all``).

    ``all`` selects every device wherever it stands in the list (``all help/pixel3`` is all of
    them), as it does alone: it is never a device name to look up."""
    import fnmatch

    if not patterns or "all" in patterns:
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


def excluded_columns(table: pd.DataFrame, exclude: str | Sequence[str]) -> set[str]:
    """The devices of ``table`` that ``exclude`` names (full or short names, globs; one name
    may be given as a string). A name that matches no device is a :class:`PredictorError`:
    a misspelt exclusion that left the target in would leak its own data into the result."""
    names = [exclude] if isinstance(exclude, str) else list(exclude)
    if not names:
        return set()
    try:
        return set(select_devices(list(table.columns), names))
    except PredictorError as exc:
        raise PredictorError(f"exclude: {exc} (the table's devices)") from None


def rank_correlations(
    table: pd.DataFrame, *, with_kendall: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(spearman, kendall)`` device x device matrices over shared architectures.

    Each pair is scored on the architectures both devices measured (NaN below
    :data:`MIN_SHARED`). Spearman runs in pandas' C loop over pairwise-complete rows;
    Kendall, per pair in scipy, takes seconds on the 36-device reference table, so
    ``with_kendall=False`` skips it (None in its place).
    """
    cols = list(table.columns)
    if len(cols) < 2:
        raise PredictorError(
            f"got {len(cols)} device(s) ({', '.join(cols) or 'none'}); a monotonicity matrix "
            "needs at least 2 distinct devices"
        )
    raw = table.astype(np.float64).corr(method="spearman", min_periods=MIN_SHARED)
    mat = raw.loc[cols, cols].to_numpy(dtype=np.float64, copy=True)
    np.fill_diagonal(mat, 1.0)
    sp = pd.DataFrame(mat, index=cols, columns=cols)
    _check_defined(table, sp)
    if not with_kendall:
        return sp, None
    n = len(cols)
    kd = np.eye(n)
    vals = table.to_numpy(dtype=np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            # where Spearman is undefined (too few shared rows, or one side constant on them)
            # Kendall is too: metrics.kendall's 0.0 for a constant side would read as "no
            # relation" next to a Spearman of "-"
            kd[i, j] = kd[j, i] = (
                np.nan if np.isnan(mat[i, j]) else kendall(*_shared(vals[:, i], vals[:, j]))
            )
    return sp, pd.DataFrame(kd, index=cols, columns=cols)


def _shared(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.isfinite(a) & np.isfinite(b)
    return a[m], b[m]


def _check_defined(table: pd.DataFrame, sp: pd.DataFrame) -> None:
    """Say why matrix cells are undefined; refuse a matrix with no defined pair at all.

    A pair is undefined (NaN, shown as ``-``) when the two devices share fewer than
    :data:`MIN_SHARED` measured architectures or one of them has a single latency over the
    shared ones. Some such cells are logged, naming the pairs; a table where every pair is
    undefined (one architecture, disjoint devices, constant columns) is a
    :class:`PredictorError` instead of a matrix of dashes that looks like a result.
    """
    cols = list(table.columns)
    measured = table.notna().astype(np.int64)
    shared = measured.T @ measured
    constant = [d for d in cols if table[d].count() > 1 and table[d].nunique() == 1]
    mat = sp.to_numpy()
    undefined = [
        (a, b, int(shared.loc[a, b]))
        for i, a in enumerate(cols)
        for j, b in enumerate(cols)
        if i < j and np.isnan(mat[i, j])
    ]
    if not undefined:
        return
    why = []
    few = [(a, b, c) for a, b, c in undefined if c < MIN_SHARED]
    if few:
        shown = ", ".join(f"{a} & {b} ({c})" for a, b, c in few[:4])
        why.append(
            f"{len(few)} pair(s) share fewer than {MIN_SHARED} measured architectures: "
            f"{shown}{', ...' if len(few) > 4 else ''}"
        )
    if constant:
        shown = ", ".join(f"{d} ({float(table[d].dropna().iloc[0]):g} ms)" for d in constant[:4])
        why.append(
            f"{len(constant)} device(s) have one latency for every architecture, nothing to "
            f"rank: {shown}{', ...' if len(constant) > 4 else ''}"
        )
    flat = [
        (a, b)
        for a, b, c in undefined
        if c >= MIN_SHARED and a not in constant and b not in constant
    ]
    if flat:
        shown = ", ".join(f"{a} & {b}" for a, b in flat[:4])
        why.append(
            f"{len(flat)} pair(s) have one side with a single latency on the architectures they "
            f"share: {shown}{', ...' if len(flat) > 4 else ''}"
        )
    if len(undefined) == len(cols) * (len(cols) - 1) // 2:
        raise PredictorError(
            f"no pair of the {len(cols)} devices has a defined rank correlation "
            f"({'; '.join(why)}); expected devices that share at least {MIN_SHARED} measured "
            "architectures with differing latencies"
        )
    log.warning(
        "%d of the %d device pairs have no rank correlation (shown as '-'): %s",
        len(undefined),
        len(cols) * (len(cols) - 1) // 2,
        "; ".join(why),
    )


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
    try:
        with atomic_path(path) as tmp:  # an interrupted write leaves no half image
            fig.savefig(tmp, dpi=120)
    finally:
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
    #: how many of the samples each ranked device measured
    shared: dict[str, int] = field(default_factory=dict)

    @property
    def best(self) -> str:
        return self.ranking[0][0]

    @property
    def one_proxy_enough(self) -> bool:
        # a perfect ranking comes out of scipy as 0.9999999999999999: with --threshold 1 it
        # must count as reaching it
        return bool(self.ranking[0][1] >= self.threshold - THRESHOLD_TOLERANCE)

    def verdict(self) -> str:
        dev, s, _ = self.ranking[0]
        enough = self.one_proxy_enough
        shown = _as_compared(s, self.threshold, enough)
        if enough:
            return (
                f"one proxy is enough: {dev} ranks the {self.n_samples} samples with Spearman "
                f"{shown} >= {self.threshold}"
            )
        return (
            f"adaptation needed: the best proxy {dev} reaches Spearman {shown} < "
            f"{self.threshold} on the {self.n_samples} samples"
        )


#: how far below the threshold a Spearman may fall by float rounding and still reach it
THRESHOLD_TOLERANCE = 1e-9


def _as_compared(value: float, threshold: float, reached: bool) -> str:
    """``value`` with 3 decimals, or as many more as it takes for the printed comparison
    with ``threshold`` to read as the verdict (0.8996 is not "0.900 < 0.9")."""
    for digits in range(3, 10):
        text = f"{value:.{digits}f}"
        if (float(text) >= threshold - THRESHOLD_TOLERANCE) == reached:
            return text
    return repr(value)


def best_proxies(
    table: pd.DataFrame,
    archs: Sequence[str],
    latency_ms: Any,
    *,
    target: str = "target",
    exclude: Sequence[str] = (),
    threshold: float = DEFAULT_THRESHOLD,
) -> ProxyReport:
    """Rank the devices of ``table`` as proxies of a target measured on ``archs``.

    Devices are ranked by Spearman (then Kendall) on the samples they measured. In a table
    whose devices measured different subsets of the space, a device that shares 3 of 20
    samples can rank them perfectly by chance, so the devices that share fewer than
    :data:`COVERAGE` of what the best-covered device shares are ranked after the others
    (on the NAS-Bench-201 reference table, K = 20: the chosen proxy's predictor ranks the
    target 0.889 instead of 0.813 on average).
    """
    if isinstance(archs, str):
        raise PredictorError(f"archs={archs!r} is one string; expected a list of architectures")
    if isinstance(archs, set | frozenset | Mapping):
        raise PredictorError(
            f"archs is a {type(archs).__name__}, which has no order to pair with latency_ms; "
            "expected a list of architectures, one per latency"
        )
    if expected_number(threshold) is not None:  # above 1: adaptation is always called for
        raise PredictorError(f"threshold = {threshold!r}; expected a number (a Spearman value)")
    arch_list = list(archs)
    y = pd.Series(sample_latencies(arch_list, latency_ms), index=arch_list)
    if y.index.has_duplicates:  # as adaptation does: one latency per architecture
        n_dup = int(y.index.duplicated(keep=False).sum())
        log.warning(
            "%d target sample(s) share an architecture; using the geometric mean of each", n_dup
        )
        y = np.exp(np.log(y).groupby(level=0, sort=False).mean())
    if y.size < 3:
        raise PredictorError(f"got {y.size} target samples; expected at least 3")
    shared = [a for a in y.index if a in table.index]
    if len(shared) < 3:
        raise PredictorError(
            f"only {len(shared)} of the {y.size} target architectures are in the table; "
            "expected at least 3 shared (same space and canonical strings?)"
        )
    dropped = excluded_columns(table, exclude)
    ranking = []
    counts: dict[str, int] = {}
    for dev in table.columns:
        if dev in dropped or dev == target:
            continue
        col = table.loc[shared, dev].to_numpy(dtype=np.float64)
        m = np.isfinite(col)
        if m.sum() < 3:
            continue
        yt = y[shared].to_numpy()[m]
        ranking.append((dev, spearman(yt, col[m]), kendall(yt, col[m])))
        counts[dev] = int(m.sum())
    if not ranking:
        raise PredictorError(
            "no device of the table shares 3 or more architectures with the target"
        )
    need = max(3, int(np.ceil(COVERAGE * max(counts.values()))))
    ranking.sort(key=lambda r: (counts[r[0]] < need, -r[1], -r[2]))
    return ProxyReport(target, len(shared), threshold, ranking, shared=counts)


#: what proxy adaptation can use (``embed+proxy``, the default, learns from the table's
#: other devices; the others use the proxy's predictor and the K samples alone)
PROXY_METHODS = ("embed+proxy", "proxy", "meta", "bayes", "auto")
#: the proxy-adaptation methods that use the prior learned from the table (:func:`proxy_prior`)
PRIOR_METHODS = ("embed+proxy", "auto")
#: share of the prior mass on the proxy's own coefficients (no departure from it)
ANCHOR_MASS = 0.5
#: a device of the table joins the prior when it measured this many times as many
#: architectures as the prior has coefficients (fewer: its departure is not learned well)
MIN_ROWS_PER_COEF = 3


@dataclass(frozen=True)
class AdaptationReport:
    """Rank correlation of the proxy's predictor on the target, before and after adaptation.

    ``evaluated_on``: ``"held-out"`` (the target's measured architectures not among the K) or
    ``"leave-one-out"`` (each of the K samples predicted by an adaptation to the other K - 1;
    a new device has no other measurements). ``hypotheses``: the table devices the prior
    learned from (0 for methods without one).
    """

    proxy: str
    target: str
    k: int
    n_eval: int
    spearman_before: float
    spearman_after: float
    kendall_before: float
    kendall_after: float
    method: str
    evaluated_on: str = "held-out"
    hypotheses: int = 0

    @classmethod
    def scored(
        cls,
        proxy: str,
        target: str,
        k: int,
        y: np.ndarray,
        before: np.ndarray,
        after: np.ndarray,
        method: str,
        evaluated_on: str,
        hypotheses: int,
    ) -> AdaptationReport:
        """The report of predictions ``before`` and ``after`` against measured ``y``."""
        return cls(
            proxy,
            target,
            k,
            len(y),
            spearman(y, before),
            spearman(y, after),
            kendall(y, before),
            kendall(y, after),
            method,
            evaluated_on,
            hypotheses,
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def line(self) -> str:
        where = (
            f"{self.n_eval} other target architectures"
            if self.evaluated_on == "held-out"
            else f"leave-one-out on the {self.k} samples"
        )
        return (
            f"proxy adaptation of {self.proxy} ({self.method}, K={self.k}, {where}): "
            f"Spearman {self.spearman_before:.3f} -> {self.spearman_after:.3f}, "
            f"Kendall {self.kendall_before:.3f} -> {self.kendall_after:.3f}"
        )


def fit_proxy_predictor(table: pd.DataFrame, space: str, proxy: str) -> Any:
    """The proxy's predictor: the ``meta`` model fitted on the proxy's column alone."""
    from latbench.predictors.base import create

    if proxy not in table.columns:
        raise PredictorError(
            f"device {proxy!r} is not in the table; expected one of {list(table.columns)}"
        )
    src = table[proxy].dropna()
    return create("meta").fit(
        list(src.index), src.to_numpy(), space=space, devices=[proxy] * len(src)
    )


def proxy_prior(base: Any, table: pd.DataFrame, proxy: str, *, exclude: Sequence[str] = ()) -> Any:
    """The ``embed`` prior of proxy adaptation, learned from the table without ``exclude``.

    One source (the proxy's predictor), every other device of the table with enough measured
    architectures as a hypothesis, the proxy itself the anchor (:data:`ANCHOR_MASS`). None
    (logged) when fewer than two devices qualify: there is no spread to learn from.
    """
    from latbench.predictors.adapt import learn_embed_prior
    from latbench.predictors.fewshot_embed import embed_features

    width = 2 + embed_features(base.space_, list(table.index[:1])).shape[1]
    counts = table.notna().sum()
    dropped = excluded_columns(table, exclude)
    names = [
        d for d in table.columns if d not in dropped and int(counts[d]) >= MIN_ROWS_PER_COEF * width
    ]
    if proxy not in names or len(names) < 2:
        log.warning(
            "proxy adaptation: %d device(s) of the table to learn the prior from (expected 2 "
            "or more with >= %d measured architectures each); calibrating the proxy alone",
            len(names),
            MIN_ROWS_PER_COEF * width,
        )
        return None
    long = table[names].stack().dropna().rename("latency_ms").reset_index()
    long.columns = ["arch", "device", "latency_ms"]
    return learn_embed_prior(
        base,
        long["arch"].tolist(),
        long["latency_ms"].to_numpy(),
        long["device"].astype(str).tolist(),
        sources=[proxy],
        hypotheses=names,
        anchor=proxy,
        anchor_mass=ANCHOR_MASS,
    )


def adapt_proxy(
    table: pd.DataFrame,
    space: str,
    proxy: str,
    archs: Sequence[str],
    latency_ms: Any,
    *,
    exclude: Sequence[str] = (),
    method: str = "embed+proxy",
    device: str = "target",
    base: Any = None,
    prior: Any = None,
    screen_outliers: bool = True,
) -> Any:
    """Adapt the proxy's predictor to a target from its K samples; an ``AdaptedPredictor``.

    ``embed+proxy`` (default): half the proxy's calibration, half an ``embed`` fit whose prior
    says how the other devices of ``table`` (without ``exclude``, e.g. the target itself)
    depart from the proxy along the op counts; it re-ranks where the samples show such a
    departure. ``proxy``: the calibration alone (the ranking stays the proxy's); ``meta``,
    ``bayes``: the few-shot methods of :func:`latbench.predictors.adapt.adapt` on the proxy's
    predictor and the samples alone; ``auto``: ``adapt``'s default given the same prior (half
    ``embed``, half its choice among the others). Without a prior (a table of too few
    devices) ``embed+proxy`` falls back to ``proxy``, logged. ``base``/``prior``: the proxy's
    predictor and prior when already made (:func:`fit_proxy_predictor`, :func:`proxy_prior`).
    ``screen_outliers``: ``embed+proxy`` and ``auto`` leave out wild samples from 10 on, as
    ``adapt`` does (:func:`latbench.predictors.fewshot.screen_samples`); False fits them all.
    """
    from latbench.predictors.adapt import adapt

    if method not in PROXY_METHODS:
        raise PredictorError(
            f"proxy adaptation method {method!r}; expected one of {', '.join(PROXY_METHODS)}"
        )
    if base is None:
        base = fit_proxy_predictor(table, space, proxy)
    if method in PRIOR_METHODS and prior is None:
        prior = proxy_prior(base, table, proxy, exclude=exclude)
    if method == "embed+proxy" and prior is None:
        method = "proxy"
    return adapt(
        base,
        archs,
        latency_ms,
        method=method,
        device=device,
        embed_prior=prior if method in PRIOR_METHODS else None,
        screen_outliers=screen_outliers,
        one_source_ok=True,
    )


def _n_hypotheses(prior: Any, method: str, fitted: str) -> int:
    """How many table devices the adaptation learned from: 0 without the prior or a fallback."""
    used = prior is not None and method in PRIOR_METHODS and fitted != "proxy"
    return len(prior.hypothesis_names) if used else 0


def draw_target_samples(
    table: pd.DataFrame, target: str, k: int, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """K architectures of the target's column and their ms, drawn with ``seed``.

    The draw of ``latbench monotonicity --target`` (proxy choice) and of
    :func:`proxy_adaptation` (which scores on the rest of the column).
    """
    if target not in table.columns:
        raise PredictorError(
            f"device {target!r} is not in the table; expected one of {list(table.columns)}"
        )
    if expected_number(k, integer=True, low=1) is not None:
        raise PredictorError(f"k = {k!r}; expected an integer >= 1 (samples to draw)")
    if expected_number(seed, integer=True, low=0) is not None:
        raise PredictorError(f"seed = {seed!r}; expected a non-negative integer")
    k = int(k)
    col = table[target].dropna()
    if k > len(col):
        raise PredictorError(
            f"--k {k}: device {target!r} measured {len(col)} architectures; expected at most that"
        )
    pick = np.random.default_rng(int(seed)).choice(len(col), size=k, replace=False)
    return [col.index[i] for i in pick], col.to_numpy()[pick]


def proxy_adaptation(
    table: pd.DataFrame,
    space: str,
    proxy: str,
    target: str,
    *,
    k: int = 10,
    seed: int = 0,
    method: str = "embed+proxy",
    screen_outliers: bool = True,
) -> tuple[AdaptationReport, Any]:
    """Adapt the proxy's predictor with K target samples; score it on the target's other archs.

    The K samples are :func:`draw_target_samples` (the draw ``latbench monotonicity --target``
    chooses the proxy on); the target's column never enters the prior
    (:func:`adapt_proxy` with ``exclude=[target]``). "Before" is the proxy predictor's own
    ranking, "after" the adapted one's, both on every target architecture not among the K.
    Returns the report and the adapted predictor.
    """
    for d in (proxy, target):
        if d not in table.columns:
            raise PredictorError(
                f"device {d!r} is not in the table; expected one of {list(table.columns)}"
            )
    if expected_number(k, integer=True, low=1) is not None:
        raise PredictorError(f"k = {k!r}; expected an integer >= 1 (samples to draw)")
    tgt = table[target].dropna()
    if len(tgt) < k + 10:
        raise PredictorError(
            f"k = {k}: target {target!r} has {len(tgt)} measured architectures; expected at "
            f"least k + 10 = {k + 10} (the K samples, and 10 or more others to score the "
            "adaptation on" + (f": k <= {len(tgt) - 10})" if len(tgt) > 10 else ")")
        )
    base = fit_proxy_predictor(table, space, proxy)
    prior = proxy_prior(base, table, proxy, exclude=[target]) if method in PRIOR_METHODS else None
    ka, ky = draw_target_samples(table, target, k, seed)
    rest = tgt.drop(index=ka)
    ea, ey = list(rest.index), rest.to_numpy()
    before = base.predict(ea, device=proxy)
    adapted = adapt_proxy(
        table,
        space,
        proxy,
        ka,
        ky,
        exclude=[target],
        method=method,
        device=target,
        base=base,
        prior=prior,
        screen_outliers=screen_outliers,
    )
    after = adapted.predict(ea)
    report = AdaptationReport.scored(
        proxy, target, k, ey, before, after, adapted.method_, "held-out",
        _n_hypotheses(prior, method, adapted.method_),
    )  # fmt: skip
    return report, adapted


def proxy_adaptation_cv(
    table: pd.DataFrame,
    space: str,
    proxy: str,
    archs: Sequence[str],
    latency_ms: Any,
    *,
    method: str = "embed+proxy",
    device: str = "target",
    screen_outliers: bool = True,
) -> tuple[AdaptationReport, Any]:
    """Proxy adaptation for a new device, scored by leave-one-out on its K samples.

    Returns the report and the predictor adapted on all K samples (to save or use). Both
    figures are leave-one-out, each sample predicted by a fit to the other K - 1: "before"
    with the proxy's calibration alone (``proxy``), "after" with ``method``; the proxy and the
    prior stay fixed (neither reads the target). With K = 10 one swapped pair moves Spearman
    by about 0.01 and Kendall by 0.04: the figures say whether the adaptation helps, not by
    how much to the third decimal.
    """
    from latbench.predictors.adapt import check_samples

    uniq, lat = check_samples(space, archs, latency_ms)
    if len(uniq) < 4:
        raise PredictorError(
            f"got {len(uniq)} distinct samples; leave-one-out needs at least 4 (3 to fit)"
        )
    base = fit_proxy_predictor(table, space, proxy)
    prior = proxy_prior(base, table, proxy) if method in PRIOR_METHODS else None
    opts: dict[str, Any] = {"device": device, "base": base, "prior": prior}
    opts["screen_outliers"] = screen_outliers
    full = adapt_proxy(table, space, proxy, uniq, lat, method=method, **opts)
    held = {m: np.empty(len(uniq)) for m in dict.fromkeys(("proxy", method))}
    # the full fit above said what it left out; the K folds would say it K times again
    quiet = [
        logging.getLogger(n) for n in ("latbench.predictors.adapt", "latbench.predictors.fewshot")
    ]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        for i in range(len(uniq)):
            keep = [j for j in range(len(uniq)) if j != i]
            for m, out in held.items():
                fit_i = adapt_proxy(
                    table, space, proxy, [uniq[j] for j in keep], lat[keep], method=m, **opts
                )
                out[i] = fit_i.predict([uniq[i]])[0]
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    before, after = held["proxy"], held[method]
    report = AdaptationReport.scored(
        proxy, device, len(uniq), lat, before, after, full.method_, "leave-one-out",
        _n_hypotheses(prior, method, full.method_),
    )  # fmt: skip
    return report, full
