"""Few-shot adaptation: a predictor for a new device from a handful of measurements.

Nobody measures 15,625 architectures on every new phone. :func:`adapt` takes a *base* predictor
fitted on many devices (``latbench predictor fit --devices all``, or the ``meta`` model) and K
measurements (K = 3 to 20 is the intended range) of the new device, and returns a fitted
:class:`AdaptedPredictor` for that device::

    base = latbench.predictors.load("base.lbp")
    adapted = base.adapt(archs, latency_ms)          # method="auto"
    adapted.predict(other_archs)

A base fitted from data with :func:`fit_base` (what ``latbench predictor fit --devices all``
does) stores the ``embed`` prior learned from its devices' measurements in its ``.lbp`` file,
so ``auto`` uses it with no extra argument; a base without one (an older file, or one fitted
with ``Predictor.fit``) adapts as before, without it.

How: the base predicts the K architectures on each of its D source devices; the target's
log-latency is then modelled as a combination of those predictions (plus, for ``meta``, a
fine-tuned residual on architecture features; for ``bayes``, a residual on the target's own
per-operation costs; for ``embed``, a prior learned on the sources' measurements, see
:func:`learn_embed_prior`). The methods (``proxy``, ``soft``, ``combo``, ``meta``, ``bayes``,
``embed``) and ``auto`` (``bayes`` mixed with ``soft`` on NAS-Bench-201, elsewhere a choice by
leave-one-out cross-validation; averaged with ``embed`` when the base stores its prior or one is
given) are described
in :mod:`latbench.predictors.fewshot`. Adaptation is
closed-form: milliseconds for the fit, plus the base's predictions of the K samples and of a
small random population of the space (which standardises the sources).

Input checks and fallbacks
--------------------------
* fewer than 3 distinct architectures, non-finite or non-positive latencies, or all latencies
  equal: :class:`~latbench.errors.PredictorError` naming the problem;
* architectures of another space than the base's: :class:`~latbench.errors.ArchError`;
* architectures given as a set or latencies as a mapping (neither pairs a latency with an
  architecture), or a descriptor latency that is not finite and positive:
  :class:`~latbench.errors.PredictorError`;
* the same architecture measured twice: the measurements are merged (geometric mean) and a
  warning is logged;
* a base fitted on one device only: there is nothing to choose between, so ``proxy``, ``soft``
  and ``combo`` all reduce to a monotone calibration of that device (the ranking does not
  change, even where the samples rank against it); ``auto`` is ``bayes`` + ``soft`` on
  NAS-Bench-201 (the op-cost residual can re-rank) and elsewhere picks between the calibration
  and ``meta`` (calibration + a feature residual); a warning says so.

The adapted predictor embeds its base (with the base's stored ``embed`` prior), so an ``.lbp``
file of an adapted predictor is self-contained, and adapting it again adapts that base as
adapting the base's own file would.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latbench._validate import expected_number
from latbench.errors import ArchError, PredictorError
from latbench.predictors import encodings as enc
from latbench.predictors import fewshot
from latbench.predictors.base import (
    GRAPH_SPACE,
    PREDICTORS,
    Predictor,
    latency_array,
    register,
    sample_latencies,
)
from latbench.predictors.fewshot_bayes import cost_features
from latbench.predictors.fewshot_embed import (
    EmbedPrior,
    embed_features,
    fit_embed_prior,
    prior_from_state,
    prior_state,
)
from latbench.predictors.fewshot_meta import MetaPredictor, arch_features
from latbench.predictors.metrics import spearman

log = logging.getLogger(__name__)

#: random architectures of the space whose base predictions standardise the sources
DEFAULT_POPULATION = 512
#: where an adapted predictor's file keeps the arrays of its base's stored ``embed`` prior
BASE_PRIOR_PREFIX = "base_embed_prior."


def source_log_predictions(
    base: Predictor, archs: Sequence[Any], devices: Sequence[str]
) -> np.ndarray:
    """``(N, D)`` log-latency the base predicts for ``archs`` on each of ``devices``."""
    if isinstance(base, MetaPredictor):
        all_log = base.predict_log_all(archs)
        idx = [base.devices_.index(d) for d in devices]
        return all_log[:, idx]
    cols = [np.log(np.maximum(base.predict(archs, device=d), 1e-12)) for d in devices]
    return np.stack(cols, axis=1) if cols else np.zeros((len(archs), 0))


@dataclass(frozen=True)
class AdaptationContext:
    """What adaptation needs of a base, computed once: population predictions, feature scaling."""

    base: Predictor
    sources: list[str]
    pop_log: np.ndarray
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    #: centring and scale of the cost features (empty where the space has none)
    cost_mean: np.ndarray
    cost_scale: np.ndarray

    def source_log(self, archs: Sequence[Any]) -> np.ndarray:
        """``(N, D)`` log-latency the base predicts for ``archs`` on the sources."""
        return source_log_predictions(self.base, archs, self.sources)

    def features(self, archs: Sequence[Any]) -> np.ndarray:
        """Standardised architecture features (the fine-tuned residual reads them)."""
        f: np.ndarray = arch_features(self.base.space_, list(archs)) - self.feature_mean
        return f / self.feature_scale

    def costs(self, archs: Sequence[Any]) -> np.ndarray | None:
        """Centred, scaled cost features (``bayes``), or None where the space has none."""
        return _scaled_costs(self.base.space_, archs, self.cost_mean, self.cost_scale)


def _scaled_costs(
    space: str, archs: Sequence[Any], mean: np.ndarray, scale: np.ndarray
) -> np.ndarray | None:
    if mean.size == 0:
        return None
    g = cost_features(space, list(archs))
    if g is None or g.shape[1] != mean.size:
        raise PredictorError(
            f"cost features of space {space!r} have width {None if g is None else g.shape[1]}; "
            f"the adaptation was fitted with {mean.size}"
        )
    out: np.ndarray = (g - mean) / scale
    return out


def prepare_context(
    base: Predictor,
    sources: Sequence[str],
    *,
    population: int = DEFAULT_POPULATION,
    seed: int = 0,
) -> AdaptationContext:
    """Predict a random ``population`` of the base's space on ``sources`` (for standardising)."""
    if expected_number(population, integer=True, low=10) is not None:
        raise PredictorError(
            f"population = {population!r}; expected an integer of at least 10 architectures"
        )
    population = int(population)
    space_obj = enc.space(base.space_)
    pop_archs = space_obj.sample(min(population, space_obj.size()), seed=seed)
    pop_log = source_log_predictions(base, pop_archs, list(sources))
    pop_feat = arch_features(base.space_, pop_archs)
    sd = pop_feat.std(axis=0)
    pop_cost = cost_features(base.space_, pop_archs)
    if pop_cost is None:
        c_mean, c_scale = np.zeros(0), np.zeros(0)
    else:
        # raw counts (centred), one common scale: the prior of bayes is per count
        c_mean = pop_cost.mean(axis=0)
        c_scale = np.full(c_mean.size, np.sqrt(c_mean.size))
    return AdaptationContext(
        base,
        list(sources),
        pop_log,
        pop_feat.mean(axis=0),
        np.where(sd > 0, sd, 1.0),
        c_mean,
        c_scale,
    )


def learn_embed_prior(
    base: Predictor,
    archs: Sequence[Any],
    latency_ms: Any,
    devices: Sequence[str],
    *,
    sources: Sequence[str] | None = None,
    hypotheses: Sequence[str] | None = None,
    anchor: str | None = None,
    anchor_mass: float = 0.5,
    population: int = DEFAULT_POPULATION,
    seed: int = 0,
) -> EmbedPrior:
    """The ``embed`` prior (:mod:`latbench.predictors.fewshot_embed`) of ``base``'s sources.

    ``archs``, ``latency_ms``, ``devices``: the measurements, one row per (arch, device),
    usually the data the base was fitted on (never the target's). ``sources``: the base devices
    to learn it for (default all; must match ``adapt``'s ``sources``). ``hypotheses``: the
    devices of the data whose departures from the base form the prior (default: the sources);
    ``anchor`` (one of them) gets ``anchor_mass`` of the prior mass. Proxy adaptation
    (:func:`latbench.predictors.monotonicity.adapt_proxy`) passes the proxy as the one source
    and anchor and the table's other devices as hypotheses.
    """
    base = _unwrap(base)
    base._check_fitted()
    srcs = list(base.devices_ if sources is None else sources)
    names = list(srcs if hypotheses is None else hypotheses)
    unknown = [s for s in srcs if s not in base.devices_]
    if unknown:
        raise PredictorError(
            f"embed prior: source(s) {unknown} are not in the base predictor; expected some of "
            f"{', '.join(base.devices_)}"
        )
    lat = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    devs = [str(d) for d in devices]
    if not (len(archs) == lat.size == len(devs)):
        raise PredictorError(
            f"embed prior: {len(archs)} architectures, {lat.size} latencies and {len(devs)} "
            "devices; expected one of each per measurement"
        )
    if lat.size == 0 or not np.all(np.isfinite(lat)) or np.any(lat <= 0):
        raise PredictorError("embed prior: expected finite, positive latencies (ms)")
    missing = sorted(set(names) - set(devs))
    if missing:
        what = "source" if hypotheses is None else "device"
        raise PredictorError(f"embed prior: no measurements of {what}(s) {missing}")
    # canonicalise each distinct string once (tables repeat every arch once per device)
    raw = list(dict.fromkeys(archs))
    canon = dict(zip(raw, enc.canonical_archs(base.space_, raw), strict=True))
    uniq = list(dict.fromkeys(canon.values()))
    row = {a: i for i, a in enumerate(uniq)}
    col = {d: j for j, d in enumerate(names)}
    ri = np.fromiter((row[canon[a]] for a in archs), dtype=np.int64, count=len(devs))
    ci = np.fromiter((col.get(d, -1) for d in devs), dtype=np.int64, count=len(devs))
    keep = ci >= 0
    log_ms = np.full((len(uniq), len(names)), np.nan)
    log_ms[ri[keep], ci[keep]] = np.log(lat[keep])
    space_obj = enc.space(base.space_)
    pop_archs = space_obj.sample(min(population, space_obj.size()), seed=seed)
    return fit_embed_prior(
        base.space_,
        srcs,
        source_log_predictions(base, pop_archs, srcs),
        embed_features(base.space_, pop_archs),
        source_log_predictions(base, uniq, srcs),
        embed_features(base.space_, uniq),
        log_ms,
        hypotheses=hypotheses,
        anchor=anchor,
        anchor_mass=anchor_mass,
    )


def stored_prior(base: Predictor) -> EmbedPrior | None:
    """The ``embed`` prior stored with ``base`` (:func:`fit_base`), or None."""
    prior = getattr(_unwrap(base), "embed_prior_", None)
    return prior if isinstance(prior, EmbedPrior) else None


def attach_embed_prior(
    base: Predictor, archs: Sequence[Any], latency_ms: Any, devices: Sequence[str]
) -> EmbedPrior | None:
    """Learn the ``embed`` prior from the data ``base`` was fitted on and store it with the base.

    ``save(base, ...)`` then writes it into the ``.lbp`` file and ``adapt`` uses it by default.
    A base of one device, or data the prior cannot be learned from (a source with fewer
    measured architectures than the prior has coefficients), gets none: logged, not an error,
    since the base itself is fine. Returns the prior (or None); its ``fit_seconds`` is the
    whole time taken here, the base's predictions of the sources included.
    """
    base._check_fitted()
    if base.space_ == GRAPH_SPACE or len(base.devices_) < 2:
        return None
    t0 = time.perf_counter()
    try:
        prior = learn_embed_prior(base, archs, latency_ms, devices)
    except PredictorError as exc:
        log.warning("no embed prior stored with the base: %s", exc)
        return None
    prior = dataclasses.replace(prior, fit_seconds=time.perf_counter() - t0)
    # any multi-device model can carry one; it is not part of the model's own state
    vars(base)["embed_prior_"] = prior
    return prior


def fit_base(
    model: str | Predictor,
    archs: Sequence[Any],
    latency_ms: Any,
    *,
    space: str,
    devices: Sequence[str],
    embed_prior: bool = True,
    **params: Any,
) -> Predictor:
    """A multi-device base for few-shot adaptation, fitted on long rows (one per arch, device).

    ``model``: a predictor name (``meta``, ``gcn``, ``ensemble``, ... with ``params``) or an
    unfitted instance. With ``embed_prior`` (default) the prior of ``embed`` is learned from
    the same rows and stored with the base (:func:`attach_embed_prior`), so that
    ``base.adapt(archs, latency_ms)`` uses ``auto`` with it. ``latbench predictor fit`` does this
    for every multi-device fit.
    """
    from latbench.predictors.base import create

    pred = create(model, **params) if isinstance(model, str) else model
    arch_list = list(archs)
    lat = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    devs = [str(d) for d in devices]
    pred.fit(arch_list, lat, space=space, devices=devs)
    if embed_prior:
        prior = attach_embed_prior(pred, arch_list, lat, devs)
        if prior is not None:
            log.info("embed prior learned with the base in %.2f s", prior.fit_seconds)
    return pred


def _unwrap(base: Predictor) -> Predictor:
    while isinstance(base, AdaptedPredictor):
        base = base.base_
    return base


def check_samples(
    space: str, archs: Sequence[Any], latency_ms: Any, *, min_samples: int = fewshot.MIN_SAMPLES
) -> tuple[list[str], np.ndarray]:
    """Validate few-shot samples: canonical archs of ``space`` and positive latencies.

    Duplicated architectures are merged (geometric mean of their latencies, with a warning).
    Returns the distinct architectures and their latencies in ms.
    """
    if space == GRAPH_SPACE:
        raise PredictorError(
            "few-shot adaptation needs a base fitted on a search space (nb201, fbnet, ...), "
            "not on imported graphs"
        )
    _check_ordered(archs, latency_ms)
    arch_list = enc.canonical_archs(space, list(archs))
    y = sample_latencies(arch_list, latency_ms)
    groups: dict[str, list[float]] = {}
    for a, v in zip(arch_list, y, strict=True):
        groups.setdefault(a, []).append(float(v))
    dups = {a: v for a, v in groups.items() if len(v) > 1}
    if dups:
        log.warning(
            "%d architecture(s) measured more than once (e.g. %s: %s ms); using the geometric "
            "mean of each",
            len(dups),
            next(iter(dups)),
            next(iter(dups.values())),
        )
    uniq = list(groups)
    lat = np.array([float(np.exp(np.mean(np.log(groups[a])))) for a in uniq])
    if len(uniq) < min_samples:
        raise PredictorError(
            f"got {len(uniq)} distinct architecture(s); few-shot adaptation needs at least "
            f"{min_samples} (3 to 20 is the intended range)"
        )
    if np.all(lat == lat[0]):
        raise PredictorError(
            f"all {len(uniq)} latencies equal {float(lat[0]):.6g} ms; expected measurements that "
            "differ (nothing to rank by)"
        )
    return uniq, lat


def _check_ordered(archs: Any, latency_ms: Any) -> None:
    """Refuse samples whose pairing of architecture and latency is not defined: a set of
    architectures has no order, so its i-th element is not the architecture of the i-th
    latency; a mapping of latencies would be read as one object."""
    if isinstance(archs, set | frozenset | Mapping):
        raise PredictorError(
            f"archs is a {type(archs).__name__}, which has no order to pair with latency_ms; "
            "expected a list of architectures, one per latency"
        )
    if isinstance(latency_ms, Mapping):
        raise PredictorError(
            "latency_ms is a mapping; expected a sequence of milliseconds, one per "
            "architecture (for {arch: ms}: adapt(base, list(d), list(d.values())))"
        )


def _descriptor_samples(
    space: str, descriptor: Mapping[str, float]
) -> tuple[list[Any], np.ndarray]:
    """The reference architectures and latencies of a descriptor: architectures of ``space``
    (else an :class:`~latbench.errors.ArchError` that says it is the descriptor's), latencies
    finite and positive (else a :class:`PredictorError` naming the architecture)."""
    if not isinstance(descriptor, Mapping):
        raise PredictorError(
            f"descriptor is a {type(descriptor).__name__}; expected {{arch: latency_ms}} of the "
            "reference architectures (Descriptor.reference_ms)"
        )
    archs = list(descriptor)
    values = list(descriptor.values())
    try:
        if space != GRAPH_SPACE:  # a base of graphs is refused by check_samples
            enc.canonical_archs(space, archs)
    except ArchError as exc:
        raise ArchError(f"descriptor: {exc} (a reference architecture)") from None
    for a, v in zip(archs, values, strict=True):
        if expected_number(v, positive=True) is not None:
            raise PredictorError(
                f"descriptor[{a!r}] = {v!r}; expected finite positive milliseconds "
                "(the reference architecture's latency)"
            )
    return archs, np.asarray(values, dtype=np.float64)


#: samples this many times faster or slower than every source device predicts are suspect
UNIT_RATIO = 300.0


def _check_unit(base: Predictor, archs: list[str], lat: np.ndarray, sources: list[str]) -> None:
    """Warn when the samples are far outside what every source predicts for them: latencies
    in seconds (x 1/1000) or microseconds (x 1000) given as milliseconds fit without error,
    and every prediction of the adapted model is then in the wrong unit."""
    try:
        logp = source_log_predictions(base, archs[:50], sources)
    except (PredictorError, ValueError):
        return
    gap = float(np.mean(np.log(lat[:50]))) - logp.mean(axis=0)
    ratio = float(np.exp(gap[np.argmin(np.abs(gap))]))  # the source nearest the samples
    if ratio < 1.0 / UNIT_RATIO or ratio > UNIT_RATIO:
        log.warning(
            "the samples are %.3g times what the nearest source device predicts for them; "
            "latency_ms expects milliseconds (seconds or microseconds?)",
            ratio,
        )


def excluded_devices(base: Predictor, exclude: Sequence[str]) -> list[str]:
    """The base devices ``exclude`` names: full names, short names (``pixel3``) or globs
    (``'help/*'``). A name that matches none of them is a :class:`PredictorError`, not a
    device silently kept."""
    from latbench.predictors.monotonicity import select_devices

    names = [exclude] if isinstance(exclude, str) else list(exclude)
    if not names:
        return []
    try:
        return select_devices(list(base.devices_), names)
    except PredictorError as exc:
        raise PredictorError(f"exclude: {exc} (the base predictor's devices)") from None


def adapt(
    base: Predictor,
    archs: Sequence[Any],
    latency_ms: Any,
    *,
    method: str = "auto",
    device: str = "target",
    sources: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    population: int = DEFAULT_POPULATION,
    seed: int = 0,
    descriptor: Mapping[str, float] | None = None,
    embed_prior: EmbedPrior | None = None,
    use_stored_prior: bool = True,
    screen_outliers: bool = True,
    one_source_ok: bool = False,
) -> AdaptedPredictor:
    """A predictor for a new ``device`` from K measurements and a multi-device ``base``.

    ``method``: ``"auto"`` (default: chosen by leave-one-out on the samples), ``"proxy"``,
    ``"soft"``, ``"combo"``, ``"meta"``, ``"bayes"``, ``"embed"`` or ``"embed+proxy"`` (both
    need ``embed_prior``; see :mod:`latbench.predictors.fewshot`).
    ``sources``: the base devices to combine (default: all); ``exclude``: base devices to leave
    out (e.g. a near-copy of the target). ``population``: random architectures of the space used
    to standardise the sources. The base is not modified; the adapted predictor keeps its own
    copy of it, so that refitting the base later does not change the adapted one.

    ``descriptor``: the device's HELP-style descriptor, ``{arch: latency_ms}`` of the fixed
    reference architectures of the space (``Descriptor.reference_ms``, measured by ``latbench
    devices describe --space``). The adapted model is conditioned on it: the weights over the
    base's devices (and the residual) are fitted on the descriptor's latencies together with
    the K samples, so a descriptor measured once per device makes every later adaptation of
    that device start from ~10 more measurements. An architecture in both is merged (geometric
    mean). Reference architectures of another space raise :class:`~latbench.errors.ArchError`.

    ``embed_prior``: the prior of method ``embed`` (:func:`learn_embed_prior`, learned on the
    sources' measurements); with it ``auto`` averages ``embed`` with its choice without it.
    Default: the prior stored with the base (:func:`fit_base`, ``latbench predictor fit
    --devices all``), where it has one learned for these sources; ``use_stored_prior=False``
    ignores it (``auto`` as without a prior).

    ``screen_outliers``: with ``"auto"`` or ``"embed+proxy"`` and at least
    :data:`~latbench.predictors.fewshot.SCREEN_GROSS_MIN_SAMPLES` samples, leave out the
    samples that look like measurement outliers against the best proxy's robust line
    (:func:`~latbench.predictors.fewshot.screen_samples`: more than 4 robust standard
    deviations off from :data:`~latbench.predictors.fewshot.SCREEN_MIN_SAMPLES` samples on,
    more than 3x off below that; at most a fifth of them); they are listed in ``outliers_``
    and in the summary, with a warning. ``False`` fits every sample.

    ``one_source_ok``: the caller adapts a one-device base on purpose (proxy adaptation,
    :func:`latbench.predictors.monotonicity.adapt_proxy`), so the warning that such a base
    only calibrates is not logged.

    An adapted predictor as ``base`` is adapted from its own base (and that base's stored
    ``embed`` prior, which its ``.lbp`` file keeps too): the new samples replace the ones it
    was adapted from, since its one device is itself a few-shot estimate, not a device the
    base was fitted on (to use both sets of samples, adapt the base on them together).
    """
    if not isinstance(device, str) or not device.strip():
        raise PredictorError(
            f"device = {device!r:.80}; expected a non-empty device name (str) for the adapted "
            "predictor"
        )
    if not isinstance(base, Predictor):
        raise PredictorError(
            f"base = {base!r:.80}: got a {type(base).__name__}; expected a fitted latbench "
            "Predictor (a multi-device one: predictor fit --devices all)"
        )
    if isinstance(base, AdaptedPredictor):
        base._check_fitted()
        log.info(
            "adapting the base (%s) of the predictor adapted to %s: the new samples replace "
            "its %d samples",
            base.base_.name,
            base.devices_[0],
            base.n_samples_,
        )
    base = _unwrap(base)
    base._check_fitted()
    n_desc = 0
    if descriptor is not None and not isinstance(descriptor, Mapping):
        _descriptor_samples(base.space_, descriptor)  # raises: not a mapping
    if descriptor:
        _check_ordered(archs, latency_ms)
        d_archs, d_ms = _descriptor_samples(base.space_, descriptor)
        n_desc = len(d_archs)
        archs = list(archs) + d_archs
        latency_ms = np.concatenate([latency_array(latency_ms), d_ms])
    if method != "auto" and method not in fewshot.METHODS:
        raise PredictorError(
            f"unknown adaptation method {method!r}; expected auto or one of "
            f"{', '.join(fewshot.METHODS)}"
        )
    space = base.space_
    uniq, lat = check_samples(space, archs, latency_ms)
    if isinstance(sources, str):
        sources = [sources]
    srcs = list(dict.fromkeys(base.devices_ if sources is None else sources))
    if not srcs:
        raise PredictorError(
            f"sources=[] names no device; expected some of {', '.join(base.devices_)} "
            "(or None for all of them)"
        )
    unknown = [s for s in srcs if s not in base.devices_]
    if unknown:
        raise PredictorError(
            f"source device(s) {unknown} are not in the base predictor; expected some of "
            f"{', '.join(base.devices_)}"
        )
    dropped = set(excluded_devices(base, exclude)) & set(srcs)
    srcs = [s for s in srcs if s not in dropped]
    if not srcs:
        shown = [exclude] if isinstance(exclude, str) else list(exclude)
        raise PredictorError(
            f"no source device left: exclude {shown} names all "
            f"{len(dropped)} of them; expected at least one left to adapt from"
        )
    _check_unit(base, uniq, lat, srcs)
    methods: tuple[str, ...] = fewshot.AUTO_METHODS
    if len(srcs) == 1 and embed_prior is None and not one_source_ok:
        log.warning(
            "the base predictor knows one device (%s): adaptation is a monotone calibration of "
            "it, plus a feature residual for method 'meta'; fit the base on several devices "
            "(predictor fit --devices all) for a real few-shot model",
            srcs[0],
        )
        methods = ("proxy", "meta", "bayes")
    prior_from = "given" if embed_prior is not None else None
    if embed_prior is None and use_stored_prior:
        kept = stored_prior(base)
        if kept is not None and kept.space == space and list(kept.sources) == srcs:
            embed_prior, prior_from = kept, "stored"
        elif kept is not None:
            log.warning(
                "the base's stored embed prior was learned for sources %s, not %s; adapting "
                "without it (pass embed_prior= learned for these sources)",
                list(kept.sources),
                srcs,
            )
    if method in fewshot.EMBED_METHODS and embed_prior is None:
        raise PredictorError(
            f"method {method!r} needs embed_prior= (learn_embed_prior on the sources' "
            "measurements) or a base that stores one for these sources (fit_base, predictor "
            "fit --devices all)"
        )
    embed = None
    if embed_prior is not None:
        if embed_prior.space != space or list(embed_prior.sources) != srcs:
            raise PredictorError(
                f"embed_prior was learned for space {embed_prior.space!r} and sources "
                f"{list(embed_prior.sources)}; expected space {space!r} and sources {srcs}"
            )
        embed = (embed_prior, embed_features(space, uniq))
    ctx = prepare_context(base, srcs, population=population, seed=seed)
    p_log = ctx.source_log(uniq)
    feats = ctx.features(uniq)
    costs = ctx.costs(uniq)
    t_log = np.log(lat)
    t0 = time.perf_counter()
    fit, scores = fewshot.fit_method(
        method,
        p_log,
        t_log,
        ctx.pop_log,
        feats,
        methods=methods,
        cost=costs,
        embed=embed,
        screen=screen_outliers,
    )
    fit_s = time.perf_counter() - t0

    out = AdaptedPredictor(method=method)
    # the adapted predictor predicts through its base: its own copy (made once the inputs
    # passed), so that refitting or changing the caller's base later does not change it
    out.base_ = copy.deepcopy(base)
    out.space_ = space
    out.devices_ = [device]
    out.method_ = fit.method
    out.sources_ = srcs
    out.weights_ = np.asarray(fit.weights, dtype=np.float64)
    out.intercept_ = float(fit.intercept)
    out.residual_ = (
        np.zeros(0) if fit.residual is None else np.asarray(fit.residual, dtype=np.float64)
    )
    out.feature_mean_ = ctx.feature_mean
    out.feature_scale_ = ctx.feature_scale
    if fit.cost is None:
        out.cost_ = out.cost_mean_ = out.cost_scale_ = np.zeros(0)
    else:
        out.cost_ = np.asarray(fit.cost, dtype=np.float64)
        out.cost_mean_ = ctx.cost_mean
        out.cost_scale_ = ctx.cost_scale
    if fit.counts is None or embed_prior is None:
        out.counts_ = out.counts_mean_ = np.zeros(0)
    else:
        out.counts_ = np.asarray(fit.counts, dtype=np.float64)
        out.counts_mean_ = np.asarray(embed_prior.count_mean, dtype=np.float64)
    out.fit_seconds_ = fit_s
    out.cv_scores_ = dict(scores)
    out.n_samples_ = len(uniq)
    out.outliers_ = {uniq[i]: float(lat[i]) for i in fit.dropped}
    if out.outliers_:
        log.warning(
            "left out %d of %d samples as measurement outliers (far off the best proxy's robust "
            "line; measure them again, or pass screen_outliers=False / --keep-outliers): %s",
            len(out.outliers_),
            len(uniq),
            ", ".join(f"{a} ({v:.4g} ms)" for a, v in out.outliers_.items()),
        )
    out.n_descriptor_ = n_desc
    out.embed_prior_from_ = prior_from or ""
    e = None if embed is None else embed[1] - embed[0].count_mean
    train_pred = fit.predict_log(p_log, feats, costs, e)
    from latbench.predictors.metrics import kendall, spearman

    out.train_spearman_ = spearman(t_log, train_pred)
    out.train_kendall_ = kendall(t_log, train_pred)
    log.info(
        "adapted %s to %s with %s from %d samples (sources: %s)",
        base.name,
        device,
        fit.method,
        len(uniq),
        ", ".join(out.top_sources()),
    )
    return out


#: the measurement noise (variance of log-latency) and the prior scale the design assumes
DESIGN_NOISE = 0.01
DESIGN_TAU = 1.0
#: the design picks among the candidates inside these quantiles of the base's predicted latency
DESIGN_RANGE = (0.1, 0.9)


def choose_samples(
    base: Predictor,
    budget: int,
    *,
    pool: int = 2000,
    seed: int = 0,
    candidates: Sequence[Any] | None = None,
    measured: Sequence[Any] = (),
    strategy: str = "design",
    prior: EmbedPrior | None = None,
) -> list[str]:
    """``budget`` informative architectures to measure on a new device.

    The candidates are ``candidates`` (e.g. the architectures you can build), else ``pool``
    random architectures of the base's space (``seed``). ``strategy``:

    * ``"design"`` (default, with an ``embed`` prior: ``prior``, else the one the base
      stores): a Bayesian D-optimal design for that prior, among the candidates inside the
      10-90 % quantiles of the base's predicted latency (below). The target's log-latency is
      ``theta . x(arch)``
      (:mod:`latbench.predictors.fewshot_embed`), ``theta`` unknown, spread over the source
      devices as the prior says; each pick is the candidate whose latency the prior is least
      sure of *relative to the others* (the largest variance of its centred ``x`` under the
      current posterior), and the posterior then shrinks along it (a rank-one update; a
      linear-Gaussian posterior covariance does not depend on the latencies, so the whole
      design is fixed before anything is measured). The picks land where the devices disagree,
      along different axes, instead of where every device agrees. ``measured`` architectures
      (a descriptor's, or those measured before) count as already picked. The extremes are
      left out because an optimal design trusts its model most there: with them, NAS-Bench-201
      Pixel 3 (whose cells with a dead output HELP timed at microseconds) and FBNet Samsung S7
      lost 0.03 and 0.08 Spearman against random samples (K = 10); without them, at most 0.01.
      A base that stores no prior (a file from an older version, or one fitted with
      ``Predictor.fit``) gets one learned from its own predictions of 1,000 random
      architectures, which chooses as well as the measured one (see below).
    * ``"spread"`` (and the fallback for a base of one device): evenly spaced quantiles of the
      base's predicted latency (the mean over its devices of the standardised log-latency),
      the two extremes included.

    Measured on the reference tables (leave-one-device-out, K = 10, 30 draws, the default
    ``auto``; BENCHMARKS.md, "Choosing the K samples"): mean Spearman NB201 0.897 with K random
    samples, 0.893 with ``spread``, 0.910 with ``design``; FBNet 0.914, 0.911, 0.926.
    """
    if strategy not in ("design", "spread"):
        raise PredictorError(f"strategy = {strategy!r}; expected 'design' or 'spread'")
    base = _unwrap(base)
    base._check_fitted()
    if expected_number(budget, integer=True, low=fewshot.MIN_SAMPLES) is not None:
        raise PredictorError(
            f"budget = {budget!r}; expected an integer of at least {fewshot.MIN_SAMPLES} "
            "architectures"
        )
    if expected_number(pool, integer=True, low=1) is not None:
        raise PredictorError(f"pool = {pool!r}; expected an integer >= 1 (candidates to draw)")
    budget, pool = int(budget), int(pool)
    sp = enc.space(base.space_)
    done = _distinct_archs(sp, "measured", measured)
    if candidates is None:
        cand = sp.sample(min(max(pool, budget + len(done)), sp.size()), seed=seed)
    else:
        cand = _distinct_archs(sp, "candidates", candidates)
    skip = set(done)
    cand = [a for a in cand if a not in skip]
    if len(cand) < budget:
        raise PredictorError(
            f"{len(cand)} candidate architecture(s) not yet measured; expected at least "
            f"budget = {budget}"
        )
    logp = source_log_predictions(base, cand, base.devices_)
    sd = logp.std(axis=0)
    score = ((logp - logp.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).mean(axis=1)
    if strategy == "design":
        if prior is None:
            prior = stored_prior(base)
        if prior is None and len(base.devices_) > 1:
            prior = _prediction_prior(base, seed)
    if strategy == "design" and prior is not None:
        lo, hi = np.quantile(score, DESIGN_RANGE)
        inner = (score >= lo) & (score <= hi)
        if inner.sum() < budget:
            inner[:] = True
        return _design(base, prior, cand, logp, inner, done, budget)
    order = np.argsort(score, kind="stable")
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, budget)).astype(int))
    return [cand[i] for i in order[picks]]


def _distinct_archs(sp: Any, what: str, archs: Sequence[Any] | str) -> list[str]:
    """The distinct canonical architectures of ``archs`` (argument ``what`` of
    :func:`choose_samples`), a bad one named by its argument and position. One string is one
    architecture, as ``sources`` and ``exclude`` take one name: iterated, it would be read
    character by character (and refused as ``'|'``)."""
    items = [archs] if isinstance(archs, str) else list(archs)
    out: dict[str, None] = {}
    for i, a in enumerate(items):
        try:
            out[sp.canonical(str(a))] = None
        except ArchError as exc:
            raise ArchError(f"{what}[{i}]: {exc}") from None
    return list(out)


#: random architectures whose predictions stand in for measurements in a design prior
DESIGN_PRIOR_POPULATION = 1000


def _prediction_prior(base: Predictor, seed: int) -> EmbedPrior | None:
    """An ``embed`` prior learned from ``base``'s own predictions of a random population, for
    a base that stores none: how its devices differ is all a design needs, and predictions show
    that as well as measurements do (BENCHMARKS.md, "Choosing the K samples"). None where it
    cannot be learned (the caller then spreads the picks)."""
    sp = enc.space(base.space_)
    pop = sp.sample(min(DESIGN_PRIOR_POPULATION, sp.size()), seed=seed + 1)
    devices = list(base.devices_)
    ms = np.exp(source_log_predictions(base, pop, devices))
    try:
        return learn_embed_prior(
            base,
            [a for a in pop for _ in devices],
            ms.reshape(-1),
            devices * len(pop),
            seed=seed,
        )
    except PredictorError as exc:
        log.info("no design prior from the base's predictions (%s); spreading the picks", exc)
        return None


def _design(
    base: Predictor,
    prior: EmbedPrior,
    cand: list[str],
    cand_log: np.ndarray,
    allowed: np.ndarray,
    measured: list[str],
    budget: int,
) -> list[str]:
    """Greedy Bayesian D-optimal picks of ``budget`` of ``cand[allowed]`` (see
    :func:`choose_samples`), the ``measured`` architectures counted as picked first.
    ``cand_log``: the base's log-predictions of ``cand`` on all its devices."""
    srcs = list(prior.sources)
    if all(d in base.devices_ for d in srcs):
        p_log = cand_log[:, [base.devices_.index(d) for d in srcs]]
    else:
        p_log = source_log_predictions(base, cand, srcs)
    if measured:
        p_log = np.vstack([p_log, source_log_predictions(base, measured, srcs)])
    x = prior.embed(p_log, embed_features(base.space_, cand + measured))[:, 1:]
    # the intercept (a constant factor on every latency) does not change a ranking: centre
    z = x - x[: len(cand)].mean(axis=0)
    hyp = prior.coef[:, 1:]
    cov = DESIGN_TAU * prior.cov[1:, 1:] + (np.cov(hyp.T) if len(hyp) > 1 else 0.0)
    for row in z[len(cand) :]:
        cov = _observe(cov, row)
    zc = z[: len(cand)]
    free = allowed.copy()
    picks: list[int] = []
    for _ in range(budget):
        var = np.einsum("ij,jk,ik->i", zc, cov, zc)
        var[~free] = -np.inf
        i = int(np.argmax(var))
        picks.append(i)
        free[i] = False
        cov = _observe(cov, zc[i])
    return [cand[i] for i in picks]


def _observe(cov: np.ndarray, row: np.ndarray) -> np.ndarray:
    """The posterior covariance after one measurement along ``row`` (a rank-one update)."""
    u = cov @ row
    return cov - np.outer(u, u) / (DESIGN_NOISE + row @ u)


@register("adapted")
class AdaptedPredictor(Predictor):
    """A base predictor adapted to a new device; made by :func:`adapt`, not by ``fit``.

    ``fit(archs, latency_ms, space=...)`` adapts the base predictor saved at ``base`` (a path
    to an ``.lbp`` file); in Python, ``base.adapt(archs, latency_ms)`` is the usual route.
    """

    base_: Predictor
    method_: str
    sources_: list[str]
    weights_: np.ndarray
    intercept_: float
    residual_: np.ndarray
    feature_mean_: np.ndarray
    feature_scale_: np.ndarray
    cv_scores_: dict[str, float]
    n_samples_: int
    #: samples left out of the fit as measurement outliers, ``{arch: latency_ms}``
    outliers_: dict[str, float]
    n_descriptor_: int = 0
    #: where the ``embed`` prior came from: "stored" (with the base), "given", or "" (none)
    embed_prior_from_: str = ""
    #: op-cost coefficients of ``bayes`` over the centred cost features (empty: none)
    cost_: np.ndarray
    cost_mean_: np.ndarray
    cost_scale_: np.ndarray
    #: op-count coefficients of ``embed`` over the centred op counts (empty: none)
    counts_: np.ndarray
    counts_mean_: np.ndarray
    fit_seconds_: float = 0.0
    train_spearman_: float
    train_kendall_: float

    def __init__(self, method: str = "auto", base: str | None = None) -> None:
        self.method = method
        self.base = base

    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        if self.base is None:
            raise PredictorError(
                "adapted: set base= to the path of a multi-device .lbp file, or call "
                "base_predictor.adapt(archs, latency_ms)"
            )
        from latbench.predictors.persist import load

        base = load(self.base)
        if base.space_ != space:
            raise PredictorError(
                f"adapted: the base {self.base} is for space {base.space_!r}, not {space!r}"
            )
        name = devices[0] if devices is not None and len(devices) else "target"
        fitted = adapt(base, archs, y_ms, method=self.method, device=str(name))
        for k, v in vars(fitted).items():
            if k.endswith("_") and k not in ("space_", "devices_"):
                setattr(self, k, v)

    def top_sources(self, n: int = 3) -> list[str]:
        """The source devices with the largest weights, as ``name (weight)``."""
        self._check_fitted()
        order = np.argsort(-np.abs(self.weights_))[:n]
        return [f"{self.sources_[i]} ({self.weights_[i]:.2f})" for i in order if self.weights_[i]]

    def ranks_like(self, n: int = 3, *, size: int = 1000, seed: int = 0) -> list[str]:
        """The base's devices whose predicted ranking is closest to this one's, as
        ``name (rho)``: Spearman over ``size`` random architectures of the space.

        Easier to read than :meth:`top_sources`: the weights are coefficients on log-latencies
        of devices that are themselves strongly correlated, so large weights of opposite signs
        are common and say little about which device the new one resembles.
        """
        self._check_fitted()
        sp = enc.space(self.space_)
        archs = sp.sample(min(size, sp.size()), seed=seed)
        mine = np.log(self.predict(archs))
        devices = list(self.base_.devices_)
        theirs = source_log_predictions(self.base_, archs, devices)
        rho = np.array([spearman(theirs[:, j], mine) for j in range(len(devices))])
        order = np.argsort(-rho, kind="stable")[:n]
        return [f"{devices[i]} ({rho[i]:.3f})" for i in order]

    def _predict(self, archs: list[Any], device: str) -> tuple[np.ndarray, np.ndarray | None]:
        active = np.flatnonzero(np.abs(self.weights_) > 1e-12)
        z = np.full(len(archs), self.intercept_)
        if active.size:
            p = source_log_predictions(self.base_, archs, [self.sources_[i] for i in active])
            z = z + p @ self.weights_[active]
        if self.residual_.size:
            f = (arch_features(self.space_, archs) - self.feature_mean_) / self.feature_scale_
            z = z + f @ self.residual_
        if self.cost_.size:
            g = _scaled_costs(self.space_, archs, self.cost_mean_, self.cost_scale_)
            assert g is not None
            z = z + g @ self.cost_
        if self.counts_.size:
            z = z + (embed_features(self.space_, archs) - self.counts_mean_) @ self.counts_
        return np.exp(z), None

    def summary(self) -> dict[str, Any]:
        """What the adaptation did: method, samples, main sources, CV and training scores."""
        self._check_fitted()
        return {
            "device": self.devices_[0],
            "space": self.space_,
            "base": self.base_.name,
            "method": self.method_,
            "samples": self.n_samples_,
            "outliers": dict(self.outliers_),
            "descriptor_archs": self.n_descriptor_,
            "sources": self.top_sources(),
            "ranks_like": self.ranks_like(),
            "cv_kendall": self.cv_scores_,
            "train_spearman": self.train_spearman_,
            "train_kendall": self.train_kendall_,
            "residual": bool(self.residual_.size),
            "op_cost_residual": bool(self.cost_.size),
            "op_count_embedding": bool(self.counts_.size),
            "embed_prior": self.embed_prior_from_ or None,
            "fit_seconds": self.fit_seconds_,
        }

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        bmeta, barrays = self.base_._get_state()
        # the base's stored embed prior is not part of its model state (the base file keeps it
        # beside it): kept here too, so that adapting this file again (which adapts its base)
        # uses it as adapting the base file or this predictor in memory does
        prior = stored_prior(self.base_)
        pmeta, parrays = (None, {}) if prior is None else prior_state(prior)
        base_meta: dict[str, Any] = {
            "predictor": self.base_.name,
            "params": self.base_.get_params(),
            "space": self.base_.space_,
            "devices": list(self.base_.devices_),
            "state": bmeta,
            "arrays": sorted(barrays),
        }
        if pmeta is not None:
            base_meta["embed_prior"] = pmeta
        meta = {
            "method": self.method_,
            "sources": list(self.sources_),
            "intercept": self.intercept_,
            "cv_scores": self.cv_scores_,
            "n_samples": self.n_samples_,
            "outliers": dict(self.outliers_),
            "n_descriptor": self.n_descriptor_,
            "embed_prior_from": self.embed_prior_from_,
            "train_spearman": self.train_spearman_,
            "train_kendall": self.train_kendall_,
            "fit_seconds": self.fit_seconds_,
            "base": base_meta,
        }
        arrays = {
            "weights": self.weights_,
            "residual": self.residual_,
            "feature_mean": self.feature_mean_,
            "feature_scale": self.feature_scale_,
            "cost": self.cost_,
            "cost_mean": self.cost_mean_,
            "cost_scale": self.cost_scale_,
            "counts": self.counts_,
            "counts_mean": self.counts_mean_,
        }
        arrays.update({f"base.{k}": v for k, v in barrays.items()})
        arrays.update({f"{BASE_PRIOR_PREFIX}{k}": v for k, v in parrays.items()})
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        b = meta["base"]
        name = str(b["predictor"])
        if name == self.name:
            raise PredictorError("adapted: a nested adapted base is not supported")
        cls = PREDICTORS.get(name)
        base = cls(**b.get("params", {}))
        base.space_ = str(b["space"])
        base.devices_ = [str(d) for d in b["devices"]]
        base._set_state(dict(b.get("state", {})), {k: arrays[f"base.{k}"] for k in b["arrays"]})
        # files written before the base's prior was kept here have none
        pmeta = b.get("embed_prior")
        if pmeta is not None:
            if not isinstance(pmeta, dict):
                raise PredictorError("adapted: the base's 'embed_prior' is not a table")
            n = len(BASE_PRIOR_PREFIX)
            parrays = {k[n:]: v for k, v in arrays.items() if k.startswith(BASE_PRIOR_PREFIX)}
            vars(base)["embed_prior_"] = prior_from_state(pmeta, parrays)
        self.base_ = base
        self.method_ = str(meta["method"])
        self.sources_ = [str(s) for s in meta["sources"]]
        self.intercept_ = float(meta["intercept"])
        self.cv_scores_ = {str(k): float(v) for k, v in dict(meta.get("cv_scores", {})).items()}
        self.n_samples_ = int(meta["n_samples"])
        # files written before the outlier screen existed list none
        self.outliers_ = {str(k): float(v) for k, v in dict(meta.get("outliers", {})).items()}
        self.n_descriptor_ = int(meta.get("n_descriptor", 0))
        self.embed_prior_from_ = str(meta.get("embed_prior_from", ""))
        self.train_spearman_ = float(meta["train_spearman"])
        self.train_kendall_ = float(meta["train_kendall"])
        self.fit_seconds_ = float(meta.get("fit_seconds", 0.0))
        self.weights_ = arrays["weights"]
        self.residual_ = arrays["residual"]
        self.feature_mean_ = arrays["feature_mean"]
        self.feature_scale_ = arrays["feature_scale"]
        # files written before the op-cost residual existed have none
        empty = np.zeros(0)
        self.cost_ = arrays.get("cost", empty)
        self.cost_mean_ = arrays.get("cost_mean", empty)
        self.cost_scale_ = arrays.get("cost_scale", empty)
        # files written before the embed method existed have no op-count term
        self.counts_ = arrays.get("counts", empty)
        self.counts_mean_ = arrays.get("counts_mean", empty)
