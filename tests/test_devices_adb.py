"""The adb device with the real adb client against a local adb-protocol server.

No phone is used (none can be attached here): the server runs the "phone's" shell commands on
this machine, in a sandbox directory, and ``getprop``/``dumpsys`` print saved real outputs. The
pushed ``benchmark_model`` is a stand-in script that really benchmarks the .tflite file with
LiteRT and prints benchmark_model's output format; the parser itself is tested on saved real
outputs in test_devices_parsers.py.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from device_fixtures import bench_bin_fixture, phone_fixture
from devices_servers import ADB, AdbServer
from latbench.config import Config
from latbench.devices import get_device
from latbench.devices.adb import AdbDevice, cpu_mask
from latbench.devices.remote import failure_kind
from latbench.devices.transports import AdbTransport, CommandTimeout
from latbench.errors import ConfigError, ModelError
from latbench.profilers.harness import HarnessSettings

pytestmark = pytest.mark.adb

FIXTURES = Path(__file__).parent / "fixtures" / "devices"
FAST = HarnessSettings(
    warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.03, max_time_s=0.2
)


phone = phone_fixture()
bench_bin = bench_bin_fixture()


@pytest.fixture(scope="module")
def tflites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from latbench.spaces import export, get_space

    space = get_space("nb201")
    out = tmp_path_factory.mktemp("models")
    archs = space.sample(3, seed=0)
    return [
        export(space.build(a, resolution=8), "tflite", out / f"m{i}.tflite", seed=i)
        for i, a in enumerate(archs)
    ]


def _device(phone: AdbServer, bench_bin: Path, **extra: object) -> AdbDevice:
    cfg = phone.device_config(benchmark_binary=str(bench_bin), rounds=2, **extra)
    dev = get_device("phone1", Config(devices={"phone1": cfg}))
    assert isinstance(dev, AdbDevice)
    return dev


def test_close_keeps_what_latbench_did_not_put_there(
    phone: AdbServer, bench_bin: Path, tflites: list[Path]
) -> None:
    """A remote_dir shared with other files (the phone's /data/local/tmp) keeps them."""
    shared = phone.root / "data/local/tmp/shared"
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "notes.txt").write_text("the user's own file\n")
    with _device(phone, bench_bin, cpus="0", remote_dir="/data/local/tmp/shared") as dev:
        assert dev.measure(tflites[0], settings=FAST).ok
        assert (shared / "benchmark_model").is_file()
    assert (shared / "notes.txt").read_text() == "the user's own file\n"
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt"]


def test_measures_models_with_benchmark_model(
    phone: AdbServer, bench_bin: Path, tflites: list[Path]
) -> None:
    with _device(phone, bench_bin, cpus="0") as dev:
        results = [dev.measure(m, settings=FAST) for m in tflites]
        desc = dev.describe()
        remote = phone.root / "data/local/tmp/latbench"
        assert (remote / "benchmark_model").is_file()  # pushed once, reused
        assert not list(remote.glob("m-*"))  # every model removed after its run
    assert not remote.exists()  # close() cleaned the phone
    for m, r in zip(tflites, results, strict=True):
        assert r.ok, r.error
        assert r.runs == 2 and all(x > 0 for x in r.samples_ms)  # one sample per round
        assert r.loops >= 1 and len(r.harness["round_counts"]) == 2
        assert r.model_path == str(m) and r.runtime == "litert"
        assert r.runtime_settings["taskset_mask"] == "1"
        assert r.runtime_settings["delegates"] == ["XNNPACK"]
        assert r.counters["memory_delta_overall_mb"] == {"value": 3.25, "unit": "MB"}
        assert "taskset 1 " in r.harness["command"]
    assert desc["model"] == "Pixel 6" and desc["soc"] == "gs101"
    assert desc["battery"]["level_pct"] == 83 and desc["battery"]["temperature_c"] == 30.1
    assert desc["cpu_count"] == len(os.sched_getaffinity(0)) or desc["cpu_count"] >= 1
    assert dev.fingerprint() == results[0].device_fingerprint


def test_unplugged_phone_fails_one_item_then_reconnects(
    phone: AdbServer, bench_bin: Path, tflites: list[Path]
) -> None:
    slow = HarnessSettings(warmup_runs=1, min_runs=3, min_time_s=4.0, max_time_s=4.0)
    with _device(phone, bench_bin) as dev:
        assert dev.measure(tflites[0], settings=FAST).ok
        threading.Timer(0.7, phone.unplug).start()
        replug = threading.Timer(1.5, phone.plug)
        replug.start()
        unplugged = dev.measure(tflites[1], settings=slow)
        replug.join()
        after = [dev.measure(m, settings=FAST) for m in tflites[1:]]
        assert dev.reconnects == 1
    assert failure_kind(unplugged) == "transport", unplugged.error
    assert "disconnected" in str(unplugged.error)
    assert all(r.ok for r in after), [r.error for r in after]


def test_hung_run_is_killed_and_a_bad_model_is_a_failed_record(
    phone: AdbServer, bench_bin: Path, tflites: list[Path], tmp_path: Path
) -> None:
    hang = HarnessSettings(min_runs=3, min_time_s=60.0, max_time_s=60.0, timeout_s=1.0)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with _device(phone, bench_bin) as dev:
        hung = dev.measure(tflites[0], settings=hang)
        rejected = dev.measure(bad, settings=FAST)
        good = dev.measure(tflites[0], settings=FAST)
        with pytest.raises(ConfigError, match="expected 'litert'"):
            dev.measure(tflites[0], runtime="onnxruntime")
        onnx_file = tmp_path / "m.onnx"
        onnx_file.write_bytes(b"x")
        with pytest.raises(ModelError, match=r"expects \.tflite"):
            dev.measure(onnx_file)
    assert failure_kind(hung) == "timeout" and "timed out after 1 s" in str(hung.error)
    assert failure_kind(rejected) == "model"
    assert good.ok, good.error


def test_transport_with_the_real_adb_client(phone: AdbServer, tmp_path: Path) -> None:
    t = AdbTransport(phone.device_config(), label="phone")
    with t:
        res = t.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
        assert t.run(["echo", "a b; ls"]).stdout == "a b; ls\n"  # arguments are quoted
        payload = os.urandom(200_000)
        (tmp_path / "blob").write_bytes(payload)
        t.push(tmp_path / "blob", "/data/local/tmp/blob")
        t.pull("/data/local/tmp/blob", tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == payload
        with pytest.raises(CommandTimeout):
            t.run_shell("sleep 30", timeout_s=0.5, pidfile="/data/local/tmp/sleep.pid")
    assert "sync:" in phone.requests and any(r.startswith("shell,v2") for r in phone.requests)


def test_cpu_mask_and_missing_binary(phone: AdbServer, tflites: list[Path]) -> None:
    assert cpu_mask("4-7") == "f0" and cpu_mask([0, 2]) == "5" and cpu_mask(None) is None
    with pytest.raises(ConfigError, match="CPU list"):
        cpu_mask("big")
    dev = AdbDevice("phone1", phone.device_config())
    with pytest.raises(ConfigError, match="benchmark_binary"):
        dev.measure(tflites[0], settings=FAST)
    dev.close()
    assert shutil.which(ADB)
