"""Repeatability machinery: robust statistics, steal time, the CPU-time rule, reference ratios,
the reference model and its calibration cache, and interleaved runs with a reference (real
onnxruntime)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from latbench.devices.local import LocalDevice
from latbench.errors import ConfigError
from latbench.profilers import stats
from latbench.profilers.env import collect_env, cpu_ticks
from latbench.profilers.harness import HarnessSettings, run_harness
from latbench.profilers.record import Measurement
from latbench.profilers.reference import (
    load_calibration,
    reference_model,
    store_calibration,
)
from latbench.profilers.task import reference_ratio
from measure_models import conv_net, local_fixture, tiny_net

PROC_STAT = """cpu  316056 4159 31170 803810 2031 0 530 7823 0 0
cpu0 143891 3496 13211 417912 264 0 47 3934 0 0
cpu1 172164 663 17959 385898 1766 0 483 3888 0 0
intr 1 2 3
procs_running 9
"""


# ---- statistics ----------------------------------------------------------------------------
def test_split_rounds_uses_sizes_or_equal_blocks() -> None:
    xs = [5.0, 1.0, 2.0, 9.0, 3.0, 4.0]
    assert stats.split_rounds(xs, [2, 0, 4]) == [[5.0, 1.0], [2.0, 9.0, 3.0, 4.0]]
    # sizes that do not add up fall back to DEFAULT_BLOCKS consecutive blocks
    assert len(stats.split_rounds(list(range(10)), [3])) == stats.DEFAULT_BLOCKS
    assert stats.split_rounds([1.0, 2.0], ()) == [[1.0], [2.0]]


def test_round_min_ignores_a_round_hit_by_a_spike() -> None:
    quiet = [1.0, 1.2, 1.1]
    spike = [3.0, 3.5, 3.1]  # every sample of the round was slowed
    xs = [*quiet, 1.05, 1.3, *spike]
    assert stats.round_min(xs, [3, 2, 3]) == pytest.approx(1.05)
    with pytest.raises(ValueError, match="no samples"):
        stats.round_min([], ())


def test_cpu_ticks_and_steal_fraction_from_saved_proc_stat() -> None:
    before = cpu_ticks([1], PROC_STAT)
    assert set(before) == {"cpu1"}
    assert before["cpu1"]["steal"] == 3888
    assert before["cpu1"]["total"] == 172164 + 663 + 17959 + 385898 + 1766 + 483 + 3888
    after = {"cpu1": {**before["cpu1"], "steal": 3888 + 10, "total": before["cpu1"]["total"] + 100}}
    frac = stats.steal_fraction({"cpu_ticks": before}, {"cpu_ticks": after})
    assert frac == pytest.approx(0.10)
    assert stats.steal_fraction({}, {"cpu_ticks": after}) is None
    assert set(cpu_ticks(None, PROC_STAT)) == {"cpu0", "cpu1"}


def test_verdict_flags_steal_time() -> None:
    t0 = {"cpu_ticks": {"cpu1": {"steal": 0, "total": 1000}}}
    t1 = {"cpu_ticks": {"cpu1": {"steal": 80, "total": 2000}}}
    v = stats.stability([1.0] * 30, t0, t1)
    assert not v["stable"]
    assert any("stole 8.0%" in r for r in v["reasons"])
    assert stats.stability([1.0] * 30, t0, t0)["stable"]


def test_env_records_cpu_ticks_and_runnable_tasks() -> None:
    env = collect_env()
    assert env["cpu_ticks"] and all("steal" in v for v in env["cpu_ticks"].values())
    assert isinstance(env["procs_running"], int) and env["procs_running"] >= 1


# ---- the CPU-time rule of the harness ------------------------------------------------------
class Clocks:
    """A wall clock and a CPU clock that move only when the fake inference runs."""

    def __init__(self, wall_step: float, cpu_step: float) -> None:
        self.wall = self.cpu = 0.0
        self.wall_step, self.cpu_step = wall_step, cpu_step

    def work(self) -> None:
        self.wall += self.wall_step
        self.cpu += self.cpu_step


def test_cpu_time_rule_stretches_the_window_under_load() -> None:
    # each inference takes 2**-6 s of wall time but gets only a quarter of it as CPU time
    c = Clocks(2.0**-6, 2.0**-8)
    s = HarnessSettings(
        warmup_runs=1, warmup_time_s=0, min_runs=1, min_time_s=0.5, max_time_s=5,
        spread_threshold=0, min_cpu_fraction=0.5,
    )  # fmt: skip
    r = run_harness(c.work, s, clock=lambda: c.wall, resolution_s=1e-9, cpu_clock=lambda: c.cpu)
    # 0.5 s of wall time would be 32 runs; 0.25 s of CPU time needs 64
    assert len(r.samples_ms) == 64 and r.stop_reason == "converged"
    assert all(math.isclose(x, 2.0**-8 * 1e3) for x in r.cpu_samples_ms)
    off = run_harness(
        c.work,
        HarnessSettings(**{**s.to_dict(), "min_cpu_fraction": 0.0}),
        clock=lambda: c.wall,
        resolution_s=1e-9,
        cpu_clock=lambda: c.cpu,
    )
    assert len(off.samples_ms) == 32


def test_injected_wall_clock_without_cpu_clock_keeps_no_cpu_samples() -> None:
    c = Clocks(0.01, 0.0)
    s = HarnessSettings(warmup_runs=1, warmup_time_s=0, min_runs=3, min_time_s=0, max_time_s=1)
    r = run_harness(c.work, s, clock=lambda: c.wall, resolution_s=1e-9)
    assert r.cpu_samples_ms == () and r.stop_reason == "converged"


def test_statistic_setting_is_validated() -> None:
    with pytest.raises(ValueError, match="statistic = 'mode'"):
        HarnessSettings(statistic="mode")
    assert HarnessSettings.from_mapping({"statistic": "min"}).statistic == "min"


# ---- reference ratios ----------------------------------------------------------------------
def test_reference_ratio_pools_minima_and_discards_spiky_rounds() -> None:
    targets = [[2.0, 2.5], [2.2, 2.4], [9.0, 9.5]]
    before = [[1.0, 1.1], [1.0, 1.2], [1.0, 1.1]]
    after = [[1.0, 1.3], [1.05, 1.1], [3.0, 3.2]]  # the machine slowed down in round 3
    res = reference_ratio(targets, before, after, steal=[0.0, 0.2, 0.0])
    assert res["discarded"] == [1, 2]  # round 2: steal 20 %; round 3: reference moved 3x
    assert res["ratio"] == pytest.approx(2.0)
    assert res["ratios"] == pytest.approx([2.0, 2.2, 9.0])
    # nothing kept -> all rounds count
    assert reference_ratio([[2.0]], [[1.0]], [[5.0]])["ratio"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="before and after each of the 2"):
        reference_ratio([[1.0], [1.0]], [[1.0]], [[1.0]])


# ---- the record ----------------------------------------------------------------------------
def _record(**kw: object) -> Measurement:
    base: dict[str, object] = {
        "samples_ms": (3.0, 1.0, 2.0, 10.0, 1.5, 1.2),
        "cpu_samples_ms": (1.0, 1.0, 1.5, 1.2, 1.4, 1.1),
        "harness": {"round_sizes": [3, 3]},
    }
    base.update(kw)
    return Measurement(**base)  # type: ignore[arg-type]


def test_latency_ms_is_the_named_statistic_and_median_stays_the_median() -> None:
    m = _record()
    assert m.statistic == "median" and m.latency_ms == m.median_ms == 1.75
    assert m.estimate("min") == 1.0 and m.round_min_ms == pytest.approx(1.1)
    assert m.estimate("cpu_median") == pytest.approx(1.15)
    with pytest.raises(ValueError, match="not available"):
        m.estimate("normalized")
    with pytest.raises(ValueError, match="expected one of"):
        m.estimate("mode")
    ref = {"ratio": 2.0, "calibrated_ms": 0.5, "samples_ms": [0.5, 0.6]}
    n = m.with_(statistic="normalized", reference=ref)
    s = n.summary()
    assert s["latency_ms"] == s["normalized_ms"] == 1.0 and s["statistic"] == "normalized"
    assert s["median_ms"] == 1.75 and s["reference_ratio"] == 2.0
    back = Measurement.from_json(n.to_json())
    assert back == n and back.cpu_samples_ms == n.cpu_samples_ms


def test_old_records_load_with_the_median_statistic() -> None:
    old = {"record_version": 1, "status": "ok", "samples_ms": [1.0, 2.0, 3.0], "loops": 1}
    m = Measurement.from_dict(old)
    assert m.statistic == "median" and m.cpu_samples_ms == () and m.reference == {}
    assert m.summary()["latency_ms"] == 2.0 and "normalized_ms" not in m.summary()


# ---- reference model and calibration cache -------------------------------------------------
def test_reference_model_is_deterministic_and_runs(tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    a = reference_model(tmp_path / "a.onnx").read_bytes()
    b = reference_model(tmp_path / "sub" / "b.onnx").read_bytes()
    assert a == b
    sess = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"input": np.zeros((1, 3, 32, 32), np.float32)})
    assert out.shape == (1, 32, 1, 1)


def test_calibration_cache_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c" / "cal.json"
    assert load_calibration(path, "k") is None
    entry = store_calibration(path, "k", 0.5, loadavg=[1.0, 1.0, 1.0])
    assert load_calibration(path, "k") == entry and entry["calibrated_ms"] == 0.5
    store_calibration(path, "other", 0.7)
    assert load_calibration(path, "k") == entry
    path.write_text("{not json", encoding="utf-8")
    assert load_calibration(path, "k") is None


# ---- end to end: interleaved with a reference (real onnxruntime) ---------------------------
FAST = HarnessSettings(
    warmup_runs=2, warmup_time_s=0.0, min_runs=5, min_time_s=0.06, max_time_s=0.6
)


local = local_fixture()


def test_measure_many_records_reference_ratio_and_calibration(
    local: LocalDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATBENCH_CACHE_DIR", str(tmp_path / "cache"))
    models = [conv_net(tmp_path / "c.onnx", channels=8, size=16), tiny_net(tmp_path / "t.onnx")]
    ms = local.measure_many(models, settings=FAST, interleave=2, reference_every=1)
    assert [m.ok for m in ms] == [True, True]
    for m in ms:
        ref = m.reference
        assert m.statistic == "min" and m.latency_ms == m.min_ms
        assert m.normalized_ms == pytest.approx(ref["ratio"] * ref["calibrated_ms"])
        assert len(ref["ratios"]) == 2 and ref["ratio"] > 0 and len(ref["sha256"]) == 64
        assert len(ref["samples_ms"]) == sum(ref["round_sizes"]) > 0
        assert "calibrated by this run" in ref["calibration"]
        assert len(m.round_sizes) >= 2 and sum(m.round_sizes) == m.runs
        assert len(m.cpu_samples_ms) == m.runs
        planned, extra = m.harness["rounds"][:2], m.harness["rounds"][2:]
        assert [set(r) for r in planned] == [{"loadavg_1m", "procs_running", "steal_fraction"}] * 2
        assert all(r["extra"] is True and r["models"] >= 1 for r in extra)
    assert ms[0].latency_ms > ms[1].latency_ms  # the conv net is slower than y = x + 1
    cache = json.loads((tmp_path / "cache" / "reference_calibration.json").read_text())
    (entry,) = cache.values()
    again = local.measure_many(models, settings=FAST, interleave=2, statistic="normalized")
    assert again[0].statistic == "normalized" and again[0].latency_ms == again[0].normalized_ms
    assert again[0].reference["calibrated_ms"] == entry["calibrated_ms"]
    assert "cached calibration" in again[0].reference["calibration"]
    plain = local.measure_many(models, settings=FAST, interleave=2, reference=False)
    assert plain[0].reference == {} and plain[0].normalized_ms is None
    with pytest.raises(ConfigError, match="statistic = 'mode'"):
        local.measure_many(models, settings=FAST, interleave=2, statistic="mode")


def test_measure_many_interleave_true_uses_default_rounds_and_min(
    local: LocalDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latbench.devices.local import DEFAULT_ROUNDS

    monkeypatch.setenv("LATBENCH_CACHE_DIR", str(tmp_path / "cache"))
    models = [tiny_net(tmp_path / "a.onnx"), tiny_net(tmp_path / "b.onnx")]
    ms = local.measure_many(
        models, settings=FAST, interleave=True, reference=False, confirm_tolerance=0
    )
    for m in ms:
        assert len(m.round_sizes) == DEFAULT_ROUNDS == 10
        assert m.statistic == "min" and m.latency_ms == min(m.samples_ms)


def test_min_confirmed_needs_two_rounds_within_the_tolerance() -> None:
    from latbench.profilers.stats import min_confirmed

    assert min_confirmed([1.0, 1.005, 1.3], 0.01)
    assert not min_confirmed([1.0, 1.02, 1.3], 0.01)
    assert min_confirmed([1.0], 0.01) and min_confirmed([1.0, 2.0], 0.0)


def test_unconfirmed_minima_get_extra_rounds_up_to_the_cap(
    local: LocalDevice, tmp_path: Path
) -> None:
    models = [tiny_net(tmp_path / "a.onnx"), conv_net(tmp_path / "c.onnx", channels=8, size=16)]
    # a tolerance only equal minima meet: a target runs extra rounds, one at a time, until two
    # rounds' minima are equal (the timer is quantised, so on a tiny model they can be) or the
    # 3 extra rounds are spent, and exactly then (none when the 2 planned rounds already agree)
    ms = local.measure_many(
        models,
        settings=FAST,
        interleave=2,
        reference=False,
        confirm_tolerance=1e-12,
        extra_rounds=3,
    )
    n_rounds = []
    for m in ms:
        n = len(m.round_sizes)
        assert 2 <= n <= 5 and sum(m.round_sizes) == m.runs == len(m.samples_ms)
        ends = np.cumsum(m.round_sizes)
        minima = [min(m.samples_ms[e - k : e]) for e, k in zip(ends, m.round_sizes, strict=True)]
        assert not any(stats.min_confirmed(minima[:k], 1e-12) for k in range(2, n))
        assert n == 5 or stats.min_confirmed(minima, 1e-12)
        n_rounds.append(n)
    rounds = ms[0].harness["rounds"]
    assert [r.get("extra", False) for r in rounds] == [False] * 2 + [True] * (max(n_rounds) - 2)
    # each extra round measured only the targets still unconfirmed
    for j, r in enumerate(rounds[2:], start=2):
        assert r["models"] == sum(n > j for n in n_rounds)
    # confirmation off: exactly the planned rounds
    ms = local.measure_many(
        models, settings=FAST, interleave=2, reference=False, confirm_tolerance=0
    )
    assert [len(m.round_sizes) for m in ms] == [2, 2]
