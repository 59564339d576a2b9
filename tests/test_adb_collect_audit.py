"""Bad adb settings and faults said clearly, and a collection's repeated architectures.

The adb tests run the real adb client against :class:`devices_servers.AdbServer` (or against a
port with nothing listening); the collection test runs the real ``local`` onnxruntime device.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import latbench.datasets as lds
from devices_servers import ADB, AdbServer, free_port
from latbench.datasets.collect import CollectSettings, collect
from latbench.devices import get_device
from latbench.devices.adb import AdbDevice
from latbench.devices.remote import failure_kind
from latbench.devices.transports import AdbTransport, ConnectionLost
from latbench.errors import ConfigError, DeviceError
from latbench.profilers.harness import HarnessSettings
from latbench.spaces import NB201Space


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[AdbServer]:
    server = AdbServer(tmp_path / "sandbox").start()
    yield server
    server.stop()


@pytest.mark.adb
def test_a_serial_no_phone_has_names_it_and_the_attached_phones(phone: AdbServer) -> None:
    t = AdbTransport(phone.device_config(serial="NO-SUCH-PHONE"), label="ph")
    with pytest.raises(ConnectionLost) as info:
        t.connect()
    msg = str(info.value)
    assert "serial = 'NO-SUCH-PHONE': no such phone is attached" in msg
    assert "'LATBENCH0001' (device)" in msg and "expected serial = one of" in msg


@pytest.mark.adb
def test_an_adb_server_port_with_nothing_listening_says_refused() -> None:
    port = free_port()
    t = AdbTransport({"adb": ADB, "server": f"tcp:127.0.0.1:{port}"}, label="ph")
    with pytest.raises(ConnectionLost) as info:
        t.connect()
    msg = str(info.value)
    assert f"127.0.0.1:{port}: Connection refused; expected an adb server listening" in msg
    assert "network.cpp" not in msg and "cannot start server" not in msg


def test_a_server_that_is_no_socket_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"server = 'localhost:5037'; expected an adb server"):
        AdbTransport({"adb": ADB, "server": "localhost:5037"}, label="ph")
    for good in ("tcp:5037", "tcp:127.0.0.1:5037", "tcp:[::1]:5037", "localfilesystem:/a.sock"):
        assert AdbTransport({"adb": ADB, "server": good}).server == good


def test_an_adb_path_that_does_not_exist_is_not_said_to_be_missing_from_path(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "platform-tools" / "adb")
    with pytest.raises(DeviceError, match=r"adb = '.*/platform-tools/adb' is not an executable"):
        AdbTransport({"adb": missing})


@pytest.mark.adb
def test_an_adb_client_removed_after_start_is_a_device_error_not_a_traceback(
    phone: AdbServer, tmp_path: Path
) -> None:
    assert ADB is not None
    copy = tmp_path / "adb"
    shutil.copy2(ADB, copy)
    t = AdbTransport(phone.device_config(adb=str(copy)), label="ph")
    copy.unlink()
    with pytest.raises(DeviceError, match=r"cannot run the adb client '.*adb': No such file"):
        t.connect()


def test_repeated_archs_are_measured_once_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    space = NB201Space()
    a, b = space.sample(2, 0)
    settings = CollectSettings(
        collection="dups",
        drift_every=0,
        harness=HarnessSettings(
            warmup_runs=1,
            warmup_time_s=0.0,
            min_runs=3,
            min_time_s=0.0,
            max_time_s=0.05,
            spread_threshold=0.0,
        ),
    )
    device = get_device("local")
    try:
        with caplog.at_level(logging.WARNING), lds.open(tmp_path / "c.db") as store:
            report = collect(store, space, [a, b, a], [device], settings)
            df = store.to_pandas()
    finally:
        device.close()
    assert report.ok == 2 and len(df) == 2
    assert "1 of the 3 architectures to collect repeat an earlier one" in caplog.text
    assert a in caplog.text


@pytest.mark.adb
def test_a_phone_never_reached_is_not_said_to_have_disconnected(
    phone: AdbServer, tmp_path: Path
) -> None:
    """Only the transport's first connect matters here: a tiny file stands in for the model
    and benchmark_model, which are never pushed."""
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"#!/bin/sh\n")
    cfg = phone.device_config(serial="NO-SUCH-PHONE", benchmark_binary=str(binary), rounds=1)
    with AdbDevice("ph", cfg) as dev:
        m = dev.measure(model)
    assert failure_kind(m) == "transport", m.error
    assert "phone not reachable" in str(m.error) and "disconnected" not in str(m.error)
    assert "serial = 'NO-SUCH-PHONE': no such phone is attached" in str(m.error)
