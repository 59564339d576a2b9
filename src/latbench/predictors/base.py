"""The predictor interface, its registry, and the scikit-learn style helpers around it.

A latency predictor maps architectures to milliseconds on a device. Every predictor follows the
scikit-learn estimator contract (``sklearn/base.py``), so that users can treat it like any
estimator and so that :func:`clone`, grid searches and ensembles work without special cases:

* ``__init__`` stores keyword settings only (no validation, no work); :meth:`get_params` reads
  them back from the signature, :meth:`set_params` writes them;
* :meth:`Predictor.fit` returns ``self``; everything learned ends in ``_`` (``space_``,
  ``devices_``, ``n_features_in_`` ...);
* using a predictor before ``fit`` raises :class:`~latbench.errors.NotFittedError`;
* :meth:`Predictor.adapt` returns a *fitted copy* and leaves the original untouched.

Inputs
------
``archs`` are canonical architecture strings of one search space (``space="nb201"``,
``"fbnet"``, ...), or :class:`latbench.spaces.Graph` objects with ``space="graph"`` for the models
that read graphs (``flops``, ``kernel``, ``gcn``): that is how imported ONNX models are predicted.
An architecture of another space than the one a predictor was fitted on is an
:class:`~latbench.errors.ArchError`.

Devices
-------
Single-device predictors are fitted on the latencies of one device: ``fit(..., devices=None)``
(``devices_ == ["default"]``) or ``devices`` all equal to one name (``devices_ == [name]``).
Multi-device predictors (``multi_device = True``: ``gcn``, ``ensemble`` of multi-device members)
take the data in long format, one row per (architecture, device), with ``devices[i]`` naming the
device of row ``i``; the device is an input of the model. ``predict(archs, device=d)`` then
predicts for any ``d`` in ``devices_``; ``device=None`` is allowed only when the model knows a
single device. Asking for another device is a :class:`~latbench.errors.PredictorError` naming the
known ones.

Few-shot adaptation (``latbench.predictors.adapt``) uses the public API only: it may call
``predict(archs, device=d)`` for every ``d`` in ``devices_`` to describe a new device by its
correlation with the known ones, :meth:`Predictor.device_embedding` (multi-device models: the
learned vector of a known device), and :meth:`Predictor.predict_for_descriptor` (predict with an
arbitrary device embedding, e.g. a weighted mix of known ones).

Scoring
-------
:meth:`Predictor.score` is the Spearman rank correlation between measured and predicted
latency, not R^2: the point of a latency predictor in NAS is to rank architectures, and Spearman
is what BRP-NAS, HELP and nn-Meter report. All metrics are in :mod:`latbench.predictors.metrics`.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from latbench._registry import Registry
from latbench.errors import ArchError, NotFittedError, PredictorError

log = logging.getLogger(__name__)

#: Architecture input: canonical strings of a space, or Graph objects (``space="graph"``).
Archs = Sequence[Any]

GRAPH_SPACE = "graph"
DEFAULT_DEVICE = "default"


class Predictor:
    """Base class of latency predictors (see the module docstring for the contract).

    Subclasses implement :meth:`_fit` and :meth:`_predict` and, to be saved, :meth:`_get_state`
    / :meth:`_set_state`; the public methods here do the validation every predictor shares.
    """

    #: registry name, set by :func:`register`
    name: ClassVar[str] = ""
    #: accepts ``latbench.spaces.Graph`` objects (``space="graph"``)
    accepts_graphs: ClassVar[bool] = False
    #: the device is an input: one model for several devices (long-format ``devices``)
    multi_device: ClassVar[bool] = False
    #: the fewest architectures a fit takes (one latency ranks nothing)
    min_fit_rows: ClassVar[int] = 2
    #: library versions whose *major* number must match the file's for weights to load
    weight_libraries: ClassVar[tuple[str, ...]] = ()

    # learned state (set by fit)
    space_: str
    devices_: list[str]
    floor_ms_: float  # predictions are clamped to >= this (half the fastest training latency)

    # ---- scikit-learn parameter protocol ------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must list its settings explicitly")
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The keyword settings given to ``__init__`` (``deep`` is accepted for sklearn)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise PredictorError(
                    f"{self.name or type(self).__name__}: unknown parameter {k!r}; "
                    f"expected one of {sorted(valid)}"
                )
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---- fitted-state helpers -------------------------------------------------------------
    def is_fitted(self) -> bool:
        return hasattr(self, "space_")

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(
                f"this {self.name or type(self).__name__} predictor is not fitted yet; "
                "call fit(archs, latency_ms, space=...) or load a saved one first"
            )

    # ---- validation shared by all predictors ----------------------------------------------
    def _canonical_archs(self, archs: Archs, space: str) -> list[Any]:
        from latbench.predictors.encodings import canonical_archs

        if space == GRAPH_SPACE and not self.accepts_graphs:
            raise PredictorError(
                f"{self.name}: this predictor reads search-space architectures, not graphs; "
                "use flops, kernel or gcn for imported models"
            )
        return canonical_archs(space, archs)

    def _check_target(self, latency_ms: Any, n: int, what: str = "architectures") -> np.ndarray:
        y = latency_array(latency_ms)
        if y.shape[0] != n:
            raise PredictorError(f"got {n} {what} but {y.shape[0]} latencies; expected one each")
        if n < self.min_fit_rows:
            raise PredictorError(
                f"{self.name or type(self).__name__}: cannot fit on {n} {what[:-1]}(s); "
                f"expected at least {self.min_fit_rows}"
            )
        bad = ~np.isfinite(y) | (y <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PredictorError(
                f"latency_ms[{i}] = {float(y[i])!r}; expected finite positive milliseconds "
                f"({int(bad.sum())} bad value(s); drop unmeasured rows before fitting)"
            )
        return y

    def _check_devices(self, devices: Sequence[str] | None, n: int) -> np.ndarray | None:
        """Validate long-format device names; returns them as an array (None: single device)."""
        if devices is None:
            return None
        if isinstance(devices, str) or not hasattr(devices, "__iter__"):
            raise PredictorError(
                f"devices = {devices!r:.80}; expected one device name per row (a list of "
                f"{n}), or None for a single device"
            )
        names = list(devices)
        for i, x in enumerate(names):
            if x is None or not str(x).strip():
                raise PredictorError(
                    f"devices[{i}] = {x!r}; expected a non-empty device name for every row"
                )
        d = np.asarray([str(x) for x in names], dtype=object)
        if d.shape[0] != n:
            raise PredictorError(f"got {n} architectures but {d.shape[0]} device names")
        uniq = sorted(set(d.tolist()))
        if len(uniq) > 1 and not self.multi_device:
            raise PredictorError(
                f"{self.name}: a single-device predictor got rows of {len(uniq)} devices "
                f"({', '.join(uniq[:5])}{', ...' if len(uniq) > 5 else ''}); fit one predictor per "
                "device, or use a multi-device model (meta, gcn)"
            )
        return d

    def _resolve_device(self, device: str | None) -> str:
        """The known device a prediction is for (``None`` only when there is one)."""
        if device is None:
            if len(self.devices_) == 1:
                return self.devices_[0]
            raise PredictorError(
                f"{self.name}: trained on {len(self.devices_)} devices; pass device= "
                f"(--device on the command line) one of {', '.join(self.devices_)}"
            )
        if not isinstance(device, str):
            raise PredictorError(
                f"{self.name}: device = {device!r:.80}; expected a device name (str), one of "
                f"{', '.join(self.devices_)}"
            )
        if device in self.devices_:
            return device
        if len(self.devices_) == 1 and self.devices_[0] == DEFAULT_DEVICE:
            return DEFAULT_DEVICE  # a single-device model fitted without a name serves any name
        raise PredictorError(
            f"{self.name}: device {device!r} was not in the training data; "
            f"expected one of {', '.join(self.devices_)} (use adapt() for a new device)"
        )

    # ---- public API --------------------------------------------------------------------------
    def fit(
        self,
        archs: Archs,
        latency_ms: Any,
        *,
        space: str,
        devices: Sequence[str] | None = None,
    ) -> Self:
        """Learn latency from ``archs`` of ``space`` and their measured ``latency_ms``.

        ``devices`` (long format, one name per row) is for multi-device models; for a
        single-device model it may name one device for every row (stored in ``devices_``).
        Returns ``self``.
        """
        arch_list = self._canonical_archs(archs, space)
        y = self._check_target(latency_ms, len(arch_list))
        dev = self._check_devices(devices, len(arch_list))
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)  # refitting starts from scratch
        try:
            self._fit(arch_list, y, dev, space)
        except ValueError as exc:
            # scikit-learn checks its estimators' settings at fit time (n_estimators=0,
            # alpha=-1): a usage error naming the setting and its range, not a traceback
            if type(exc).__name__ != "InvalidParameterError":
                raise
            raise PredictorError(f"{self.name}: {exc}") from None
        self.space_ = space
        self.floor_ms_ = float(0.5 * y.min())
        if space == GRAPH_SPACE and not hasattr(self, "graph_coverage_"):
            from latbench.predictors.encodings import graph_coverage

            # what the training graphs span (unless _fit had their kernels at hand and set it):
            # a prediction for a model beyond it says so
            self.graph_coverage_ = graph_coverage(arch_list)
        if dev is None:
            self.devices_ = [DEFAULT_DEVICE]
        else:
            self.devices_ = sorted(set(dev.tolist()))
        return self

    def coverage_note(self, graph: Any) -> str:
        """For a predictor fitted on graphs: why its prediction for ``graph`` (an imported
        model) extrapolates (kernel types or sizes its training graphs never held), else
        ``""``; always ``""`` for a predictor of a search space's architectures."""
        from latbench.predictors.encodings import coverage_note

        coverage = getattr(self, "graph_coverage_", None)
        return "" if coverage is None else coverage_note(coverage, graph)

    def predict(self, archs: Archs, *, device: str | None = None) -> np.ndarray:
        """Predicted latency in milliseconds, one value per architecture."""
        return self.predict_with_uncertainty(archs, device=device)[0]

    def predict_with_uncertainty(
        self, archs: Archs, *, device: str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(mean_ms, std_ms)``; ``std_ms`` is None for models without an uncertainty.

        The ensemble gives the spread of its members (a standard deviation in ms).
        """
        self._check_fitted()
        dev = self._resolve_device(device)
        arch_list = self._canonical_archs(archs, self.space_)
        if not arch_list:
            return np.zeros(0), None
        mean, std = self._predict(arch_list, dev)
        # latency is positive: linear models can extrapolate below 0, so clamp at half the
        # fastest training latency
        floor = float(getattr(self, "floor_ms_", 0.0))
        mean = np.maximum(np.asarray(mean, dtype=np.float64), floor)
        return mean, (None if std is None else np.asarray(std, dtype=np.float64))

    def score(self, archs: Archs, latency_ms: Any, *, device: str | None = None) -> float:
        """Spearman rank correlation of predicted vs measured latency (ranking is the use)."""
        from latbench.predictors.metrics import spearman

        y = latency_array(latency_ms)  # a value that is no number is named
        return spearman(y, self.predict(archs, device=device))

    def adapt(self, archs: Archs, latency_ms: Any, **kw: Any) -> Predictor:
        """A fitted copy adapted to a new device from a few measurements (few-shot).

        Delegates to :func:`latbench.predictors.adapt.adapt`; see that module for the options.
        """
        from latbench.predictors import adapt as adapt_mod

        fn: Any = adapt_mod.adapt
        result: Predictor = fn(self, archs, latency_ms, **kw)
        return result

    # ---- multi-device hooks (few-shot adaptation) -------------------------------------------
    def device_embedding(self, device: str) -> np.ndarray:
        """The learned vector of a known device (multi-device models only)."""
        raise PredictorError(f"{self.name}: has no device embedding (not a multi-device model)")

    def predict_for_descriptor(self, archs: Archs, descriptor: np.ndarray) -> np.ndarray:
        """Predict with an arbitrary device embedding (multi-device models only)."""
        raise PredictorError(f"{self.name}: has no device embedding (not a multi-device model)")

    # ---- subclass hooks ------------------------------------------------------------------------
    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        raise NotImplementedError

    def _predict(self, archs: list[Any], device: str) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able metadata and numpy arrays that, with the params, restore the fitted model."""
        raise NotImplementedError

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


PREDICTORS: Registry[type[Predictor]] = Registry("predictors")


def latency_array(latency_ms: Any) -> np.ndarray:
    """``latency_ms`` as a flat float64 array; a value that is not a number (a string, an
    object) is a :class:`PredictorError` naming it, not numpy's conversion error."""
    if latency_ms is None:
        raise PredictorError(
            "latency_ms = None; expected one number of milliseconds per architecture"
        )
    if isinstance(latency_ms, Iterator):
        # numpy makes a 0-d object array of a generator: say what to pass instead
        raise PredictorError(
            f"latency_ms is a {type(latency_ms).__name__}; expected a sequence of milliseconds "
            "(a list or an array: pass list(...) of it)"
        )
    if isinstance(latency_ms, np.ma.MaskedArray) and np.ma.getmaskarray(latency_ms).any():
        # np.asarray drops the mask and keeps whatever the masked cells hold
        i = int(np.flatnonzero(np.ma.getmaskarray(latency_ms))[0])
        raise PredictorError(
            f"latency_ms is a masked array with masked cell {i}; expected a latency for every "
            "architecture (drop the masked architectures, or fill them)"
        )
    try:
        raw = np.asarray(latency_ms)
    except ValueError:  # a ragged nesting
        raw = np.asarray(latency_ms, dtype=object)
    if np.iscomplexobj(raw):
        # float() of a complex array keeps the real part with a ComplexWarning only
        raise PredictorError(
            f"latency_ms = {latency_ms!r:.80} holds complex numbers; expected real milliseconds"
        )
    if raw.dtype == bool:
        raise PredictorError(
            f"latency_ms = {latency_ms!r:.80} holds booleans; expected numbers of milliseconds"
        )
    if sum(1 for n in raw.shape if n > 1) > 1:
        raise PredictorError(
            f"latency_ms has shape {raw.shape}; expected one latency per architecture (a flat "
            "sequence or a single column)"
        )
    try:
        return np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        pass
    flat = list(np.asarray(latency_ms, dtype=object).reshape(-1))
    for i, v in enumerate(flat):
        try:
            float(v)
        except (TypeError, ValueError):
            raise PredictorError(
                f"latency_ms[{i}] = {v!r}; expected a number of milliseconds"
            ) from None
    raise PredictorError(f"latency_ms = {latency_ms!r}; expected numbers of milliseconds")


def sample_latencies(archs: Sequence[Any], latency_ms: Any) -> np.ndarray:
    """The measured ``latency_ms`` of ``archs`` (few-shot samples, proxy targets) as float64:
    one per architecture, each finite and positive; the first bad one is a
    :class:`PredictorError` naming its architecture."""
    y = latency_array(latency_ms)
    if y.shape[0] != len(archs):
        raise PredictorError(
            f"got {len(archs)} architectures but {y.shape[0]} latencies; expected one each"
        )
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PredictorError(
            f"latency_ms[{i}] = {float(y[i])!r} (architecture {archs[i]}); expected finite "
            "positive milliseconds"
        )
    return y


def register(name: str) -> Any:
    """Class decorator: register a :class:`Predictor` subclass under ``name``."""

    def deco(cls: type[Predictor]) -> type[Predictor]:
        cls.name = name
        PREDICTORS.add(name, cls)
        return cls

    return deco


def create(name: str, **params: Any) -> Predictor:
    """A new, unfitted predictor ``name`` with keyword ``params`` (``UnknownNameError`` lists)."""
    import latbench.predictors  # noqa: F401  (registers the built-in predictors)

    cls = PREDICTORS.get(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise PredictorError(
            f"{name}: bad parameter(s) {sorted(params)}: {exc}; expected some of "
            f"{cls._param_names()}"
        ) from None


def clone(predictor: Predictor) -> Predictor:
    """An unfitted copy with the same settings (scikit-learn ``clone``)."""
    if not isinstance(predictor, Predictor):
        raise PredictorError(
            f"clone({predictor!r:.80}): got a {type(predictor).__name__}; expected a latbench "
            "Predictor (create(name) makes one)"
        )
    params = {k: copy.deepcopy(v) for k, v in predictor.get_params().items()}
    return type(predictor)(**params)


def check_space(arch_space: str, fitted_space: str) -> None:
    if arch_space != fitted_space:
        raise ArchError(
            f"architectures of space {arch_space!r}; the predictor was fitted on {fitted_space!r}"
        )
