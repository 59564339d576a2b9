"""Few-shot adaptation algorithms on plain arrays (no predictor objects, no I/O).

Every method models the target device's log-latency as a linear function of the *source*
devices' predicted log-latencies, optionally plus a fine-tuned residual on architecture
features::

    log t(arch) = a + sum_j w_j * log p_j(arch) + beta . f(arch)

``P`` (K x D) holds the base predictor's log-latency of the K measured architectures on the D
source devices, ``t`` (K,) the measured log-latency on the target, ``F`` (K x F) standardised
architecture features. ``pop`` (N x D) is the base's log-latency of a random population of the
space: it gives each source's spread, so that weights are comparable across devices.

Methods
-------
``proxy``
    "One Proxy Device Is Enough" (Lu et al., 2022): the source whose latencies rank the K samples
    best (Spearman, ties broken by Pearson of the logs), mapped onto the target by a monotone
    (increasing, linear in log-log) fit. The ranking is the proxy's.
``soft``
    Bayesian model averaging over proxies: each source is calibrated to the target by least
    squares in log-log, and the calibrated predictions are averaged with weights proportional to
    each fit's likelihood on the K samples (``RSS_j ** (-K / 2)``). Where one proxy is clearly
    best this is the proxy; where several fit equally well it hedges between them, which is what
    makes it robust to the measurement drift of real tables.
``combo``
    A ridge combination of all sources, shrunk toward the ``soft`` solution; the shrinkage is
    chosen by leave-one-out error on the K samples.
``meta``
    ``combo`` plus a fine-tuned residual: a ridge regression of what the combination misses on
    the architecture features, again with its strength chosen by leave-one-out (infinite
    strength, i.e. no residual, is one of the choices). This is the descriptor-conditioned
    model: the device is described by its weights over the known devices and fine-tuned on the
    K samples.
``bayes``
    Bayesian model averaging over proxies, each with an optional residual on the target's own
    per-operation costs, weighted by their evidence on the K samples
    (:mod:`latbench.predictors.fewshot_bayes`). Needs cost features, which exist for
    NAS-Bench-201; elsewhere it is a model average over calibrated proxies.
``embed``
    A low-rank architecture x device model whose prior over the target's coefficients is
    learned from the source devices' measurements (:mod:`latbench.predictors.fewshot_embed`);
    needs that prior (``adapt(..., embed_prior=...)``), learned with the base.
``embed+proxy``
    ``embed`` and ``proxy`` averaged half and half in log space (:data:`PROXY_HEDGE`): the
    embedding's departure from the best proxy, halved. Proxy adaptation uses it
    (:func:`latbench.predictors.monotonicity.adapt_proxy`), with the proxy as the one source and
    the other devices of a table as the prior's hypotheses: on the reference tables it raises
    the proxy's mean rank correlation at every K (NB201, K = 10: 0.858 -> 0.899) and lowers
    it on at most 7 of 36 devices, by at most 0.007 (BENCHMARKS.md, "Proxy adaptation").
``auto``
    With an ``embed`` prior: the average (in log space) of ``embed`` and what ``auto`` is
    without it. Without one, where the space has cost features (NAS-Bench-201): the average of
    ``bayes`` and ``soft`` (:func:`hedge`). Elsewhere, one of ``soft``/``combo``/``meta`` chosen by
    leave-one-out cross-validation on the K samples with a rank loss
    (Kendall tau of the held-out predictions) among ``soft``, ``combo`` and ``meta``
    (:data:`AUTO_METHODS`); ties (within :data:`CV_TIE`) go to ``soft``, then ``combo``, then
    ``meta``. Below
    :data:`MIN_CV_SAMPLES` samples cross-validation says nothing and ``soft`` is used.
    From :data:`SCREEN_MIN_SAMPLES` samples on, ``auto`` first leaves out the samples that look
    like measurement outliers (:func:`screen_samples`), which the least-squares parts of every
    method above would follow; from :data:`SCREEN_GROSS_MIN_SAMPLES` on, the gross ones only.

All of it is closed-form linear algebra on K x D matrices: a fit takes milliseconds (``auto``
with K = 20, which cross-validates ``meta``, about a second on an idle core). The
cross-validation of the methods after ``soft`` stops once it has used :data:`CV_BUDGET_S`
seconds (the methods not finished are left out of the choice), so that one adaptation stays
well under 10 s on a loaded machine.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from latbench.errors import PredictorError
from latbench.predictors.fewshot_bayes import DegenerateSamples, fit_bayes_arrays
from latbench.predictors.fewshot_embed import EmbedPrior, fit_embed_arrays, split_theta

log = logging.getLogger(__name__)

METHODS = ("proxy", "soft", "combo", "meta", "bayes", "embed", "embed+proxy")
#: the methods that need an ``embed`` prior
EMBED_METHODS = ("embed", "embed+proxy")
#: ``embed+proxy`` is ``PROXY_HEDGE * embed + (1 - PROXY_HEDGE) * proxy`` in log space
PROXY_HEDGE = 0.5
#: what ``auto`` chooses between: ``bayes`` when cost features are given, else the others by
#: cross-validation. The single proxy is left out: ``soft`` contains it as the
#: one-source case, and its leave-one-out Kendall on K <= 10 samples is too coarse (one swapped
#: pair moves it by 0.04) to pick it reliably. Measured on the reference tables, adding it
#: (chosen when it beats the others by more than :data:`CV_TIE`) fixed 3 of 5 devices where
#: ``soft`` trailed the proxy by 0.001-0.008 but cost up to 0.04 on others (NB201 titanxp_256
#: 0.994 -> 0.958, FBNet titanx_64 0.978 -> 0.948, HELP split NB201 K = 5 0.956 -> 0.939)
AUTO_METHODS = ("soft", "combo", "meta", "bayes")
#: below this many samples, leave-one-out cannot tell the methods apart
MIN_CV_SAMPLES = 5
#: every method needs this many distinct samples (a slope and an intercept, plus one to rank)
MIN_SAMPLES = 3
#: relative ridge strengths tried by leave-one-out (multiplied by K)
COMBO_LAMBDAS = (0.3, 3.0, 30.0, 300.0)
RESIDUAL_LAMBDAS = (np.inf, 300.0, 30.0)
#: preference order when cross-validation scores tie (within :data:`CV_TIE`): ``soft`` first,
#: because it was the most reliable method on unseen devices of the reference tables, and the
#: single proxy last, because its ranking is only as good as one device's
PREFERENCE = {
    "soft": 0,
    "combo": 1,
    "meta": 2,
    "proxy": 3,
    "bayes": 4,
    "embed": 5,
    "embed+proxy": 6,
}
CV_TIE = 0.02
#: wall-clock budget of ``auto``'s cross-validation; past it the remaining methods are skipped
CV_BUDGET_S = 3.0
#: ``auto`` and ``embed+proxy`` leave out samples that look like measurement outliers
#: (:func:`screen_samples`) from this many samples on. Measured on the reference tables (30
#: draws, leave-one-device-out and HELP split, both spaces; docs/adaptation.md): at K = 15 and
#: 20 it removes most of the losses to the proxy and raises FBNet's mean by 0.006-0.008
#: (NB201 -0.0005 to +0.001); at K = 10 it costs up to 0.004, the robust scale of 10
#: residuals being too rough and a dropped sample too dear
SCREEN_MIN_SAMPLES = 15
#: a sample is an outlier when its residual from the robust proxy line is more than this many
#: robust standard deviations (1.4826 MAD) from the median residual
SCREEN_Z = 4.0
#: from this many samples up to :data:`SCREEN_MIN_SAMPLES`, only gross outliers are left out:
#: more than :data:`SCREEN_GROSS_FACTOR` times off the robust proxy line, a scale that needs no
#: estimate from the few residuals. Measured at K = 10 (30 draws, both spaces, both settings):
#: NB201 leave-one-out 0.8963 -> 0.8972 (help/pixel3, whose disconnected cells measure at
#: 0.003-0.07 ms, 0.834 -> 0.863), FBNet and the HELP split unchanged, nothing lower by more
#: than 0.0005; at K = 5 it cost help/essential_ph_1 0.005 (one sample of five), so it starts
#: at 10
SCREEN_GROSS_MIN_SAMPLES = 10
#: the ratio to the robust proxy line beyond which a sample is a gross outlier
SCREEN_GROSS_FACTOR = 3.0
#: at most this share of the samples is ever left out
SCREEN_MAX_FRACTION = 0.2
#: the methods that screen their samples (the defaults of ``adapt`` and of proxy adaptation)
SCREENED_METHODS = ("auto", "embed+proxy")


@dataclass(frozen=True)
class LinearFit:
    """``log t = intercept + P @ weights + F @ residual + G @ cost + E @ counts``.

    ``residual`` (None: no term) reads the standardised rich features ``F``; ``cost`` (None: no
    term) reads the centred cost features ``G`` of :mod:`latbench.predictors.fewshot_bayes`;
    ``counts`` (None: no term) the op counts ``E`` of :mod:`latbench.predictors.fewshot_embed`,
    centred on the prior's population.
    """

    method: str
    weights: np.ndarray
    intercept: float
    residual: np.ndarray | None = None
    info: dict[str, float | str] | None = None
    cost: np.ndarray | None = None
    counts: np.ndarray | None = None
    #: indices of the samples left out of the fit as measurement outliers (:func:`screen_samples`)
    dropped: tuple[int, ...] = ()

    def predict_log(
        self,
        p_log: np.ndarray,
        f: np.ndarray | None = None,
        g: np.ndarray | None = None,
        e: np.ndarray | None = None,
    ) -> np.ndarray:
        out: np.ndarray = self.intercept + p_log @ self.weights
        if self.residual is not None:
            if f is None:
                raise PredictorError(f"{self.method}: features are needed for the residual")
            out = out + f @ self.residual
        if self.cost is not None:
            if g is None:
                raise PredictorError(f"{self.method}: cost features are needed for the op costs")
            out = out + g @ self.cost
        if self.counts is not None:
            if e is None:
                raise PredictorError(f"{self.method}: op counts are needed for the embedding")
            out = out + e @ self.counts
        return out


def _calibrate(x: np.ndarray, t: np.ndarray) -> tuple[float, float, float]:
    """Increasing least-squares line ``t ~ a + s x``: ``(s, a, rss)``; s > 0 always."""
    xm, tm = float(x.mean()), float(t.mean())
    xc = x - xm
    sxx = float(xc @ xc)
    s = float(xc @ (t - tm)) / sxx if sxx > 0 else 0.0
    if not np.isfinite(s) or s <= 0:
        # an anti-correlated or flat source cannot be a monotone proxy: match the spreads
        s = float(np.std(t) / np.std(x)) if np.std(x) > 0 else 1.0
        s = s if s > 0 else 1.0
    a = tm - s * xm
    rss = float(np.sum((t - a - s * x) ** 2))
    return s, a, rss


def _pearson_cols(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``x`` with ``t`` (-1 for a constant column)."""
    xc = x - x.mean(axis=0)
    tc = t - t.mean()
    den = np.sqrt((xc**2).sum(axis=0) * float(tc @ tc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc.T @ tc) / den
    return np.where(den > 0, r, -1.0)


def proxy_scores(p_log: np.ndarray, t_log: np.ndarray) -> np.ndarray:
    """Spearman of each source on the samples (Pearson of the logs as a 1e-3 tie-breaker)."""
    ranks = stats.rankdata(p_log, axis=0)
    spear = _pearson_cols(ranks, stats.rankdata(t_log))
    return np.asarray(spear + 1e-3 * _pearson_cols(p_log, t_log), dtype=np.float64)


def fit_proxy(p_log: np.ndarray, t_log: np.ndarray) -> LinearFit:
    """Best single proxy + monotone calibration (see the module docstring)."""
    scores = proxy_scores(p_log, t_log)
    j = int(np.argmax(scores))
    s, a, _ = _calibrate(p_log[:, j], t_log)
    w = np.zeros(p_log.shape[1])
    w[j] = s
    return LinearFit("proxy", w, a, info={"proxy_index": float(j), "proxy_score": scores[j]})


def screen_samples(
    p_log: np.ndarray,
    t_log: np.ndarray,
    *,
    z: float = SCREEN_Z,
    min_samples: int = SCREEN_MIN_SAMPLES,
    max_fraction: float = SCREEN_MAX_FRACTION,
    gross: float = SCREEN_GROSS_FACTOR,
    gross_min_samples: int = SCREEN_GROSS_MIN_SAMPLES,
) -> np.ndarray:
    """Which of the K samples to keep: False for the ones that look like measurement outliers.

    The reference is robust twice over: the source that ranks the samples best (Spearman, as
    :func:`fit_proxy` chooses it) and a Theil-Sen line of the target's log-latency on it. A
    sample whose residual lies more than ``z`` robust standard deviations (1.4826 x the median
    absolute deviation) from the median residual is left out, the largest first, at most
    ``max_fraction`` of the samples. From ``gross_min_samples`` up to ``min_samples`` samples,
    where the robust scale of so few residuals is too rough, the rule is absolute: a sample
    more than ``gross`` times off the line (``|residual| > log(gross)``) is left out, at most
    ``max_fraction`` of them. Below ``gross_min_samples`` every sample is kept.

    Why: the least-squares parts of ``auto`` (the calibrations of ``soft``, the op-cost and
    op-count terms) follow one wild sample, which the proxy's ranking shrugs off. Real tables
    have them: the NAS-Bench-201 Pixel 3 column's log-latency noise has a standard deviation of
    0.28 against a robust one of 0.05 (its repeats), and there, with K = 20, ``auto`` fell to
    0.68-0.74 Spearman on 9 of 30 draws, where the proxy stayed at 0.81-0.89 (docs/adaptation.md).
    """
    k = int(t_log.shape[0])
    keep = np.ones(k, dtype=bool)
    if k < max(min(min_samples, gross_min_samples), MIN_SAMPLES + 1) or p_log.shape[1] == 0:
        return keep
    j = int(np.argmax(proxy_scores(p_log, t_log)))
    x = p_log[:, j]
    if np.ptp(x) <= 0:
        return keep
    line = stats.theilslopes(t_log, x)
    r = t_log - (line.intercept + line.slope * x)
    r = np.abs(r - np.median(r))
    if k >= min_samples:
        scale = 1.4826 * float(np.median(r))
        if not np.isfinite(scale) or scale <= 0:
            return keep
        bad = r / scale > z
    else:
        bad = r > np.log(gross)
    worst = np.argsort(-r, kind="stable")[: int(max_fraction * k)]
    keep[worst[bad[worst]]] = False
    return keep


def soft_weights(p_log: np.ndarray, t_log: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """BMA over calibrated proxies: ``(weights on P, intercept, posterior over sources)``."""
    k, d = p_log.shape
    slopes = np.zeros(d)
    inters = np.zeros(d)
    loglik = np.zeros(d)
    var_t = float(np.var(t_log)) + 1e-12
    for j in range(d):
        s, a, rss = _calibrate(p_log[:, j], t_log)
        slopes[j], inters[j] = s, a
        # residual variance floored at 0.1 % of the target variance: no source is "perfect"
        loglik[j] = -0.5 * k * np.log(max(rss / k, 1e-3 * var_t))
    post = np.exp(loglik - loglik.max())
    post /= post.sum()
    return post * slopes, float(post @ inters), post


def fit_soft(p_log: np.ndarray, t_log: np.ndarray) -> LinearFit:
    w, a, post = soft_weights(p_log, t_log)
    return LinearFit("soft", w, a, info={"max_posterior": float(post.max())})


def _ridge_toward(
    x: np.ndarray, t: np.ndarray, prior: np.ndarray, lam: float
) -> tuple[np.ndarray, float]:
    """``argmin |t - a - x w|^2 + lam |w - prior|^2`` with a free intercept ``a``."""
    xm = x.mean(axis=0)
    tm = float(t.mean())
    xc = x - xm
    if x.shape[1] > x.shape[0]:
        # dual form, K x K instead of F x F (features outnumber samples):
        # w = prior + xc' (xc xc' + lam I)^-1 (t - tm - xc prior)
        r = t - tm - xc @ prior
        alpha = np.linalg.solve(xc @ xc.T + lam * np.eye(x.shape[0]), r)
        w = prior + xc.T @ alpha
    else:
        gram = xc.T @ xc + lam * np.eye(x.shape[1])
        w = np.linalg.solve(gram, xc.T @ (t - tm) + lam * prior)
    return w, tm - float(xm @ w)


def _loo_ridge_error(x: np.ndarray, t: np.ndarray, prior: np.ndarray, lam: float) -> float:
    """Exact leave-one-out mean squared error of :func:`_ridge_toward`, in closed form.

    With ``u = t - x prior`` the fit is a linear smoother ``u_hat = H u``, ``H = A (A'A +
    L)^-1 A'`` for ``A = [1, x]`` and ``L = diag(0, lam, ..., lam)``; the held-out residual of
    row i is ``(u_i - u_hat_i) / (1 - H_ii)``: one solve per strength instead of K.
    """
    k, d = x.shape
    u = t - x @ prior
    a = np.hstack([np.ones((k, 1)), x])
    pen = np.full(d + 1, lam)
    pen[0] = 1e-10
    h = a @ np.linalg.solve(a.T @ a + np.diag(pen), a.T)
    lev = np.clip(1.0 - np.diag(h), 1e-9, None)
    e = (u - h @ u) / lev
    return float(np.mean(e**2))


def fit_combo(p_log: np.ndarray, t_log: np.ndarray, pop_log: np.ndarray) -> LinearFit:
    """Ridge combination of the standardised sources, shrunk toward the ``soft`` weights."""
    k = t_log.shape[0]
    sd = pop_log.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = p_log / sd  # standardised sources (the intercept absorbs the means)
    w_soft, _, _ = soft_weights(p_log, t_log)
    prior = w_soft * sd
    lam = min(COMBO_LAMBDAS, key=lambda c: _loo_ridge_error(z, t_log, prior, c * k))
    wz, a = _ridge_toward(z, t_log, prior, lam * k)
    if p_log.shape[1] == 1 and not wz[0] > 0:
        # one source: the "combination" is a calibration of it, which must stay monotone (a
        # weak ridge on samples that rank against the source would reverse its whole
        # ranking); the full shrinkage is the soft (= proxy) calibration
        w_cal, a_cal, _ = soft_weights(p_log, t_log)
        return LinearFit("combo", w_cal, a_cal, info={"lambda": float("inf")})
    return LinearFit("combo", wz / sd, a, info={"lambda": lam})


def fit_meta(
    p_log: np.ndarray, t_log: np.ndarray, pop_log: np.ndarray, feats: np.ndarray
) -> LinearFit:
    """``combo`` plus a ridge residual on the architecture features (fine-tuning)."""
    base = fit_combo(p_log, t_log, pop_log)
    k = t_log.shape[0]
    zero = np.zeros(feats.shape[1])

    resid = t_log - base.predict_log(p_log)
    # leave-one-out error of a ridge on the combination's residuals; infinite strength (an
    # intercept only) is "no residual", scored the same way so the comparison is fair
    errs = {
        lam: _loo_ridge_error(feats, resid, zero, (lam if np.isfinite(lam) else 1e12) * k)
        for lam in RESIDUAL_LAMBDAS
    }
    lam = min(errs, key=lambda c: errs[c])
    if not np.isfinite(lam):
        return LinearFit("meta", base.weights, base.intercept, None, info={"lambda_residual": 0.0})
    beta, b0 = _ridge_toward(feats, resid, zero, lam * k)
    return LinearFit(
        "meta", base.weights, base.intercept + b0, beta, info={"lambda_residual": float(lam)}
    )


def fit_bayes(
    p_log: np.ndarray, t_log: np.ndarray, pop_log: np.ndarray, cost: np.ndarray | None
) -> LinearFit:
    """Evidence-weighted proxies + op-cost residual (:mod:`latbench.predictors.fewshot_bayes`).

    The sources are standardised over the population ``pop_log``; ``cost`` is the K x F matrix
    of centred cost features (None where the space has none).
    """
    mu = pop_log.mean(axis=0)
    sd = pop_log.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    try:
        a, wz, beta, info = fit_bayes_arrays((p_log - mu) / sd, cost, t_log)
    except DegenerateSamples as exc:
        # degenerate samples (all equal, e.g. 3 phone latencies in whole ms; or every source
        # anti-correlated and no cost features): soft still gives the sources' ranking
        log.warning("%s; falling back to soft", exc)
        soft = fit_soft(p_log, t_log)
        return LinearFit("bayes", soft.weights, soft.intercept, None, info={"fallback": "soft"})
    w = wz / sd
    return LinearFit("bayes", w, a - float(mu @ w), None, info=dict(info), cost=beta)


def fit_embed(
    p_log: np.ndarray, t_log: np.ndarray, prior: EmbedPrior, counts: np.ndarray
) -> LinearFit:
    """Source-informed low-rank model (:mod:`latbench.predictors.fewshot_embed`).

    ``counts``: raw op counts of the K samples (``fewshot_embed.embed_features``).
    """
    theta, info = fit_embed_arrays(prior, p_log, counts, t_log)
    w, a, beta = split_theta(prior, theta)
    return LinearFit("embed", w, a, None, info=dict(info), counts=beta)


def _mix(x: np.ndarray | None, y: np.ndarray | None, weight: float) -> np.ndarray | None:
    if x is None and y is None:
        return None
    return np.asarray(
        weight * (x if x is not None else 0.0) + (1 - weight) * (y if y is not None else 0.0),
        dtype=np.float64,
    )


def hedge(a: LinearFit, b: LinearFit, weight: float = 0.5) -> LinearFit:
    """``weight * a + (1 - weight) * b`` in log space (both linear, so the mix is too).

    ``auto`` mixes ``bayes`` with ``soft`` half and half: with K <= 20 samples the evidence of
    :mod:`~latbench.predictors.fewshot_bayes` over-trusts the op-cost residual on some devices
    (desktop i7 of the reference tables: 0.703 vs 0.731 for ``soft``), and halving the
    residual's weight keeps most of its gain on the others (see ``docs/adaptation.md``).
    Every term is linear, so residuals, op costs and op counts mix term by term.
    """
    if not 0.0 <= weight <= 1.0:
        raise PredictorError(f"hedge: weight = {weight}; expected a value in [0, 1]")
    return LinearFit(
        f"{a.method}+{b.method}",
        weight * a.weights + (1 - weight) * b.weights,
        weight * a.intercept + (1 - weight) * b.intercept,
        _mix(a.residual, b.residual, weight),
        info={**(a.info or {}), "hedge_weight": weight},
        cost=_mix(a.cost, b.cost, weight),
        counts=_mix(a.counts, b.counts, weight),
    )


Fitter = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], LinearFit]


def _fitter(method: str, cost: np.ndarray | None = None) -> Fitter:
    if method == "proxy":
        return lambda p, t, pop, f: fit_proxy(p, t)
    if method == "soft":
        return lambda p, t, pop, f: fit_soft(p, t)
    if method == "combo":
        return lambda p, t, pop, f: fit_combo(p, t, pop)
    if method == "meta":
        return fit_meta
    if method == "bayes":
        return lambda p, t, pop, f: fit_bayes(p, t, pop, cost)
    if method in EMBED_METHODS:
        raise PredictorError(f"{method} needs a prior learned on the sources; pass embed=...")
    raise PredictorError(f"unknown adaptation method {method!r}; expected auto or one of {METHODS}")


def loo_predictions(
    method: str,
    p_log: np.ndarray,
    t_log: np.ndarray,
    pop_log: np.ndarray,
    feats: np.ndarray,
    *,
    deadline: float | None = None,
) -> np.ndarray | None:
    """Leave-one-out predictions of ``method`` on the K samples (log scale).

    ``deadline`` (a ``time.perf_counter()`` value): None is returned if it passes before the
    last fold, so that a slow method on a loaded machine cannot hold ``auto`` up.
    """
    fit = _fitter(method)
    k = t_log.shape[0]
    out = np.empty(k)
    idx = np.arange(k)
    for i in idx:
        if deadline is not None and time.perf_counter() > deadline:
            return None
        m = idx != i
        f = fit(p_log[m], t_log[m], pop_log, feats[m])
        out[i] = f.predict_log(p_log[i : i + 1], feats[i : i + 1])[0]
    return out


def cv_scores(
    p_log: np.ndarray,
    t_log: np.ndarray,
    pop_log: np.ndarray,
    feats: np.ndarray,
    methods: tuple[str, ...] = METHODS,
    *,
    deadline: float | None = None,
) -> dict[str, float]:
    """Kendall tau of each method's leave-one-out predictions on the samples.

    A method whose leave-one-out does not finish before ``deadline`` is left out.
    """
    out = {}
    for m in methods:
        pred = loo_predictions(m, p_log, t_log, pop_log, feats, deadline=deadline)
        if pred is None:
            log.warning("auto: cross-validation of %s ran past its time budget; skipped", m)
            continue
        tau = stats.kendalltau(pred, t_log).statistic if np.std(pred) > 0 else 0.0
        out[m] = float(tau) if np.isfinite(tau) else 0.0
    return out


def fit_method(
    method: str,
    p_log: np.ndarray,
    t_log: np.ndarray,
    pop_log: np.ndarray,
    feats: np.ndarray,
    *,
    methods: tuple[str, ...] = AUTO_METHODS,
    cost: np.ndarray | None = None,
    embed: tuple[EmbedPrior, np.ndarray] | None = None,
    screen: bool = True,
) -> tuple[LinearFit, dict[str, float]]:
    """Fit ``method`` (or choose one with ``"auto"``); returns the fit and the CV scores.

    ``cost``: centred cost features of the K samples (:mod:`latbench.predictors.fewshot_bayes`),
    None where the space has none; with them ``auto`` is ``bayes``. ``embed``: the prior of
    :mod:`latbench.predictors.fewshot_embed` and the raw op counts of the K samples; with it
    ``auto`` is the half-half average of ``embed`` and ``auto`` without it. ``screen``: with
    ``"auto"`` and ``"embed+proxy"`` (the two defaults: of ``adapt`` and of proxy adaptation),
    leave out the samples :func:`screen_samples` flags as measurement outliers (their indices
    are in the fit's ``dropped``); the other methods always use every sample.
    """
    if method in SCREENED_METHODS and screen:
        keep = screen_samples(p_log, t_log)
        if not keep.all():
            dropped = tuple(int(i) for i in np.flatnonzero(~keep))
            log.info(
                "%s: left out %d sample(s) as measurement outliers: %s",
                method,
                len(dropped),
                dropped,
            )
            fit, scores = fit_method(
                method,
                p_log[keep],
                t_log[keep],
                pop_log,
                feats[keep],
                methods=methods,
                cost=None if cost is None else cost[keep],
                embed=None if embed is None else (embed[0], embed[1][keep]),
                screen=False,
            )
            return dataclasses.replace(fit, dropped=dropped), scores
    if method in EMBED_METHODS or (method == "auto" and embed is not None):
        if embed is None:
            raise PredictorError(f"{method} needs a prior learned on the sources; pass embed=...")
        fit_e = fit_embed(p_log, t_log, embed[0], embed[1])
        if method == "embed":
            return fit_e, {}
        if method == "embed+proxy":
            return hedge(fit_e, fit_proxy(p_log, t_log), PROXY_HEDGE), {}
        rest, scores = fit_method(
            "auto",
            p_log,
            t_log,
            pop_log,
            feats,
            methods=methods,
            cost=cost,
            embed=None,
            screen=False,
        )
        return hedge(fit_e, rest), scores
    if method != "auto":
        return _fitter(method, cost)(p_log, t_log, pop_log, feats), {}
    if cost is not None and "bayes" in methods:
        log.info("auto: cost features available; using the average of bayes and soft")
        return hedge(fit_bayes(p_log, t_log, pop_log, cost), fit_soft(p_log, t_log)), {}
    methods = tuple(m for m in methods if m != "bayes") or ("soft",)
    if t_log.shape[0] < MIN_CV_SAMPLES:
        chosen = "soft" if "soft" in methods else methods[0]
        log.info("auto: %d samples, too few to cross-validate; using %s", t_log.shape[0], chosen)
        return _fitter(chosen)(p_log, t_log, pop_log, feats), {}
    # cheapest and preferred first; it is always scored, the others only within the budget
    order = sorted(methods, key=lambda m: PREFERENCE.get(m, 9))
    scores = cv_scores(p_log, t_log, pop_log, feats, (order[0],))
    deadline = time.perf_counter() + CV_BUDGET_S
    scores.update(cv_scores(p_log, t_log, pop_log, feats, tuple(order[1:]), deadline=deadline))
    best = max(scores.values())
    # within CV_TIE of the best counts as a tie: the preferred method wins
    chosen = min((m for m in scores if scores[m] >= best - CV_TIE), key=lambda m: PREFERENCE[m])
    log.info("auto: leave-one-out Kendall %s -> %s", scores, chosen)
    return _fitter(chosen)(p_log, t_log, pop_log, feats), scores
