"""Robustness of ``latbench measure`` / ``export`` / ``arch`` and the profilers: odd models,
contradictory options, bench.toml defaults, interrupts and strict JSON (real runtimes)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cli_helpers import cli
from latbench.commands.measure import dumps_json, harness_settings, parse_input_shapes
from latbench.config import Config, load_config
from latbench.devices import DEVICES, Device
from latbench.devices.local import LocalDevice, parse_cpus
from latbench.errors import ArchError, ConfigError, MeasurementError, ModelError
from latbench.profilers import stats
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement
from latbench.profilers.runtimes import get_runtime, make_inputs
from latbench.profilers.worker import Worker, WorkerCallError, _kill_all, default_cpus
from latbench.spaces import NB201Space, export
from measure_models import local_fixture, tiny_net

A = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
FAST = HarnessSettings(
    warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.02, max_time_s=0.1
)
FAST_ARGS = ["--warmup", "1", "--warmup-time", "0", "--min-runs", "3"]
FAST_ARGS += ["--min-time", "0.02", "--max-time", "0.1"]


def _onnx(path: Path, shape: list[Any] | None, *, op: str = "Relu", inputs: bool = True) -> Path:
    if inputs:
        nodes = [helper.make_node(op, ["x"], ["y"])]
        ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
        inits = []
    else:  # no inputs at all: y = c + c
        c = numpy_helper.from_array(np.ones((1, 4), np.float32), "c")
        nodes, ins, inits = [helper.make_node("Add", ["c", "c"], ["y"])], [], [c]
    graph = helper.make_graph(
        nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("robust")
    return {
        "scalar": _onnx(d / "scalar.onnx", []),
        "norank": _onnx(d / "norank.onnx", None),
        "noinput": _onnx(d / "noinput.onnx", None, inputs=False),
        "static": _onnx(d / "static.onnx", [1, 3, 8, 8]),
        "tiny": tiny_net(d / "tiny.onnx"),
        "dyn": tiny_net(d / "dyn.onnx", dynamic_batch=True),
    }


local = local_fixture()


def _strict(text: str) -> Any:
    def refuse(c: str) -> Any:
        raise ValueError(f"not JSON: {c}")

    return json.loads(text, parse_constant=refuse)


# ---- 1. rank-0 / unknown-rank inputs ----------------------------------------------------
@pytest.mark.parametrize("name", ["scalar", "norank"])
def test_scalar_and_unknown_rank_inputs_measure_at_batch_1(
    local: LocalDevice, models: dict[str, Path], name: str
) -> None:
    m = local.measure(models[name], settings=FAST)
    assert m.ok and m.batch == 1 and m.input_shapes == {"x": []}


def test_cli_scalar_model_keeps_its_result(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path]
) -> None:
    rc, out, err = cli(capsys, "measure", str(models["scalar"]), *FAST_ARGS)
    assert rc == 0 and "Traceback" not in err and "batch 1" in out


@pytest.mark.parametrize(
    ("name", "message"), [("scalar", "is a scalar (shape [])"), ("norank", "has no known rank")]
)
def test_arch_show_names_an_input_without_nchw(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path], name: str, message: str
) -> None:
    rc, _, err = cli(capsys, "arch", "show", "--onnx", str(models[name]))
    assert rc != 0 and message in err and "Traceback" not in err


def test_batch_on_a_model_without_a_batch_dimension_is_refused(
    local: LocalDevice, models: dict[str, Path]
) -> None:
    with pytest.raises(ModelError, match="batch 4: the model has only scalar inputs"):
        local.measure(models["scalar"], settings=FAST, batch=4)
    with pytest.raises(ModelError, match="batch 4: the model has no inputs"):
        local.measure(models["noinput"], settings=FAST, batch=4)
    assert local.measure(models["noinput"], settings=FAST).ok  # no batch: fine


# ---- 2. seeds -----------------------------------------------------------------------------
def test_negative_seed_is_refused_everywhere(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path], tmp_path: Path
) -> None:
    rc, _, err = cli(capsys, "measure", str(models["tiny"]), "--seed", "-1", *FAST_ARGS)
    assert rc == 2 and "--seed -1; expected an integer >= 0" in err
    rc, _, err = cli(capsys, "export", f"nb201:{A}", "-o", str(tmp_path / "m.onnx"), "--seed", "-1")
    assert rc == 2 and "--seed -1; expected an integer >= 0" in err
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(ConfigError, match="seed -1; expected an integer >= 0"):
        make_inputs({"x": ([1], "float32")}, seed=-1)
    with pytest.raises(ConfigError, match="seed -2"):
        LocalDevice()._spec(models["tiny"], seed=-2)


# ---- 3. interrupts and signals --------------------------------------------------------------
def test_ctrl_c_while_the_worker_runs_kills_it_at_once() -> None:
    w = Worker()
    try:
        w.call(os.getpid)
        pid = w.pid
        assert pid is not None
        timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            w.call(time.sleep, 30)
        assert time.monotonic() - t0 < 3.0
        assert w.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        w.close()


def _late_reply(conn: Any) -> None:
    from latbench.profilers.worker import _worker_main

    _worker_main(conn, None, None)


def test_a_worker_whose_parent_left_exits_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_late_reply, args=(child,))
    proc.start()
    child.close()
    parent.send((time.sleep, (0.5,), {}))
    parent.close()  # the parent goes away before the reply
    proc.join(timeout=20)
    assert proc.exitcode == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_sigterm_is_ignored_only_when_the_parent_handles_it() -> None:
    w = Worker(ignore_sigterm=True)
    try:
        pid = w.call(os.getpid)
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.3)
        assert w.call(os.getpid) == pid  # still the same process
        t0 = time.monotonic()
        w.close()  # it ignores SIGTERM: close still stops it, without a long wait
        assert time.monotonic() - t0 < 4.0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        w.close()
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        auto = Worker()
        pid = auto.call(os.getpid)
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.3)
        assert auto.call(os.getpid) == pid  # a graceful parent: the worker ignores it too
        _kill_all()  # the exit hook
        assert auto.pid is None
    finally:
        signal.signal(signal.SIGTERM, previous)
    plain = Worker()
    try:
        pid = plain.call(os.getpid)
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.3)
        assert plain.call(os.getpid) != pid  # default: SIGTERM ends it (then it restarts)
    finally:
        plain.close()


def test_an_unpicklable_model_is_a_latbench_error(local: LocalDevice) -> None:
    import torch

    with pytest.raises(WorkerCallError, match="must be picklable") as info:
        local.measure(
            lambda: torch.nn.ReLU(),
            runtime="torch",
            settings=FAST,
            options={"input_shapes": {"x": [1, 3]}},
        )
    assert isinstance(info.value, MeasurementError)


# ---- 4. torch files -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    d = tmp_path_factory.mktemp("torch")

    class Conv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(x).relu()

    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.e = torch.nn.Embedding(10, 4)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.e(idx)

    with warnings.catch_warnings():  # TorchScript is deprecated, and still what users have
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Conv().eval()).save(str(d / "script.pt"))
    ep = torch.export.export(Embed().eval(), (torch.randint(0, 8, (1, 5)),))
    torch.export.save(ep, str(d / "embed.pt2"))
    (d / "empty.pt2").write_bytes(b"")
    (d / "junk.pt2").write_bytes(b"PK\x03\x04 not really a zip file" * 10)
    return {p.stem: p for p in d.iterdir()}


@pytest.mark.parametrize("name", ["empty", "junk"])
def test_a_corrupt_pt2_is_one_line_without_torch_logs(
    torch_files: dict[str, Path], name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ModelError, match="is not a torch model torch can load"):
        get_runtime("torch").load(torch_files[name])
    err = capfd.readouterr().err
    assert "Traceback" not in err and "deserializ" not in err


def test_torchscript_needs_and_takes_input_shape(
    capsys: pytest.CaptureFixture[str], torch_files: dict[str, Path]
) -> None:
    path = str(torch_files["script"])
    rc, _, err = cli(capsys, "measure", path, *FAST_ARGS)
    assert rc == 1 and "--input-shape" in err
    rc, out, err = cli(capsys, "measure", path, "--input-shape", "x=1x3x16x16", "--batch", "2")
    assert rc == 0, err
    assert "x [2, 3, 16, 16]; batch 2" in out
    rc, _, err = cli(capsys, "measure", str(torch_files["script"]), "--input-shape", "1xax3")
    assert rc == 2 and "--input-shape '1xax3'" in err


def test_parse_input_shapes() -> None:
    assert parse_input_shapes(["1x3x8x8", "idx=1x5:int64"]) == (
        {"input0": [1, 3, 8, 8], "idx": [1, 5]},
        {"idx": "int64"},
    )
    with pytest.raises(ConfigError, match="dtype 'complex'"):
        parse_input_shapes(["1x2:complex"])


def test_a_pt2_with_integer_inputs_uses_its_recorded_dtype(
    local: LocalDevice, torch_files: dict[str, Path]
) -> None:
    m = local.measure(torch_files["embed"], runtime="torch", settings=FAST)
    assert m.ok, m.error
    assert m.input_shapes == {"idx": [1, 5]}


# ---- 5. SPACE:ARCH with --batch; onnxruntime's message ---------------------------------------
@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_space_arch_with_batch(capsys: pytest.CaptureFixture[str], runtime: str) -> None:
    rc, out, err = cli(
        capsys, "measure", f"nb201:{A}", "--batch", "2", "--runtime", runtime, "--json", *FAST_ARGS
    )
    assert rc == 0, err
    doc = _strict(out)
    assert doc["batch"] == 2 and next(iter(doc["input_shapes"].values()))[0] == 2


def test_a_rejected_shape_keeps_onnxruntimes_detail(
    local: LocalDevice, models: dict[str, Path]
) -> None:
    with pytest.raises(ModelError, match=r"index: 0 Got: 2 Expected: 1"):
        local.measure(models["static"], settings=FAST, batch=2)


# ---- 6. bench.toml [measure] runtime / batch, the device's runtime ------------------------------
def test_measure_table_runtime_and_batch_apply(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    models: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    toml = tmp_path / "bench.toml"
    toml.write_text('[measure]\nruntime = "litert"\nbatch = 2\n')
    rc, out, err = cli(capsys, "--config", str(toml), "measure", f"nb201:{A}", "--json", *FAST_ARGS)
    assert rc == 0, err
    doc = _strict(out)
    assert doc["runtime"] == "litert" and doc["batch"] == 2
    rc, out, err = cli(capsys, "--config", str(toml), "measure", str(models["dyn"]), "--json")
    assert rc == 0, err  # a .onnx file stays on onnxruntime and keeps its own batch (warned)
    doc = _strict(out)
    assert doc["runtime"] == "onnxruntime" and doc["input_shapes"] == {"x": [1, 4]}
    assert "[measure] batch = 2 applies to SPACE:ARCH targets" in caplog.text
    args = ["--batch", "1", "--runtime", "onnxruntime", "--json", *FAST_ARGS]
    rc, out, err = cli(capsys, "--config", str(toml), "measure", f"nb201:{A}", *args)
    assert rc == 0, err  # the options win
    doc = _strict(out)
    assert doc["runtime"] == "onnxruntime" and doc["batch"] == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('runtime = "nope"', "[measure] runtime = 'nope'; expected one of: litert, onnxruntime"),
        ("batch = 0", "[measure] batch = 0; expected an integer >= 1"),
        ("threads = 0", "[measure] threads = 0; expected an integer >= 1"),
        ('statistic = "mean"', "[measure] statistic = 'mean'; expected one of: median, min"),
    ],
)
def test_bad_measure_table_values_name_the_file_and_key(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    models: dict[str, Path],
    table: str,
    message: str,
) -> None:
    toml = tmp_path / "bench.toml"
    toml.write_text(f"[measure]\n{table}\n")
    rc, _, err = cli(capsys, "--config", str(toml), "measure", str(models["tiny"]), *FAST_ARGS)
    assert rc == 2 and f"{toml} {message}" in err
    assert "normalized" not in err


def test_a_bad_device_table_value_names_the_file_and_device(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, models: dict[str, Path]
) -> None:
    toml = tmp_path / "bench.toml"
    toml.write_text('[devices.x]\ntransport = "local"\nmin_runs = -3\n')
    rc, _, err = cli(capsys, "--config", str(toml), "measure", str(models["tiny"]), "--device", "x")
    assert rc == 2 and f"{toml} [devices.x] min_runs = -3; expected a value >= 0" in err


class _Recorder(Device):
    """A device whose table names a runtime; it records what it was asked to measure."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.default_runtime = str(self.config.get("runtime", "onnxruntime"))

    def measure(self, model: Any, **kw: Any) -> Measurement:  # type: ignore[override]
        _Recorder.calls.append({"model": model, **kw})
        return Measurement.failed("recorded", runtime=kw["runtime"], device=self.name)

    def describe(self) -> dict[str, Any]:
        return {}


def test_a_device_tables_runtime_applies_to_space_arch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(DEVICES._items, "recorder", _Recorder)
    toml = tmp_path / "bench.toml"
    toml.write_text('[devices.board]\ntransport = "recorder"\nruntime = "litert"\n')
    _Recorder.calls.clear()
    rc, _, _ = cli(capsys, "--config", str(toml), "measure", f"nb201:{A}", "--device", "board")
    assert rc == 1  # the recorder fails every record
    (call,) = _Recorder.calls
    assert call["runtime"] == "litert" and str(call["model"]).endswith(".tflite")


# ---- 8. strict JSON ------------------------------------------------------------------------
def test_json_of_a_one_sample_run_is_strict_json(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path]
) -> None:
    rc, out, err = cli(
        capsys,
        *("measure", str(models["tiny"]), "--json", "--min-runs", "1", "--loops", "1"),
        *("--warmup", "0", "--warmup-time", "0", "--min-time", "0", "--max-time", "0.5"),
    )
    assert rc == 0, err
    doc = _strict(out)
    assert doc["verdict"]["drift"] is None and doc["verdict"]["judged"] is False
    assert _strict(dumps_json({"a": [float("nan"), {"b": float("inf")}], "c": 1.5})) == {
        "a": [None, {"b": None}],
        "c": 1.5,
    }


# ---- 9. CPU ranges --------------------------------------------------------------------------
def test_a_reversed_cpu_range_is_refused(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError, match=r"cpus '3-1': a range must go up \(expected e.g. 1-3\)"):
        parse_cpus("3-1")
    rc, _, err = cli(capsys, "measure", str(models["tiny"]), "--cpus", "3-1", *FAST_ARGS)
    assert rc == 2 and "a range must go up" in err and "--cpus" in err


def test_cpus_beyond_this_process_name_the_value_and_the_usable_cpus(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path]
) -> None:
    usable = sorted(os.sched_getaffinity(0))
    beyond = max(usable) + 1
    rc, _, err = cli(capsys, "measure", str(models["tiny"]), "--cpus", f"0-{beyond}", *FAST_ARGS)
    assert rc == 2
    assert f"--cpus '0-{beyond}' names CPU {beyond}," in err
    assert "expected ids within" in err


# ---- 10. --runtime and unknown suffixes ------------------------------------------------------
def test_runtime_option_reads_a_file_of_unknown_suffix(
    capsys: pytest.CaptureFixture[str],
    models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no bench.toml: its [measure] runtime would be the default
    txt = tmp_path / "model.txt"
    shutil.copy(models["tiny"], txt)
    rc, _, err = cli(capsys, "measure", str(txt), *FAST_ARGS)
    assert rc == 1 and "pass --runtime" in err
    rc, out, err = cli(capsys, "measure", str(txt), "--runtime", "onnxruntime", *FAST_ARGS)
    assert rc == 0, err
    assert "runtime   onnxruntime" in out
    # a suffix of another runtime is a likely mix-up: refused, with the reason
    rc, _, err = cli(capsys, "measure", str(models["tiny"]), "--runtime", "litert", *FAST_ARGS)
    assert rc == 2 and "is an onnxruntime model by its suffix '.onnx'" in err


# ---- 11. unknown spaces ----------------------------------------------------------------------
@pytest.mark.parametrize("space", ["zzz", "NB201"])
def test_an_unknown_space_is_named(capsys: pytest.CaptureFixture[str], space: str) -> None:
    rc, _, err = cli(capsys, "measure", f"{space}:{A}", *FAST_ARGS)
    assert rc == 2
    assert f"unknown space {space!r}; expected one of: fbnet, nb201" in err


# ---- 12. --max-time alone; messages name the options ------------------------------------------
def _args(**kw: Any) -> argparse.Namespace:
    keys = ("warmup", "warmup_time", "min_runs", "min_time", "max_time", "spread", "loops")
    return argparse.Namespace(**{k: None for k in (*keys, "timeout", "statistic")} | kw)


def test_max_time_alone_lowers_the_minimum(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO"):
        s = harness_settings(_args(max_time=0.5), {})
    assert s.max_time_s == 0.5 and s.min_time_s == 0.5
    assert "--max-time 0.5 is below the minimum time" in caplog.text
    with pytest.raises(ConfigError, match="--max-time 1 is below --min-time 2") as info:
        harness_settings(_args(min_time=2.0, max_time=1.0), {})
    assert "max_time_s" not in str(info.value)


def test_a_warmup_longer_than_the_maximum(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match=r"--warmup-time 3 is longer than --max-time 0\.5"):
        harness_settings(_args(warmup_time=3.0, max_time=0.5), {})
    s = harness_settings(_args(max_time=0.1), {})  # the default warm-up (0.2 s) is shortened
    assert s.warmup_time_s == 0.1


# ---- 13. contradictory options ---------------------------------------------------------------
def test_options_of_another_runtime_are_refused(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path], tmp_path: Path
) -> None:
    rc, _, err = cli(capsys, "measure", str(models["tiny"]), "--no-xnnpack", *FAST_ARGS)
    assert rc == 2 and "--no-xnnpack applies to the litert runtime only" in err
    tfl = export(NB201Space().build(A), "tflite", tmp_path / "a.tflite")
    rc, _, err = cli(capsys, "measure", str(tfl), "--opt-level", "basic", *FAST_ARGS)
    assert rc == 2 and "--opt-level applies to the onnxruntime runtime only" in err
    rc, _, err = cli(capsys, "measure", str(models["tiny"]), "--input-shape", "1x4", *FAST_ARGS)
    assert rc == 2 and "--input-shape applies to the torch runtime only" in err
    rc, out, err = cli(capsys, "measure", str(models["tiny"]), "--json", *FAST_ARGS)
    assert rc == 0 and _strict(out)["harness"]["options"] == {}


def test_resolution_with_onnx_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    onnx_path = export(NB201Space().build(A), "onnx", tmp_path / "m.onnx")
    for argv in (
        ["arch", "show", "--onnx", str(onnx_path), "--resolution", "64"],
        ["export", "--onnx", str(onnx_path), "--resolution", "64", "-o", str(tmp_path / "o.onnx")],
    ):
        rc, _, err = cli(capsys, *argv)
        assert rc == 2 and "--resolution 64 does not apply to --onnx" in err


# ---- 14. the batch of an ONNX file ----------------------------------------------------------
def test_arch_show_and_export_keep_an_onnx_files_batch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    b2 = tmp_path / "b2.onnx"
    rc, _, err = cli(capsys, "export", f"nb201:{A}", "--batch", "2", "-o", str(b2))
    assert rc == 0, err
    rc, out, _ = cli(capsys, "arch", "show", "--onnx", str(b2), "--json")
    two = _strict(out)
    assert two["input_shape"][0] == 2
    rc, out, _ = cli(capsys, "arch", "show", "--onnx", str(b2), "--batch", "1", "--json")
    one = _strict(out)
    assert one["input_shape"][0] == 1 and two["macs"] == 2 * one["macs"]
    again = tmp_path / "again.onnx"
    rc, _, _ = cli(capsys, "export", "--onnx", str(b2), "-o", str(again))
    rc, out, _ = cli(capsys, "arch", "show", "--onnx", str(again), "--json")
    assert _strict(out)["input_shape"][0] == 2


# ---- 15. measure_many with a bad model --------------------------------------------------------
def test_interleaved_measure_many_survives_a_bad_model(
    local: LocalDevice, models: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    batch = [models["tiny"], bad, models["dyn"], tmp_path / "missing.onnx"]
    ms = local.measure_many(batch, settings=FAST, interleave=2, reference=False)
    assert [m.status for m in ms] == ["ok", "failed", "ok", "failed"]
    assert "not a valid ONNX model" in ms[1].error and "does not exist" in ms[3].error
    assert ms[0].harness.get("round_sizes")  # the good ones were still interleaved
    one_by_one = local.measure_many([models["tiny"], bad], settings=FAST)
    assert [m.status for m in one_by_one] == ["ok", "failed"]


# ---- 16. minor ones ------------------------------------------------------------------------------
def test_a_directory_is_named_as_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, local: LocalDevice
) -> None:
    d = tmp_path / "dir.onnx"
    d.mkdir()
    rc, _, err = cli(capsys, "measure", str(d), *FAST_ARGS)
    assert rc == 1 and "is a directory" in err
    with pytest.raises(ModelError, match="is a directory"):
        local.measure(d, settings=FAST)


def test_a_failed_record_names_the_workers_cpus(
    local: LocalDevice, models: dict[str, Path]
) -> None:
    spec = local._spec(models["tiny"], threads=1, settings=FAST)
    m = local._failed(spec, "boom")
    assert m.env["pinned_cpus"] == default_cpus(1)


def test_export_suffix_is_case_insensitive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, out, err = cli(capsys, "export", f"nb201:{A}", "-o", str(tmp_path / "M.ONNX"))
    assert rc == 0, err
    assert "(onnx," in out


def test_space_argument_checks() -> None:
    nb = NB201Space()
    with pytest.raises(ArchError, match=r"expected a multiple of 4 \(e.g. 4\)$"):
        nb.build(A, resolution=3)
    with pytest.raises(ArchError, match=r"\(e.g. 4 or 8\)"):
        nb.build(A, resolution=6)
    with pytest.raises(ArchError, match=r"index 1\.5; expected an integer"):
        nb.from_index(1.5)  # type: ignore[arg-type]
    assert nb.from_index(np.int64(3)) == nb.from_index(3)
    with pytest.raises(ArchError, match=r"cannot sample 2\.5 archs"):
        nb.sample(2.5)  # type: ignore[arg-type]


def test_too_few_runs_is_an_unknown_verdict(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path]
) -> None:
    v = stats.stability([1.0], min_runs=1)
    assert v["judged"] is False and v["stable"] is False and "too few runs" in v["reasons"][0]
    assert stats.stability([1.0] * 10, min_runs=1)["judged"] is True
    rc, out, _ = cli(
        capsys,
        *("measure", str(models["tiny"]), "--min-runs", "1", "--loops", "1", "--warmup", "0"),
        *("--warmup-time", "0", "--min-time", "0", "--max-time", "0.5"),
    )
    assert rc == 0 and "verdict   unknown: too few runs" in out


def test_bench_toml_keys_read_from_the_file_only(tmp_path: Path) -> None:
    from latbench.commands.measure import file_measure

    toml = tmp_path / "bench.toml"
    toml.write_text("[measure]\nthreads = 2\n")
    assert file_measure(load_config(toml)) == {"threads": 2}  # not latbench's defaults
    assert file_measure(Config()) == {}


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_a_script_without_a_main_guard_measures_once(
    models: dict[str, Path], tmp_path: Path, how: str
) -> None:
    """A spawned worker must not re-run the user's script (or look for ``<stdin>``)."""
    import subprocess
    import sys

    script = tmp_path / "measure_it.py"
    script.write_text(
        "from latbench.devices import get_device\n"
        "from latbench.profilers.harness import HarnessSettings\n"
        "print('RUN', flush=True)\n"
        "s = HarnessSettings(warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.02,"
        " max_time_s=0.1)\n"
        "with get_device('local') as dev:\n"
        f"    m = dev.measure({str(models['tiny'])!r}, settings=s)\n"
        "print('OK', m.ok, m.runs >= 3, flush=True)\n"
    )
    argv = [sys.executable, str(script)] if how == "script" else [sys.executable, "-"]
    stdin = None if how == "script" else script.read_text()
    out = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("RUN") == 1 and "OK True True" in out.stdout


def test_statistics_of_a_failed_measurement_are_nan() -> None:
    m = Measurement(status="failed", error="it broke")
    assert not m.ok
    for v in (m.median_ms, m.mean_ms, m.iqr_ms, m.p90_ms, m.p99_ms, m.min_ms, m.std_ms):
        assert np.isnan(v)
