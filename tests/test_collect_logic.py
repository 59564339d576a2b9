"""Collection logic: resume, failures, drift, several devices, Ctrl-C.

These tests inject a measuring object in place of a device (the collector takes any object with
``name``, ``measure`` and ``fingerprint``), so the bookkeeping is tested deterministically and
fast; tests/test_collect_reliability.py runs the real device and real processes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import latbench.datasets as lds
from latbench.datasets.collect import CollectSettings, collect, default_drift_arch
from latbench.errors import ConfigError, UnknownNameError
from latbench.profilers.record import Measurement
from latbench.spaces import NB201Space

NB = NB201Space()


class ScriptedDevice:
    """Returns a measurement computed from the model name; no hardware involved."""

    def __init__(
        self,
        name: str = "dev",
        *,
        fail: set[str] | None = None,
        scale: float = 1.0,
        slow_down_after: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self.fail = fail or set()
        self.scale = scale
        self.slow_down_after = slow_down_after
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def fingerprint(self) -> str:
        return f"fp-{self.name}"

    def measure(self, model: Any, **kw: Any) -> Measurement:
        arch_id = Path(model).stem
        with self.lock:
            self.calls.append(arch_id)
            n = len(self.calls)
        if self.delay_s:
            time.sleep(self.delay_s)
        if arch_id in self.fail:
            return Measurement.failed("worker died with signal SIGSEGV", runtime=kw["runtime"])
        factor = self.scale
        if self.slow_down_after is not None and n > self.slow_down_after:
            factor *= 1.5
        base = 1.0 + int(arch_id[:4], 16) / 65536
        return Measurement(
            samples_ms=(base * factor, base * factor * 1.01, base * factor * 0.99),
            runtime=kw["runtime"],
            threads=kw["threads"],
            batch=kw["batch"],
            device_fingerprint=self.fingerprint(),
        )


def _emit(arch: str, directory: Path) -> Path:
    path = directory / f"{NB.arch_id(arch)}.onnx"
    path.write_bytes(b"model")
    return path


def _run(store: lds.Store, archs: list[str], devices: list[Any], **kw: Any) -> Any:
    settings = CollectSettings(**{"collection": "c", "drift_every": 0, **kw})
    return collect(store, NB, archs, devices, settings, emit=_emit)


def test_collect_stores_one_row_per_arch_with_the_key_columns(tmp_path: Path) -> None:
    archs = NB.sample(5, seed=1)
    with lds.open(tmp_path / "s.db") as store:
        report = _run(store, archs, [ScriptedDevice()])
        df = store.to_pandas()
    assert report.ok == 5 and report.failed == 0 and not report.interrupted
    assert sorted(df["arch"]) == sorted(archs)
    assert set(df["device"]) == {"dev"} and set(df["runtime"]) == {"onnxruntime"}
    assert df["arch_index"].tolist() == [NB.index(a) for a in df["arch"]]
    assert (df["runs"] == 3).all() and df["samples_ms"].map(len).eq(3).all()
    assert df["measured_at"].notna().all()


def test_rerun_skips_stored_archs(tmp_path: Path) -> None:
    archs = NB.sample(6, seed=2)
    dev = ScriptedDevice()
    with lds.open(tmp_path / "s.db") as store:
        _run(store, archs[:4], [dev])
        report = _run(store, archs, [dev])
        assert store.count() == 6
    assert report.devices["dev"].already == 4 and report.ok == 2
    assert len(dev.calls) == 6  # nothing measured twice


def test_failed_arch_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    archs = NB.sample(4, seed=3)
    bad = NB.arch_id(archs[1])
    with lds.open(tmp_path / "s.db") as store:
        report = _run(store, archs, [ScriptedDevice(fail={bad})])
        df = store.to_pandas()
        assert report.ok == 3 and report.failed == 1
        row = df[df["status"] == "failed"].iloc[0]
        assert row["arch"] == archs[1] and "SIGSEGV" in row["error"]
        assert row["latency_ms"] != row["latency_ms"]  # NaN
        # a rerun does not retry it; --retry-failed does, and the ok row replaces it
        assert _run(store, archs, [ScriptedDevice()]).measured == 0
        retried = _run(store, archs, [ScriptedDevice()], retry_failed=True)
        assert retried.ok == 1
        assert set(store.to_pandas()["status"]) == {"ok"} and store.count() == 4


def test_emission_error_is_recorded_as_failed(tmp_path: Path) -> None:
    archs = NB.sample(3, seed=4)

    def emit(arch: str, directory: Path) -> Path:
        if arch == archs[0]:
            raise RuntimeError("emitter exploded")
        return _emit(arch, directory)

    with lds.open(tmp_path / "s.db") as store:
        settings = CollectSettings(collection="c", drift_every=0)
        report = collect(store, NB, archs, [ScriptedDevice()], settings, emit=emit)
        errors = store.to_pandas(status="failed")["error"].tolist()
    assert report.failed == 1 and errors == ["RuntimeError: emitter exploded"]


def test_fatal_configuration_errors_stop_the_run(tmp_path: Path) -> None:
    class Broken(ScriptedDevice):
        def measure(self, model: Any, **kw: Any) -> Measurement:
            raise UnknownNameError("unknown runtime 'nope'; expected one of: onnxruntime")

    with lds.open(tmp_path / "s.db") as store:
        with pytest.raises(UnknownNameError, match="nope"):
            _run(store, NB.sample(3, seed=5), [Broken()])
        assert store.count() == 0


def test_an_input_size_no_network_has_stops_the_run_before_any_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from latbench.cli import main

    with lds.open(tmp_path / "s.db") as store:
        settings = CollectSettings(collection="c", resolution=30)
        with pytest.raises(ConfigError, match="resolution = 30; expected a multiple of 4"):
            collect(store, NB, NB.sample(3, seed=5), [ScriptedDevice()], settings)
        assert store.count() == 0
    monkeypatch.chdir(tmp_path)
    rc = main(["collect", "--space", "nb201", "--sample", "2", "--resolution", "6", "--db", "n.db"])
    assert rc == 2 and "cannot collect: nb201: resolution = 6" in capsys.readouterr().err
    assert not (tmp_path / "n.db").exists()


def test_drift_is_recorded_with_the_rows_and_warned(tmp_path: Path) -> None:
    archs = NB.sample(9, seed=6)
    dev = ScriptedDevice(slow_down_after=4)  # the machine gets 1.5x slower mid-run
    with lds.open(tmp_path / "s.db") as store:
        report = _run(store, archs, [dev], drift_every=3, drift_threshold=0.2)
        drift = store.drift("c")
        df = store.to_pandas()
    assert len(drift) == 3  # before archs 0, 3, 6
    assert drift["ratio"].iloc[0] == pytest.approx(1.0)
    assert drift["ratio"].iloc[-1] == pytest.approx(1.5)
    assert set(drift["arch"]) == {default_drift_arch(NB)}
    assert any("drifted" in w for w in report.warnings)
    assert df["drift_ratio"].iloc[-1] == pytest.approx(1.5)
    assert df["drift_ratio"].iloc[0] == pytest.approx(1.0)


def test_drift_baseline_survives_a_resume(tmp_path: Path) -> None:
    archs = NB.sample(4, seed=7)
    with lds.open(tmp_path / "s.db") as store:
        _run(store, archs[:2], [ScriptedDevice()], drift_every=10)
        _run(store, archs, [ScriptedDevice(scale=1.3)], drift_every=10)
        drift = store.drift("c")
    assert drift["baseline_ms"].nunique() == 1
    assert drift["ratio"].iloc[-1] == pytest.approx(1.3)


def test_several_devices_run_in_parallel_one_model_each(tmp_path: Path) -> None:
    archs = NB.sample(6, seed=8)
    devs = [ScriptedDevice("a", delay_s=0.05), ScriptedDevice("b", delay_s=0.05)]
    with lds.open(tmp_path / "s.db") as store:
        t0 = time.perf_counter()
        report = _run(store, archs, devs)
        wall = time.perf_counter() - t0
        df = store.to_pandas()
    assert report.ok == 12
    assert df.groupby("device").size().to_dict() == {"a": 6, "b": 6}
    assert wall < 12 * 0.05  # parallel: well under the serial time
    with pytest.raises(ConfigError, match="twice"):
        _run(store, archs, [ScriptedDevice("a"), ScriptedDevice("a")])


def test_stop_request_finishes_the_current_arch_and_drops_failures(tmp_path: Path) -> None:
    archs = NB.sample(20, seed=9)
    stop = threading.Event()

    class StopAfterThree(ScriptedDevice):
        def measure(self, model: Any, **kw: Any) -> Measurement:
            m = super().measure(model, **kw)
            if len(self.calls) == 3:
                stop.set()  # as Ctrl-C would, mid-measurement
                return Measurement.failed("worker died with signal SIGINT")
            return m

    with lds.open(tmp_path / "s.db") as store:
        settings = CollectSettings(collection="c", drift_every=0)
        report = collect(store, NB, archs, [StopAfterThree()], settings, emit=_emit, stop=stop)
        assert report.interrupted and report.ok == 2 and report.dropped == 1
        assert store.count() == 2  # the interrupted arch is measured again next time
        report = _run(store, archs, [ScriptedDevice()])
        assert report.ok == 18 and store.count() == 20


def test_a_real_sigint_stops_after_the_current_arch_and_the_handler_is_restored(
    tmp_path: Path,
) -> None:
    archs = NB.sample(20, seed=10)

    class CtrlCAfterThree(ScriptedDevice):
        def measure(self, model: Any, **kw: Any) -> Measurement:
            m = super().measure(model, **kw)
            if len(self.calls) == 3:  # a terminal's Ctrl-C, while this model is measured
                os.kill(os.getpid(), signal.SIGINT)
            return m

    # as a terminal's foreground process has it (a suite started in the background inherits
    # SIGINT ignored, and then the collector rightly leaves it alone)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with lds.open(tmp_path / "s.db") as store:
            # each model takes 20 ms, as a real one takes longer: a scripted device answering
            # in microseconds could finish all 20 within one GIL switch interval, before the
            # main thread runs the handler
            report = _run(store, archs, [CtrlCAfterThree(delay_s=0.02)])
            # no KeyboardInterrupt escaped; every measured row was stored, then the run stopped
            assert report.interrupted and 3 <= report.ok < 20 and report.failed == 0
            assert store.count() == report.ok
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="threads"):
        CollectSettings(threads=0)
    with pytest.raises(ConfigError, match="drift_every"):
        CollectSettings(drift_every=-1)


def test_a_retried_architecture_that_fails_again_counts_as_failed(tmp_path: Path) -> None:
    archs = NB.sample(4, seed=3)
    bad = NB.arch_id(archs[1])
    with lds.open(tmp_path / "rf.db") as store:
        first = _run(store, archs, [ScriptedDevice(fail={bad})])
        again = _run(store, archs, [ScriptedDevice(fail={bad})], retry_failed=True)
    assert (first.ok, first.failed) == (3, 1)
    assert (again.ok, again.failed) == (0, 1)
    assert "another run" not in again.summary()


def test_run_only_settings_and_other_devices_change_no_recorded_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archs = NB.sample(3, seed=4)
    with lds.open(tmp_path / "s.db") as store:
        _run(store, archs, [ScriptedDevice()])
        with caplog.at_level("WARNING"):
            _run(store, archs, [ScriptedDevice()], retry_failed=True, drift_every=5)
        assert "recorded with other settings" not in caplog.text
        store.upsert_collection("k", {"device_runtime": {"pi4": "tflite_runtime"}})
        store.upsert_collection("k", {"device_runtime": {"phone": "litert"}})
        params = store.collection_params("k")
    assert params is not None
    assert params["device_runtime"] == {"phone": "litert", "pi4": "tflite_runtime"}
    assert "previous" not in params


def test_a_collect_that_fails_before_measuring_leaves_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from latbench.cli import main
    from latbench.errors import RuntimeNotInstalledError

    class Broken(ScriptedDevice):
        def measure(self, model: Any, **kw: Any) -> Measurement:
            raise RuntimeNotInstalledError("onnxruntime is not installed here")

        def close(self) -> None:
            pass

    monkeypatch.setattr("latbench.devices.get_device", lambda name, cfg=None: Broken(name))
    db = tmp_path / "x.db"
    rc = main(["collect", "--space", "nb201", "--sample", "2", "--db", str(db), "--no-progress"])
    assert rc == 1 and "onnxruntime is not installed here" in capsys.readouterr().err
    assert not db.exists()


def test_progress_without_a_terminal_is_plain_lines_with_an_eta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a real collect on this CPU, stderr captured (no terminal): no carriage returns (a bar
    # would make one ever-growing line of a log), a line for the first and the last
    from latbench.cli import main

    db = tmp_path / "p.db"
    rc = main(
        ["collect", "--space", "nb201", "--sample", "3", "--db", str(db), "--name", "p",
         "--min-runs", "3", "--min-time", "0", "--max-time", "0.05", "--spread", "0",
         "--warmup", "1", "--warmup-time", "0", "--drift-every", "0"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0 and "\r" not in err
    lines = [x for x in err.splitlines() if " arch (" in x]
    assert lines[0].startswith("nb201 p: 1/3 arch (33%)") and "ETA " in lines[0]
    assert lines[-1].startswith("nb201 p: 3/3 arch (100%)") and "ok=3" in lines[-1]
    assert "ETA" not in lines[-1]
