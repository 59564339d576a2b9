"""adb faults with the real adb client against the local adb-protocol server.

Each "phone" here is :class:`devices_servers.AdbServer` with its own stand-ins on its PATH: a
``benchmark_model`` that is killed after its warm-up or hangs there (so that the link can be
dropped at a known point), a ``getprop`` that waits, a ``dumpsys`` that prints nonsense. The
unauthorized and offline phones answer with the adb server's own refusal messages.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import devices_servers
from device_fixtures import FIXTURES, bench_bin_fixture, make_script
from devices_servers import AdbServer
from latbench.devices.adb import AdbDevice
from latbench.devices.remote import failure_kind
from latbench.devices.transports import AdbTransport, ConnectionLost
from latbench.errors import DeviceError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement

pytestmark = pytest.mark.adb

FAST = HarnessSettings(
    warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.03, max_time_s=0.2
)
GETPROP = f"#!/bin/sh\ncat {FIXTURES / 'getprop_pixel6.txt'}\n"
DUMPSYS = f'#!/bin/sh\n[ "$1" = battery ] && exec cat {FIXTURES / "dumpsys_battery.txt"}\nexit 1\n'
WARMUP = (
    "echo 'INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but "
    "terminate if exceeding 150 seconds.'\n"
    "echo 'INFO: count=2 first=360262 curr=248910 min=248910 max=360262 avg=304586 std=55676'\n"
    "echo 'INFO: Running benchmark for at least 50 iterations and at least 1 seconds but "
    "terminate if exceeding 150 seconds.'\n"
)

bench_bin = bench_bin_fixture()


class _Phone(AdbServer):
    """The local adb server, able to answer as adb does for an unauthorized or offline phone."""

    state = "device"
    UNAUTHORIZED = (
        "device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
        "Try 'adb kill-server' if that seems wrong.\n"
        "Otherwise check for a confirmation dialog on your device."
    )

    def _device_ok(self, conn: socket.socket, serial: str | None) -> bool:
        if self.state == "unauthorized":
            devices_servers._send_fail(conn, self.UNAUTHORIZED)
            return False
        if self.state == "offline":
            devices_servers._send_fail(conn, "device offline")
            return False
        return super()._device_ok(conn, serial)


MakePhone = Callable[..., "_Phone"]


@pytest.fixture
def make_phone(tmp_path: Path) -> Iterator[MakePhone]:
    servers: list[_Phone] = []

    def make(serial: str = "LATBENCH0001", **scripts: str) -> _Phone:
        root = tmp_path / f"phone{len(servers)}"
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        for name, text in {"getprop": GETPROP, "dumpsys": DUMPSYS, **scripts}.items():
            make_script(bin_dir / name, text)
        server = _Phone(root / "sandbox", serial=serial, bin_dir=bin_dir).start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from latbench.spaces import export, get_space

    space = get_space("nb201")
    out = tmp_path_factory.mktemp("tfl") / "m.tflite"
    return export(space.build(space.sample(1, seed=0)[0], resolution=8), "tflite", out, seed=0)


def _device(phone: AdbServer, binary: Path, **extra: object) -> AdbDevice:
    return AdbDevice("ph", phone.device_config(benchmark_binary=str(binary), rounds=1, **extra))


def _wait_for(path: Path, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {seconds} s"
        time.sleep(0.02)


def _replug(phone: AdbServer) -> None:
    """A USB glitch: every connection of the phone drops and it is back at once."""
    phone.unplug()
    phone.plug()


def test_link_dropped_after_the_warm_up_is_a_transport_failure_not_a_result(
    make_phone: MakePhone, tflite: Path, tmp_path: Path
) -> None:
    """The real adb client exits 0 when its connection drops mid-command, with the output cut
    short: here right after the warm-up's count= line, which must not become the result."""
    marker = tmp_path / "warmed-up"
    binary = make_script(
        tmp_path / "bm_hangs", f"#!/bin/sh\n{WARMUP}touch {marker}\nexec sleep 30\n"
    )
    phone = make_phone()
    with _device(phone, binary) as dev:
        done: list[Measurement] = []
        worker = threading.Thread(target=lambda: done.append(dev.measure(tflite, settings=FAST)))
        worker.start()
        _wait_for(marker)
        time.sleep(0.2)  # the warm-up lines are on their way to the host
        _replug(phone)
        worker.join(30)
        assert done, "measure did not return after the link dropped"
        m = done[0]
        assert not m.ok and m.samples_ms == ()
        assert failure_kind(m) == "transport", m.error
        assert "output ended before the command's exit status" in str(m.error)


def test_a_benchmark_killed_after_its_warm_up_is_a_crash(
    make_phone: MakePhone, tflite: Path, tmp_path: Path
) -> None:
    binary = make_script(tmp_path / "bm_segv", f"#!/bin/sh\n{WARMUP}kill -SEGV $$\n")
    phone = make_phone()
    with _device(phone, binary) as dev:
        m = dev.measure(tflite, settings=FAST)
    assert not m.ok and m.samples_ms == ()
    assert failure_kind(m) == "crashed", m.error
    assert "killed by signal 11" in str(m.error) and "round 1 of 1" in str(m.error)


def test_a_failing_benchmark_is_the_models_failure_with_its_reason(
    make_phone: MakePhone, tflite: Path, tmp_path: Path
) -> None:
    failed = FIXTURES / "benchmark_model_failed.txt"
    binary = make_script(tmp_path / "bm_fails", f"#!/bin/sh\ncat {failed}\nexit 1\n")
    phone = make_phone()
    with _device(phone, binary) as dev:
        m = dev.measure(tflite, settings=FAST)
    assert failure_kind(m) == "model", m.error
    assert "benchmark_model failed: " in str(m.error) and "Failed to mmap model" in str(m.error)
    assert "exit status 1" in str(m.error)


def test_a_binary_the_phone_cannot_execute_is_a_device_fault(
    make_phone: MakePhone, tflite: Path, tmp_path: Path
) -> None:
    """A wrong-ABI benchmark_binary (its loader missing): the shell says 'not found' with exit
    status 127, which is not the phone disconnecting."""
    binary = make_script(tmp_path / "bm_other_abi", "#!/nonexistent/loader\n")
    phone = make_phone()
    with _device(phone, binary) as dev:
        m = dev.measure(tflite, settings=FAST)
    assert failure_kind(m) == "device", m.error
    assert "benchmark_binary cannot be executed on the phone" in str(m.error)
    assert "exit status 127" in str(m.error) and "disconnected" not in str(m.error)


def test_a_link_dropped_during_describe_is_a_transport_failure(
    make_phone: MakePhone, bench_bin: Path, tflite: Path, tmp_path: Path
) -> None:
    """The first model describes the phone: a drop there is the link's fault, retried after a
    reconnect, not the phone's setup (which would stop the device for the whole run)."""
    marker = tmp_path / "getprop-started"
    slow_getprop = f"#!/bin/sh\ntouch {marker}\nsleep 30\n"
    phone = make_phone(getprop=slow_getprop)
    with _device(phone, bench_bin) as dev:
        done: list[Measurement] = []
        worker = threading.Thread(target=lambda: done.append(dev.measure(tflite, settings=FAST)))
        worker.start()
        _wait_for(marker)
        _replug(phone)
        worker.join(30)
        assert done
        m = done[0]
        assert failure_kind(m) == "transport", m.error
        assert "'getprop'" in str(m.error)


def test_garbage_from_dumpsys_leaves_the_battery_unavailable(
    make_phone: MakePhone, bench_bin: Path, tflite: Path
) -> None:
    bad = "#!/bin/sh\necho 'Current Battery Service state:'\necho '  level: unknown'\n"
    phone = make_phone(dumpsys=bad)
    with _device(phone, bench_bin) as dev:
        desc = dev.describe()
        m = dev.measure(tflite, settings=FAST)
    assert "level: 'unknown'; expected an integer" in desc["battery"]["unavailable"]
    assert m.ok, m.error


def test_an_unauthorized_phone_is_a_device_fault_said_at_once(
    make_phone: MakePhone, bench_bin: Path, tflite: Path
) -> None:
    phone = make_phone()
    phone.state = "unauthorized"
    t0 = time.monotonic()
    with _device(phone, bench_bin, reconnect_timeout_s=30) as dev:
        m = dev.measure(tflite, settings=FAST)
    assert time.monotonic() - t0 < 5  # not waited for as a phone that went away
    assert failure_kind(m) == "device", m.error
    assert "has not authorized this computer" in str(m.error)
    assert "'Allow USB debugging?'" in str(m.error) and "LATBENCH0001" in str(m.error)
    t = AdbTransport(phone.device_config(), label="phone")
    with pytest.raises(DeviceError, match="has not authorized") as info:
        t.reconnect(timeout_s=30)
    assert not isinstance(info.value, ConnectionLost)


def test_an_offline_phone_is_a_dropped_link_and_comes_back(
    make_phone: MakePhone, bench_bin: Path, tflite: Path
) -> None:
    phone = make_phone()
    with _device(phone, bench_bin) as dev:
        assert dev.measure(tflite, settings=FAST).ok
        dev.transport.close()  # the next model checks the link again
        phone.state = "offline"
        threading.Timer(0.5, lambda: setattr(phone, "state", "device")).start()
        m = dev.measure(tflite, settings=FAST)  # waits for the phone (reconnect_timeout_s)
        assert m.ok, m.error
        assert dev.reconnects == 1
        phone.state = "offline"
        t = AdbTransport(phone.device_config(), label="phone")
        with pytest.raises(ConnectionLost, match="device offline"):
            t.connect()
        phone.state = "device"


def test_shell_exit_status_comes_from_the_phone_and_not_found_is_not_a_disconnect(
    make_phone: MakePhone,
) -> None:
    phone = make_phone()
    with AdbTransport(phone.device_config(), label="phone") as t:
        res = t.run(["sh", "-c", "echo no-such-tool: not found >&2; exit 127"])
        assert (res.returncode, res.stderr) == (127, "no-such-tool: not found\n")
        assert t.connected
        res = t.run_shell("printf 'no newline'; exit 7 # a trailing comment")
        assert (res.returncode, res.stdout) == (7, "no newline")
        assert t.run_shell("echo a; echo b").stdout == "a\nb\n"


def test_paths_and_serials_with_spaces_and_shell_metacharacters(
    make_phone: MakePhone, bench_bin: Path, tflite: Path, tmp_path: Path
) -> None:
    serial = "LAT BENCH 'x' $(touch injected)"
    phone = make_phone(serial=serial)
    local = tmp_path / "my models; rm -rf ~" / "m 'q' $(touch injected).tflite"
    local.parent.mkdir()
    local.write_bytes(tflite.read_bytes())
    binary = tmp_path / "bench bin $(x)"
    binary.write_bytes(bench_bin.read_bytes())
    binary.chmod(0o755)
    remote = "/data/local/tmp/lat bench 'q' $(touch injected) `id`"
    with _device(phone, binary, remote_dir=remote) as dev:
        m = dev.measure(local, settings=FAST)
        assert (phone.root / remote.lstrip("/") / "benchmark_model").is_file()
    assert m.ok, m.error
    assert m.model_path == str(local) and m.harness["remote"]["serial"] == serial
    assert not (phone.root / remote.lstrip("/")).exists()  # close() cleaned it
    assert not list(phone.root.rglob("injected")) and not list(Path.cwd().glob("injected"))


def test_a_phone_that_hangs_outside_the_run_is_not_reported_as_the_runs_timeout(
    make_phone: MakePhone, bench_bin: Path, tflite: Path
) -> None:
    phone = make_phone(getprop="#!/bin/sh\nexec sleep 30\n")
    with _device(phone, bench_bin) as dev:
        dev.command_timeout_s = 0.5
        t0 = time.monotonic()
        m = dev.measure(tflite, settings=FAST)
    assert time.monotonic() - t0 < 10
    assert failure_kind(m) == "device", m.error
    assert "the phone did not answer during the setup" in str(m.error)
    assert "ran longer than 0.5 s" in str(m.error) and "the run was killed" not in str(m.error)
