"""Statistics of raw latency samples (standard library only; shipped to on-device agents)."""

from __future__ import annotations

import itertools
import math
import numbers
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def mean(xs: Sequence[float]) -> float:
    return float(statistics.fmean(xs))


def std(xs: Sequence[float]) -> float:
    return float(statistics.stdev(xs)) if len(xs) > 1 else 0.0


def percentile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100] (numpy's default method).

    Raises ValueError for ``q`` outside [0, 100] or not a number (NaN included), and for no
    samples. The samples must be finite (a :class:`~latbench.profilers.record.Measurement`
    refuses others): NaN has no place in a sorted order.
    """
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0 <= q <= 100:
        shown = q if isinstance(q, numbers.Real) else repr(q)
        raise ValueError(f"percentile q={shown}; expected 0 <= q <= 100")
    s = sorted(xs)
    if not s:
        raise ValueError("percentile of no samples")
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def iqr(xs: Sequence[float]) -> float:
    return percentile(xs, 75) - percentile(xs, 25)


def median_ci(xs: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    Uses the normal approximation of the binomial(n, 1/2) for the ranks:
    ``j, k = n/2 -+ z * sqrt(n)/2``. With fewer than 6 samples the interval is (min, max).
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"confidence level {level!r}; expected 0 < level < 1 (0.95 for 95 %)")
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("confidence interval of no samples")
    if n < 6:
        return float(s[0]), float(s[-1])
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    return float(s[lo]), float(s[hi])


# ---- robust estimators for a shared machine -------------------------------------------------
#: The statistics a record's ``latency_ms`` can be (``Measurement.statistic``):
#: ``median`` (of all samples), ``min``, ``p10`` / ``p25`` (low percentiles), ``round_min``
#: (median over rounds of each round's minimum), ``cpu_median`` (median of the worker thread's
#: CPU time per inference), ``normalized`` (target/reference ratio x the reference's calibrated
#: latency; needs a reference measured in the same rounds).
STATISTICS = ("median", "min", "p10", "p25", "round_min", "cpu_median", "normalized")

#: Rounds a single window is cut into for ``round_min`` when the record has no round sizes.
DEFAULT_BLOCKS = 5


def split_rounds(xs: Sequence[float], sizes: Sequence[int] = ()) -> list[list[float]]:
    """Cut ``xs`` into consecutive rounds of ``sizes`` samples (``DEFAULT_BLOCKS`` equal blocks
    when ``sizes`` is empty or does not add up to ``len(xs)``); empty rounds are dropped."""
    n = len(xs)
    if not sizes or sum(sizes) != n:
        k = max(1, min(DEFAULT_BLOCKS, n))
        bounds = [round(i * n / k) for i in range(k + 1)]
        sizes = [b - a for a, b in itertools.pairwise(bounds)]
    out: list[list[float]] = []
    start = 0
    for size in sizes:
        if size > 0:
            out.append(list(xs[start : start + size]))
        start += size
    return out


def round_min(xs: Sequence[float], sizes: Sequence[int] = ()) -> float:
    """Median over rounds of each round's minimum.

    The minimum of one short window is the time of an inference that no other process
    interrupted; taking the median over rounds discards a round whose every sample was slowed
    (a load spike covering the whole window), which the plain minimum cannot do.
    """
    rounds = split_rounds(xs, sizes)
    if not rounds:
        raise ValueError("round_min of no samples")
    return median([min(r) for r in rounds])


def min_confirmed(round_minima: Sequence[float], tolerance: float) -> bool:
    """Is the minimum of these rounds confirmed: does a second round come within ``tolerance``?

    The fastest inference of a run is a repeatable estimate only once the machine has been
    quiet long enough to reach it more than once; a single fast round may be luck, and a run
    whose every round was slowed has not found the floor at all. Fewer than two rounds, or a
    ``tolerance`` <= 0, count as confirmed (nothing to check).
    """
    if tolerance <= 0 or len(round_minima) < 2:
        return True
    first, second = sorted(round_minima)[:2]
    return second <= (1.0 + tolerance) * first


def steal_fraction(before: Mapping[str, Any], after: Mapping[str, Any]) -> float | None:
    """Share of CPU time the hypervisor stole between two ``env`` snapshots (``cpu_ticks``).

    ``cpu_ticks`` is ``{"cpuN": {"steal": int, "total": int, ...}}`` of the pinned CPUs (see
    :func:`latbench.profilers.env.cpu_ticks`). ``None`` when either snapshot lacks it.
    """
    a, b = before.get("cpu_ticks"), after.get("cpu_ticks")
    if not isinstance(a, dict) or not isinstance(b, dict):
        return None
    steal = total = 0
    for cpu, t1 in b.items():
        t0 = a.get(cpu)
        if isinstance(t0, dict) and isinstance(t1, dict):
            steal += int(t1.get("steal", 0)) - int(t0.get("steal", 0))
            total += int(t1.get("total", 0)) - int(t0.get("total", 0))
    return steal / total if total > 0 else None


# ---- stability verdict (pyperf ``format_checks`` in spirit) ---------------------------------
MIN_RUNS_FOR_VERDICT = 10
#: below this many samples neither the spread nor the drift can be judged: the verdict is
#: "unknown" whatever ``min_runs`` says (one sample is not a stable measurement)
MIN_SAMPLES_TO_JUDGE = 4
SPREAD_LIMIT = 0.10  # IQR / median
DRIFT_LIMIT = 0.05  # |median(second half) / median(first half) - 1|
FREQ_CHANGE_LIMIT = 0.05
STEAL_LIMIT = 0.05  # share of the pinned CPUs' time stolen by the hypervisor
#: NVML clock-event (throttle) reasons that hold a GPU's clocks below what it would run at
#: (``nvmlClocksEventReason*``); idle (0x1), application clocks (0x2), sync boost (0x10) and
#: display clocks (0x100) are settings or normal states, not slowdowns
GPU_SLOWDOWN_REASONS = {
    0x4: "power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "power brake",
}


def _relative(delta: float, base: float) -> float:
    """``delta / base``; 0 for no change at all, infinite for a change of a zero base."""
    if base > 0:
        return delta / base
    return 0.0 if delta == 0 else math.copysign(math.inf, delta)


def _freq_values(env: Mapping[str, Any]) -> list[float]:
    cur = env.get("cpu_cur_freq_khz")
    if isinstance(cur, dict):
        return [float(v) for v in cur.values() if isinstance(v, int | float)]
    return []


def _gpu_slowdowns(env: Mapping[str, Any]) -> set[int]:
    """The :data:`GPU_SLOWDOWN_REASONS` bits set in ``env["throttle_reasons"]`` (none: empty)."""
    bits = env.get("throttle_reasons")
    if isinstance(bits, bool) or not isinstance(bits, int):
        return set()
    return {b for b in GPU_SLOWDOWN_REASONS if bits & b}


def stability(
    samples: Sequence[float],
    env_before: Mapping[str, Any] | None = None,
    env_after: Mapping[str, Any] | None = None,
    min_runs: int = MIN_RUNS_FOR_VERDICT,
    spread_limit: float = SPREAD_LIMIT,
    drift_limit: float = DRIFT_LIMIT,
) -> dict[str, Any]:
    """Judge whether ``samples`` are a stable measurement; say why not and what to do.

    Checks: too few runs; spread (IQR/median) above ``spread_limit``; drift between the medians
    of the first and second half; a CPU frequency change between ``env_before`` and
    ``env_after``; steal time above ``STEAL_LIMIT``; thermal throttle counters that grew; a GPU
    whose NVML clock-event reasons (``throttle_reasons``, read before and after timing) show a
    slowdown (:data:`GPU_SLOWDOWN_REASONS`). A change of the GPU's SM clock is not judged: the
    reading before timing follows a single warm-up inference, which cannot tell a clock that
    is still ramping up from one that drifted.
    Returns ``{"stable": bool, "judged": bool, "reasons": [...], "advice": [...], "spread":
    float, "drift": float}``; ``judged`` is False (and ``stable`` too) with fewer than
    ``MIN_SAMPLES_TO_JUDGE`` samples: the verdict is unknown.
    """
    reasons: list[str] = []
    advice: list[str] = []
    n = len(samples)
    spread = drift = float("nan")
    judged = n >= MIN_SAMPLES_TO_JUDGE
    if n < max(min_runs, MIN_SAMPLES_TO_JUDGE):
        reasons.append(f"too few runs: {n} < {max(min_runs, MIN_SAMPLES_TO_JUDGE)}")
        advice.append("raise --min-runs or --min-time")
    if n >= 2:
        med = median(samples)
        # all-equal samples have no spread, zero ones included (0 / 0 is not "too wide")
        spread = _relative(iqr(samples), med)
        if spread > spread_limit:
            reasons.append(f"spread too wide: IQR/median = {spread:.1%} > {spread_limit:.0%}")
            advice.append(
                "close other programs, pin to an idle CPU (--cpus), or raise --min-time so the "
                "median is taken over a longer window"
            )
    if n >= max(4, min_runs):
        half = n // 2
        m1, m2 = median(samples[:half]), median(samples[half:])
        drift = _relative(m2 - m1, m1)
        if abs(drift) > drift_limit:
            reasons.append(f"drift: the second half's median is {drift:+.1%} off the first half's")
            advice.append("warm up longer (--warmup-time) or check for background load")
    if env_before and env_after:
        f0, f1 = _freq_values(env_before), _freq_values(env_after)
        if f0 and f1:
            a, b = sum(f0) / len(f0), sum(f1) / len(f1)
            if a > 0 and abs(b / a - 1) > FREQ_CHANGE_LIMIT:
                reasons.append(f"CPU frequency changed: {a / 1e3:.0f} -> {b / 1e3:.0f} MHz")
                advice.append("set the governor to performance (cpupower frequency-set -g ...)")
        stolen = steal_fraction(env_before, env_after)
        if stolen is not None and stolen > STEAL_LIMIT:
            reasons.append(f"the hypervisor stole {stolen:.1%} of the pinned CPUs' time")
            advice.append(
                "the VM shares its host: compare models measured in the same interleaved run "
                "(measure_many with a reference), or use a dedicated machine"
            )
        t0, t1 = env_before.get("throttle_counts"), env_after.get("throttle_counts")
        if isinstance(t0, dict) and isinstance(t1, dict):
            grown = [k for k, v in t1.items() if isinstance(v, int) and v > int(t0.get(k, 0))]
            if grown:
                reasons.append(f"thermal throttling seen ({', '.join(sorted(grown)[:3])})")
                advice.append("cool the device down between runs (cooldown_s) or add a heatsink")
        slow = _gpu_slowdowns(env_before) | _gpu_slowdowns(env_after)
        if slow:
            names = [GPU_SLOWDOWN_REASONS[b] for b in sorted(slow)]
            reasons.append(f"GPU clocks held down: {', '.join(names)}")
            advice.append(
                "let the GPU cool between runs (cooldown_s), check its power limit "
                "(nvidia-smi -q -d POWER) or lock its clocks (nvidia-smi --lock-gpu-clocks)"
            )
    return {
        "stable": not reasons,
        "judged": judged,
        "reasons": reasons,
        "advice": list(dict.fromkeys(advice)),
        "spread": spread,
        "drift": drift,
    }


# ---- comparing two models measured in the same interleaved rounds -----------------------------
#: what one round of samples is summarised by when two models are compared round by round
ROUND_STATISTICS: dict[str, Callable[[Sequence[float]], float]] = {
    "median": median,
    "min": min,
    "round_min": min,  # the round's minimum is what round_min takes the median of
    "p10": lambda xs: percentile(xs, 10),
    "p25": lambda xs: percentile(xs, 25),
}


def round_values(
    xs: Sequence[float], sizes: Sequence[int], statistic: str = "median"
) -> list[float]:
    """``statistic`` (a key of :data:`ROUND_STATISTICS`) of each round of samples ``xs``."""
    if statistic not in ROUND_STATISTICS:
        raise ValueError(
            f"statistic {statistic!r} has no per-round value; expected one of "
            f"{', '.join(ROUND_STATISTICS)}"
        )
    if not sizes or sum(sizes) != len(xs):
        raise ValueError(
            f"round sizes {list(sizes)} do not add up to the {len(xs)} samples; expected the "
            "round_sizes of an interleaved record"
        )
    f = ROUND_STATISTICS[statistic]
    return [float(f(r)) for r in split_rounds(xs, sizes)]


def paired_ratio(
    baseline: Sequence[float], other: Sequence[float], level: float = 0.95
) -> dict[str, float | int]:
    """``other / baseline``, round by round, summarised by its median and a distribution-free
    confidence interval of that median (:func:`median_ci`).

    ``baseline[r]`` and ``other[r]`` are one round's values of two models measured in the same
    rounds (``A B, B A, ...``): each ratio compares the two under the same moment's load, so a
    burst that slows one round slows both sides of its ratio, which a ratio of two overall
    medians cannot say. Only the rounds both have are paired (confirmation rounds run for one
    model alone are left out). With fewer than 6 rounds the interval is the range of the ratios.
    """
    n = min(len(baseline), len(other))
    if n == 0:
        raise ValueError("paired ratio of no rounds; expected rounds measured for both models")
    ratios = [o / b for b, o in zip(baseline[:n], other[:n], strict=True)]
    low, high = median_ci(ratios, level)
    return {"ratio": median(ratios), "ci_low": low, "ci_high": high, "rounds": n}
