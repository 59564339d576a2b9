"""Ensembles: several predictors averaged, their spread as the prediction's uncertainty.

``ensemble`` combines member predictors (given as ``(name, params)`` pairs) by a weighted
geometric mean of their predictions (an average of log-latencies: errors are relative). The
uncertainty of :meth:`Predictor.predict_with_uncertainty` is the weighted standard deviation of
the members' predictions in ms: where members disagree, the prediction is less trustworthy.

``weights="cv"`` learns non-negative member weights from out-of-fold predictions on the
training set (``cv`` folds; non-negative least squares on log-latency, with Huber weights for
``stack_loss="huber"``, normalised to sum 1; ``rank_hedge=True`` adds :func:`rank_hedge`,
``calibrate=True`` :func:`log_calibration`), so
the ensemble leans on whichever model suits the device: linear models where latency is a sum of
operator costs (GPUs), boosted trees where it is not (CPUs, accelerators).

``default`` is the recommended predictor for search-space architectures: a CV-weighted
ensemble (Huber stacking, see :func:`stack_weights`) of seven members, each covering one kind
of device:

1. hierarchical ridge on pairwise features, raw ms (one-hot main effects, then pairwise
   interactions and cell topology on the residuals, both penalties by leave-one-out: it reduces
   to the one-hot ridge where the column is mostly measurement noise);
2. the same with relative weights (squared relative errors: latency noise is multiplicative);
3. the same with Huber weights as well (heavy-tailed noise: batch-1/32 GPU columns);
4. relative-weighted, on the *effective* cell (dead edges pruned, isomorphic twins merged:
   runtimes that prune, the nn-Meter / oneproxy / latbench columns);
5. the same on log-latency;
6. 200 boosted depth-4 trees on rich features, log-latency (non-additive devices: CPUs,
   accelerators);
7. 200 boosted depth-3 trees on the residuals of a linear model, raw ms (phones).

On the PyTorch-measured HELP columns, which run dead branches, the weights go to 1-3; on
devices whose exporter prunes, to 4-5. When one member alone ranks the out-of-fold rows
better than the blend, the weights move halfway toward it (:func:`rank_hedge`). The blend is
then mapped by the log offset and scale (a power law in ms) that puts the most out-of-fold
predictions within +-10 %, when that helps there (:func:`log_calibration`; strictly
increasing, so the ranking is unchanged). Fitting takes seconds on 900 architectures (28 member
fits: 3 CV folds and the final fit); predicting all 15,625 NAS-Bench-201 cells well under a
second (the encodings are built once and shared). The GCN is not a member: on NAS-Bench-201
cells it is no more accurate than these and takes a minute to train.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from latbench._validate import expected_number
from latbench.errors import PredictorError
from latbench.predictors.base import PREDICTORS, Predictor, clone, register

MemberSpec = Sequence[Any]  # (name, params) pairs; lists after a JSON round trip

#: how ``weights="cv"`` fits member weights to the out-of-fold log-latencies
STACK_LOSSES = ("squared", "huber")
#: Huber threshold of the stacking fit, in robust standard deviations (1.4826 x MAD)
STACK_HUBER_K = 1.345
STACK_HUBER_ITERS = 10


def stack_weights(oof_log: np.ndarray, y_log: np.ndarray, loss: str = "huber") -> np.ndarray:
    """Non-negative member weights (summing to 1) from out-of-fold log-predictions.

    ``loss="squared"``: non-negative least squares on log-latency. ``loss="huber"``: the same
    with Huber weights (iteratively reweighted NNLS, threshold :data:`STACK_HUBER_K` robust
    standard deviations of the residuals). Least squares lets a handful of rows decide the
    blend: on help/pixel3 the ~0.003 ms cells with no input-output path are residuals of several
    log units, so the weights went to the member that fits those rows and not to the ones that
    rank the other 99 % best. Huber weights bound the pull of any one row.
    """
    from scipy.optimize import nnls

    if loss not in STACK_LOSSES:
        raise PredictorError(f"stack loss {loss!r}; expected one of {', '.join(STACK_LOSSES)}")
    w, _ = nnls(oof_log, y_log)
    if loss == "huber":
        for _ in range(STACK_HUBER_ITERS):
            r = y_log - oof_log @ w
            scale = 1.4826 * float(np.median(np.abs(r - np.median(r)))) + 1e-12
            root = np.sqrt(np.minimum(1.0, STACK_HUBER_K * scale / np.maximum(np.abs(r), 1e-300)))
            w, _ = nnls(oof_log * root[:, None], y_log * root)
    if w.sum() <= 0:
        w = np.ones(oof_log.shape[1])
    return np.asarray(w / w.sum())


def rank_hedge(oof_log: np.ndarray, y_log: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``w``, or halfway from ``w`` to the member that ranks the out-of-fold rows best.

    Stacking weights minimise a log-latency loss, but the first use of a latency predictor is
    ranking. When one member alone ranks the out-of-fold rows better (Spearman) than the
    stacked blend, the weights move halfway toward that member: a hedge between the
    loss-optimal blend and the rank-optimal member, since both are estimated on the same
    out-of-fold rows and either one alone follows their noise. On the noisy HELP columns
    (Xeon CPUs, batch-1 GPUs) that member is a hierarchical ridge and the hedge recovers the
    0.0001-0.0005 of Spearman the boosted members cost the blend; elsewhere it changes nothing.
    """
    from latbench.predictors.metrics import spearman

    rhos = [spearman(y_log, oof_log[:, j]) for j in range(oof_log.shape[1])]
    j = int(np.argmax(rhos))
    if rhos[j] > spearman(y_log, oof_log @ w):
        best = np.zeros_like(w)
        best[j] = 1.0
        return np.asarray(0.5 * w + 0.5 * best)
    return w


#: slopes of the out-of-fold log-linear calibration (:func:`log_calibration`); all > -1, so
#: the map is strictly increasing and the ranking (Spearman, Kendall) never changes
CALIB_SLOPES = tuple(round(-0.15 + 0.01 * i, 2) for i in range(31))
#: the +-10 % window in log space
_LOG_LO, _LOG_HI = float(np.log(0.9)), float(np.log(1.1))
#: the share of rows by which the sloped calibration must beat the median offset
CALIB_MIN_GAIN = 0.005


def _best_offset(r: np.ndarray) -> tuple[int, float]:
    """``(count, a)``: the most rows the offset ``a`` can put within +-10 %.

    ``r = y_log - z``; row i is within +-10 % when ``lo <= z + a - y_log <= hi``, i.e. for
    ``a`` in ``[r + lo, r + hi]``. A sweep over the sorted ends gives the deepest overlap
    exactly (``a`` = the middle of that overlap segment).
    """
    starts = np.sort(r + _LOG_LO)
    ends = np.sort(r + _LOG_HI)
    # depth just after each start = starts so far - ends strictly before it
    depth = np.arange(1, starts.size + 1) - np.searchsorted(ends, starts, side="left")
    i = int(np.argmax(depth))
    lo = float(starts[i])
    hi = float(ends[np.searchsorted(ends, lo, side="left")])  # first end at or after lo
    return int(depth[i]), 0.5 * (lo + hi)


def log_calibration(blend_log: np.ndarray, y_log: np.ndarray) -> tuple[float, float, float]:
    """``(slope, center, offset)`` of the map ``z -> z + slope * (z - center) + offset``.

    A geometric blend of members fitted on raw ms, relative errors and log-latency is neither
    median-unbiased nor of the right spread: on noisy columns (whole-ms phones, Xeon CPUs) its
    out-of-fold predictions sit 1-4 % off the measurements and are compressed or stretched
    (the members shrink toward the mean by different amounts). Candidates, scored by how many
    out-of-fold predictions they put within +-10 % of the measurement: no change; the median
    offset (median-unbiased); and, for each slope of :data:`CALIB_SLOPES`, the exact best
    offset (:func:`_best_offset`; ties: the smaller ``|slope|``). The best of the first two is
    the fallback; the sloped map replaces it only when it wins at least
    :data:`CALIB_MIN_GAIN` of the rows more (on 900 rows: 5), since the best of 31 searched
    maps wins a row or two by chance alone. ``center`` is the blend's median, so the slope
    turns about the middle of the column. The map is strictly increasing (every slope > -1):
    the prediction's ranking is unchanged.
    """
    z = np.asarray(blend_log, dtype=np.float64)
    y = np.asarray(y_log, dtype=np.float64)
    c = float(np.median(z))

    def hits(a: float) -> int:
        d = z + a - y
        return int(np.count_nonzero((d >= _LOG_LO) & (d <= _LOG_HI)))

    m = float(np.median(y - z))
    at_m, at_0 = hits(m), hits(0.0)
    fallback = (at_m, 0.0, m) if at_m > at_0 else (at_0, 0.0, 0.0)
    best = fallback
    for s in sorted(CALIB_SLOPES, key=abs):
        n, a = _best_offset(y - (z + s * (z - c)))
        if n > best[0]:
            best = (n, s, a)
    if best[0] - fallback[0] < max(1, int(np.ceil(CALIB_MIN_GAIN * z.size))):
        best = fallback
    return best[1], c, best[2]


def _members(spec: Sequence[MemberSpec]) -> list[Predictor]:
    from latbench.predictors.base import create

    if isinstance(spec, str | bytes | dict) or not isinstance(spec, Sequence):
        raise PredictorError(
            f"ensemble: members={spec!r:.80}; expected a sequence of (name, params dict) pairs"
        )
    out = []
    for i, m in enumerate(spec):
        if (
            not isinstance(m, list | tuple)
            or len(m) != 2
            or not isinstance(m[0], str)
            or not isinstance(m[1], dict | None)
        ):
            raise PredictorError(f"ensemble member {i} is {m!r}; expected (name, params dict)")
        out.append(create(m[0], **dict(m[1] or {})))
    if not out:
        raise PredictorError("ensemble: no members; expected at least one (name, params) pair")
    return out


@register("ensemble")
class EnsemblePredictor(Predictor):
    """Weighted geometric mean of member predictors; spread = uncertainty."""

    multi_device = True
    min_fit_rows = 3  # out-of-fold stacking: every fold trains its members on 2 or more

    def __init__(
        self,
        members: Sequence[MemberSpec] = (
            ("ridge", {"features": "rich", "alpha": 0.01}),
            ("gbm", {}),
            ("gcn", {}),
        ),
        weights: str = "equal",
        cv: int = 3,
        random_state: int = 0,
        stack_loss: str = "squared",
        calibrate: bool = False,
        rank_hedge: bool = False,
    ) -> None:
        self.members = members
        self.weights = weights
        self.cv = cv
        self.random_state = random_state
        self.stack_loss = stack_loss
        self.calibrate = calibrate
        self.rank_hedge = rank_hedge

    members_: list[Predictor]
    weights_: np.ndarray
    offset_: float  # log-latency offset added to the blend (0 unless calibrated)
    slope_: float  # log-latency slope about center_ (0 unless calibrated; older files: 0)
    center_: float

    @property
    def accepts_graphs(self) -> bool:  # type: ignore[override]
        try:
            return all(PREDICTORS.get(m[0]).accepts_graphs for m in self.members)
        except (LookupError, TypeError, IndexError):
            return False

    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        members = _members(self.members)
        dev = None if devices is None else list(devices)
        if self.weights not in ("equal", "cv"):
            raise PredictorError(f"ensemble: weights={self.weights!r}; expected 'equal' or 'cv'")
        if expected_number(self.cv, integer=True, low=2) is not None:
            raise PredictorError(f"ensemble: cv={self.cv!r}; expected an integer >= 2 (folds)")
        if self.stack_loss not in STACK_LOSSES:
            raise PredictorError(
                f"ensemble: stack_loss={self.stack_loss!r}; expected one of "
                f"{', '.join(STACK_LOSSES)}"
            )
        self.offset_, self.slope_, self.center_ = 0.0, 0.0, 0.0
        if self.weights == "cv" and len(members) > 1:
            oof = self._oof(members, archs, y_ms, devices, space)
            self.weights_ = stack_weights(oof, np.log(y_ms), str(self.stack_loss))
            if self.rank_hedge:
                self.weights_ = rank_hedge(oof, np.log(y_ms), self.weights_)
            if self.calibrate:
                self.slope_, self.center_, self.offset_ = log_calibration(
                    oof @ self.weights_, np.log(y_ms)
                )
        else:
            self.weights_ = np.full(len(members), 1.0 / len(members))
        self.members_ = [m.fit(archs, y_ms, space=space, devices=dev) for m in members]

    def _oof(
        self,
        members: list[Predictor],
        archs: list[Any],
        y_ms: np.ndarray,
        devices: np.ndarray | None,
        space: str,
    ) -> np.ndarray:
        """``(n, members)`` out-of-fold log-latency predictions (``cv`` folds)."""
        n = len(archs)
        k = max(2, min(int(self.cv), n))
        folds = np.random.default_rng(int(self.random_state)).permutation(n) % k
        oof = np.zeros((n, len(members)))
        for f in range(k):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            for j, m in enumerate(members):
                c = clone(m)
                c.fit(
                    [archs[i] for i in tr],
                    y_ms[tr],
                    space=space,
                    devices=None if devices is None else list(devices[tr]),
                )
                te_archs = [archs[i] for i in te]
                if devices is None:
                    oof[te, j] = c.predict(te_archs)
                else:
                    for d in set(devices[te].tolist()):
                        sel = te[devices[te] == d]
                        oof[sel, j] = c.predict([archs[i] for i in sel], device=d)
        return np.log(np.maximum(oof, 1e-9))

    def _predict(self, archs: list[Any], device: str) -> tuple[np.ndarray, np.ndarray]:
        from latbench.predictors.tabular import shared_features

        # archs are already canonical and the device resolved: call the members' _predict
        # directly, with features shared among them (each encoding is built once)
        cols = []
        with shared_features():
            for m in self.members_:
                mean, _ = m._predict(archs, device)
                floor = float(getattr(m, "floor_ms_", 0.0))
                cols.append(np.maximum(np.asarray(mean, dtype=np.float64), floor))
        preds = np.stack(cols, axis=1)
        w = self.weights_
        z = np.log(np.maximum(preds, 1e-9)) @ w
        cz = z + self.slope_ * (z - self.center_) + self.offset_
        mean = np.exp(cz)
        # the spread scales with the prediction, as the calibrated mean does
        std = np.sqrt(((preds - (preds @ w)[:, None]) ** 2) @ w) * np.exp(cz - z)
        return mean, std

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        metas = []
        arrays: dict[str, np.ndarray] = {
            "weights": self.weights_,
            "offset": np.array([self.offset_]),
            "calibration": np.array([self.slope_, self.center_]),
        }
        for i, m in enumerate(self.members_):
            meta, arr = m._get_state()
            metas.append(
                {"name": m.name, "params": m.get_params(), "state": meta, "devices": m.devices_}
            )
            arrays.update({f"m{i}.{k}": v for k, v in arr.items()})
        return {"members": metas}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = arrays["weights"]
        # files written before calibration existed carry no offset
        self.offset_ = float(arrays["offset"][0]) if "offset" in arrays else 0.0
        # files written before the log-linear calibration carry an offset only
        cal = arrays.get("calibration", np.zeros(2))
        self.slope_, self.center_ = float(cal[0]), float(cal[1])
        self.members_ = []
        for i, mm in enumerate(meta["members"]):
            m = PREDICTORS.get(str(mm["name"]))(**mm["params"])
            m.space_ = self.space_
            m.devices_ = [str(d) for d in mm["devices"]]
            m.floor_ms_ = float(getattr(self, "floor_ms_", 0.0))
            prefix = f"m{i}."
            m._set_state(
                mm["state"],
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)},
            )
            self.members_.append(m)


_PAIRS_HIER: dict[str, Any] = {"features": "pairs", "hierarchical": True}
DEFAULT_MEMBERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("ridge", dict(_PAIRS_HIER)),
    ("ridge", {**_PAIRS_HIER, "weighting": "relative"}),
    ("ridge", {**_PAIRS_HIER, "weighting": "relative", "loss": "huber"}),
    ("ridge", {**_PAIRS_HIER, "weighting": "relative", "cell": "effective"}),
    ("ridge", {**_PAIRS_HIER, "log_target": True, "cell": "effective"}),
    ("gbm", {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 4}),
    (
        "gbm",
        {
            "log_target": False,
            "linear_base": True,
            "n_estimators": 200,
            "learning_rate": 0.1,
            "max_depth": 3,
        },
    ),
)


@register("default")
class DefaultPredictor(EnsemblePredictor):
    """The recommended predictor: a CV-weighted ensemble (see the module docstring)."""

    def __init__(
        self,
        members: Sequence[MemberSpec] = DEFAULT_MEMBERS,
        weights: str = "cv",
        cv: int = 3,
        random_state: int = 0,
        stack_loss: str = "huber",
        calibrate: bool = True,
        rank_hedge: bool = True,
    ) -> None:
        super().__init__(
            members=members,
            weights=weights,
            cv=cv,
            random_state=random_state,
            stack_loss=stack_loss,
            calibrate=calibrate,
            rank_hedge=rank_hedge,
        )
