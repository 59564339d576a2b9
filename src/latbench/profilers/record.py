"""The immutable measurement record.

A :class:`Measurement` keeps every raw per-inference time, the loop count, the warm-up, the
settings and the environment; statistics are computed from the raw samples on demand (as
``torch.utils.benchmark.Measurement`` and pyperf's ``Run`` do), so a record can be re-analysed
later and shared safely. Units live in field names: every time is in milliseconds (``*_ms``).

``median_ms`` is always the median of the raw samples. ``latency_ms`` is the statistic named by
``statistic`` (``stats.STATISTICS``; ``"median"`` unless the caller chose another), so a reader
of a stored ``latency_ms`` can always tell what it is. A record measured with a reference model
(``reference``, filled by interleaved runs) also gives ``normalized_ms``: the target/reference
ratio of the same rounds times the reference's calibrated latency.

Version 1 records without ``cpu_samples_ms``, ``statistic`` or ``reference`` load with the
defaults; a version 1 reader ignores these fields, so the version stays 1.

A record is immutable all the way down: the mapping fields (``env``, ``env_after``,
``harness``, ``counters``, ``reference``, ``runtime_settings``, ``input_shapes`` and the rows of
``per_op``) are frozen copies of what the record was built from (read-only ``dict`` and ``list``
subclasses, equal to the plain ones and still ``isinstance(x, dict)``), so neither the caller's
objects nor the record can be changed through the other. :meth:`Measurement.to_dict` gives a
plain, mutable copy; :meth:`Measurement.with_` a changed record. Records compare by value and
are hashable (equal records hash equal). The raw times (``samples_ms``, ``warmup_ms``,
``cpu_samples_ms``) must be finite numbers >= 0: a NaN, an infinity or a negative time is
refused with a ``ValueError`` naming the field and the position. A failed record has no samples
(its statistics are NaN by design); :meth:`Measurement.to_json` is strict JSON (a non-finite
float anywhere in the metadata is written as ``null``).

This module uses the standard library only: the on-device agent that latbench pushes to a
Raspberry Pi ships it together with :mod:`latbench.profilers.stats` and
:mod:`latbench.profilers.harness`.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, NoReturn

from latbench.profilers import stats as _stats

RECORD_VERSION = 1

#: the fields that hold mappings; frozen (deeply read-only copies) when a record is built
_MAPPING_FIELDS = (
    "runtime_settings",
    "input_shapes",
    "counters",
    "env",
    "env_after",
    "harness",
    "reference",
)
#: the statuses of a record
_STATUSES = ("ok", "failed")
#: the fields of raw times in ms: finite and >= 0
_TIME_FIELDS = ("samples_ms", "warmup_ms", "cpu_samples_ms")


def _refuse(what: str) -> NoReturn:
    raise TypeError(
        f"cannot {what}: a Measurement is immutable; use .to_dict() for a mutable copy or "
        ".with_(...) for a changed record"
    )


class FrozenDict(dict[Any, Any]):
    """A read-only ``dict`` (its values frozen too): equal to a plain dict, and hashable."""

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> NoReturn:
        _refuse(f"set [{key!r}]")

    def __delitem__(self, key: Any) -> NoReturn:
        _refuse(f"delete [{key!r}]")

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("update a frozen mapping")

    def clear(self) -> NoReturn:
        _refuse("clear a frozen mapping")

    def pop(self, *args: Any) -> NoReturn:
        _refuse("pop from a frozen mapping")

    def popitem(self) -> NoReturn:
        _refuse("pop from a frozen mapping")

    def setdefault(self, *args: Any) -> NoReturn:
        _refuse("setdefault on a frozen mapping")

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("update a frozen mapping")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))


class FrozenList(list[Any]):
    """A read-only ``list`` (its items frozen too): equal to a plain list, and hashable."""

    __slots__ = ()

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        _refuse("set an item of a frozen list")

    def __delitem__(self, index: Any) -> NoReturn:
        _refuse("delete an item of a frozen list")

    def __iadd__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("extend a frozen list")

    def __imul__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("extend a frozen list")

    def append(self, item: Any) -> NoReturn:
        _refuse("append to a frozen list")

    def extend(self, items: Any) -> NoReturn:
        _refuse("extend a frozen list")

    def insert(self, index: Any, item: Any) -> NoReturn:
        _refuse("insert into a frozen list")

    def pop(self, *args: Any) -> NoReturn:
        _refuse("pop from a frozen list")

    def remove(self, item: Any) -> NoReturn:
        _refuse("remove from a frozen list")

    def clear(self) -> NoReturn:
        _refuse("clear a frozen list")

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("sort a frozen list")

    def reverse(self) -> NoReturn:
        _refuse("reverse a frozen list")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self),))


def _freeze(value: Any) -> Any:
    """A deeply read-only copy of JSON-like ``value`` (mappings, lists, tuples, sets)."""
    if isinstance(value, FrozenDict | FrozenList):
        return value  # frozen all the way down when it was built
    if isinstance(value, Mapping):
        return FrozenDict({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        # a tuple becomes a list, as JSON reads it back: a record equals its from_json(to_json())
        return FrozenList(_freeze(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """A plain, mutable deep copy of a frozen value (tuples stay tuples, as ``asdict`` does)."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_thaw(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_thaw(v) for v in value)
    return value


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _times(name: str, value: Any) -> tuple[float, ...]:
    """``value`` as a tuple of finite times in ms >= 0; ValueError naming the bad one."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"{name} = {value!r}; expected a sequence of times in ms")
    out = []
    for i, x in enumerate(value):
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise ValueError(f"{name}[{i}] = {x!r}; expected a finite time in ms >= 0")
        f = float(x)
        if not (math.isfinite(f) and f >= 0.0):
            raise ValueError(f"{name}[{i}] = {f!r}; expected a finite time in ms >= 0")
        out.append(f)
    return tuple(out)


@dataclass(frozen=True)
class Measurement:
    """One measurement of one model on one device with one runtime.

    ``samples_ms`` holds one time per timed sample, already divided by ``loops`` (the number of
    inferences per timed sample), so each value is the latency of one inference of ``batch``
    inputs in milliseconds.
    """

    status: str = "ok"  # "ok" or "failed"
    error: str | None = None  # the reason, when status == "failed"
    samples_ms: tuple[float, ...] = ()
    loops: int = 1
    warmup_runs: int = 0
    warmup_ms: tuple[float, ...] = ()
    runtime: str = ""
    runtime_version: str = ""
    runtime_settings: dict[str, Any] = field(default_factory=dict)
    device: str = "local"
    device_fingerprint: str = ""
    model_path: str = ""
    model_sha256: str = ""
    batch: int = 1
    threads: int | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    # counters: name -> {"value": float, "unit": str} or {"value": None, "unavailable": reason}
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per-operator profile rows: {"op": str, "name": str, "time_ms": float, "share": float}
    per_op: tuple[dict[str, Any], ...] = ()
    env: dict[str, Any] = field(default_factory=dict)
    env_after: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""  # ISO 8601 UTC
    wall_s: float = 0.0
    latbench_version: str = ""
    record_version: int = RECORD_VERSION
    # how the timing loop ran: settings, stop_reason, timer_resolution_s, elapsed_s, and for
    # interleaved runs round_sizes (samples per round) and rounds (per-round load and steal)
    harness: dict[str, Any] = field(default_factory=dict)
    # CPU time of the worker thread per inference, one per sample (empty in older records)
    cpu_samples_ms: tuple[float, ...] = ()
    # which statistic ``latency_ms`` is (one of ``stats.STATISTICS``)
    statistic: str = "median"
    # reference re-measurement (interleaved runs): model, sha256, raw samples_ms, round_sizes,
    # per-round target_low_ms / reference_low_ms / ratios / discarded, ratio, calibrated_ms,
    # calibration (where calibrated_ms came from)
    reference: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(
                f"status = {self.status!r}; expected one of {', '.join(map(repr, _STATUSES))}"
            )
        if self.statistic not in _stats.STATISTICS:
            raise ValueError(
                f"statistic = {self.statistic!r}; expected one of {', '.join(_stats.STATISTICS)}"
            )
        for name, low in (("loops", 1), ("warmup_runs", 0), ("record_version", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} = {value!r}; expected an integer >= {low}")
            object.__setattr__(self, name, int(value))
        # frozen dataclass: the validated, frozen values replace the given ones in place
        for name in _TIME_FIELDS:
            object.__setattr__(self, name, _times(name, getattr(self, name)))
        per_op = self.per_op
        if isinstance(per_op, str | bytes | Mapping) or not isinstance(per_op, Iterable):
            raise ValueError(f"per_op = {per_op!r}; expected a sequence of operator rows")
        object.__setattr__(self, "per_op", tuple(_freeze(row) for row in per_op))
        for name in _MAPPING_FIELDS:
            object.__setattr__(self, name, _freeze(getattr(self, name)))

    # ---- statistics, computed from the raw samples -------------------------------------
    @property
    def ok(self) -> bool:
        return self.status == "ok" and len(self.samples_ms) > 0

    @property
    def runs(self) -> int:
        return len(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return _stats.median(self.samples_ms) if self.samples_ms else math.nan

    @property
    def mean_ms(self) -> float:
        return _stats.mean(self.samples_ms) if self.samples_ms else math.nan

    @property
    def std_ms(self) -> float:
        return _stats.std(self.samples_ms) if self.samples_ms else math.nan

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms) if self.samples_ms else math.nan

    @property
    def iqr_ms(self) -> float:
        return _stats.iqr(self.samples_ms) if self.samples_ms else math.nan

    @property
    def p90_ms(self) -> float:
        return _stats.percentile(self.samples_ms, 90) if self.samples_ms else math.nan

    @property
    def p99_ms(self) -> float:
        return _stats.percentile(self.samples_ms, 99) if self.samples_ms else math.nan

    @property
    def round_sizes(self) -> tuple[int, ...]:
        """Samples per interleaved round (empty for a single window)."""
        sizes = self.harness.get("round_sizes") if isinstance(self.harness, dict) else None
        return tuple(int(x) for x in sizes) if isinstance(sizes, list | tuple) else ()

    @property
    def round_min_ms(self) -> float:
        """Median over rounds of each round's minimum (5 blocks for a single window)."""
        if not self.samples_ms:
            return math.nan
        return _stats.round_min(self.samples_ms, self.round_sizes)

    @property
    def cpu_median_ms(self) -> float | None:
        """Median CPU time of the worker thread per inference (None in older records)."""
        return _stats.median(self.cpu_samples_ms) if self.cpu_samples_ms else None

    @property
    def normalized_ms(self) -> float | None:
        """Reference ratio x the reference's calibrated latency (None without a reference)."""
        ratio = self.reference.get("ratio") if self.reference else None
        cal = self.reference.get("calibrated_ms") if self.reference else None
        if not isinstance(ratio, int | float) or not isinstance(cal, int | float):
            return None
        return float(ratio) * float(cal)

    def estimate(self, statistic: str) -> float:
        """The value of ``statistic`` (one of ``stats.STATISTICS``) for this record.

        Raises ValueError for an unknown name, or when the record lacks what the statistic
        needs (``normalized`` without a reference, ``cpu_median`` without CPU samples).
        """
        simple = {
            "median": lambda: self.median_ms,
            "min": lambda: self.min_ms,
            "p10": lambda: _stats.percentile(self.samples_ms, 10),
            "p25": lambda: _stats.percentile(self.samples_ms, 25),
            "round_min": lambda: self.round_min_ms,
        }
        if statistic in simple:
            # a record without samples (a failed one) has NaN statistics, whichever is asked
            return float(simple[statistic]()) if self.samples_ms else math.nan
        if statistic == "cpu_median":
            value = self.cpu_median_ms
        elif statistic == "normalized":
            value = self.normalized_ms
        else:
            raise ValueError(
                f"statistic {statistic!r}; expected one of {', '.join(_stats.STATISTICS)}"
            )
        if value is None:
            raise ValueError(f"statistic {statistic!r} is not available in this record")
        return value

    @property
    def latency_ms(self) -> float:
        """The headline latency: the statistic named by ``statistic`` (median by default)."""
        return self.estimate(self.statistic)

    @property
    def ci_median_ms(self) -> tuple[float, float]:
        """95 % distribution-free confidence interval of the median ((NaN, NaN) without samples)."""
        if not self.samples_ms:
            return math.nan, math.nan
        return _stats.median_ci(self.samples_ms, 0.95)

    def verdict(self) -> dict[str, Any]:
        """Is this measurement stable? ``{"stable", "reasons", "advice", "spread", "drift"}``."""
        if not self.ok:
            return {
                "stable": False,
                "judged": False,
                "reasons": [f"measurement failed: {self.error}"],
                "advice": [],
                "spread": float("nan"),
                "drift": float("nan"),
            }
        settings = self.harness.get("settings", {}) if isinstance(self.harness, dict) else {}
        min_runs = int(settings.get("min_runs", _stats.MIN_RUNS_FOR_VERDICT) or 1)
        return _stats.stability(
            self.samples_ms,
            self.env,
            self.env_after,
            min_runs=min(min_runs, _stats.MIN_RUNS_FOR_VERDICT),
        )

    def summary(self) -> dict[str, Any]:
        """The statistics as a flat dict of ``*_ms`` fields (empty values for a failed record).

        ``latency_ms`` is the record's ``statistic`` (named under ``statistic``); ``median_ms``
        is always the median; ``normalized_ms`` and ``reference_ratio`` appear when a reference
        was measured alongside.
        """
        if not self.ok:
            return {"status": self.status, "error": self.error, "runs": 0}
        lo, hi = self.ci_median_ms
        out: dict[str, Any] = {
            "status": self.status,
            "latency_ms": self.latency_ms,
            "statistic": self.statistic,
            "median_ms": self.median_ms,
            "mean_ms": self.mean_ms,
            "std_ms": self.std_ms,
            "min_ms": self.min_ms,
            "iqr_ms": self.iqr_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "ci_low_ms": lo,
            "ci_high_ms": hi,
            "runs": self.runs,
            "round_min_ms": self.round_min_ms,
        }
        if self.cpu_samples_ms:
            out["cpu_median_ms"] = self.cpu_median_ms
        if self.normalized_ms is not None:
            out["normalized_ms"] = self.normalized_ms
            out["reference_ratio"] = float(self.reference["ratio"])
        return out

    # ---- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable deep copy of the record (lists and dicts; JSON-ready)."""
        d = {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}
        for key in (*_TIME_FIELDS, "per_op"):
            d[key] = list(d[key])
        return d

    def to_json(self) -> str:
        """Strict JSON of :meth:`to_dict` (a non-finite float in the metadata becomes null)."""
        return json.dumps(_json_safe(self.to_dict()), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        """The record of ``d`` (as :meth:`to_dict` writes it); ``d`` is copied, never shared.

        Raises ValueError for ``d`` that is not a mapping, a record version newer than this
        latbench, an unknown ``status`` or ``statistic``, a ``loops`` below 1, or a raw time
        that is not a finite number >= 0 (naming the field and the position).
        """
        if not isinstance(d, Mapping):
            raise ValueError(
                f"a measurement record is a mapping of its fields; got {type(d).__name__} "
                f"{str(d)[:80]}"
            )
        version = d.get("record_version", 1)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"record_version = {version!r}; expected an integer >= 1")
        if version > RECORD_VERSION:
            raise ValueError(
                f"measurement record version {version} is newer than this latbench supports "
                f"({RECORD_VERSION}); upgrade latbench"
            )
        known = {f.name for f in fields(cls)}
        # __post_init__ validates the times and freezes copies of every container
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        return cls.from_dict(json.loads(text))

    @classmethod
    def failed(cls, error: str, **kw: Any) -> Measurement:
        return cls(status="failed", error=error, **kw)

    def with_(self, **changes: Any) -> Measurement:
        """A copy with some fields changed (records are immutable)."""
        return replace(self, **changes)
