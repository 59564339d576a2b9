"""Robustness of the measurement record, its statistics, the counters and the env snapshots.

Audit findings 3 (a counter multiplexed out is "not counted", never 0), 6 (non-finite samples
refused; strict JSON), 7 (the record is immutable all the way down, copies its input, hashes),
10 (``stats.percentile`` refuses a bad ``q``) and 11 (``env_after`` records ``pinned_cpus``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latbench.profilers import counters as ctr
from latbench.profilers import stats
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement
from latbench.profilers.task import MeasureSpec, run_interleaved, run_measurement
from measure_models import tiny_net

FAST = HarnessSettings(
    warmup_runs=2, warmup_time_s=0.0, min_runs=5, min_time_s=0.05, max_time_s=0.5
)


def _strict_loads(text: str) -> Any:
    """``json.loads`` that refuses NaN / Infinity (what a strict JSON reader does)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_net(tmp_path_factory.mktemp("robust") / "tiny.onnx")


@pytest.fixture(scope="module")
def measured(tiny: Path) -> Measurement:
    """A real measurement of a real model, in this process (the worker's code path)."""
    return run_measurement(MeasureSpec(model=str(tiny), settings=FAST))


def _record(**kw: Any) -> Measurement:
    base: dict[str, Any] = {
        "samples_ms": (1.0, 1.01, 1.02, 0.99, 1.0),
        "harness": {"settings": {"min_runs": 5}, "round_sizes": [5]},
        "env": {"a": [1, 2], "cpu_ticks": {"cpu1": {"steal": 0, "total": 10}}},
        "counters": {"cycles": {"value": None, "unavailable": "x"}},
        "per_op": ({"op": "Conv", "time_ms": 0.5},),
        "input_shapes": {"x": [1, 3, 32, 32]},
        "runtime_settings": {"t": [1, 2]},
    }
    base.update(kw)
    return Measurement(**base)


# ---- finding 6: non-finite / negative samples ---------------------------------------------------
@pytest.mark.parametrize("field", ["samples_ms", "warmup_ms", "cpu_samples_ms"])
@pytest.mark.parametrize(
    ("bad", "shown"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), (-0.5, "-0.5")]
)
def test_a_non_finite_or_negative_time_is_refused_naming_field_and_position(
    field: str, bad: float, shown: str
) -> None:
    times = (1.0,) * 11 + (bad,)
    with pytest.raises(ValueError, match=rf"^{field}\[11\] = {shown}; expected a finite time"):
        Measurement(**{field: times})


def test_a_nan_sample_is_refused_when_loaded_from_json_or_a_dict() -> None:
    good = Measurement(samples_ms=(1.0, 2.0, 3.0))
    text = good.to_json().replace('"samples_ms": [1.0, 2.0, 3.0]', '"samples_ms": [1.0, NaN, 3.0]')
    assert "NaN" in text
    with pytest.raises(ValueError, match=r"samples_ms\[1\] = nan"):
        Measurement.from_json(text)
    with pytest.raises(ValueError, match=r"samples_ms\[0\] = 'nan'; expected a finite time"):
        Measurement.from_dict({"samples_ms": ["nan", 1.0]})
    with pytest.raises(ValueError, match=r"cpu_samples_ms\[0\] = True"):
        Measurement.from_dict({"cpu_samples_ms": [True]})
    with pytest.raises(ValueError, match=r"samples_ms = None; expected a sequence of times"):
        Measurement.from_dict({"samples_ms": None})


def test_valid_times_are_kept_as_float_tuples() -> None:
    m = Measurement(samples_ms=[1, np.float64(2.5), 0.0], warmup_ms=[3])
    assert m.samples_ms == (1.0, 2.5, 0.0) and all(type(x) is float for x in m.samples_ms)
    assert m.warmup_ms == (3.0,)
    assert m.summary()["median_ms"] == 1.0


def test_a_failed_measurement_still_has_nan_statistics_and_strict_json() -> None:
    m = Measurement.failed("worker died with signal SIGSEGV", harness={"failure": "model"})
    assert not m.ok and math.isnan(m.median_ms) and math.isnan(m.p99_ms)
    v = m.verdict()
    assert v["stable"] is False and math.isnan(v["spread"])
    assert m.summary() == {"status": "failed", "error": m.error, "runs": 0}
    again = Measurement.from_json(m.to_json())
    assert again == m and hash(again) == hash(m)


def test_to_json_is_strict_json_even_with_nan_metadata() -> None:
    m = _record(
        counters={"cycles": {"value": math.nan, "unit": "count"}},
        reference={"ratio": math.inf, "ratios": [1.0, math.nan]},
        env={"loadavg": [math.nan, 0.5]},
    )
    doc = _strict_loads(m.to_json())  # raises on a bare NaN / Infinity
    assert doc["counters"]["cycles"]["value"] is None
    assert doc["reference"] == {"ratio": None, "ratios": [1.0, None]}
    assert doc["env"]["loadavg"] == [None, 0.5]
    assert doc["samples_ms"] == list(m.samples_ms)


# ---- finding 7: immutability, copies, hashing ----------------------------------------------------
def test_the_mapping_fields_cannot_be_changed_through_the_record() -> None:
    m = _record()
    before = m.to_dict()
    attempts = [
        lambda: m.env["a"].append(3),
        lambda: m.env.__setitem__("b", 1),
        lambda: m.env.update(b=1),
        lambda: m.env.pop("a"),
        lambda: m.env["cpu_ticks"]["cpu1"].__setitem__("steal", 5),
        lambda: m.harness["round_sizes"].extend([1]),
        lambda: m.counters["cycles"].clear(),
        lambda: m.per_op[0].__setitem__("time_ms", 9.0),
        lambda: m.input_shapes["x"].__setitem__(0, 8),
        lambda: m.runtime_settings.setdefault("k", 1),
        lambda: m.env_after.__setitem__("x", 1),
        lambda: m.reference.__setitem__("x", 1),
    ]
    for attempt in attempts:
        with pytest.raises(TypeError, match="a Measurement is immutable"):
            attempt()
    assert m.to_dict() == before
    # still plain-looking data for readers: dict / list instances, equal to the plain ones
    assert isinstance(m.env, dict) and isinstance(m.env["a"], list)
    assert m.env == {"a": [1, 2], "cpu_ticks": {"cpu1": {"steal": 0, "total": 10}}}
    assert m.verdict()["stable"] is True  # the harness settings are still read


def test_the_record_does_not_share_the_callers_objects() -> None:
    env = {"a": [1, 2]}
    per_op = [{"op": "Conv", "time_ms": 0.5}]
    m = Measurement(samples_ms=(1.0,), env=env, per_op=per_op)  # type: ignore[arg-type]
    env["a"].append(3)
    env["b"] = 1
    per_op[0]["time_ms"] = 9.0
    assert m.env == {"a": [1, 2]} and m.per_op == ({"op": "Conv", "time_ms": 0.5},)

    d = m.to_dict()
    m2 = Measurement.from_dict(d)
    d["env"]["a"].append(99)
    d["samples_ms"].append(5.0)
    assert m2.env == {"a": [1, 2]} and m2.samples_ms == (1.0,)
    # to_dict gives a mutable copy that does not reach back into the record either
    out = m2.to_dict()
    out["env"]["a"].append(7)
    out["per_op"][0]["op"] = "Gemm"
    assert type(out["env"]) is dict and type(out["env"]["a"]) is list
    assert m2.env == {"a": [1, 2]} and m2.per_op[0]["op"] == "Conv"


def test_records_hash_consistently_with_equality() -> None:
    m = _record()
    same = Measurement.from_json(m.to_json())
    assert same == m and hash(same) == hash(m)
    assert len({m, same}) == 1
    other = m.with_(samples_ms=(2.0, 2.0, 2.0))
    assert other != m and len({m, other}) == 2
    changed = m.with_(harness={**m.harness, "stop_reason": "converged"})
    assert changed.harness["stop_reason"] == "converged" and "stop_reason" not in m.harness
    assert {m: "x"}[same] == "x"


def test_pickle_and_deepcopy_keep_the_record_frozen_and_equal() -> None:
    m = _record()
    for again in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m), copy.copy(m)):
        assert again == m and hash(again) == hash(m)
        with pytest.raises(TypeError, match="immutable"):
            again.env["a"].append(3)


def test_a_real_measurement_is_frozen_hashable_and_round_trips(measured: Measurement) -> None:
    m = measured
    assert m.ok and m.runs >= 5
    with pytest.raises(TypeError, match="immutable"):
        m.env["affinity"].append(99)
    with pytest.raises(TypeError, match="immutable"):
        m.harness["settings"]["min_runs"] = 1
    again = Measurement.from_json(m.to_json())
    assert again == m and hash(again) == hash(m)
    _strict_loads(m.to_json())
    assert again.summary() == m.summary()


# ---- finding 11: env_after has the same shape as env ---------------------------------------------
def test_env_after_records_the_pinned_cpus_like_env(measured: Measurement) -> None:
    pinned = sorted(os.sched_getaffinity(0))
    assert measured.env["pinned_cpus"] == pinned
    assert measured.env_after["pinned_cpus"] == pinned
    assert set(measured.env) == set(measured.env_after)


def test_env_after_of_an_interleaved_run_has_the_same_keys(tiny: Path) -> None:
    (m,) = run_interleaved([MeasureSpec(model=str(tiny), settings=FAST)], rounds=2)
    assert m.env_after["pinned_cpus"] == m.env["pinned_cpus"]
    assert m.env_after["interleaved"] == m.env["interleaved"] == 2
    assert set(m.env) == set(m.env_after)


def test_normalized_with_a_reference_warns_nothing_and_uses_it(
    tiny: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The interleaved run judges the statistic once the reference is known: 'normalized' with
    a reference gives normalized_ms and no "needs a reference model" warning; without one, the
    median and the warning."""
    import dataclasses

    spec = MeasureSpec(model=str(tiny), settings=dataclasses.replace(FAST, statistic="normalized"))
    with caplog.at_level(logging.WARNING, logger="latbench"):
        (m,) = run_interleaved([spec], rounds=2, reference=spec)
    assert m.statistic == "normalized" and m.latency_ms == m.normalized_ms
    assert "needs a reference model" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latbench"):
        (m,) = run_interleaved([spec], rounds=2)
    assert m.statistic == "median" and "needs a reference model" in caplog.text


# ---- finding 10: percentile's q ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("q", "shown"), [(-10, "-10"), (150, "150"), (100.5, "100.5"), (math.nan, "nan"),
                     (math.inf, "inf"), ("50", "'50'"), (None, "None")]
)  # fmt: skip
def test_percentile_refuses_q_outside_0_100(q: Any, shown: str) -> None:
    with pytest.raises(ValueError, match=rf"^percentile q={shown}; expected 0 <= q <= 100$"):
        stats.percentile([1, 2, 3, 4, 5], q)


def test_percentile_keeps_the_edges_and_numpy_values() -> None:
    xs = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert stats.percentile(xs, 0) == 1.0 and stats.percentile(xs, 100) == 5.0
    for q in (0, 10, 25, 50, 90, 99, 100, np.int64(75), np.float64(33.3)):
        assert math.isclose(stats.percentile(xs, q), float(np.percentile(xs, q)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="percentile of no samples"):
        stats.percentile([], 50)


# ---- finding 3: a counter that never ran on the PMU ----------------------------------------------
class _FakePerf:
    """Stands in for the ``perf_event_open`` syscall, which needs a PMU this machine may lack.

    Each "fd" is the read end of a real pipe holding the ``(value, time_enabled, time_running)``
    triple the kernel would return, so ``CounterSet.stop`` reads it with the real ``os.read``.
    """

    def __init__(self, reads: dict[str, list[tuple[int, int, int]]]) -> None:
        self.reads = {k: list(v) for k, v in reads.items()}

    def open(self, event: ctr.Event, tid: int, exclude_kernel: bool) -> int:
        value, enabled, running = self.reads[event.name].pop(0)
        r, w = os.pipe()
        os.write(w, struct.pack("QQQ", value, enabled, running))
        os.close(w)
        return r


def _counter_set(
    monkeypatch: pytest.MonkeyPatch,
    events: tuple[ctr.Event, ...],
    reads: dict[str, list[tuple[int, int, int]]],
    threads: int = 1,
) -> ctr.CounterSet:
    fake = _FakePerf(reads)
    monkeypatch.setattr(ctr, "_PerfEventOpen", lambda: fake)
    monkeypatch.setattr(ctr, "_threads", lambda: list(range(1000, 1000 + threads)))
    # the ioctls (reset / enable / disable) only make sense on a real perf fd
    monkeypatch.setattr(ctr.fcntl, "ioctl", lambda fd, request, arg: 0)
    return ctr.CounterSet(events=events)


def _event(name: str) -> ctr.Event:
    return next(e for e in ctr.HARDWARE_EVENTS + ctr.SOFTWARE_EVENTS if e.name == name)


def test_a_counter_multiplexed_out_for_the_whole_window_is_not_counted_never_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cs = _counter_set(
        monkeypatch,
        (_event("cycles"), _event("instructions")),
        {"cycles": [(0, 5_000_000, 0)], "instructions": [(1000, 4_000_000, 2_000_000)]},
    )
    try:
        cs.start()
        cs.stop()
        res = cs.results(100)
    finally:
        cs.close()
    assert res["cycles"] == {
        "value": None,
        "unavailable": "not counted: the event never ran on the PMU (multiplexed out)",
    }
    # a counter that ran part of the window is scaled and marked, as before
    assert res["instructions"]["value"] == 1000 * 2 / 100
    assert res["instructions"]["multiplexed"] is True
    assert res["instructions"]["source"] == "perf_event_open"


def test_a_counter_never_enabled_is_not_counted_and_a_software_one_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cs = _counter_set(
        monkeypatch,
        (_event("cache_misses"), _event("page_faults")),
        {"cache_misses": [(0, 0, 0)], "page_faults": [(0, 3, 0)]},
    )
    try:
        cs.start()
        cs.stop()
        res = cs.results(10)
    finally:
        cs.close()
    assert res["cache_misses"]["value"] is None
    assert res["cache_misses"]["unavailable"].startswith("not counted: the event was never enabled")
    assert res["page_faults"]["value"] is not None
    assert res["page_faults"]["source"].startswith("getrusage (not counted: the event never ran")


def test_threads_whose_counter_never_ran_are_reported_not_silently_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cs = _counter_set(
        monkeypatch,
        (_event("cycles"),),
        {"cycles": [(600, 1000, 1000), (0, 1000, 0), (0, 0, 0)]},  # counted, missed, idle
        threads=3,
    )
    try:
        cs.start()
        cs.stop()
        res = cs.results(6)
    finally:
        cs.close()
    assert res["cycles"]["value"] == 100.0
    assert res["cycles"]["uncounted_threads"] == 1 and res["cycles"]["multiplexed"] is True


def test_a_fully_counted_event_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    cs = _counter_set(
        monkeypatch, (_event("branch_misses"),), {"branch_misses": [(50, 10, 10), (0, 0, 0)]}, 2
    )
    try:
        cs.start()
        cs.stop()
        res = cs.results(5)
    finally:
        cs.close()
    assert res["branch_misses"] == {
        "value": 10.0,
        "unit": "count/inference",
        "total": 50.0,
        "inferences": 5,
        "source": "perf_event_open",
    }
