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

This module uses the standard library only: the on-device agent that latbench pushes to a
Raspberry Pi ships it together with :mod:`latbench.profilers.stats` and
:mod:`latbench.profilers.harness`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from latbench.profilers import stats as _stats

RECORD_VERSION = 1


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
            return float(simple[statistic]())
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
        """95 % distribution-free confidence interval of the median."""
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
        d = asdict(self)
        d["samples_ms"] = list(self.samples_ms)
        d["warmup_ms"] = list(self.warmup_ms)
        d["per_op"] = list(self.per_op)
        d["cpu_samples_ms"] = list(self.cpu_samples_ms)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        version = int(d.get("record_version", 1))
        if version > RECORD_VERSION:
            raise ValueError(
                f"measurement record version {version} is newer than this latbench supports "
                f"({RECORD_VERSION}); upgrade latbench"
            )
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for key in ("samples_ms", "warmup_ms", "cpu_samples_ms"):
            if key in kw:
                kw[key] = tuple(float(x) for x in kw[key])
        if "per_op" in kw:
            kw["per_op"] = tuple(kw["per_op"])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        return cls.from_dict(json.loads(text))

    @classmethod
    def failed(cls, error: str, **kw: Any) -> Measurement:
        return cls(status="failed", error=error, **kw)

    def with_(self, **changes: Any) -> Measurement:
        """A copy with some fields changed (records are immutable)."""
        return replace(self, **changes)
