"""Tabular predictors: ``flops`` (the proxy baseline), ``ridge``, ``gbm`` and ``rf``.

They read a fixed-width feature matrix (:mod:`latbench.predictors.encodings`):

* ``"onehot"`` -- one indicator per (position, choice);
* ``"rich"`` -- one-hot + op counts + live-op counts + log MACs / params / memory;
* ``"pairs"`` -- rich + pairwise (position, choice) interactions + NAS-Bench-201 cell topology
  (:func:`latbench.predictors.encodings.pair_features`);
* ``"stats"`` -- MACs, parameters and activation memory only (also for Graph inputs).

``cell="effective"`` (ridge, gbm, rf) computes them on the effective, isomorphism-canonical
cell instead (:func:`latbench.predictors.encodings.canonical_cells`): what a runtime that
prunes dead branches executes (the nn-Meter, oneproxy and latbench-collected columns);
``cell="twins"`` only merges isomorphic twins.

scikit-learn fits them; what is kept is plain arrays (coefficients, tree node arrays), so saved
files do not depend on the scikit-learn version (see :mod:`latbench.predictors.persist`).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from latbench._validate import expected_number
from latbench.errors import PredictorError
from latbench.predictors import _trees
from latbench.predictors import encodings as enc
from latbench.predictors.base import GRAPH_SPACE, Predictor, register

FEATURE_KINDS = ("onehot", "rich", "pairs", "stats")
#: ridge penalties tried by ``alpha="cv"`` (on standardised features)
CV_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
#: ``weighting`` of the linear models: "relative" = weights 1 / fitted^2 (relative errors)
WEIGHTINGS = ("none", "relative")
#: ``loss`` of the linear models: "huber" = Huber weights on the (relative) residuals
LOSSES = ("squared", "huber")
#: reweighting passes of the relative / Huber fits (iteratively reweighted least squares)
IRLS_ITERS = 3
#: Huber threshold in robust standard deviations (1.4826 x MAD) of the residuals
HUBER_K = 1.345
#: relative weights: fitted values are floored at this share of the median training latency
RELATIVE_FLOOR = 0.1


#: ``cell`` settings of the tabular models (see :func:`cells`)
CELLS = ("raw", "twins", "effective")

_SHARED: list[dict[tuple[str, str, int], tuple[list[Any], np.ndarray, list[Any]]]] = []


@contextmanager
def shared_features() -> Iterator[None]:
    """Within this block, :func:`features` of one ``archs`` list are computed once.

    An ensemble's members read the same architectures, often with the same encoding; the cache
    is keyed by the list's identity (it holds a reference, so the id cannot be reused) and is
    dropped when the block ends, so a list changed afterwards is never served stale features.
    """
    _SHARED.append({})
    try:
        yield
    finally:
        _SHARED.pop()


def cells(cell: str, space: str, archs: list[Any]) -> list[Any]:
    """``archs`` as the model reads them: ``"raw"``, ``"twins"`` merged or ``"effective"``.

    ``"effective"`` / ``"twins"``: :func:`latbench.predictors.encodings.canonical_cells` with
    and without pruning (shared within :func:`shared_features`, like the features).
    """
    if cell not in CELLS:
        raise PredictorError(f"cell={cell!r}; expected one of {', '.join(CELLS)}")
    if space == GRAPH_SPACE or (cell == "raw" and not _SHARED):
        return archs
    key = ("cells:" + cell, space, id(archs))
    if _SHARED:
        hit = _SHARED[-1].get(key)
        if hit is not None and hit[0] is archs:
            return hit[2]
    if cell == "raw":  # shared: parse once, every member's encoding reads the op matrix
        out: list[Any] = enc.CellList(space, list(archs), enc.op_matrix(space, archs))
    else:
        out = enc.canonical_cells(space, archs, prune=cell == "effective")
    if _SHARED:
        _SHARED[-1][key] = (archs, np.zeros(0), out)
    return out


def features(kind: str, space: str, archs: list[Any]) -> np.ndarray:
    """The feature matrix ``kind`` of ``archs`` (see the module docstring)."""
    if _SHARED:
        key = (kind, space, id(archs))
        hit = _SHARED[-1].get(key)
        if hit is not None and hit[0] is archs:
            return hit[1]
        x = _features(kind, space, archs)
        _SHARED[-1][key] = (archs, x, [])
        return x
    return _features(kind, space, archs)


def _features(kind: str, space: str, archs: list[Any]) -> np.ndarray:
    if kind not in FEATURE_KINDS:
        raise PredictorError(f"features={kind!r}; expected one of {', '.join(FEATURE_KINDS)}")
    if kind == "stats":
        return enc.graph_stats(space, archs) / np.array([1e6, 1e6, 1e6])
    if space == GRAPH_SPACE:
        raise PredictorError(f"features={kind!r} needs search-space architectures, not graphs")
    if kind == "onehot":
        return enc.onehot(space, archs)
    if kind == "pairs":
        return enc.pair_features(space, archs, rich=features("rich", space, archs))
    return enc.rich_features(space, archs)


class _Tabular(Predictor):
    """Shared plumbing: features, log target, feature-count check."""

    features: str
    log_target: bool
    n_features_in_: int

    def _x(self, archs: list[Any], space: str) -> np.ndarray:
        x = features(self.features, space, cells(str(getattr(self, "cell", "raw")), space, archs))
        if hasattr(self, "n_features_in_") and x.shape[1] != self.n_features_in_:
            raise PredictorError(
                f"{self.name}: features of width {x.shape[1]}; the model was fitted on "
                f"{self.n_features_in_}"
            )
        return x

    def _number(self, key: str, *, integer: bool, none: bool = False) -> Any:
        """Setting ``key`` as the int or float scikit-learn is given (None passes where
        ``none``); a value of another type is a :class:`PredictorError` naming it. Ranges are
        scikit-learn's to check (its message names the range)."""
        value = getattr(self, key)
        if value is None and none:
            return None
        want = expected_number(value, integer=integer)
        if want is not None:
            raise PredictorError(
                f"{self.name}: {key}={value!r}; expected {want}{' or None' if none else ''}"
            )
        return int(value) if integer else float(value)

    def _y(self, y_ms: np.ndarray) -> np.ndarray:
        return np.log(y_ms) if self.log_target else y_ms

    def _out(self, z: np.ndarray) -> np.ndarray:
        return np.exp(z) if self.log_target else z

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Predict (ms) from an already computed feature matrix; checks its shape. Clamped to
        the fitted floor (half the fastest training latency), as ``predict`` is."""
        self._check_fitted()
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise PredictorError(
                f"{self.name}: features are not numbers; expected a float matrix"
            ) from None
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise PredictorError(
                f"{self.name}: features of shape {x.shape}; expected (n, {self.n_features_in_})"
            )
        if not np.isfinite(x).all():
            raise PredictorError(f"{self.name}: features hold NaN or inf; expected finite values")
        return np.maximum(self._out(self._raw(x)), float(getattr(self, "floor_ms_", 0.0)))

    def _raw(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _predict(self, archs: list[Any], device: str) -> tuple[np.ndarray, np.ndarray | None]:
        return self.predict_features(self._x(archs, self.space_)), None


class _Linear(_Tabular):
    alpha: float | str
    alpha_: float
    coef_: np.ndarray
    intercept_: float
    mean_: np.ndarray
    scale_: np.ndarray

    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        x = self._x(archs, space)
        self.n_features_in_ = x.shape[1]
        self.mean_ = x.mean(axis=0)
        sd = x.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        y = self._y(y_ms)
        weighting = str(getattr(self, "weighting", "none"))
        loss = str(getattr(self, "loss", "squared"))
        if weighting not in WEIGHTINGS:
            raise PredictorError(
                f"{self.name}: weighting={weighting!r}; expected one of {', '.join(WEIGHTINGS)}"
            )
        if loss not in LOSSES:
            raise PredictorError(f"{self.name}: loss={loss!r}; expected one of {', '.join(LOSSES)}")
        if weighting == "relative" and self.log_target:
            raise PredictorError(
                f"{self.name}: weighting='relative' with log_target=True; a log target already "
                "weighs errors relatively (expected log_target=False)"
            )
        k = 0  # hierarchical: width of the one-hot block fitted first
        if getattr(self, "hierarchical", False):
            k = enc.onehot(space, []).shape[1] if space != GRAPH_SPACE else 0
            if self.features not in ("rich", "pairs") or k == 0:
                raise PredictorError(
                    f"{self.name}: hierarchical=True needs features 'rich' or 'pairs' (one-hot "
                    f"first), got features={self.features!r} on space {space!r}"
                )
            self.mean_ = np.zeros(x.shape[1])
            self.scale_ = np.ones(x.shape[1])
        elif not (
            self.alpha == "cv"
            or (isinstance(self.alpha, numbers.Real) and not isinstance(self.alpha, bool))
        ):
            raise PredictorError(f"{self.name}: alpha={self.alpha!r}; expected a number or 'cv'")
        xs = (x - self.mean_) / self.scale_
        if weighting == "none" and loss == "squared":
            self._solve(xs, y, None, None, k)
            return
        # iteratively reweighted least squares: relative errors (weights 1 / fitted^2) and/or
        # Huber weights; the penalties are chosen by leave-one-out on the first (unweighted)
        # pass and kept (weights are normalised to mean 1, so their scale does not move them)
        sw = np.ones(len(y))
        alphas = None
        # relative weights use the fitted value floored at a tenth of the median latency: rows
        # far below the bulk (pixel3 cells with no input-output path, ~0.003 ms) would
        # otherwise take all the weight from an additive model that cannot fit them
        floor = RELATIVE_FLOOR * float(np.median(y))
        for it in range(IRLS_ITERS + 1):
            alphas = self._solve(xs, y, None if it == 0 else sw, alphas, k)
            if it == IRLS_ITERS:
                break
            fitted = xs @ self.coef_ + self.intercept_
            resid = y - fitted
            if weighting == "relative":
                fitted = np.maximum(fitted, floor)
                resid = resid / fitted
            w = np.ones(len(y))
            if loss == "huber":
                mad = float(np.median(np.abs(resid - np.median(resid))))
                scale = 1.4826 * mad + 1e-12
                w = np.minimum(1.0, HUBER_K * scale / np.maximum(np.abs(resid), 1e-300))
            if weighting == "relative":
                w = w / fitted**2
            sw = w / w.mean()

    def _solve(
        self,
        xs: np.ndarray,
        y: np.ndarray,
        sw: np.ndarray | None,
        alphas: tuple[float, float] | None,
        k: int,
    ) -> tuple[float, float]:
        """One (weighted) ridge fit; ``alphas`` fixed, or chosen by leave-one-out when None.

        ``k > 0``: hierarchical (the first ``k`` columns are the one-hot block). Returns the
        penalties used, so that reweighting passes can keep them.
        """
        if k:
            return self._fit_hierarchical(xs, y, k, sw, alphas)
        from sklearn.linear_model import Ridge, RidgeCV

        if alphas is not None:
            alpha = alphas[0]
        elif self.alpha == "cv":
            # efficient leave-one-out over CV_ALPHAS: the penalty that generalises best
            alpha = float(RidgeCV(alphas=CV_ALPHAS).fit(xs, y, sample_weight=sw).alpha_)
        else:
            alpha = float(self.alpha)
        model = Ridge(alpha=alpha).fit(xs, y, sample_weight=sw)
        self.alpha_ = alpha
        self.coef_ = np.asarray(model.coef_, dtype=np.float64)
        self.intercept_ = float(model.intercept_)
        return (alpha, alpha)

    def _fit_hierarchical(
        self,
        x: np.ndarray,
        y: np.ndarray,
        k: int,
        sw: np.ndarray | None = None,
        alphas: tuple[float, float] | None = None,
    ) -> tuple[float, float]:
        """One-hot main effects first, then every other feature on their residuals.

        Both stages are ridge regressions on the raw (unstandardised) indicators with the
        penalty chosen by leave-one-out (:data:`CV_ALPHAS`). Where the measurements are mostly
        noise (whole-ms phone columns, batch-32 GPU columns) the second stage is shrunk to
        nothing and the model *is* the one-hot ridge; where interactions are real (CPUs, DSPs)
        the second stage captures them. The result is a single linear model on ``x``.
        """
        from sklearn.linear_model import Ridge, RidgeCV

        if alphas is None:
            first: Any = RidgeCV(alphas=CV_ALPHAS).fit(x[:, :k], y, sample_weight=sw)
            resid = y - first.predict(x[:, :k])
            second: Any = RidgeCV(alphas=CV_ALPHAS).fit(x, resid, sample_weight=sw)
            alphas = (float(first.alpha_), float(second.alpha_))
        else:
            first = Ridge(alpha=alphas[0]).fit(x[:, :k], y, sample_weight=sw)
            resid = y - first.predict(x[:, :k])
            second = Ridge(alpha=alphas[1]).fit(x, resid, sample_weight=sw)
        coef = np.asarray(second.coef_, dtype=np.float64).copy()
        coef[:k] += np.asarray(first.coef_, dtype=np.float64)
        self.coef_ = coef
        self.intercept_ = float(first.intercept_) + float(second.intercept_)
        self.alpha_ = alphas[1]
        return alphas

    def _raw(self, x: np.ndarray) -> np.ndarray:
        # ((x - mean) / scale) @ coef + intercept, without the (N, F) temporaries
        w = self.coef_ / self.scale_
        out: np.ndarray = x @ w + (self.intercept_ - float(self.mean_ @ w))
        return out

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return (
            {
                "intercept": self.intercept_,
                "n_features_in": self.n_features_in_,
                "alpha": self.alpha_,
            },
            {"coef": self.coef_, "mean": self.mean_, "scale": self.scale_},
        )

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.intercept_ = float(meta["intercept"])
        self.n_features_in_ = int(meta["n_features_in"])
        self.alpha_ = float(meta.get("alpha", np.nan))
        self.coef_, self.mean_, self.scale_ = arrays["coef"], arrays["mean"], arrays["scale"]


@register("flops")
class FlopsPredictor(_Linear):
    """Latency linear in MACs, parameters and activation memory: the proxy baseline.

    What users compare a learned predictor with ("just use FLOPs"). Accepts Graphs, so it also
    predicts imported ONNX models.
    """

    accepts_graphs = True
    features = "stats"  # fixed, not a setting

    def __init__(self, alpha: float = 1e-6, log_target: bool = False) -> None:
        self.alpha = alpha
        self.log_target = log_target


@register("ridge")
class RidgePredictor(_Linear):
    """Ridge regression, by default on the one-hot encoding (the ten-line baseline).

    ``alpha="cv"`` picks the penalty from :data:`CV_ALPHAS` by leave-one-out error (closed form
    in scikit-learn's ``RidgeCV``, as cheap as one fit): needed for the wide ``"pairs"``
    features, where too little penalty overfits measurement noise. ``hierarchical=True`` fits
    the one-hot main effects first and the other features on the residuals (both penalties by
    leave-one-out; see :meth:`_fit_hierarchical`); it ignores ``alpha``.

    ``weighting="relative"`` (raw-ms target only) minimises squared *relative* errors: latency
    noise is multiplicative (a 5 % jitter on a 30 ms cell is 1.5 ms, on a 3 ms cell 0.15 ms), so
    a least-squares fit on raw ms is dominated by the slow cells and biased for the fast ones,
    while +-10 % accuracy weighs every cell alike. The model stays additive in ms (what GPUs and
    CPUs are), unlike a log target. ``loss="huber"`` down-weights outlier measurements (Huber
    weights on the residuals, threshold :data:`HUBER_K` robust standard deviations). Both are
    fitted by iteratively reweighted least squares (:data:`IRLS_ITERS` reweighted passes after
    an unweighted one, whose leave-one-out penalties they keep).
    """

    def __init__(
        self,
        alpha: float | str = 1.0,
        features: str = "onehot",
        log_target: bool = False,
        hierarchical: bool = False,
        weighting: str = "none",
        loss: str = "squared",
        cell: str = "raw",
    ) -> None:
        self.alpha = alpha
        self.features = features
        self.log_target = log_target
        self.hierarchical = hierarchical
        self.weighting = weighting
        self.loss = loss
        self.cell = cell


def check_forest(forest: dict[str, np.ndarray], n_features: int) -> None:
    """Refuse tree arrays that do not form trees over ``n_features`` features.

    The trees are walked by compiled code (scikit-learn's) that trusts its node records: a
    child or feature index out of range would read outside the arrays, and a child that
    points back up a tree would loop for ever. So every array is one-dimensional, of one
    length and kind; ``roots`` start at 0 and increase; an inner node's children lie after it
    and within its own tree; a leaf has no children; an inner node's feature is in
    ``[0, n_features)``; thresholds and leaf values are finite.
    """
    ints = ("left", "right", "feature", "roots")
    for key, arr in forest.items():
        kind = "iu" if key in ints else "fiu"
        if arr.ndim != 1 or arr.dtype.kind not in kind:
            raise PredictorError(
                f"forest_{key} of shape {arr.shape} ({arr.dtype}); expected a 1-d array of "
                f"{'integers' if key in ints else 'numbers'}"
            )
    left, right, roots = forest["left"], forest["right"], forest["roots"]
    n = left.size
    for key in ("right", "feature", "threshold", "value"):
        if forest[key].size != n:
            raise PredictorError(
                f"forest_{key} holds {forest[key].size} nodes; forest_left holds {n}"
            )
    if n_features < 1:
        raise PredictorError(f"n_features_in = {n_features}; expected at least 1")
    if roots.size == 0 or roots[0] != 0 or (np.diff(roots) <= 0).any() or roots[-1] >= n:
        raise PredictorError(
            f"forest_roots = {roots.tolist()!r:.80}; expected increasing node indices from 0, "
            f"each below the {n} nodes"
        )
    idx = np.arange(n)
    end = np.append(roots, n)[np.searchsorted(roots, idx, side="right")]  # end of each tree
    inner = left >= 0
    bad = np.flatnonzero(
        (inner & ((left <= idx) | (left >= end) | (right <= idx) | (right >= end)))
        | (~inner & ((left != -1) | (right != -1)))
        | (inner & ((forest["feature"] < 0) | (forest["feature"] >= n_features)))
        | ~np.isfinite(forest["threshold"])
        | ~np.isfinite(forest["value"])
    )
    if bad.size:
        i = int(bad[0])
        raise PredictorError(
            f"tree node {i} (left {int(left[i])}, right {int(right[i])}, feature "
            f"{int(forest['feature'][i])}, threshold {float(forest['threshold'][i])}, value "
            f"{float(forest['value'][i])}) is no node of a tree over {n_features} features "
            f"({bad.size} such node(s))"
        )


class _Forest(_Tabular):
    forest_: dict[str, np.ndarray]
    init_: float
    scale_out_: float
    base_coef_: np.ndarray | None

    def _raw(self, x: np.ndarray) -> np.ndarray:
        total = _trees.tree_sum(self.forest_, x)
        out: np.ndarray = self.init_ + self.scale_out_ * self._combine(total)
        if self.base_coef_ is not None:
            out = out + np.hstack([x, np.ones((x.shape[0], 1))]) @ self.base_coef_
        return out

    def _combine(self, total: np.ndarray) -> np.ndarray:
        """Combine the per-sample sum of the trees' leaf values."""
        raise NotImplementedError

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"forest_{k}": v for k, v in self.forest_.items()}
        if self.base_coef_ is not None:
            arrays["base_coef"] = self.base_coef_
        meta = {
            "init": self.init_,
            "scale_out": self.scale_out_,
            "n_features_in": self.n_features_in_,
        }
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        n_features = int(meta["n_features_in"])
        forest = {k: arrays[f"forest_{k}"] for k in _trees.FOREST_KEYS}
        check_forest(forest, n_features)
        base_coef = arrays.get("base_coef")
        if base_coef is not None and (
            base_coef.shape != (n_features + 1,) or base_coef.dtype.kind not in "fiu"
        ):
            raise PredictorError(
                f"base_coef of shape {base_coef.shape} ({base_coef.dtype}); expected "
                f"({n_features + 1},) numbers"
            )
        self.forest_ = forest
        self.base_coef_ = base_coef
        self.init_ = float(meta["init"])
        self.scale_out_ = float(meta["scale_out"])
        self.n_features_in_ = n_features

    def _base(self, x: np.ndarray, y: np.ndarray, use: bool) -> np.ndarray:
        """Optional least-squares base model the trees then correct (residual boosting)."""
        if not use:
            self.base_coef_ = None
            return np.zeros_like(y)
        from sklearn.linear_model import Ridge

        m = Ridge(alpha=1e-3).fit(x, y)
        self.base_coef_ = np.append(np.asarray(m.coef_, dtype=np.float64), float(m.intercept_))
        base: np.ndarray = np.hstack([x, np.ones((x.shape[0], 1))]) @ self.base_coef_
        return base


@register("gbm")
class GBMPredictor(_Forest):
    """Gradient-boosted trees (scikit-learn ``GradientBoostingRegressor``).

    Defaults: rich features and a log-latency target (relative errors matter, and latencies span
    an order of magnitude). ``linear_base=True`` first fits a linear model and boosts its
    residuals, which suits devices where latency is close to a sum of operator costs (GPUs).
    """

    def __init__(
        self,
        n_estimators: int = 600,
        learning_rate: float = 0.05,
        max_depth: int | None = 4,
        subsample: float = 0.8,
        features: str = "rich",
        log_target: bool = True,
        linear_base: bool = False,
        random_state: int = 0,
        cell: str = "raw",
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.features = features
        self.log_target = log_target
        self.linear_base = linear_base
        self.random_state = random_state
        self.cell = cell

    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        from sklearn.ensemble import GradientBoostingRegressor

        x = self._x(archs, space)
        self.n_features_in_ = x.shape[1]
        y = self._y(y_ms)
        base = self._base(x, y, bool(self.linear_base))
        learning_rate = self._number("learning_rate", integer=False)
        model = GradientBoostingRegressor(
            n_estimators=self._number("n_estimators", integer=True),
            learning_rate=learning_rate,
            max_depth=self._number("max_depth", integer=True, none=True),
            subsample=self._number("subsample", integer=False),
            random_state=self._number("random_state", integer=True),
        ).fit(x, y - base)
        self.forest_ = _trees.pack([e.tree_ for e in model.estimators_[:, 0]])
        self.init_ = float(np.asarray(model.init_.constant_).reshape(-1)[0])
        self.scale_out_ = learning_rate

    def _combine(self, total: np.ndarray) -> np.ndarray:
        return total


@register("rf")
class RFPredictor(_Forest):
    """Random forest (scikit-learn ``RandomForestRegressor``), nn-Meter's kernel regressor."""

    def __init__(
        self,
        n_estimators: int = 200,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        max_features: float | str | None = 0.5,
        features: str = "rich",
        log_target: bool = True,
        random_state: int = 0,
        cell: str = "raw",
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.features = features
        self.log_target = log_target
        self.random_state = random_state
        self.cell = cell

    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        from sklearn.ensemble import RandomForestRegressor

        x = self._x(archs, space)
        self.n_features_in_ = x.shape[1]
        # a number is the share of the features each split tries (1 = all of them, as 1.0);
        # None and scikit-learn's names ("sqrt", "log2") pass as they are
        max_features = self.max_features
        if max_features is not None and not isinstance(max_features, str):
            max_features = self._number("max_features", integer=False)
        model = RandomForestRegressor(
            n_estimators=self._number("n_estimators", integer=True),
            max_depth=self._number("max_depth", integer=True, none=True),
            min_samples_leaf=self._number("min_samples_leaf", integer=True),
            max_features=max_features,
            random_state=self._number("random_state", integer=True),
            n_jobs=1,
        ).fit(x, self._y(y_ms))
        self.forest_ = _trees.pack([e.tree_ for e in model.estimators_])
        self.base_coef_ = None
        self.init_ = 0.0
        self.scale_out_ = 1.0

    def _combine(self, total: np.ndarray) -> np.ndarray:
        out: np.ndarray = total / self.forest_["roots"].size
        return out
