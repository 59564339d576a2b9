"""What a search maximises (objectives) and what it must respect (constraints).

An :class:`Objective` maps a batch of architectures to one quality score each, *higher is
better*: a user table (CSV ``arch -> accuracy``), a structural proxy (``params``, ``flops``), or
a zero-cost proxy computed on the CPU (``synflow``, ``naswot``, ``zico``, see
:mod:`latbench.nas.proxies`). Objectives marked ``expensive`` are computed only for candidates
that already meet every constraint, which is what makes proxy-driven searches affordable.

A :class:`Constraint` is an upper bound on a per-architecture quantity: predicted latency on a
device (one constraint per predictor, each with its own budget in ms), parameters, FLOPs
(multiply-accumulates) or peak activation memory. Every evaluation is batched: one call scores a
whole population, so a predictor runs one vectorised ``predict`` per batch.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latbench._csvfile import read_csv, rows
from latbench._validate import expected_number
from latbench.errors import ArchError, ConfigError, PredictorError, SearchError, UnknownNameError
from latbench.nas.proxies import PROXIES, InputSpec, ProxyCache, ProxyEvaluator
from latbench.predictors.base import Predictor
from latbench.spaces import SearchSpace

log = logging.getLogger(__name__)

__all__ = [
    "STRUCTURAL",
    "Constraint",
    "GraphStats",
    "Objective",
    "TableObjective",
    "all_archs",
    "error_margin",
    "latency_constraint",
    "load_table",
    "make_objective",
    "metric_constraint",
    "trust_region",
]

BatchFn = Callable[[Sequence[str]], np.ndarray]


# ---- structural statistics -------------------------------------------------------------------
_ALL: dict[str, list[str]] = {}


def all_archs(space: SearchSpace) -> list[str]:
    """Every architecture of a (small) space, enumerated once per process and configuration."""
    key = f"{space.name}:{sorted(getattr(space, '__dict__', {}).items())}"
    got = _ALL.get(key)
    if got is None:
        got = _ALL[key] = list(space.enumerate())
    return got


class GraphStats:
    """Parameters, MACs and peak activation bytes per architecture, cached.

    MACs and parameters come from the closed-form tables of
    :func:`latbench.predictors.encodings.graph_stats` when the space has its default options
    (NB201, FBNet: vectorised, no graph build); otherwise, and always for the peak activation
    memory, the graph is built once per architecture.
    """

    def __init__(self, space: SearchSpace, resolution: int | None = None) -> None:
        self.space = space
        self.resolution = resolution
        self._cache: dict[tuple[str, str], float] = {}
        self._whole = False
        default = type(space)()
        self._fast = (
            resolution is None
            and getattr(default, "__dict__", {}) == getattr(space, "__dict__", {})
            and space.name in ("nb201", "fbnet")
        )

    def _build(self, arch: str) -> tuple[float, float, float]:
        g = self.space.build(arch, batch=1, resolution=self.resolution)
        return float(g.params()), float(g.macs()), float(g.peak_activation_bytes())

    def __call__(self, metric: str, archs: Sequence[str]) -> np.ndarray:
        if metric not in ("params", "flops", "memory"):
            raise UnknownNameError(
                f"unknown structural metric {metric!r}; expected params, flops or memory"
            )
        out = np.empty(len(archs), dtype=np.float64)
        todo: list[int] = []
        for i, a in enumerate(archs):
            v = self._cache.get((metric, a))
            if v is None:
                todo.append(i)
            else:
                out[i] = v
        if not todo:
            return out
        miss = list(dict.fromkeys(archs[i] for i in todo))
        if metric != "memory" and self._fast and not self._whole and self.space.size() <= 100_000:
            # small space: one vectorised call for every architecture beats many small ones
            self._whole = True
            miss = list(dict.fromkeys([*all_archs(self.space), *miss]))
        if metric != "memory" and self._fast:
            from latbench.predictors.encodings import graph_stats

            st = graph_stats(self.space.name, miss)  # macs, params, activation bytes
            for a, row in zip(miss, st, strict=True):
                self._cache[("flops", a)] = float(row[0])
                self._cache[("params", a)] = float(row[1])
        else:
            for a in miss:
                p, m, mem = self._build(a)
                self._cache[("params", a)] = p
                self._cache[("flops", a)] = m
                self._cache[("memory", a)] = mem
        for i in todo:
            out[i] = self._cache[(metric, archs[i])]
        return out


# ---- objectives ------------------------------------------------------------------------------
@dataclass
class Objective:
    """A quality score per architecture, higher is better.

    ``fn`` takes a batch of canonical architecture strings; ``expensive`` objectives are
    evaluated only for candidates that meet the constraints.
    """

    name: str
    fn: BatchFn
    expensive: bool = False
    description: str = ""

    def __call__(self, archs: Sequence[str]) -> np.ndarray:
        return np.asarray(self.fn(archs), dtype=np.float64).reshape(-1)


class TableObjective(Objective):
    """Quality read from a user table; an architecture missing from it is a SearchError."""

    def __init__(
        self,
        space: SearchSpace,
        values: Mapping[str, float],
        name: str = "table",
        higher_is_better: bool = True,
        source: str = "",
    ) -> None:
        table: dict[str, float] = {}
        for a, v in values.items():
            table[space.canonical(a)] = float(v) if higher_is_better else -float(v)
        if not table:
            raise SearchError(
                f"objective table {source or name!r} is empty; expected at least one row "
                "(architecture, value)"
            )
        self.table = table
        self.space = space
        self.source = source
        self.higher_is_better = higher_is_better
        super().__init__(name=name, fn=self._lookup, expensive=False, description=source)

    def _lookup(self, archs: Sequence[str]) -> np.ndarray:
        try:
            return np.array([self.table[a] for a in archs], dtype=np.float64)
        except KeyError:
            missing = [a for a in archs if a not in self.table]
            raise SearchError(
                f"objective table {self.source or self.name!r} has no value for "
                f"{len(missing)} of {len(archs)} candidate(s), e.g. {missing[0]!r}; the table "
                f"covers {len(self.table)} {self.space.name} architectures: add the missing rows, "
                "or search only the table's architectures (--table-only)"
            ) from None

    def check_covers(self, archs: Sequence[str]) -> None:
        """Raise SearchError naming how many of ``archs`` the table misses (e.g. exhaustive)."""
        missing = [a for a in archs if a not in self.table]
        if missing:
            raise SearchError(
                f"objective table {self.source or self.name!r} misses {len(missing)} of "
                f"{len(archs)} {self.space.name} architectures, e.g. {missing[0]!r}; expected a "
                "value for every architecture the search may visit"
            )


def load_table(
    path: str | os.PathLike[str],
    space: SearchSpace,
    arch_column: str = "arch",
    value_column: str | None = None,
    higher_is_better: bool = True,
) -> TableObjective:
    """A :class:`TableObjective` from a CSV file with an ``arch`` column and a value column.

    ``value_column`` defaults to ``accuracy`` if present, else the single other column.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"objective table {str(p)!r} does not exist; expected a CSV file")
    with read_csv(p) as reader:
        cols = list(reader.fieldnames or [])
        if arch_column not in cols:
            raise ConfigError(f"{p}: no {arch_column!r} column; found {cols}")
        others = [c for c in cols if c != arch_column]
        if value_column is None:
            if "accuracy" in others:
                value_column = "accuracy"
            elif len(others) == 1:
                value_column = others[0]
            else:
                raise ConfigError(
                    f"{p}: cannot tell the value column among {others}; pass value_column "
                    "(--objective-column)"
                )
        if value_column not in cols:
            raise ConfigError(f"{p}: no {value_column!r} column; found {cols}")
        values: dict[str, float] = {}
        lines: dict[str, int] = {}
        for line, row in rows(p, reader):
            try:
                v = float(row[value_column])
            except (TypeError, ValueError):
                v = math.nan
            # "nan" would be taken for "not computed", an architecture silently never returned;
            # an infinity is a value (-inf: the worst quality there is)
            if math.isnan(v):
                raise ConfigError(
                    f"{p}:{line}: {value_column} = {row[value_column]!r}; expected a number "
                    "(leave out a row that has no value)"
                )
            arch = row[arch_column] or ""
            try:
                arch = space.canonical(arch)  # checked here, where the line is known
            except ArchError as exc:
                raise ArchError(f"{p}:{line}: {exc}") from None
            if arch in values and values[arch] != v:
                raise ConfigError(
                    f"{p}:{line}: {arch!r} has {value_column} = {v:g}, but line "
                    f"{lines[arch]} gave it {values[arch]:g}; expected one value per "
                    "architecture"
                )
            values[arch] = v
            lines.setdefault(arch, line)
    # a lower-is-better column is searched negated, and named so: "-error" = -8.4 is what the
    # result holds, never a bare "error" of -8.4
    return TableObjective(
        space,
        values,
        name=value_column if higher_is_better else f"-{value_column}",
        higher_is_better=higher_is_better,
        source=str(p),
    )


#: objectives computed from the graph alone (bigger networks as the quality proxy)
STRUCTURAL = ("params", "flops")


def make_objective(
    name: str,
    space: SearchSpace,
    *,
    stats: GraphStats | None = None,
    proxy_spec: InputSpec | None = None,
    cache: ProxyCache | None = None,
) -> Objective:
    """The objective ``name``: ``params``, ``flops``, or a zero-cost proxy of :data:`PROXIES`.

    A CSV table is loaded with :func:`load_table` instead.
    """
    if name in STRUCTURAL:
        st = stats or GraphStats(space)
        return Objective(
            name=name,
            fn=lambda archs: st(name, archs),
            description=f"{name} of the network (larger is taken as better)",
        )
    if name in PROXIES:
        spec = proxy_spec or InputSpec()
        ev = ProxyEvaluator(space, name, spec, cache)
        return Objective(
            name=name,
            fn=ev,
            expensive=True,
            description=(
                f"zero-cost proxy {name} on {spec.batch} {spec.data} images at "
                f"{spec.resolution}x{spec.resolution}, seed {spec.seed}"
            ),
        )
    known = [*STRUCTURAL, *sorted(PROXIES)]
    raise UnknownNameError(
        f"unknown objective {name!r}; expected one of: {', '.join(known)}, or a CSV table"
    )


# ---- constraints -----------------------------------------------------------------------------
@dataclass
class Constraint:
    """``value(arch) <= limit``; ``kind`` is latency, params, flops or memory.

    ``extra`` holds per-architecture side values kept with the result (the predictor's
    uncertainty in ms for latency constraints).
    """

    name: str
    kind: str
    limit: float
    unit: str
    fn: BatchFn
    info: dict[str, Any] = field(default_factory=dict)
    std_fn: Callable[[Sequence[str]], np.ndarray | None] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.limit) and self.limit > 0):
            raise ConfigError(f"{self.name}: limit {self.limit!r}; expected a positive number")

    def values(self, archs: Sequence[str]) -> np.ndarray:
        return np.asarray(self.fn(archs), dtype=np.float64).reshape(-1)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "limit": self.limit,
            "unit": self.unit,
            **self.info,
        }


def check_predictor_space(
    predictor: Predictor, space: SearchSpace, label: str = "", *, task: str = "this search is over"
) -> None:
    """A predictor fitted on another space cannot constrain this search (or rank these
    architectures, ``task="the architectures to rank are of"``): SearchError."""
    predictor._check_fitted()
    fitted = getattr(predictor, "space_", None)
    if fitted != space.name:
        raise SearchError(
            f"predictor {label or predictor.name!r} was fitted on space {fitted!r}; {task} "
            f"{space.name!r}: fit or load a predictor of {space.name!r}"
        )


def latency_constraint(
    predictor: Predictor,
    budget_ms: float,
    space: SearchSpace,
    *,
    device: str | None = None,
    label: str = "",
    sigmas: float = 0.0,
) -> Constraint:
    """Predicted latency on one device ``<= budget_ms``.

    With ``sigmas > 0`` and a predictor that gives an uncertainty (the ensemble), the value
    checked is ``mean + sigmas * std``: a safety margin for budgets that must hold when measured.
    A predictor without an uncertainty (ridge, ...) can only be checked by its mean: a warning
    says so, and the constraint's ``info`` records ``sigmas_applied: False`` (``True`` only when
    the margin was added). ``info["device"]`` is the predictor's device (``device``, else the one
    device the predictor was fitted for); the constraint is named ``latency_ms[LABEL]`` after
    ``label`` (the CLI: the file stem), else the device.
    Predictions are made in one vectorised call per batch; the search caches them per arch.
    """
    check_predictor_space(predictor, space, label)
    if expected_number(budget_ms, positive=True) is not None:
        raise ConfigError(f"budget_ms {budget_ms!r}; expected a positive number of milliseconds")
    if expected_number(sigmas, low=0) is not None:
        raise ConfigError(f"sigmas {sigmas!r}; expected a number >= 0 (standard deviations)")
    dev = device
    devs = [str(d) for d in getattr(predictor, "devices_", None) or []]
    if dev is None and len(devs) > 1:
        raise PredictorError(
            f"predictor {label or predictor.name!r} knows {len(devs)} devices "
            f"({', '.join(devs)}); name one with device="
        )
    real_dev = dev if dev is not None else (devs[0] if devs else None)
    name_dev = dev or label or real_dev or "default"
    k = float(sigmas)
    applied = False
    if k > 0:
        # one probe tells whether the predictor has an uncertainty at all
        _, probe = predictor.predict_with_uncertainty(space.sample(1, seed=0), device=dev)
        applied = probe is not None
        if not applied:
            log.warning(
                "predictor %r (%s) has no uncertainty: sigmas %g (--sigmas) has no effect, "
                "its mean latency is checked against the budget (sigmas_applied: false); use "
                "an ensemble predictor, or a budget margin (--budget-margin)",
                label or predictor.name,
                predictor.name,
                k,
            )
    last_std: dict[str, float] = {}

    def fn(archs: Sequence[str]) -> np.ndarray:
        mean, std = predictor.predict_with_uncertainty(list(archs), device=dev)
        if std is not None:
            last_std.update(zip(archs, std.tolist(), strict=True))
            if applied:
                return mean + k * std
        return mean

    def std_fn(archs: Sequence[str]) -> np.ndarray | None:
        if not last_std:
            return None
        return np.array([last_std.get(a, float("nan")) for a in archs])

    return Constraint(
        name=f"latency_ms[{name_dev}]",
        kind="latency",
        limit=float(budget_ms),
        unit="ms",
        fn=fn,
        std_fn=std_fn,
        info={
            "device": real_dev,
            "predictor": label or predictor.name,
            "sigmas": k,
            "sigmas_applied": applied,
        },
    )


def error_margin(
    predictor: Predictor,
    archs: Sequence[str],
    latency_ms: Sequence[float] | np.ndarray,
    *,
    quantile: float = 0.9,
    folds: int = 5,
    seed: int = 0,
    space: str | None = None,
) -> float:
    """A budget margin (fraction) from the predictor's cross-validated under-prediction.

    Fits unfitted copies of ``predictor`` (same settings) on ``folds - 1`` folds of the measured
    ``archs`` / ``latency_ms`` and predicts the held-out fold; returns the ``quantile`` of the
    one-sided relative error ``max(0, measured / predicted - 1)``. Searching under
    ``budget * (1 - margin)`` then keeps about ``quantile`` of the returned architectures within
    the budget when measured, if they resemble the training architectures (restrict the search
    to the training region as well: a margin says nothing about extrapolation). ``space``
    defaults to the space ``predictor`` was fitted on.
    """
    from latbench.predictors.base import clone

    y = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    arch_list = list(archs)
    if len(arch_list) != y.shape[0]:
        raise ConfigError(f"{len(arch_list)} archs but {y.shape[0]} latencies; expected equal")
    if not 2 <= folds <= len(arch_list):
        raise ConfigError(f"folds = {folds}; expected 2 <= folds <= {len(arch_list)} (archs)")
    if not 0.0 < quantile <= 1.0:
        raise ConfigError(f"quantile = {quantile}; expected a fraction in (0, 1]")
    space = space or getattr(predictor, "space_", None)
    if space is None:
        raise ConfigError("error_margin: the predictor is not fitted; expected space='<name>'")
    base = getattr(predictor, "base_", None) if predictor.is_fitted() else None
    devices = list(getattr(predictor, "devices_", [])) if predictor.is_fitted() else []
    if base is None and len(devices) > 1:
        raise ConfigError(
            f"error_margin: the predictor knows {len(devices)} devices; a margin is the "
            "cross-validated error of one device's predictor: pass a single-device or an "
            "adapted predictor (latbench adapt)"
        )
    fold = np.random.default_rng(seed).permutation(len(arch_list)) % folds
    err = np.empty(len(arch_list))
    for k in range(folds):
        test = np.flatnonzero(fold == k)
        train = np.flatnonzero(fold != k)
        tr_archs = [arch_list[i] for i in train]
        if base is not None:
            # an adapted predictor: the margin of the adaptation, redone on each fold's samples
            p = base.adapt(tr_archs, y[train], method=getattr(predictor, "method", "auto"))
        else:
            p = clone(predictor).fit(tr_archs, y[train], space=space)
        pred = p.predict([arch_list[i] for i in test])
        err[test] = np.maximum(0.0, y[test] / pred - 1.0)
    return float(np.quantile(err, quantile))


def trust_region(
    archs: Sequence[str], stats: GraphStats, metrics: Sequence[str] = ("params", "flops")
) -> list[Constraint]:
    """Constraints that keep a search where a predictor was trained.

    A predictor fitted on ``archs`` is only trusted on architectures that resemble them; a
    search that maximises quality drifts to the largest networks it may, where every learned
    model extrapolates. Each ``metric`` of a candidate must stay at most its maximum over
    ``archs`` (a box on the structural statistics; named ``trust_<metric>``).
    """
    arch_list = list(archs)
    if not arch_list:
        raise ConfigError("trust_region: no training architectures; expected at least one")
    out = []
    for m in metrics:
        c = metric_constraint(m, float(np.max(stats(m, arch_list))), stats)
        c.name = f"trust_{m}"
        out.append(c)
    return out


_METRIC_UNITS = {"params": "parameters", "flops": "MACs", "memory": "bytes"}
#: what a metric constraint (and its per-candidate value) is named: the memory one carries its
#: unit, as the CLI takes megabytes (--max-memory-mb) and the value is in bytes
_METRIC_NAMES = {"params": "max_params", "flops": "max_flops", "memory": "max_memory_bytes"}


def metric_constraint(metric: str, limit: float, stats: GraphStats) -> Constraint:
    """``params``, ``flops`` (MACs) or ``memory`` (peak activation bytes) ``<= limit``.

    Named ``max_params``, ``max_flops`` and ``max_memory_bytes``.
    """
    if metric not in _METRIC_UNITS:
        raise UnknownNameError(
            f"unknown constraint {metric!r}; expected one of {', '.join(_METRIC_UNITS)}"
        )
    return Constraint(
        name=_METRIC_NAMES[metric],
        kind=metric,
        limit=float(limit),
        unit=_METRIC_UNITS[metric],
        fn=lambda archs: stats(metric, archs),
    )
