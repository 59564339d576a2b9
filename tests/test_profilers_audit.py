"""Edge cases of the measurement layer: harness settings, records, statistics, the worker,
runtime options, the per-operator profile, slow models, the environment and the calibration."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from latbench.errors import ConfigError, MeasurementError, ModelError
from latbench.profilers import env as _env
from latbench.profilers import stats
from latbench.profilers import task as _task
from latbench.profilers.harness import HarnessSettings, run_harness
from latbench.profilers.record import Measurement
from latbench.profilers.reference import load_calibration, store_calibration
from latbench.profilers.runtimes import get_runtime, parse_ort_profile
from latbench.profilers.task import MeasureSpec, run_measurement
from latbench.profilers.worker import Worker
from measure_models import conv_net, tiny_net


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audit")
    return {
        "conv": conv_net(d / "conv.onnx", channels=8, size=16, layers=1),
        "dyn": tiny_net(d / "dyn.onnx", dynamic_batch=True),
    }


# ---- harness settings ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"min_time_s": math.nan}, r"min_time_s = nan; expected a finite number"),
        ({"max_time_s": math.nan}, r"max_time_s = nan; expected a finite number"),
        ({"spread_threshold": math.nan}, r"spread_threshold = nan; expected a finite"),
        ({"timeout_s": math.inf}, r"timeout_s = inf; expected a finite number"),
        ({"min_runs": "5"}, r"min_runs = '5'; expected an integer"),
        ({"min_runs": 2.5}, r"min_runs = 2\.5; expected an integer"),
        ({"warmup_time_s": "0.1"}, r"warmup_time_s = '0\.1'; expected a number of seconds"),
        ({"max_runs": 0}, r"max_runs = 0; expected >= 1 or None"),
    ],
)
def test_settings_that_would_never_stop_or_time_nothing_are_refused(
    kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HarnessSettings(**kw)


def test_settings_from_a_mapping_refuse_a_fractional_count_and_keep_numpy_numbers() -> None:
    with pytest.raises(ValueError, match=r"min_runs = 2\.7; expected an integer"):
        HarnessSettings.from_mapping({"min_runs": 2.7})
    assert HarnessSettings.from_mapping({"min_runs": 3.0}).min_runs == 3
    s = HarnessSettings(min_runs=np.int64(4), min_time_s=np.float64(0.5))  # type: ignore[arg-type]
    assert s.min_runs == 4 and s.min_time_s == 0.5


def test_a_sleeping_model_is_timed_one_call_per_sample_and_capped_by_max_time() -> None:
    s = HarnessSettings(
        warmup_runs=1, warmup_time_s=0, min_runs=50, min_time_s=0.1, max_time_s=0.25
    )
    r = run_harness(lambda: time.sleep(0.05), s)
    assert r.loops == 1 and r.stop_reason == "max_time"
    assert 3 <= len(r.samples_ms) <= 6
    assert all(x >= 50.0 for x in r.samples_ms)


# ---- records -------------------------------------------------------------------------------
@pytest.mark.parametrize("statistic", ["median", "min", "p10", "p25", "round_min"])
def test_every_statistic_of_a_failed_record_is_nan(statistic: str) -> None:
    m = Measurement.failed("worker died with signal SIGSEGV", statistic=statistic)
    assert math.isnan(m.latency_ms) and math.isnan(m.round_min_ms)
    lo, hi = m.ci_median_ms
    assert math.isnan(lo) and math.isnan(hi)
    assert Measurement.from_json(m.to_json()).statistic == statistic


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"statistic": "fastest"}, r"statistic = 'fastest'; expected one of median, min"),
        ({"status": "maybe"}, r"status = 'maybe'; expected one of 'ok', 'failed'"),
        ({"loops": 0}, r"loops = 0; expected an integer >= 1"),
        ({"loops": "20"}, r"loops = '20'; expected an integer >= 1"),
        ({"warmup_runs": -1}, r"warmup_runs = -1; expected an integer >= 0"),
        ({"record_version": "x"}, r"record_version = 'x'; expected an integer >= 1"),
    ],
)
def test_a_record_with_a_bad_field_is_refused_when_loaded(d: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Measurement.from_dict({"samples_ms": [1.0, 2.0], **d})


def test_a_json_document_that_is_not_an_object_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"a measurement record is a mapping.*got list"):
        Measurement.from_json("[1.0, 2.0]")


def test_tuples_in_the_metadata_survive_a_json_round_trip_equal() -> None:
    m = Measurement(
        samples_ms=(1.0, 2.0),
        input_shapes={"x": (1, 3, 8, 8)},  # type: ignore[dict-item]
        env={"affinity": (0, 1), "loadavg": (0.5, 0.4, 0.3)},
        per_op=({"op": "Conv", "shape": (1, 8)},),
    )
    back = Measurement.from_json(m.to_json())
    assert back == m and hash(back) == hash(m)
    assert m.to_dict()["input_shapes"] == {"x": [1, 3, 8, 8]}


# ---- statistics ----------------------------------------------------------------------------
def test_all_equal_samples_are_stable_even_when_they_are_zero() -> None:
    for value in (0.0, 3.5):
        v = stats.stability([value] * 40)
        assert v["stable"], v["reasons"]
        assert v["spread"] == 0.0 and v["drift"] == 0.0


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, math.nan, "0.95"])
def test_median_ci_refuses_a_level_outside_0_1(level: Any) -> None:
    with pytest.raises(ValueError, match=r"confidence level .*; expected 0 < level < 1"):
        stats.median_ci([1.0] * 10, level)


# ---- the worker ----------------------------------------------------------------------------
class TwoArgError(Exception):
    """Pickles, but does not unpickle (its constructor wants two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def _raise_two() -> None:
    raise TwoArgError("bad", "input")


def _exit() -> None:
    sys.exit(3)


def _interrupt() -> None:
    raise KeyboardInterrupt


@pytest.fixture(scope="module")
def worker() -> Any:
    w = Worker()
    yield w
    w.close()


def test_an_exception_that_does_not_unpickle_comes_back_by_name(worker: Worker) -> None:
    pid = worker.call(os.getpid)
    with pytest.raises(MeasurementError, match=r"^TwoArgError: bad/input$"):
        worker.call(_raise_two, timeout_s=30)
    assert worker.call(os.getpid) == pid  # the worker was not killed for it


@pytest.mark.parametrize(
    ("fn", "message"), [(_exit, "SystemExit: 3"), (_interrupt, "KeyboardInterrupt")]
)
def test_system_exit_or_an_interrupt_in_the_measured_code_does_not_stop_the_parent(
    worker: Worker, fn: Any, message: str
) -> None:
    with pytest.raises(MeasurementError, match=f"the measured code raised {message} in the"):
        worker.call(fn, timeout_s=30)
    assert worker.call(int, "7") == 7


@pytest.mark.parametrize("timeout", [math.nan, -1.0, 0, math.inf])
def test_a_timeout_that_never_or_always_expires_is_refused(worker: Worker, timeout: float) -> None:
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"timeout_s = .*; expected seconds > 0, or None"):
        worker.call(time.sleep, 1.0, timeout_s=timeout)
    assert time.monotonic() - t0 < 0.5  # refused before anything ran


# ---- runtime options -----------------------------------------------------------------------
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
@pytest.mark.parametrize("threads", [-1, 0, 2.5, "2", True])
def test_invalid_threads_are_refused_naming_the_value(
    files: dict[str, Path], runtime: str, threads: Any
) -> None:
    model: Any = str(files["conv"]) if runtime == "onnxruntime" else _TorchAdd()
    with pytest.raises(ConfigError, match=rf"threads = {threads!r}; expected an integer >= 1"):
        get_runtime(runtime).load(model, threads=threads, options=_torch_opts(runtime))


@pytest.mark.parametrize("batch", [0, -2, 1.5])
def test_a_batch_below_1_is_refused_not_measured_as_an_empty_tensor(
    files: dict[str, Path], batch: Any
) -> None:
    with pytest.raises(ConfigError, match=rf"batch = {batch!r}; expected an integer >= 1"):
        get_runtime("onnxruntime").load(str(files["dyn"]), batch=batch)


def test_a_misspelt_runtime_option_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"'onnxruntime' has no option 'opt_levl'; expected"):
        get_runtime("onnxruntime").load(str(files["conv"]), options={"opt_levl": "basic"})
    sess = get_runtime("onnxruntime").load(str(files["conv"]), options={"opt_level": "basic"})
    assert sess.settings["opt_level"] == "basic"


def test_litert_xnnpack_must_be_a_bool_not_a_string(tmp_path: Path) -> None:
    from latbench.spaces import NB201Space
    from latbench.spaces.emit_tflite import to_tflite

    nb = NB201Space()
    path = tmp_path / "nb.tflite"
    path.write_bytes(to_tflite(nb.build(nb.from_index(7)), seed=0))
    with pytest.raises(ConfigError, match=r"xnnpack = 'false'; expected true or false"):
        get_runtime("litert").load(str(path), options={"xnnpack": "false"})
    assert (
        get_runtime("litert").load(str(path), options={"xnnpack": False}).settings["xnnpack"]
        is False
    )


class _TorchAdd:
    """A zero-argument factory of a tiny module (picklable, module level)."""

    def __call__(self) -> Any:
        import torch

        class Add(torch.nn.Module):
            def forward(self, x: Any) -> Any:
                return x + 1

        return Add()


def _torch_opts(runtime: str) -> dict[str, Any] | None:
    return {"input_shapes": {"x": [1, 4]}} if runtime == "torch" else None


@pytest.mark.parametrize(
    ("dtypes", "message"),
    [
        (["int64"], r"input_dtypes = \['int64'\]; expected a mapping"),
        ({"y": "int64"}, r"input_dtypes names the input 'y'; the model's inputs are 'x'"),
    ],
)
def test_torch_input_dtypes_of_the_wrong_kind_or_for_no_input_are_refused(
    dtypes: Any, message: str
) -> None:
    opts = {"input_shapes": {"x": [1, 4]}, "input_dtypes": dtypes}
    with pytest.raises(ConfigError, match=message):
        get_runtime("torch").load(_TorchAdd(), options=opts)


def _unsigned_net(path: Path) -> Path:
    """y = x + x on a [1, 4] uint16 tensor (a non-float input)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "u16",
        [helper.make_tensor_value_info("x", TensorProto.UINT16, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT16, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_an_unsigned_integer_input_is_generated(tmp_path: Path) -> None:
    sess = get_runtime("onnxruntime").load(str(_unsigned_net(tmp_path / "u16.onnx")))
    feeds = sess.feeds  # type: ignore[attr-defined]
    assert feeds["x"].dtype == np.uint16 and sess.input_shapes == {"x": [1, 4]}
    with pytest.raises(ModelError, match=r"'complex64' is not supported .*expected one of float"):
        get_runtime("torch").load(
            _TorchAdd(), options={"input_shapes": {"x": [1, 4]}, "input_dtypes": {"x": "complex64"}}
        )


# ---- the per-operator profile --------------------------------------------------------------
def test_the_onnxruntime_profile_leaves_the_cold_runs_out() -> None:
    def run(ts: int, kernel_us: int) -> list[dict[str, Any]]:
        return [
            {"cat": "Session", "name": "model_run", "ts": ts, "dur": kernel_us + 5},
            {
                "cat": "Node",
                "name": "conv_kernel_time",
                "ts": ts + 1,
                "dur": kernel_us,
                "args": {"op_name": "Conv"},
            },
        ]

    events = run(0, 1000) + run(2000, 100) + run(3000, 100)  # a cold first run
    (row,) = parse_ort_profile(events, runs=2, skip_runs=1)
    assert math.isclose(row["time_ms"], 0.1) and row["share"] == 1.0
    (all_runs,) = parse_ort_profile(events, runs=3)
    assert math.isclose(all_runs["time_ms"], 0.4)


def test_the_real_onnxruntime_profile_is_close_to_the_end_to_end_latency(
    files: dict[str, Path],
) -> None:
    sess = get_runtime("onnxruntime").load(str(files["conv"]))
    rows = sess.profile_ops(runs=30)
    r = run_harness(sess.run, HarnessSettings(min_runs=30, min_time_s=0.1, max_time_s=1))
    total = sum(row["time_ms"] for row in rows)
    assert math.isclose(sum(row["share"] for row in rows), 1.0)
    # the kernels are most of an inference, and never several inferences' worth
    assert 0.2 * stats.percentile(r.samples_ms, 10) < total < 3 * stats.median(r.samples_ms)


# ---- slow models: the passes after timing stay within a time budget ------------------------
class _SlowFactory:
    """A module that takes ``seconds`` per forward (a slow model, without the compute)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> Any:
        import torch

        seconds = self.seconds

        class Slow(torch.nn.Module):
            def forward(self, x: Any) -> Any:
                time.sleep(seconds)
                return x + 1

        return Slow()


def test_counters_and_per_op_of_a_slow_model_keep_to_the_pass_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latbench.profilers.runtimes import TorchSession

    monkeypatch.setattr(_task, "PASS_BUDGET_S", 0.25)
    profiled: list[int] = []
    real_profile = TorchSession.profile_ops

    def profile_ops(self: TorchSession, runs: int = 20) -> list[dict[str, Any]]:
        profiled.append(runs)
        return real_profile(self, runs)

    monkeypatch.setattr(TorchSession, "profile_ops", profile_ops)
    spec = MeasureSpec(
        model=_SlowFactory(0.08),
        runtime="torch",
        options={"input_shapes": {"x": [1, 4]}},
        settings=HarnessSettings(
            warmup_runs=1, warmup_time_s=0, min_runs=1, min_time_s=0, max_time_s=0.1
        ),
        per_op=True,
        counters=True,
    )
    m = run_measurement(spec)
    # sized from the measured latency (0.08 s, more on a loaded machine): at most 3 runs fit
    # the 0.25 s budget, not 20 (1.6 s); still profiled, with those runs instead of 10
    assert 1 <= m.counters["task_clock_ms"]["inferences"] <= 3
    assert len(profiled) == 1 and 1 <= profiled[0] <= 3 and m.per_op


# ---- environment and calibration -----------------------------------------------------------
def test_cpu_frequencies_from_cpuinfo_follow_the_processor_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no cpufreq (a VM); CPU 1 offline, so /proc/cpuinfo lists processors 0 and 2
    info = "processor\t: 0\ncpu MHz\t\t: 1000.000\n\nprocessor\t: 2\ncpu MHz\t\t: 3000.500\n\n"
    monkeypatch.setattr(_env, "_cpuinfo", lambda: info)
    monkeypatch.setattr(_env, "_read_int", lambda path: None)
    monkeypatch.setattr(_env, "_read", lambda path: None)
    got = _env._cpu_freqs_khz([2])
    assert got["cpu_cur_freq_khz"] == {"2": 3_000_500}
    assert got["cpu_freq_source"] == "/proc/cpuinfo" and got["governor"] is None
    assert "cpu_min_freq_khz" not in got


@pytest.mark.parametrize("value", ["NaN", "0", "-1.5", "true"])
def test_a_damaged_calibration_entry_is_ignored(tmp_path: Path, value: str) -> None:
    path = tmp_path / "calib.json"
    path.write_text('{"k": {"calibrated_ms": ' + value + ', "at": "x"}}')
    assert load_calibration(path, "k") is None


def test_a_non_finite_calibration_is_not_stored(tmp_path: Path) -> None:
    path = tmp_path / "calib.json"
    entry = store_calibration(path, "k", math.nan)
    assert math.isnan(entry["calibrated_ms"]) and not path.exists()
    store_calibration(path, "k", 0.5)
    assert json.loads(path.read_text())["k"]["calibrated_ms"] == 0.5
