"""The timing harness's stopping logic (with a fake clock) and the statistics/verdict."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from latbench.profilers import stats
from latbench.profilers.harness import HarnessSettings, run_harness, timer_resolution
from latbench.profilers.record import Measurement


class FakeClock:
    """A clock that only moves when a fake inference runs (``step`` seconds per call)."""

    def __init__(self, durations: Iterator[float]) -> None:
        self.t = 0.0
        self.durations = durations
        self.calls = 0

    def __call__(self) -> float:
        return self.t

    def work(self) -> None:
        self.calls += 1
        self.t += next(self.durations)


def const(x: float) -> Iterator[float]:
    while True:
        yield x


def test_stops_when_min_runs_and_min_time_are_both_met() -> None:
    step = 2.0**-7  # 7.8125 ms per inference (dyadic: exact in floating point)
    clock = FakeClock(const(step))
    s = HarnessSettings(
        warmup_runs=3,
        warmup_time_s=0.0,
        min_runs=20,
        min_time_s=0.5,
        max_time_s=5,
        spread_threshold=0.0,
    )
    r = run_harness(clock.work, s, clock=clock, resolution_s=1e-9)
    assert r.warmup_ms == (step * 1e3,) * 3
    assert r.loops == 1
    # min_time 0.5 s at 7.8125 ms per run -> 64 runs (more than min_runs)
    assert len(r.samples_ms) == 64
    assert r.stop_reason == "converged"
    assert all(math.isclose(x, step * 1e3) for x in r.samples_ms)


def test_min_runs_dominates_when_time_is_short() -> None:
    clock = FakeClock(const(0.1))
    s = HarnessSettings(
        warmup_runs=1,
        warmup_time_s=0,
        min_runs=7,
        min_time_s=0.01,
        max_time_s=100,
        spread_threshold=0,
    )
    r = run_harness(clock.work, s, clock=clock, resolution_s=1e-9)
    assert len(r.samples_ms) == 7


def test_warmup_by_time_keeps_every_warmup_sample() -> None:
    clock = FakeClock(const(2.0**-7))
    s = HarnessSettings(
        warmup_runs=0,
        warmup_time_s=0.125,
        min_runs=1,
        min_time_s=0,
        max_time_s=1,
        spread_threshold=0,
    )
    r = run_harness(clock.work, s, clock=clock, resolution_s=1e-9)
    assert len(r.warmup_ms) == 16


def noisy_then_quiet() -> Iterator[float]:
    # alternating 5 / 15 ms for the first 100 calls (IQR/median = 100 %), then a steady 10 ms
    for i in range(100):
        yield 0.005 if i % 2 else 0.015
    while True:
        yield 0.010


def test_spread_rule_waits_for_a_narrow_iqr() -> None:
    clock = FakeClock(noisy_then_quiet())
    s = HarnessSettings(
        warmup_runs=0,
        warmup_time_s=0,
        min_runs=10,
        min_time_s=0.1,
        max_time_s=100,
        spread_threshold=0.05,
    )
    r = run_harness(clock.work, s, clock=clock, resolution_s=1e-9)
    assert r.stop_reason == "converged"
    assert len(r.samples_ms) > 200  # had to outweigh the 100 noisy samples
    assert stats.iqr(r.samples_ms) / stats.median(r.samples_ms) <= 0.05


def test_max_time_caps_an_unstable_measurement() -> None:
    clock = FakeClock(iter([0.005, 0.015] * 10_000))
    s = HarnessSettings(
        warmup_runs=0,
        warmup_time_s=0,
        min_runs=10,
        min_time_s=0.1,
        max_time_s=2.0,
        spread_threshold=0.01,
    )
    r = run_harness(clock.work, s, clock=clock, resolution_s=1e-9)
    assert r.stop_reason == "max_time"
    assert 190 <= len(r.samples_ms) <= 201


def test_max_runs_caps_the_sample_count() -> None:
    clock = FakeClock(const(0.001))
    s = HarnessSettings(
        warmup_runs=0, warmup_time_s=0, min_runs=5, min_time_s=10, max_time_s=20, max_runs=30
    )
    r = run_harness(clock.work, s, clock=clock, resolution_s=1e-9)
    assert (len(r.samples_ms), r.stop_reason) == (30, "max_runs")


def test_tiny_calls_are_grouped_in_loops_sized_from_the_timer_resolution() -> None:
    clock = FakeClock(const(2.0**-19))  # a 1.9 us model
    s = HarnessSettings(
        warmup_runs=5,
        warmup_time_s=0,
        min_runs=10,
        min_time_s=0.01,
        max_time_s=1,
        spread_threshold=0,
        min_sample_time_s=1e-4,
    )
    r = run_harness(clock.work, s, clock=clock, resolution_s=2.0**-20)
    # target = max(1e-4, 1000 * resolution) = 0.95 ms -> 500 calls per sample
    assert r.loops == 500
    assert all(math.isclose(x, 2.0**-19 * 1e3) for x in r.samples_ms)  # per-call ms


def test_explicit_loops_are_kept() -> None:
    clock = FakeClock(const(1e-3))
    s = HarnessSettings(
        warmup_runs=1,
        warmup_time_s=0,
        min_runs=3,
        min_time_s=0,
        max_time_s=1,
        loops=4,
        spread_threshold=0,
    )
    r = run_harness(clock.work, s, clock=clock, resolution_s=1e-9)
    assert r.loops == 4 and clock.calls == 1 + 3 * 4


def test_real_clock_resolution_is_small_and_positive() -> None:
    res = timer_resolution()
    assert 0 < res < 1e-3


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"min_runs": -1}, "min_runs"),
        ({"loops": 0}, "loops"),
        ({"min_time_s": 5, "max_time_s": 1}, "max_time_s"),
    ],
)
def test_bad_settings_are_rejected_with_the_name(kw: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HarnessSettings(**kw)  # type: ignore[arg-type]


def test_settings_from_config_mapping_ignore_unknown_keys() -> None:
    s = HarnessSettings.from_mapping({"min_runs": 5.0, "runtime": "onnxruntime", "cpus": None})
    assert s.min_runs == 5 and isinstance(s.min_runs, int)


# ---- statistics and the verdict ------------------------------------------------------------
def test_statistics_of_a_record_come_from_the_raw_samples() -> None:
    xs = tuple(float(x) for x in range(1, 101))
    m = Measurement(samples_ms=xs)
    assert m.median_ms == 50.5 and m.min_ms == 1.0
    assert math.isclose(m.p90_ms, 90.1) and math.isclose(m.iqr_ms, 49.5)
    lo, hi = m.ci_median_ms
    assert lo < 50.5 < hi
    assert Measurement.from_json(m.to_json()) == m


def test_verdict_is_stable_for_tight_samples() -> None:
    v = stats.stability([10.0 + 0.01 * (i % 3) for i in range(50)])
    assert v["stable"] and v["reasons"] == []


def test_verdict_flags_spread_drift_and_too_few_runs() -> None:
    wide = stats.stability([5.0, 15.0] * 30)
    assert not wide["stable"] and any("spread" in r for r in wide["reasons"])
    drift = stats.stability([10.0] * 30 + [12.0] * 30)
    assert any("drift" in r for r in drift["reasons"]) and drift["advice"]
    few = stats.stability([1.0, 1.0, 1.0])
    assert any("too few runs" in r for r in few["reasons"])


def test_verdict_flags_frequency_change_and_throttling() -> None:
    before = {"cpu_cur_freq_khz": {"0": 2_000_000}, "throttle_counts": {"cpu0/core": 1}}
    after = {"cpu_cur_freq_khz": {"0": 1_500_000}, "throttle_counts": {"cpu0/core": 4}}
    v = stats.stability([1.0] * 40, before, after)
    text = " ".join(v["reasons"])
    assert "frequency changed" in text and "throttling" in text


def test_verdict_flags_a_gpu_held_down_by_power_or_heat() -> None:
    """A GPU whose NVML clock-event reasons show a thermal or power slowdown was judged stable
    on its samples alone. The readings are what the cuda device records (``nvml_snapshot``);
    idle (0x1) and sync boost (0x10) are normal states, not slowdowns."""
    calm = stats.stability([1.0] * 40, {"throttle_reasons": 0x1}, {"throttle_reasons": 0x10})
    assert calm["stable"], calm["reasons"]
    hot = stats.stability([1.0] * 40, {"throttle_reasons": 0x1}, {"throttle_reasons": 0x24})
    assert not hot["stable"]
    assert hot["reasons"] == ["GPU clocks held down: power cap, software thermal slowdown"]
    assert any("lock-gpu-clocks" in a for a in hot["advice"])
    # a reading that is missing or not a bit mask judges nothing
    odd = stats.stability([1.0] * 40, {"unavailable": "no NVML"}, {"throttle_reasons": True})
    assert odd["stable"]


def test_failed_record_verdict_and_summary() -> None:
    m = Measurement.failed("worker died with signal SIGSEGV")
    assert not m.ok and m.summary()["runs"] == 0
    assert "SIGSEGV" in m.verdict()["reasons"][0]
