"""``embed``: a low-rank architecture x device model whose device prior is learned on the sources.

Why: ``soft`` and ``bayes`` treat every source device as an independent hypothesis and put an
isotropic prior on the op-cost residual. The source devices say more than that: how much
latencies vary across devices along each direction of the architecture space, and how each
device's measured latencies depart from the base along the op counts. This method learns that
once, from the source devices' *measured* latencies, and uses it as the prior of the K-sample
fit on the target.

Model (log latency, in log-ms units shared by all devices)::

    log t[a, d] = theta_d . x(a),    x(a) = [1, z(a), c(a)]

``z(a)`` is the architecture's embedding: the base's log-latency on the D sources, centred on a
random population of the space and rotated onto its principal axes (scaled to unit variance),
``r = D`` dimensions (truncating it to 8 lost 0.003-0.005 mean Spearman on the NB201
leave-one-out table); ``c(a)`` are raw
operation counts (:func:`embed_features`; NAS-Bench-201: the seven live-op features of
:mod:`latbench.predictors.fewshot_bayes` plus the four op counts *before* pruning, since some
tables compute dead edges and others do not; FBNet: the count of each of the nine block types).

Learned with the base (:func:`fit_embed_prior`, no target data): ``theta_d`` of every source by
a ridge regression of its measured log-latencies on ``x`` (so the ``c`` part is what the
base misses on that device), and their covariance ``Sigma`` over the sources.

The devices whose ``theta_d`` form the prior (the *hypotheses*) are the sources by default.
Proxy adaptation (:func:`latbench.predictors.monotonicity.adapt_proxy`) uses one source, the
proxy, and every other device of a table as hypotheses: ``theta_d`` then says how device d
departs from the proxy's predictor along the op counts, and ``anchor`` puts a given share of
the prior mass on the proxy itself, so that the fit leaves the proxy's ranking alone unless the
samples show a departure that other devices have.

Adaptation (:func:`fit_embed_arrays`, closed form, milliseconds): a Bayesian linear regression
of the K log-latencies on ``x`` with prior ``theta ~ N(theta_j, tau Sigma)`` (intercept flat),
one model per source j, strength ``tau`` and noise variance on small grids; the prediction is
the evidence-weighted average of the posterior means. ``tau`` small: the target is source j
(``soft``); ``tau`` large: anything the sources' spread allows, including op costs no single
source has. The average is linear in ``x``, so it is stored as weights over the sources, an
intercept and a coefficient per op count.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

from latbench.errors import PredictorError
from latbench.predictors import encodings as enc
from latbench.predictors.fewshot_bayes import _nb201_cost

#: prior strengths ``tau`` (multiples of the sources' covariance)
TAU_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: noise variances, in squared log-ms
NOISE_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
#: prior variance of the intercept (log-ms squared): effectively flat
INTERCEPT_VAR = 25.0
#: ridge of the per-source regressions (relative to the number of rows), and the jitter added
#: to the sources' covariance so that it is invertible
SOURCE_RIDGE = 1e-3
COV_JITTER = 1e-4


def embed_features(space: str, archs: Sequence[Any]) -> np.ndarray:
    """Raw op-count features ``c(a)`` of the embedding (see the module docstring), ``(N, F)``."""
    ops = enc.op_matrix(space, list(archs))
    if space == "nb201":
        raw = np.stack([(ops == c).sum(axis=1) for c in (1, 2, 3, 4)], axis=1)
        return np.hstack([_nb201_cost(ops), raw.astype(np.float64)])
    n_choices = len(enc.space(space).choices)
    return np.stack([(ops == c).sum(axis=1) for c in range(n_choices)], axis=1).astype(np.float64)


@dataclass(frozen=True)
class EmbedPrior:
    """What the sources teach about a new device, learned without it (:func:`fit_embed_prior`).

    ``embed(p_log, c)`` maps the base's source log-latencies ``p_log`` (N x D) and the op counts
    ``c`` (N x F) to the design ``x`` (N x (1 + D + F)); ``coef`` holds one ``theta_d`` per
    hypothesis device (rows; the sources unless ``hypotheses`` names others), ``cov`` their
    covariance (intercept row and column zero). ``log_mass``: the log prior mass of each
    hypothesis (empty: equal masses).
    """

    space: str
    sources: tuple[str, ...]
    pop_mean: np.ndarray  # (D,) population mean of the base's source log-latencies
    basis: np.ndarray  # (D, r): principal axes divided by their standard deviations
    count_mean: np.ndarray  # (F,) population mean of the op counts
    coef: np.ndarray  # (D, 1 + r + F)
    cov: np.ndarray  # (1 + r + F, 1 + r + F)
    fit_seconds: float
    hypotheses: tuple[str, ...] = ()  # the devices of the rows of coef; () = the sources
    log_mass: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (H,) or empty

    @property
    def hypothesis_names(self) -> tuple[str, ...]:
        """The devices whose ``theta_d`` are the rows of ``coef``."""
        return self.hypotheses or self.sources

    def embed(self, p_log: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if p_log.shape[1] != self.pop_mean.size:
            raise PredictorError(
                f"embed: got {p_log.shape[1]} source columns; the prior was learned on "
                f"{self.pop_mean.size} ({', '.join(self.sources)})"
            )
        z = (p_log - self.pop_mean) @ self.basis
        return np.hstack([np.ones((len(p_log), 1)), z, counts - self.count_mean])


def fit_embed_prior(
    space: str,
    sources: Sequence[str],
    pop_log: np.ndarray,
    pop_counts: np.ndarray,
    p_log: np.ndarray,
    counts: np.ndarray,
    log_ms: np.ndarray,
    *,
    hypotheses: Sequence[str] | None = None,
    anchor: str | None = None,
    anchor_mass: float = 0.5,
) -> EmbedPrior:
    """Learn the embedding and the device prior from the sources' measurements.

    ``pop_log`` (P x D) / ``pop_counts`` (P x F): the base's source log-latencies and the op
    counts of a random population (they fix the centring and the principal axes). ``p_log``
    (N x D), ``counts`` (N x F): the same for the N measured architectures; ``log_ms`` (N x H):
    the measured log-latencies of them on the H hypothesis devices (``hypotheses``; default the
    D sources), NaN where a device did not measure one. ``anchor``: a hypothesis that gets
    ``anchor_mass`` of the prior mass (the others share the rest equally); None: equal masses.
    """
    t0 = time.perf_counter()
    d = len(sources)
    names = tuple(sources if hypotheses is None else hypotheses)
    if pop_log.shape[1] != d or p_log.shape[1] != d:
        raise PredictorError(
            f"embed prior: {d} sources but arrays with {pop_log.shape[1]} and {p_log.shape[1]} "
            "columns; expected one column per source"
        )
    if log_ms.shape[1] != len(names):
        raise PredictorError(
            f"embed prior: {len(names)} hypothesis devices but {log_ms.shape[1]} measured "
            "columns; expected one column per device"
        )
    if len(names) < 2:
        raise PredictorError(
            f"embed prior: got {len(names)} device(s) to learn it from; expected at least 2"
        )
    if d < 1:
        raise PredictorError("embed prior: got no source device; expected at least 1")
    log_mass = np.zeros(0)
    if anchor is not None:
        if anchor not in names:
            raise PredictorError(
                f"embed prior: anchor {anchor!r} is not one of the devices {list(names)}"
            )
        if not 0.0 < anchor_mass < 1.0:
            raise PredictorError(f"embed prior: anchor_mass = {anchor_mass}; expected (0, 1)")
        log_mass = np.full(len(names), np.log((1.0 - anchor_mass) / (len(names) - 1)))
        log_mass[names.index(anchor)] = np.log(anchor_mass)
    mean = pop_log.mean(axis=0)
    _, s, vt = np.linalg.svd(pop_log - mean, full_matrices=False)
    keep = s > 1e-9 * max(float(s[0]), 1e-300)
    basis = vt[keep].T / (s[keep] / np.sqrt(len(pop_log)))
    prior = EmbedPrior(
        space, tuple(sources), mean, basis, pop_counts.mean(axis=0), np.zeros(0), np.zeros(0), 0.0
    )
    x = prior.embed(p_log, counts)
    coef = []
    for j, name in enumerate(names):
        m = np.isfinite(log_ms[:, j])
        if m.sum() < x.shape[1]:
            raise PredictorError(
                f"embed prior: device {name!r} has {int(m.sum())} measured architectures; "
                f"expected at least {x.shape[1]}"
            )
        xm = x[m]
        pen = SOURCE_RIDGE * m.sum() * np.eye(x.shape[1])
        pen[0, 0] = 0.0
        coef.append(np.linalg.solve(xm.T @ xm + pen, xm.T @ log_ms[m, j]))
    w = np.array(coef)
    cov = np.cov(w.T) + COV_JITTER * np.eye(w.shape[1])
    cov[0, :] = 0.0
    cov[:, 0] = 0.0
    return EmbedPrior(
        space,
        tuple(sources),
        mean,
        basis,
        prior.count_mean,
        w,
        cov,
        time.perf_counter() - t0,
        () if hypotheses is None else names,
        log_mass,
    )


#: version of the stored prior's layout (:func:`prior_state`); readers accept this one and older
#: (1: no hypotheses of their own, equal masses)
PRIOR_STATE_VERSION = 2
_PRIOR_ARRAYS = ("pop_mean", "basis", "count_mean", "coef", "cov")


def prior_state(prior: EmbedPrior) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``prior`` as JSON metadata and plain arrays (how a base ``.lbp`` file stores it).

    A prior of the sources with equal masses (what a base stores) is written in layout 1, which
    every earlier latbench reads; one with hypotheses or masses of its own in layout 2.
    """
    plain = not prior.hypotheses and not prior.log_mass.size
    meta: dict[str, Any] = {
        "version": 1 if plain else PRIOR_STATE_VERSION,
        "space": prior.space,
        "sources": list(prior.sources),
        "fit_seconds": float(prior.fit_seconds),
    }
    arrays = {k: np.asarray(getattr(prior, k), dtype=np.float64) for k in _PRIOR_ARRAYS}
    if not plain:
        meta["hypotheses"] = list(prior.hypotheses)
        arrays["log_mass"] = np.asarray(prior.log_mass, dtype=np.float64)
    return meta, arrays


def prior_from_state(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> EmbedPrior:
    """The inverse of :func:`prior_state`; a layout it does not know raises PredictorError."""
    version = meta.get("version")
    if not isinstance(version, int) or not 1 <= version <= PRIOR_STATE_VERSION:
        raise PredictorError(
            f"embed prior layout {version!r}; this latbench reads 1..{PRIOR_STATE_VERSION}"
        )
    missing = [k for k in _PRIOR_ARRAYS if k not in arrays]
    if missing:
        raise PredictorError(f"embed prior: arrays {missing} missing")
    sources = tuple(str(s) for s in meta.get("sources", []))
    hypotheses = tuple(str(s) for s in meta.get("hypotheses", []))
    a = {k: np.asarray(arrays[k], dtype=np.float64) for k in _PRIOR_ARRAYS}
    log_mass = np.asarray(arrays.get("log_mass", np.zeros(0)), dtype=np.float64)
    d = len(sources)
    h = len(hypotheses or sources)
    width = 1 + a["basis"].shape[1] + a["count_mean"].size if a["basis"].ndim == 2 else -1
    if (
        a["pop_mean"].shape != (d,)
        or a["basis"].shape[:1] != (d,)
        or a["coef"].shape != (h, width)
        or a["cov"].shape != (width, width)
        or log_mass.shape not in ((0,), (h,))
    ):
        raise PredictorError(
            f"embed prior: array shapes {[a[k].shape for k in _PRIOR_ARRAYS]} and log_mass "
            f"{log_mass.shape} do not fit {d} sources and {h} hypothesis devices"
        )
    return EmbedPrior(
        str(meta["space"]),
        sources,
        a["pop_mean"],
        a["basis"],
        a["count_mean"],
        a["coef"],
        a["cov"],
        float(meta.get("fit_seconds", 0.0)),
        hypotheses,
        log_mass,
    )


def _blr(
    x: np.ndarray, t: np.ndarray, m0: np.ndarray, s0: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log evidences and posterior means of ``t = x th + e``, ``th ~ N(m0_h, s0)``, e ~ N(0, noise).

    ``m0`` holds one prior mean per row (H x P): the hypotheses share ``s0`` and the noise, so
    one Cholesky factor serves them all. Dual (K x K) form: K <= a few dozen, so this is cheaper
    than the (1 + D + F)^2 primal. Returns the H log evidences and the H x P posterior means.
    """
    k = len(t)
    xs = x @ s0
    c = xs @ x.T + noise * np.eye(k)
    chol = np.linalg.cholesky(c)
    r = t[:, None] - x @ m0.T  # K x H
    a = solve_triangular(chol, r, lower=True)
    ll = (
        -0.5 * (a * a).sum(axis=0)
        - float(np.log(np.diag(chol)).sum())
        - 0.5 * k * np.log(2 * np.pi)
    )
    w = solve_triangular(chol.T, a, lower=False)  # c^-1 r
    return ll, m0 + (xs.T @ w).T


def fit_embed_arrays(
    prior: EmbedPrior,
    p_log: np.ndarray,
    counts: np.ndarray,
    t_log: np.ndarray,
    *,
    tau_grid: Sequence[float] = TAU_GRID,
    noise_grid: Sequence[float] = NOISE_GRID,
) -> tuple[np.ndarray, dict[str, float]]:
    """Evidence-weighted posterior mean of ``theta`` for the target (module docstring).

    ``p_log`` (K x D), ``counts`` (K x F), ``t_log`` (K,). Returns ``(theta, info)``; the
    prediction of an architecture is ``prior.embed(p, c) @ theta``.
    """
    k = t_log.shape[0]
    if k < 3:
        raise PredictorError(f"embed: got {k} samples; expected at least 3")
    if not np.all(np.isfinite(t_log)):
        raise PredictorError("embed: non-finite log-latency in the samples; expected finite")
    x = prior.embed(p_log, counts)
    mass = prior.log_mass if prior.log_mass.size else np.zeros(len(prior.coef))
    h, width = prior.coef.shape
    # (tau, hypothesis, noise) grid, in that order
    ll_arr = np.empty((len(tau_grid), h, len(noise_grid)))
    means = np.empty((len(tau_grid), h, len(noise_grid), width))
    for i, tau in enumerate(tau_grid):
        s0 = prior.cov * tau
        s0[0, 0] = INTERCEPT_VAR
        for j, noise in enumerate(noise_grid):
            ll, m = _blr(x, t_log, prior.coef, s0, noise)
            ll_arr[i, :, j] = ll + mass
            means[i, :, j] = m
    ll_flat = ll_arr.reshape(-1)
    post = np.exp(ll_flat - ll_flat.max())
    post /= post.sum()
    theta = post @ means.reshape(-1, width)
    per_source = post.reshape(len(tau_grid), len(prior.coef), len(noise_grid)).sum(axis=(0, 2))
    per_tau = post.reshape(len(tau_grid), -1).sum(axis=1)
    info = {
        "max_posterior": float(post.max()),
        "top_source_mass": float(per_source.max()),
        "mean_tau": float(per_tau @ np.asarray(tau_grid)),
    }
    return theta, info


def split_theta(prior: EmbedPrior, theta: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """``theta`` as (weights on the source log-latencies, intercept, weights on centred counts)."""
    r = prior.basis.shape[1]
    w = prior.basis @ theta[1 : 1 + r]
    return w, float(theta[0] - prior.pop_mean @ w), theta[1 + r :]
