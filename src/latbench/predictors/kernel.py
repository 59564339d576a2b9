"""nn-Meter style kernel-level predictor: model latency = sum of fused-kernel latencies.

nn-Meter (Zhang et al., MobiSys 2021) splits a model into the kernels a mobile runtime really
executes (conv+bn+relu fused, depthwise conv, add, pooling, fc, ...) and predicts each kernel
with a regressor of its own type; the model latency is the sum. latbench does the same with
:func:`latbench.predictors.encodings.kernel_features` and offers two ways to train:

* :meth:`KernelPredictor.fit_kernels` -- from **per-operator profiles** (nn-Meter's way): one
  row per measured kernel (its feature dict and its time). One random forest per kernel type on
  ``hw, cin, cout, kernel, stride, flops, params`` (log-latency target), plus a forest over all
  kernels (type one-hot added) for types the profiles never showed.
  :func:`kernels_from_profile` turns a measurement's ``per_op`` rows into such rows.
* :meth:`KernelPredictor.fit` -- from **model latencies** only: each kernel type ``t`` gets a
  non-negative linear cost ``w_t . [1, MFLOPs, Mparams, M elements moved]``, and a shared term
  covers all kernels, so the model latency is linear in per-type sums of those features;
  non-negative least squares fits it. The result is additive and interpretable: per-kernel
  latencies are available from :meth:`KernelPredictor.predict_kernels`.

Because it reads graphs, it predicts imported ONNX models (``space="graph"``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from latbench.errors import PredictorError, UnknownNameError
from latbench.predictors import _trees
from latbench.predictors import encodings as enc
from latbench.predictors.base import DEFAULT_DEVICE, Predictor, register
from latbench.spaces import Graph

log = logging.getLogger(__name__)

_ANY = "*"


def _basis(kernels: Sequence[dict[str, Any]]) -> np.ndarray:
    """``(K, 4)``: 1, MFLOPs, Mparams, M elements read + written."""
    k = enc.kernel_matrix(kernels)
    hw, cin, cout, stride = k[:, 0], k[:, 1], k[:, 2], np.maximum(k[:, 4], 1.0)
    elems = hw * hw * cin + (hw / stride) ** 2 * cout
    return np.stack([np.ones(len(k)), k[:, 5] / 1e6, k[:, 6] / 1e6, elems / 1e6], axis=1)


def check_kernels(kernels: Sequence[Any]) -> None:
    """Each kernel a mapping with a ``type`` and the numeric fields of
    :func:`latbench.predictors.encodings.kernel_features`; else a PredictorError naming it."""
    need = ("type", *enc.KERNEL_NUMERIC)
    for i, k in enumerate(kernels):
        missing = [f for f in need if not isinstance(k, Mapping) or f not in k]
        if missing:
            raise PredictorError(
                f"kernels[{i}] lacks {', '.join(missing)}; expected the fields of "
                f"encodings.kernel_features(graph): {', '.join(need)}"
            )
        # the forests read log1p of these: a string is a ValueError deep in numpy, and a NaN or
        # a negative size becomes a NaN feature that trains (and predicts) garbage silently
        for f in enc.KERNEL_NUMERIC:
            v = k[f]
            ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            if not ok or not np.isfinite(float(v)) or float(v) < 0:
                raise PredictorError(
                    f"kernels[{i}][{f!r}] = {v!r}; expected a finite number >= 0 (the fields of "
                    "encodings.kernel_features(graph))"
                )


def kernels_from_profile(
    graph: Graph, per_op: Sequence[dict[str, Any]]
) -> list[tuple[dict[str, Any], float]]:
    """Match per-operator profile rows (``name``, ``time_ms``) to the fused kernels of ``graph``.

    A row belongs to the kernel that contains the node of the same name (or the longest node
    name the row name starts with: runtimes add suffixes). Rows of no node (the runtime's own
    bookkeeping) are skipped, but a profile none of whose rows names a node of ``graph`` is
    refused: it is the profile of another model (or of a model whose node names the runtime
    rewrote), and an empty result would only surface later as "cannot fit on 0 kernels".
    The time of a kernel is the sum of its rows. Kernels no row matched, or whose time sums to
    0 ms (below the runtime's timer resolution), are left out: the forests learn log-latency.
    A negative or non-finite time is refused, naming the row.
    """
    if per_op is None:
        raise PredictorError(
            "the measurement has no per-operator profile; measure with per_op=True "
            "(`latbench measure --per-op`)"
        )
    kernels = enc.kernel_features(graph)
    owner: dict[str, int] = {}
    for i, k in enumerate(kernels):
        for n in k["nodes"]:
            owner[n] = i
    names = sorted(owner, key=len, reverse=True)
    times = np.zeros(len(kernels))
    seen = np.zeros(len(kernels), dtype=bool)
    rows = list(per_op)
    for r, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise PredictorError(
                f"per_op[{r}] = {row!r:.80}; expected a mapping with 'name' and 'time_ms' "
                "(a row of Measurement.per_op)"
            )
        name = str(row.get("name", ""))
        hit = owner.get(name)
        if hit is None:
            hit = next((owner[n] for n in names if name.startswith(n)), None)
        if hit is None:
            continue
        try:
            t = float(row["time_ms"])
        except (KeyError, TypeError, ValueError):
            raise PredictorError(
                f"per-operator row {dict(row)!r}; expected a 'time_ms' number"
            ) from None
        if not np.isfinite(t) or t < 0:
            raise PredictorError(
                f"per_op[{r}] (operator {name!r}) has time_ms = {t!r}; expected a finite "
                "number of milliseconds >= 0"
            )
        times[hit] += t
        seen[hit] = True
    if rows and not seen.any():
        got = ", ".join(repr(str(row.get("name", ""))) for row in rows[:5])
        want = ", ".join(repr(n) for n in list(owner)[:5])
        raise PredictorError(
            f"no per-operator row names a node of the graph: rows {got}"
            f"{', ...' if len(rows) > 5 else ''}; expected names starting with a node name such "
            f"as {want}{', ...' if len(owner) > 5 else ''} (profile the model emitted from this "
            "graph)"
        )
    return [(kernels[i], float(times[i])) for i in range(len(kernels)) if seen[i] and times[i] > 0]


def fit_calibration(kernel_sum: Any, n_kernels: Any, latency_ms: Any) -> tuple[float, float]:
    """``(scale, per_kernel_ms)`` with ``latency ~ scale * kernel_sum + per_kernel_ms *
    n_kernels``, least squares over the profiled models: the profiler's cost per operator and
    the runtime's work between them (``benchmarks/bench_kernel_profiles.py``, seed 0: MAPE 7.4 %
    on 30 test models, 18.2 % with the median ratio alone). Fewer than 3 models, one kernel
    count for all, or a fit whose scale is not positive: the median ratio alone."""
    s = np.asarray(kernel_sum, dtype=np.float64)
    n = np.asarray(n_kernels, dtype=np.float64)
    y = np.asarray(latency_ms, dtype=np.float64)
    ratio = float(np.median(y / s))
    if len(y) < 3 or np.ptp(n) == 0:
        return ratio, 0.0
    (scale, per_kernel), *_ = np.linalg.lstsq(np.c_[s, n], y, rcond=None)
    if not (np.isfinite(scale) and scale > 0 and np.isfinite(per_kernel)):
        return ratio, 0.0
    return float(scale), float(per_kernel)


@register("kernel")
class KernelPredictor(Predictor):
    """Sum of per-kernel-type regressors (see the module docstring)."""

    accepts_graphs = True

    def __init__(self, n_estimators: int = 100, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.random_state = random_state

    mode_: str
    types_: list[str]
    weights_: np.ndarray
    forests_: dict[str, dict[str, np.ndarray]]

    # ---- model-level training ----------------------------------------------------------------
    def _arch_kernels(self, archs: list[Any], space: str) -> list[Sequence[dict[str, Any]]]:
        return [enc.arch_kernels(space, a) for a in archs]

    def _design(self, kernel_lists: list[Sequence[dict[str, Any]]], types: list[str]) -> np.ndarray:
        col = {t: i for i, t in enumerate(types)}
        x = np.zeros((len(kernel_lists), len(types), 4))
        for r, ks in enumerate(kernel_lists):
            if not ks:
                continue
            b = _basis(ks)
            x[r, col[_ANY]] += b.sum(axis=0)
            for k, row in zip(ks, b, strict=True):
                j = col.get(k["type"])
                if j is not None:
                    x[r, j] += row
        return x.reshape(len(kernel_lists), -1)

    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        from scipy.optimize import nnls

        kl = self._arch_kernels(archs, space)
        self.types_ = [_ANY, *sorted({k["type"] for ks in kl for k in ks})]
        x = self._design(kl, self.types_)
        scale = x.max(axis=0)
        scale[scale <= 0] = 1.0
        w, _ = nnls(x / scale, y_ms, maxiter=50 * x.shape[1])
        self.weights_ = (w / scale).reshape(len(self.types_), 4)
        self.forests_ = {}
        self.mode_ = "model"
        if space == enc.GRAPH_SPACE:
            # the kernels are at hand: Predictor.fit would extract them again
            self.graph_coverage_ = enc.kernel_coverage([k for ks in kl for k in ks])

    # ---- kernel-level training -----------------------------------------------------------------
    def fit_kernels(
        self,
        kernels: Sequence[dict[str, Any]],
        latency_ms: Any,
        *,
        space: str,
        device: str | None = None,
    ) -> Self:
        """Train from per-kernel measurements (``kernels[i]`` took ``latency_ms[i]`` ms).

        ``space`` is the space of the architectures the predictor will be asked about
        (``"graph"`` for Graphs). Returns ``self``.
        """
        from sklearn.ensemble import RandomForestRegressor

        check_kernels(kernels)
        y = self._check_target(latency_ms, len(kernels), what="kernels")
        if space != enc.GRAPH_SPACE:
            # fit() validates its space through the architectures; here only the name is
            # given, and a typo would surface at predict time as a confusing architecture error
            try:
                enc.space(space)
            except (UnknownNameError, TypeError):
                raise PredictorError(
                    f"space={space!r}; expected {enc.GRAPH_SPACE!r} (Graphs, imported models) "
                    "or the name of a search space"
                ) from None
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        types = sorted({str(k["type"]) for k in kernels})
        self.types_ = [_ANY, *types]
        self.forests_ = {}
        x_all = self._kernel_x(kernels, types)
        for t in self.types_:
            rows = (
                np.arange(len(kernels))
                if t == _ANY
                else np.array([i for i, k in enumerate(kernels) if k["type"] == t])
            )
            x = x_all[rows] if t == _ANY else enc.kernel_matrix([kernels[i] for i in rows])
            rf = RandomForestRegressor(
                n_estimators=int(self.n_estimators),
                random_state=int(self.random_state),
                min_samples_leaf=1,
                n_jobs=1,
            )
            try:
                rf.fit(np.log1p(x), np.log(y[rows]))
            except ValueError as exc:
                # scikit-learn checks its settings at fit time (n_estimators=0): a usage error
                # naming the setting and its range, as Predictor.fit reports it
                if type(exc).__name__ != "InvalidParameterError":
                    raise
                raise PredictorError(f"kernel: {exc}") from None
            self.forests_[t] = _trees.pack([e.tree_ for e in rf.estimators_])
        self.weights_ = np.zeros((len(self.types_), 4))
        self.mode_ = "kernels"
        self.space_ = space
        self.devices_ = [device or DEFAULT_DEVICE]
        self.floor_ms_ = 0.0
        if space == enc.GRAPH_SPACE:
            self.graph_coverage_ = enc.kernel_coverage(kernels)
        return self

    def _kernel_x(self, kernels: Sequence[dict[str, Any]], types: list[str]) -> np.ndarray:
        base = enc.kernel_matrix(kernels)
        onehot = np.array([[float(k["type"] == t) for t in types] for k in kernels]).reshape(
            len(kernels), len(types)
        )
        return np.hstack([base, onehot])

    # ---- prediction ------------------------------------------------------------------------------
    def predict_kernels(self, kernels: Sequence[dict[str, Any]]) -> np.ndarray:
        """Predicted latency (ms) of each kernel."""
        self._check_fitted()
        check_kernels(kernels)
        return self._kernel_times(kernels)

    def calibrate(self, scale: float, per_kernel_ms: float = 0.0) -> Self:
        """Map each kernel's predicted time ``t`` to ``max(0, scale * t + per_kernel_ms)``.

        Profiled kernel times do not sum to a model's end-to-end latency: the profiler costs
        time per operator, and the runtime works between operators. Both are fitted on
        profiled models (``latbench predictor fit-kernels``: least squares of the measured
        latency on the kernel sum and the number of kernels), which puts the predictions in
        end-to-end milliseconds. ``scale`` must be > 0. Only a predictor trained on kernels
        (:meth:`fit_kernels`) is calibrated: one fitted on model latencies predicts them already.
        Returns ``self``.
        """
        self._check_fitted()
        if self.mode_ != "kernels":
            raise PredictorError(
                "kernel: calibrate() applies to a predictor trained on profiled kernels "
                "(fit_kernels); this one was fitted on model latencies, which it predicts"
            )
        self._set_calibration(scale, per_kernel_ms)
        return self

    def _set_calibration(self, scale: Any, per_kernel_ms: Any) -> None:
        for name, v, positive in (("scale", scale, True), ("per_kernel_ms", per_kernel_ms, False)):
            ok = isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
            if not ok or (positive and v <= 0):
                want = "a finite number > 0" if positive else "a finite number of ms"
                raise PredictorError(f"kernel: {name} = {v!r}; expected {want}")
        self.scale_ = float(scale)
        self.per_kernel_ms_ = float(per_kernel_ms)

    def _kernel_times(self, kernels: Sequence[dict[str, Any]]) -> np.ndarray:
        """:meth:`predict_kernels` of kernels known to be well formed (the graph's own)."""
        raw = self._raw_kernel_times(kernels)
        scale = float(getattr(self, "scale_", 1.0))
        extra = float(getattr(self, "per_kernel_ms_", 0.0))
        if scale == 1.0 and extra == 0.0:
            return raw
        return np.maximum(raw * scale + extra, 0.0)

    def _raw_kernel_times(self, kernels: Sequence[dict[str, Any]]) -> np.ndarray:
        if not kernels:
            return np.zeros(0)
        if self.mode_ == "model":
            b = _basis(kernels)
            col = {t: i for i, t in enumerate(self.types_)}
            out = b @ self.weights_[col[_ANY]]
            for i, k in enumerate(kernels):
                j = col.get(k["type"])
                if j is not None:
                    out[i] += b[i] @ self.weights_[j]
            return np.asarray(out)
        out = np.zeros(len(kernels))
        known = [t for t in self.types_ if t != _ANY]
        by_type: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_type.setdefault(str(k["type"]) if k["type"] in self.forests_ else _ANY, []).append(i)
        for t, rows in by_type.items():
            sub = [kernels[i] for i in rows]
            x = self._kernel_x(sub, known) if t == _ANY else enc.kernel_matrix(sub)
            if t == _ANY:
                log.debug(
                    "kernel types %s unseen in training; using the all-kernel forest",
                    sorted({k["type"] for k in sub}),
                )
            forest = self.forests_[t]
            out[rows] = np.exp(_trees.tree_sum(forest, np.log1p(x)) / forest["roots"].size)
        return out

    def _predict(self, archs: list[Any], device: str) -> tuple[np.ndarray, np.ndarray | None]:
        kl = self._arch_kernels(archs, self.space_)
        if self.mode_ == "model":
            pred = self._design(kl, self.types_) @ self.weights_.reshape(-1)
            return np.maximum(pred, 1e-6), None
        return np.array([self._kernel_times(ks).sum() for ks in kl]), None

    # ---- persistence ----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {"weights": self.weights_}
        for i, t in enumerate(self.types_):
            for key, arr in self.forests_.get(t, {}).items():
                arrays[f"forest{i}_{key}"] = arr
        meta: dict[str, Any] = {
            "mode": self.mode_,
            "types": self.types_,
            "forests": sorted(self.forests_),
        }
        # left out when not calibrated: such files read alike in older latbench
        if getattr(self, "scale_", 1.0) != 1.0 or getattr(self, "per_kernel_ms_", 0.0) != 0.0:
            meta["calibration"] = {"scale": self.scale_, "per_kernel_ms": self.per_kernel_ms_}
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.mode_ = str(meta["mode"])
        self.types_ = [str(t) for t in meta["types"]]
        self.weights_ = arrays["weights"]
        have = set(meta.get("forests", []))
        self.forests_ = {
            t: {k: arrays[f"forest{i}_{k}"] for k in _trees.FOREST_KEYS}
            for i, t in enumerate(self.types_)
            if t in have
        }
        cal = meta.get("calibration")
        if cal is not None:
            if not isinstance(cal, dict):
                raise PredictorError(f"kernel: calibration {cal!r} in file; expected a table")
            self._set_calibration(cal.get("scale"), cal.get("per_kernel_ms", 0.0))
        if self.mode_ not in ("model", "kernels"):
            raise PredictorError(
                f"kernel: unknown mode {self.mode_!r} in file; expected model or kernels"
            )
