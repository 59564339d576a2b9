"""``meta``: a multi-device base predictor with a learned embedding per device.

The few-shot methods of :mod:`latbench.predictors.adapt` need a *multi-device base*: one model
that predicts every known device. ``meta`` is the fast, transparent one: a ridge regression of
log-latency on the rich architecture features (one-hot + op counts + live-op counts + log MACs /
params / memory, :func:`latbench.predictors.encodings.rich_features`), one output head per
device over a shared standardisation of the features::

    log latency_ms(arch, device) = x(arch) . theta_device + b_device

``(theta_device, b_device)`` is the device's embedding (:meth:`device_embedding`), so a new device
is a new embedding: :meth:`predict_for_descriptor` predicts with any vector, for example a
weighted mix of the known devices' embeddings, which is what adaptation produces. Rows are in
long format (one per architecture and device); a device measured on only part of the
architectures is fitted on the rows it has. Everything learned is plain arrays, so ``.lbp``
files do not depend on the scikit-learn version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latbench._validate import expected_number
from latbench.errors import PredictorError
from latbench.predictors import encodings as enc
from latbench.predictors.base import Predictor, register


def arch_features(space: str, archs: list[Any]) -> np.ndarray:
    """The feature matrix the ``meta`` model and the fine-tuned residuals read."""
    return enc.rich_features(space, archs)


@register("meta")
class MetaPredictor(Predictor):
    """Multi-device ridge on rich features with one embedding (linear head) per device."""

    multi_device = True

    # learned state
    coef_: np.ndarray  # (devices, features)
    intercept_: np.ndarray  # (devices,)
    mean_: np.ndarray
    scale_: np.ndarray
    n_features_in_: int

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def _x(self, archs: list[Any], space: str) -> np.ndarray:
        x = arch_features(space, archs)
        if hasattr(self, "n_features_in_") and x.shape[1] != self.n_features_in_:
            raise PredictorError(
                f"meta: features of width {x.shape[1]}; the model was fitted on "
                f"{self.n_features_in_}"
            )
        return x

    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        if expected_number(self.alpha, low=0) is not None:
            raise PredictorError(f"meta: alpha = {self.alpha!r}; expected a number >= 0")
        dev = devices if devices is not None else np.asarray(["default"] * len(archs), dtype=object)
        names = sorted(set(dev.tolist()))
        # distinct architectures once: the feature matrix is shared by all devices
        uniq: dict[str, int] = {}
        row_arch = np.array([uniq.setdefault(a, len(uniq)) for a in archs])
        x_all = self._x(list(uniq), space)
        self.n_features_in_ = x_all.shape[1]
        self.mean_ = x_all.mean(axis=0)
        sd = x_all.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        z_all = (x_all - self.mean_) / self.scale_
        log_y = np.log(y_ms)
        coef = np.zeros((len(names), x_all.shape[1]))
        intercept = np.zeros(len(names))
        # devices measured on the same architectures share one factorisation
        groups: dict[bytes, list[int]] = {}
        rows_of: list[np.ndarray] = []
        for i, name in enumerate(names):
            rows = np.flatnonzero(dev == name)
            rows_of.append(rows)
            key = np.sort(row_arch[rows]).tobytes()
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            first = rows_of[members[0]]
            order = np.argsort(row_arch[first], kind="stable")
            arch_idx = row_arch[first][order]
            z = z_all[arch_idx]
            zm = z.mean(axis=0)
            zc = z - zm
            gram = zc.T @ zc + float(self.alpha) * np.eye(zc.shape[1])
            targets = np.empty((len(arch_idx), len(members)))
            for j, i in enumerate(members):
                rows = rows_of[i]
                o = np.argsort(row_arch[rows], kind="stable")
                targets[:, j] = log_y[rows][o]
            tm = targets.mean(axis=0)
            w = np.linalg.solve(gram, zc.T @ (targets - tm))
            for j, i in enumerate(members):
                coef[i] = w[:, j]
                intercept[i] = tm[j] - zm @ w[:, j]
        self.coef_ = coef
        self.intercept_ = intercept

    def _device_index(self, device: str) -> int:
        return self.devices_.index(device) if device in self.devices_ else 0

    def _z(self, archs: list[Any]) -> np.ndarray:
        z: np.ndarray = (self._x(archs, self.space_) - self.mean_) / self.scale_
        return z

    def _predict(self, archs: list[Any], device: str) -> tuple[np.ndarray, np.ndarray | None]:
        i = self._device_index(device)
        return np.exp(self._z(archs) @ self.coef_[i] + self.intercept_[i]), None

    def predict_log_all(self, archs: Any) -> np.ndarray:
        """``(N, devices)`` log-latency of every known device at once (one feature pass)."""
        self._check_fitted()
        arch_list = self._canonical_archs(archs, self.space_)
        out: np.ndarray = self._z(arch_list) @ self.coef_.T + self.intercept_
        return out

    def device_embedding(self, device: str) -> np.ndarray:
        """``[theta_device..., b_device]``: the device's head (see the module docstring)."""
        self._check_fitted()
        i = self.devices_.index(self._resolve_device(device))
        return np.concatenate([self.coef_[i], [self.intercept_[i]]])

    def predict_for_descriptor(self, archs: Any, descriptor: np.ndarray) -> np.ndarray:
        """Latency (ms) for the device whose embedding is ``descriptor`` (any vector)."""
        self._check_fitted()
        d = np.asarray(descriptor, dtype=np.float64).reshape(-1)
        if d.shape[0] != self.n_features_in_ + 1:
            raise PredictorError(
                f"meta: descriptor of length {d.shape[0]}; expected {self.n_features_in_ + 1}"
            )
        arch_list = self._canonical_archs(archs, self.space_)
        return np.exp(self._z(arch_list) @ d[:-1] + d[-1])

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return (
            {"n_features_in": self.n_features_in_},
            {
                "coef": self.coef_,
                "intercept": self.intercept_,
                "mean": self.mean_,
                "scale": self.scale_,
            },
        )

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.n_features_in_ = int(meta["n_features_in"])
        self.coef_ = arrays["coef"]
        self.intercept_ = arrays["intercept"]
        self.mean_ = arrays["mean"]
        self.scale_ = arrays["scale"]
        shapes = {
            "coef": (len(self.devices_), self.n_features_in_),
            "intercept": (len(self.devices_),),
            "mean": (self.n_features_in_,),
            "scale": (self.n_features_in_,),
        }
        for key, want in shapes.items():
            if arrays[key].shape != want:
                raise PredictorError(
                    f"meta: array {key!r} of shape {arrays[key].shape}; expected {want} "
                    f"({len(self.devices_)} devices, {self.n_features_in_} features)"
                )
