"""Rank architectures by predicted latency, one column per (predictor, device).

>>> table = rank_archs(archs, {"pixel3": p3, "pi4": pi})         # doctest: +SKIP
>>> table[0]["arch"], table[0]["latency_ms[pixel3]"]              # doctest: +SKIP

The first column orders the rows (fastest first); a predictor with an uncertainty (the
ensemble) adds a ``..._std`` column; a multi-device predictor contributes one column per device,
or per device of ``devices=`` (the first of them orders the rows).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from latbench.errors import ConfigError, SearchError
from latbench.nas.objectives import check_predictor_space
from latbench.predictors.base import Predictor
from latbench.spaces import SearchSpace

log = logging.getLogger(__name__)

__all__ = ["rank_archs", "rank_columns"]


def rank_columns(
    predictors: Mapping[str, Predictor], devices: Sequence[str] | None = None
) -> list[tuple[str, str, str | None]]:
    """``(column, label, device)`` for every predictor and each device it knows.

    ``devices`` (names, short names such as ``pixel3``, globs: ``select_devices``) keeps, of a
    multi-device predictor, the devices they match, in the order they are given: the first
    one orders the rows when that predictor comes first. A single-device predictor keeps its
    one column. A multi-device predictor none of whose devices match is a ConfigError.
    """
    from latbench.errors import PredictorError
    from latbench.predictors.monotonicity import select_devices

    known_of = {
        label: list(getattr(p, "devices_", []) or ["default"]) for label, p in predictors.items()
    }
    if devices is not None and all(len(k) == 1 for k in known_of.values()):
        one = ", ".join(f"{label} ({k[0]})" for label, k in known_of.items())
        raise ConfigError(
            f"devices {list(devices)} pick devices of a multi-device predictor; every predictor "
            f"given predicts one device: {one}"
        )
    cols: list[tuple[str, str, str | None]] = []
    for label, known in known_of.items():
        if len(known) == 1:
            cols.append((f"latency_ms[{label}]", label, None))
            continue
        if devices is not None:
            try:
                known = select_devices(known, list(devices))
            except PredictorError as exc:
                raise ConfigError(f"predictor {label}: {exc}") from None
        cols.extend((f"latency_ms[{label}:{d}]", label, d) for d in known)
    return cols


def rank_archs(
    archs: Sequence[str],
    predictors: Mapping[str, Predictor],
    space: SearchSpace,
    *,
    top: int | None = None,
    batch: int = 8192,
    devices: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{"rank", "arch", "latency_ms[label]", "latency_ms[label]_std"?, ...}``.

    Sorted by the first column, fastest first (ties: input order); ``top`` keeps the first rows.
    ``devices`` picks the columns of multi-device predictors (:func:`rank_columns`).
    An architecture given more than once is ranked once (a warning says how many repeated).
    Every predictor must be fitted on ``space`` (SearchError otherwise).
    """
    if not predictors:
        raise ConfigError("no predictor given; expected at least one --predictor FILE")
    if top is not None and top < 1:
        raise ConfigError(f"--top {top}; expected >= 1")
    for label, p in predictors.items():
        check_predictor_space(p, space, label, task="the architectures to rank are of")
    given = [space.canonical(a) for a in archs]
    if not given:
        raise SearchError("no architectures to rank; expected --all or a non-empty --archs file")
    # one row per architecture: a list that names one twice (or in two spellings) would give it
    # two ranks
    canon = list(dict.fromkeys(given))
    if len(canon) < len(given):
        log.warning(
            "%d of the %d architectures to rank repeat an earlier one; each is ranked once "
            "(first occurrence)",
            len(given) - len(canon),
            len(given),
        )
    cols = rank_columns(predictors, devices)
    means: dict[str, np.ndarray] = {}
    stds: dict[str, np.ndarray] = {}
    for col, label, dev in cols:
        p = predictors[label]
        m_parts, s_parts = [], []
        for i in range(0, len(canon), batch):
            m, s = p.predict_with_uncertainty(canon[i : i + batch], device=dev)
            m_parts.append(m)
            if s is not None:
                s_parts.append(s)
        means[col] = np.concatenate(m_parts)
        if s_parts:
            stds[col] = np.concatenate(s_parts)
    first = cols[0][0]
    order = np.argsort(means[first], kind="stable")
    if top is not None:
        order = order[:top]
    rows = []
    for r, i in enumerate(order.tolist(), start=1):
        row: dict[str, Any] = {"rank": r, "arch": canon[i]}
        for col, _, _ in cols:
            row[col] = float(means[col][i])
            if col in stds:
                row[f"{col}_std"] = float(stds[col][i])
        rows.append(row)
    return rows
