"""The local device and ``latbench measure`` / ``latbench devices`` end to end (real runtimes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import cli
from latbench.config import Config
from latbench.devices import DEVICES, Device, get_device
from latbench.devices.local import LocalDevice, parse_cpus
from latbench.errors import ConfigError, DeviceError, UnknownNameError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement
from latbench.profilers.worker import default_cpus
from latbench.spaces import NB201Space
from measure_models import conv_net, local_fixture, tiny_net

FAST = HarnessSettings(
    warmup_runs=2, warmup_time_s=0.0, min_runs=5, min_time_s=0.05, max_time_s=0.5
)
FAST_ARGS = [
    "--warmup",
    "2",
    "--warmup-time",
    "0",
    "--min-runs",
    "5",
    "--min-time",
    "0.05",
    "--max-time",
    "0.5",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("m")
    return {"conv": conv_net(d / "conv.onnx", channels=8, size=16), "tiny": tiny_net(d / "t.onnx")}


local = local_fixture()


def test_registry_and_get_device() -> None:
    assert "local" in DEVICES
    with pytest.raises(ConfigError, match="unknown device 'pi9'"):
        get_device("pi9", Config())
    cfg = Config(devices={"weird": {"transport": "carrier-pigeon"}})
    with pytest.raises(UnknownNameError, match="carrier-pigeon"):
        get_device("weird", cfg)


def test_parse_cpus() -> None:
    assert parse_cpus("0-2,5") == [0, 1, 2, 5]
    assert parse_cpus(1) == [1] and parse_cpus(None) is None
    with pytest.raises(ConfigError, match="expected a CPU list"):
        parse_cpus("a-b")


def test_local_measure_is_a_complete_record(local: Device, models: dict[str, Path]) -> None:
    m = local.measure(
        models["conv"], runtime="onnxruntime", threads=1, settings=FAST, counters=True, per_op=True
    )
    assert m.ok and m.runs >= 5 and m.median_ms > 0
    assert len(m.samples_ms) == m.runs and len(m.warmup_ms) == m.warmup_runs >= 2
    assert m.env["pinned_cpus"] == default_cpus(1)
    for key in (
        "cpu_model",
        "cpu_count",
        "affinity",
        "loadavg",
        "os",
        "python",
        "latbench_version",
        "total_memory_bytes",
        "governor",
        "cpu_cur_freq_khz",
    ):
        assert key in m.env, key
    assert m.runtime_version and m.runtime_settings["intra_op_num_threads"] == 1
    assert m.input_shapes == {"x": [1, 3, 16, 16]} and m.batch == 1
    assert len(m.model_sha256) == 64 and m.device_fingerprint == local.fingerprint()
    assert m.counters["task_clock_ms"]["value"] > 0
    assert m.counters["peak_rss_bytes"]["value"] > 0
    assert any(r["op"] == "Conv" for r in m.per_op)
    assert m.harness["stop_reason"] in ("converged", "max_time")
    back = Measurement.from_json(m.to_json())
    assert back.samples_ms == m.samples_ms


def test_local_measures_litert(local: Device, tmp_path: Path) -> None:
    from latbench.spaces import export

    nb = NB201Space()
    tfl = export(nb.build(nb.from_index(3)), "tflite", tmp_path / "a.tflite")
    m = local.measure(tfl, runtime="litert", settings=FAST)
    assert m.ok and m.runtime == "litert" and m.runtime_settings["xnnpack"] is True


@pytest.mark.slow
def test_local_measures_a_torch_factory(local: Device) -> None:
    from latbench.spaces.emit_torch import torch_factory

    nb = NB201Space()
    m = local.measure(torch_factory(nb.build(nb.from_index(3))), runtime="torch", settings=FAST)
    assert m.ok and m.runtime_settings["mode"] == "eager"
    assert m.model_path.startswith("factory:")


def test_measure_many_interleaved(local: LocalDevice, models: dict[str, Path]) -> None:
    ms = local.measure_many([models["conv"], models["tiny"]], settings=FAST, interleave=3)
    assert [m.ok for m in ms] == [True, True]
    assert ms[0].harness["stop_reason"].startswith("interleaved")
    assert ms[0].median_ms > ms[1].median_ms


def test_describe_and_fingerprint_are_stable(local: Device) -> None:
    d = local.describe()
    assert d["kind"] == "local" and d["cpu_count"] >= 1
    assert set(d["runtimes"]) == {"onnxruntime", "litert", "torch"}
    assert local.fingerprint() == LocalDevice("other").fingerprint()


def test_unavailable_adapter_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import latbench.devices as devices

    monkeypatch.setitem(devices.ADAPTER_MODULES, "fake", "latbench.devices.does_not_exist")
    cfg = Config(devices={"x": {"transport": "fake"}})
    with pytest.raises(DeviceError, match="adapter is not available"):
        get_device("x", cfg)


# ---- the CLI -------------------------------------------------------------------------------
def test_cli_measure_human_output(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path]
) -> None:
    rc, out, _ = cli(capsys, "measure", str(models["conv"]), *FAST_ARGS)
    assert rc == 0
    for word in ("median", "IQR", "p90", "runs", "verdict"):
        assert word in out


def test_cli_measure_json_has_raw_samples(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path]
) -> None:
    rc, out, _ = cli(capsys, "measure", str(models["tiny"]), "--json", *FAST_ARGS)
    doc = json.loads(out)
    assert rc == 0 and doc["status"] == "ok"
    assert len(doc["samples_ms"]) == doc["summary"]["runs"] >= 5
    assert doc["loops"] >= 1 and "stable" in doc["verdict"]


def test_cli_measure_space_arch(capsys: pytest.CaptureFixture[str]) -> None:
    arch = NB201Space().from_index(11)
    rc, out, _ = cli(capsys, "measure", f"nb201:{arch}", "--json", *FAST_ARGS)
    doc = json.loads(out)
    assert rc == 0 and doc["input_shapes"] == {"input": [1, 3, 32, 32]}
    assert doc["target"] == f"nb201:{arch}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.onnx"], "does not exist"),
        (["{conv}", "--runtime", "tensorrt"], "unknown runtime 'tensorrt'"),
        (["{conv}", "--device", "pi9"], "unknown device 'pi9'"),
        (["{tiny}", "--batch", "3"], "rejects the input shapes"),
        (["{corrupt}"], "not a valid ONNX model"),
        (["{conv}", "--threads", "0"], "--threads 0"),
        # timing options are named as typed, with what they take
        (["{conv}", "--loops", "0"], "--loops 0; expected an integer >= 1"),
        (["{conv}", "--spread", "-1"], "--spread -1.0; expected a number >= 0"),
        (["{conv}", "--warmup", "-1"], "--warmup -1; expected an integer >= 0"),
        (["{conv}", "--timeout", "0"], "--timeout 0.0; expected a number > 0"),
        (["{conv}", "--max-time", "nan"], "--max-time nan; expected a number > 0"),
        (["nb201:|bogus~0|"], "nb201"),
    ],
)
def test_cli_bad_input_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
    models: dict[str, Path],
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00garbage")
    subs = {"conv": str(models["conv"]), "tiny": str(models["tiny"]), "corrupt": str(corrupt)}
    target, *options = (a.format(**subs) for a in argv)
    rc, _, err = cli(capsys, "measure", target, *FAST_ARGS, *options)  # the options win
    assert rc != 0
    assert err.startswith("latbench: error:") and message in err


def test_cli_devices_lists_local_and_unavailable_adapters(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import latbench.devices as devices

    monkeypatch.setitem(devices.ADAPTER_MODULES, "fake", "latbench.devices.does_not_exist")
    toml = tmp_path / "bench.toml"
    toml.write_text('[devices.board]\ntransport = "fake"\n')
    rc, out, _ = cli(capsys, "--config", str(toml), "devices")
    assert rc == 1  # a device that cannot be used: scripts can tell
    assert "local  [local]  ok" in out and "cpu_model" in out
    assert "board  [fake]  UNAVAILABLE" in out and "reason:" in out
    rc, out, _ = cli(capsys, "--config", str(toml), "devices", "--json")
    doc = json.loads(out)
    assert [e["available"] for e in doc] == [True, False]
