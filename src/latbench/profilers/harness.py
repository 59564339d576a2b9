"""The timing loop: warm-up, loop-count calibration, and an adaptive stopping rule.

This module uses the standard library only (it is shipped to on-device agents together with
:mod:`latbench.profilers.record` and :mod:`latbench.profilers.stats`).

Algorithm (``run_harness(fn, settings, clock)``)::

    resolution = smallest positive step of clock()             # timer resolution
    warm-up:   call fn() until >= warmup_runs calls AND >= warmup_time_s seconds
               (capped by max_time_s); keep every warm-up time
    loops  = 1 if settings.loops is None and the median warm-up call is long enough,
             else ceil(target_sample_s / median warm-up call)     # pytest-benchmark style
             with target_sample_s = max(min_sample_time_s, 1000 * resolution)
    timed:     repeat { c0 = cpu_clock(); t0 = clock(); fn() x loops; t1 = clock();
                        c1 = cpu_clock(); keep (t1 - t0) / loops and (c1 - c0) / loops }
               stop when  runs >= min_runs AND elapsed >= min_time_s
                          AND cpu elapsed >= min_cpu_fraction * min_time_s
                          AND (spread_threshold == 0 OR IQR/median <= spread_threshold)
               or when    elapsed >= max_time_s (or runs >= max_runs)

Trade-offs: grouping ``loops`` calls per sample makes the per-sample timer overhead negligible
for models of a few microseconds, at the cost of samples that are means of ``loops`` calls (the
percentiles then describe those means; ``loops`` is kept in the record). The spread rule is
evaluated on a geometric schedule (every ~10 % more samples) so that checking it costs
O(n log n) in total, not per sample. Garbage collection is disabled while timing (as ``timeit``
does) so a collection does not land inside one sample.

Next to each wall-clock sample the harness keeps the CPU time the calling thread spent in it
(``cpu_clock``, ``time.thread_time`` by default: ``CLOCK_THREAD_CPUTIME_ID``). With one
intra-op thread the runtime computes in the calling thread, so the difference between the two is
the time other processes took the CPU away mid-inference; the CPU clock is read outside the
wall-clock window, so it adds nothing to the wall samples.
"""

from __future__ import annotations

import gc
import math
import numbers
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from latbench.profilers import stats as _stats

Clock = Callable[[], float]

#: the settings that count (runs, loops) rather than measure seconds
_INT_KEYS = ("warmup_runs", "min_runs", "max_runs", "loops")
#: the settings that may be None (no cap, calibrate)
_OPTIONAL_KEYS = ("max_runs", "loops")


@dataclass(frozen=True)
class HarnessSettings:
    """How long to warm up and when to stop timing (all durations in seconds)."""

    warmup_runs: int = 10
    warmup_time_s: float = 0.2
    min_runs: int = 20
    min_time_s: float = 1.0
    max_time_s: float = 10.0
    spread_threshold: float = 0.05  # IQR / median; 0 disables the spread rule
    max_runs: int | None = None  # optional cap on the number of timed samples
    loops: int | None = None  # inferences per timed sample; None = calibrate
    min_sample_time_s: float = 1e-4  # calibration target for one timed sample
    timeout_s: float = 120.0  # used by the worker: a task that runs longer is killed
    # the timed runs also need this share of min_time_s in CPU time of the timing thread: on a
    # loaded machine the window stretches (up to max_time_s) until the model really ran that
    # long; on a quiet one it changes nothing. 0 disables it
    min_cpu_fraction: float = 0.5
    # which statistic a record's ``latency_ms`` is (``stats.STATISTICS``); median_ms stays the
    # median whatever this says
    statistic: str = "median"

    def __post_init__(self) -> None:
        if self.statistic not in _stats.STATISTICS:
            raise ValueError(
                f"harness setting statistic = {self.statistic!r}; expected one of "
                f"{', '.join(_stats.STATISTICS)}"
            )
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if f.name == "statistic" or (value is None and f.name in _OPTIONAL_KEYS):
                continue
            whole = f.name in _INT_KEYS
            kind = numbers.Integral if whole else numbers.Real
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(
                    f"harness setting {f.name} = {value!r}; expected "
                    + ("an integer" if whole else "a number of seconds")
                    + (" or None" if f.name in _OPTIONAL_KEYS else "")
                )
            if not math.isfinite(value):  # NaN passes every comparison below: no stop at all
                raise ValueError(f"harness setting {f.name} = {value!r}; expected a finite number")
            if value < 0:
                raise ValueError(f"harness setting {f.name} = {value!r}; expected a value >= 0")
            # plain numbers (a numpy int64 would not go into a record's JSON)
            raw: Any = value  # narrowed to numbers.Real above, which int() does not take
            object.__setattr__(self, f.name, int(raw) if whole else float(raw))
        if not self.timeout_s > 0:
            raise ValueError(
                f"harness setting timeout_s = {self.timeout_s!r}; expected seconds > 0"
            )
        for key in _OPTIONAL_KEYS:  # 0 samples per window, or 0 timed samples: nothing timed
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"harness setting {key} = {value!r}; expected >= 1 or None")
        if self.max_time_s < self.min_time_s:
            raise ValueError(
                f"harness setting max_time_s = {self.max_time_s!r} is below "
                f"min_time_s = {self.min_time_s!r}; expected max_time_s >= min_time_s"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> HarnessSettings:
        """Settings from a mapping such as ``Config.measure``; unknown keys are ignored."""
        kw = {k: v for k, v in values.items() if k in HARNESS_KEYS and v is not None}
        for key, value in kw.items():
            numeric = key != "statistic"
            if numeric != (isinstance(value, int | float) and not isinstance(value, bool)):
                raise ValueError(
                    f"harness setting {key} = {value!r}; expected "
                    + ("a number" if numeric else "a string")
                )
            if numeric and not math.isfinite(value):
                raise ValueError(f"harness setting {key} = {value!r}; expected a finite number")
        for key in _INT_KEYS:
            if key in kw:
                if kw[key] != int(kw[key]):  # 2.7 runs is no count (int() would make it 2)
                    raise ValueError(f"harness setting {key} = {kw[key]!r}; expected an integer")
                kw[key] = int(kw[key])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: the names of the harness settings: the keys a [measure] or device table may set
HARNESS_KEYS = frozenset(f.name for f in fields(HarnessSettings))


@dataclass(frozen=True)
class HarnessResult:
    """The raw outcome of one timing loop (times in milliseconds, per inference)."""

    samples_ms: tuple[float, ...]
    loops: int
    warmup_ms: tuple[float, ...]
    stop_reason: str  # "converged", "max_time" or "max_runs"
    timer_resolution_s: float
    elapsed_s: float
    # CPU time of the calling thread per inference, one per sample (empty without a CPU clock)
    cpu_samples_ms: tuple[float, ...] = ()


def _zero() -> float:
    return 0.0


def timer_resolution(clock: Clock = time.perf_counter, tries: int = 200) -> float:
    """The smallest positive difference between two consecutive ``clock()`` readings."""
    best = math.inf
    for _ in range(tries):
        t0 = clock()
        t1 = clock()
        while t1 == t0:
            t1 = clock()
        best = min(best, t1 - t0)
    return float(best)


def _calibrate_loops(warmup_s: list[float], settings: HarnessSettings, resolution: float) -> int:
    if settings.loops is not None:
        return settings.loops
    target = max(settings.min_sample_time_s, 1000.0 * resolution)
    per_call = statistics.median(warmup_s) if warmup_s else target
    if per_call <= 0:
        per_call = resolution
    return max(1, math.ceil(target / per_call)) if per_call < target else 1


def run_harness(
    fn: Callable[[], object],
    settings: HarnessSettings | None = None,
    clock: Clock = time.perf_counter,
    resolution_s: float | None = None,
    cpu_clock: Clock | None = None,
) -> HarnessResult:
    """Time the zero-argument callable ``fn`` (one inference per call); see the module docstring.

    ``clock`` returns seconds; tests inject a fake clock to check the stopping logic (and may
    pass ``resolution_s`` to skip measuring the fake clock's resolution). ``cpu_clock`` (seconds
    of CPU time) gives ``cpu_samples_ms`` and the CPU-time rule; when None it is
    ``time.thread_time`` with the real ``clock`` and absent with an injected one (a fake wall
    clock next to a real CPU clock would never satisfy the rule).
    """
    if cpu_clock is None and clock is time.perf_counter:
        cpu_clock = time.thread_time
    s = settings or HarnessSettings()
    resolution = timer_resolution(clock) if resolution_s is None else resolution_s
    start = clock()
    warm: list[float] = []
    # ---- warm-up ------------------------------------------------------------------------
    now = start
    while len(warm) < s.warmup_runs or now - start < s.warmup_time_s:
        t0 = clock()
        fn()
        now = clock()
        warm.append(now - t0)
        if now - start >= s.max_time_s:
            break
    loops = _calibrate_loops(warm, s, resolution)
    # ---- timed runs ---------------------------------------------------------------------
    samples: list[float] = []
    cpu_samples: list[float] = []
    cpu = cpu_clock if cpu_clock is not None else _zero
    next_check = max(1, s.min_runs)
    reason = "max_time"
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t_start = clock()
        c_start = cpu()
        min_cpu_s = s.min_cpu_fraction * s.min_time_s if cpu_clock is not None else 0.0
        rng = range(loops)
        while True:
            c0 = cpu()
            t0 = clock()
            for _ in rng:
                fn()
            t1 = clock()
            c1 = cpu()
            samples.append((t1 - t0) / loops)
            cpu_samples.append((c1 - c0) / loops)
            n = len(samples)
            elapsed = t1 - t_start
            if s.max_runs is not None and n >= s.max_runs:
                reason = "max_runs"
                break
            if elapsed >= s.max_time_s:
                reason = "max_time"
                break
            if n >= s.min_runs and elapsed >= s.min_time_s and c1 - c_start >= min_cpu_s:
                if s.spread_threshold <= 0:
                    reason = "converged"
                    break
                if n >= next_check:
                    next_check = n + max(1, n // 10)
                    med = _stats.median(samples)
                    if med > 0 and _stats.iqr(samples) / med <= s.spread_threshold:
                        reason = "converged"
                        break
    finally:
        if gc_was_enabled:
            gc.enable()
    end = clock()
    return HarnessResult(
        samples_ms=tuple(x * 1e3 for x in samples),
        loops=loops,
        warmup_ms=tuple(x * 1e3 for x in warm),
        stop_reason=reason,
        timer_resolution_s=resolution,
        elapsed_s=end - start,
        cpu_samples_ms=tuple(x * 1e3 for x in cpu_samples) if cpu_clock is not None else (),
    )
