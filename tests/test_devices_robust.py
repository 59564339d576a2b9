"""Device faults, stalls and bad tables, against the real sshd and the local adb server.

Every board and phone here is real as far as latbench can tell: OpenSSH's sshd on loopback (the
"board" is this machine, its Python this virtualenv's or the system's) and the real ``adb``
client talking to the adb-protocol server of ``tests/devices_servers.py``. A stalled board is
the sshd session process stopped with SIGSTOP; a silent host is a socket that accepts and never
speaks. The one GPU case (``cuda``) runs where no GPU is: the table is checked before the GPU.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import latbench.commands.describe
import latbench.commands.devices
import latbench.commands.measure  # noqa: F401 - compiled now, not in a test beside paramiko threads
import latbench.datasets as lds
from device_fixtures import bench_bin_fixture, count_rows, make_script, phone_fixture, sshd_fixture
from devices_servers import ADB, AdbServer, Sshd, tiny_onnx
from latbench.cli import main
from latbench.config import Config
from latbench.datasets.collect import CollectSettings, collect
from latbench.devices import get_device
from latbench.devices.adb import AdbDevice
from latbench.devices.remote import failure_kind
from latbench.devices.ssh import SSHDevice
from latbench.devices.transports import ConnectionLost, SSHTransport
from latbench.errors import ConfigError
from latbench.profilers.harness import HarnessSettings
from latbench.spaces import NB201Space

FIXTURES = Path(__file__).parent / "fixtures" / "devices"
FAST = HarnessSettings(
    warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.02, max_time_s=0.2
)
NB = NB201Space()
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's Python 3.11: no onnxruntime in it


sshd = sshd_fixture()
phone = phone_fixture()
bench_bin = bench_bin_fixture()


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from latbench.spaces import export

    out = tmp_path_factory.mktemp("tfl") / "m.tflite"
    return export(NB.build(NB.sample(1, seed=0)[0], resolution=8), "tflite", out, seed=0)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return tiny_onnx(tmp_path / "m.onnx")


def _board_cpus_beyond() -> tuple[int, str]:
    have = sorted(os.sched_getaffinity(0))
    text = f"{have[0]}-{have[-1]}" if len(have) > 1 else str(have[0])
    return have[-1] + 5, text


# ---- finding 1: board faults are the device's, never stored as the architecture's -----------
def _collect(store_path: Path, devices: list[Any], archs: list[str]) -> Any:
    settings = CollectSettings(
        collection="robust", resolution=8, harness=FAST, drift_every=0, threads=1
    )
    with lds.open_store(store_path) as store:
        return collect(store, NB, archs, devices, settings)


def _rows(store_path: Path) -> list[dict[str, Any]]:
    if not store_path.exists():
        return []
    cols = ("device", "runtime", "arch", "status")
    with lds.open_store(store_path, readonly=True) as store:
        return [dict(zip(cols, t, strict=True)) for c in store.iter_rows(columns=cols) for t in c]


@pytest.mark.ssh
def test_a_board_fault_stops_the_device_stores_nothing_and_a_rerun_measures(
    sshd: Sshd, tmp_path: Path
) -> None:
    archs = NB.sample(3, seed=1)
    db = tmp_path / "c.db"
    cases = {
        "python9": {"python": "python9"},  # the agent does not start
        "noruntime": {"python": SYSTEM_PYTHON},  # a Python without onnxruntime
        "workdir": {"workdir": "/nonexistent"},
    }
    for label, extra in cases.items():
        dev = SSHDevice(label, sshd.device_config(**extra))
        with dev:
            report = _collect(db, [dev], archs)
        d = report.devices[label]
        assert (d.ok, d.device_fault, d.unreachable) == (0, 3, 3), (label, report.summary())
        assert f"3 not measured: device {label}:" in report.summary()
        assert _rows(db) == []  # nothing stored as the architectures' failure
    text = report.summary()
    assert "workdir = '/nonexistent'" in text and "expected a writable directory" in text
    # the board fixed: the same archs are measured, none is "already stored"
    with SSHDevice("workdir", sshd.device_config()) as dev:
        fixed = _collect(db, [dev], archs)
    assert (fixed.devices["workdir"].already, fixed.devices["workdir"].ok) == (0, 3)
    assert len(_rows(db)) == 3


@pytest.mark.ssh
def test_setup_faults_are_device_failures_with_clear_messages(
    sshd: Sshd, model: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    beyond, have = _board_cpus_beyond()
    cases = [
        ({"key": str(other)}, ["authentication failed"]),
        ({"python": "python9"}, ["did not start with python = 'python9'", "python9"]),
        (
            {"python": SYSTEM_PYTHON, "runtime": "onnxruntime"},
            ["not installed", "install it there (pip install onnxruntime)"],
        ),
        ({"cpus": str(beyond)}, [f"cpus '{beyond}'", f"the board has CPUs {have}"]),
    ]
    for extra, needles in cases:
        with SSHDevice("pi", sshd.device_config(**extra)) as dev:
            m = dev.measure(model, settings=FAST)
        assert failure_kind(m) == "device", (extra, m.error)
        for n in needles:
            assert n in str(m.error), (extra, m.error)
        assert "latbench[" not in str(m.error)  # no host-side pip advice for the board
        assert "Traceback" not in str(m.error)


@pytest.mark.ssh
def test_agent_start_up_timeout_kills_the_remote_process(
    sshd: Sshd, model: Path, tmp_path: Path
) -> None:
    marker = f"{300 + os.getpid() % 500}"
    slow_python = make_script(tmp_path / "pysleep", f"#!/bin/sh\nexec sleep {marker}\n")
    cfg = sshd.device_config(python=str(slow_python), startup_timeout_s=2)
    t0 = time.monotonic()
    with SSHDevice("pi", cfg) as dev:
        m = dev.measure(model, settings=FAST)
    assert time.monotonic() - t0 < 20
    assert failure_kind(m) == "device"
    assert "did not start within 2 s" in str(m.error) and "killed on the board" in str(m.error)
    time.sleep(0.3)
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [])[:2] == ["sleep", marker]
    ]
    assert left == []


# ---- finding 2: a stalled board ---------------------------------------------------------
@pytest.mark.ssh
def test_a_stalled_board_fails_the_model_within_its_timeout(sshd: Sshd, tmp_path: Path) -> None:
    models = [tiny_onnx(tmp_path / f"s{i}.onnx", seed=i) for i in range(2)]
    cfg = sshd.device_config(connect_timeout_s=2, reconnect_timeout_s=1)
    quick = HarnessSettings(
        warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.02, max_time_s=0.2, timeout_s=3
    )
    dev = SSHDevice("pi", cfg)
    stopped: list[psutil.Process] = []
    try:
        # the first model starts the agent: a loaded machine may need more than 3 s for that
        assert dev.measure(models[0], settings=dataclasses.replace(quick, timeout_s=60)).ok
        stopped = [psutil.Process(p) for p in sshd.connection_pids()]
        stopped = [q for p in stopped for q in [p, *p.children(recursive=True)]]
        for p in stopped:
            p.send_signal(signal.SIGSTOP)
        done: list[Any] = []
        t0 = time.monotonic()
        worker = threading.Thread(
            target=lambda: done.append(dev.measure(models[1], settings=quick)), daemon=True
        )
        worker.start()
        worker.join(40)
        took = time.monotonic() - t0
        assert done, "measure on a stalled board did not return within 40 s"
        m = done[0]
        assert took < 30
        assert failure_kind(m) == "transport", m.error
        assert "sent nothing for 3 s" in str(m.error) and "pi" in str(m.error)
    finally:
        for p in stopped:
            try:
                p.send_signal(signal.SIGCONT)
                p.kill()
            except psutil.NoSuchProcess:
                pass
        dev.close()


# ---- finding 4: the command line's timeout over the device table's ------------------------
@pytest.mark.ssh
def test_given_settings_timeout_wins_over_the_table(sshd: Sshd, model: Path) -> None:
    hang = HarnessSettings(min_runs=5, min_time_s=60.0, max_time_s=60.0, timeout_s=1.0)
    with SSHDevice("pi", sshd.device_config(timeout_s=100)) as dev:
        t0 = time.monotonic()
        m = dev.measure(model, settings=hang)
        assert time.monotonic() - t0 < 15
    assert failure_kind(m) == "timeout" and "timed out after 1 s" in str(m.error)


@pytest.mark.ssh
def test_an_invalid_measurement_from_the_board_is_a_failed_record(
    sshd: Sshd, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record the host refuses (a NaN sample) comes back as a failed measurement naming
    the device, not as an exception out of measure(). The agent and sshd are real; the NaN is
    put into the samples as the host unpacks them (a healthy agent never sends one)."""
    import latbench.devices.agent as agent_module

    real = agent_module.unpack_floats
    with SSHDevice("pi", sshd.device_config()) as dev:
        assert dev.measure(model, settings=FAST).ok
        monkeypatch.setattr(agent_module, "unpack_floats", lambda v: [float("nan"), *real(v)])
        m = dev.measure(model, settings=FAST)
    assert not m.ok and failure_kind(m) == "device"
    assert "pi: the board's agent sent an invalid measurement" in str(m.error)
    assert "nan" in str(m.error)


# ---- finding 7: a host that accepts and stays silent --------------------------------------
@pytest.fixture
def silent_port() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def test_a_silent_host_is_named_and_paramiko_prints_no_traceback(
    silent_port: int, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = SSHTransport({"host": "127.0.0.1", "port": silent_port, "connect_timeout_s": 1})
    with pytest.raises(ConnectionLost, match=r"accepted the connection but sent no SSH banner"):
        t.connect()
    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        f'[devices.quiet]\ntransport = "ssh"\nhost = "127.0.0.1"\nport = {silent_port}\n'
        "connect_timeout_s = 1\nreconnect_timeout_s = 0\n"
    )
    for _ in range(3):
        rc = main(["--config", str(cfg), "measure", str(model), "--device", "quiet"])
        err = capsys.readouterr().err
        assert rc == 1
        assert f"host 127.0.0.1:{silent_port} accepted the connection but sent no SSH banner" in err
        assert "within 1 s" in err
        assert "Traceback" not in err and "ERROR" not in err


# ---- finding 5: devices describe on a phone ------------------------------------------------
@pytest.mark.adb
def test_describe_a_phone_in_its_own_format(
    phone: AdbServer, bench_bin: Path, tmp_path: Path
) -> None:
    from latbench.devices.descriptor import MICRO_KERNELS

    cfg = tmp_path / "bench.toml"
    table = phone.device_config(benchmark_binary=str(bench_bin), rounds=1)
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    cfg.write_text(f"[store]\npath = {json.dumps(str(tmp_path / 's.db'))}\n[devices.ph]\n{body}")
    out = tmp_path / "ph.json"
    rc = main(
        ["--config", str(cfg), "devices", "describe", "ph", "--space", "nb201", "--refs", "1",
         "--max-time", "0.1", "--min-runs", "2", "-o", str(out), "--json"]
    )  # fmt: skip
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["runtime"] == "litert"
    assert set(doc["kernels_ms"]) == {k.name for k in MICRO_KERNELS}, doc["failed"]
    assert len(doc["reference_ms"]) == 1 and not doc["failed"]


# ---- finding 12: describe retries after a dropped connection, keeps the partial ------------
@pytest.mark.ssh
def test_describe_retries_a_dropped_item_and_keeps_the_partial_when_the_board_stays_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import latbench.devices.descriptor as D

    (tmp_path / "own").mkdir()
    server = Sshd(tmp_path / "own").start()
    cfg = tmp_path / "bench.toml"
    table = server.device_config(reconnect_timeout_s=0.5, connect_timeout_s=2)
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    cfg.write_text(f"[store]\npath = {json.dumps(str(tmp_path / 's.db'))}\n[devices.b]\n{body}")
    out = tmp_path / "b.json"
    emitted: list[str] = []
    real_emit = D.emit_kernel

    def emit_then_fault(k: Any, runtime: str, directory: str, seed: int = 0) -> Any:
        emitted.append(k.name)
        if len(emitted) == 2:
            server.kill_connections()  # the link drops once: the retry measures the item
        if len(emitted) == 4:
            server.stop()  # the board goes away for good
        return real_emit(k, runtime, directory, seed)

    monkeypatch.setattr(D, "emit_kernel", emit_then_fault)
    argv = ["--config", str(cfg), "devices", "describe", "b", "--max-time", "0.05",
            "--min-runs", "2", "-o", str(out)]  # fmt: skip
    try:
        rc = main(argv)
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "incomplete" in err and "run the same command again" in err
    partial = D.Descriptor.load(out.with_name(out.name + ".partial"))
    assert len(partial.kernels_ms) == 3  # the second kernel was retried after the drop
    assert partial.unfinished and not out.exists()


# ---- finding 8, 13: phone tables ----------------------------------------------------------
@pytest.mark.adb
def test_phone_setup_faults_are_device_failures(
    phone: AdbServer, bench_bin: Path, tflite: Path
) -> None:
    beyond, _ = _board_cpus_beyond()
    cases = [
        ({"remote_dir": "/proc/latbench-x"}, ["remote_dir = '/proc/latbench-x'", "not usable"]),
        ({"cpus": str(beyond)}, [f"cpus '{beyond}'", "the phone has CPUs"]),
    ]
    for extra, needles in cases:
        cfg = phone.device_config(benchmark_binary=str(bench_bin), rounds=1, **extra)
        with AdbDevice("ph", cfg) as dev:
            m = dev.measure(tflite, settings=FAST)
        assert failure_kind(m) == "device", (extra, m.error)
        for n in needles:
            assert n in str(m.error), (extra, m.error)


@pytest.mark.adb
def test_collect_takes_each_devices_runtime(
    phone: AdbServer, bench_bin: Path, tmp_path: Path
) -> None:
    cfg = Config(
        devices={
            "ph": phone.device_config(benchmark_binary=str(bench_bin), rounds=1),
            "local": {"transport": "local"},
        }
    )
    devices = [get_device("ph", cfg), get_device("local", cfg)]
    db = tmp_path / "r.db"
    try:
        report = _collect(db, devices, NB.sample(2, seed=3))
    finally:
        for d in devices:
            d.close()
    assert report.ok == 4, report.summary()
    runtimes = {(r["device"], r["runtime"]) for r in _rows(db)}
    assert runtimes == {("ph", "litert"), ("local", "onnxruntime")}


# ---- findings 6, 10, 13: bad tables are ConfigErrors naming device and key -----------------
BAD_TABLES: list[tuple[dict[str, Any], list[str]]] = [
    ({"transport": "ssh", "host": "h", "min_runs": float("inf")}, ["device 'd'", "min_runs"]),
    ({"transport": "ssh", "host": "h", "min_runs": float("nan")}, ["device 'd'", "min_runs"]),
    ({"transport": "ssh", "host": "h", "timeout_s": float("inf")}, ["timeout_s = inf"]),
    ({"transport": "ssh", "host": "h", "max_time_s": float("nan")}, ["max_time_s = nan"]),
    ({"transport": "ssh", "host": "h", "password": 123}, ["password = 123", "a string"]),
    ({"transport": "ssh", "host": "h", "user": 5}, ["user = 5", "a user name"]),
    ({"transport": "ssh", "host": "h", "python": 3}, ["python = 3"]),
    ({"transport": "ssh", "host": "h", "workdir": ["/tmp"]}, ["workdir = ['/tmp']"]),
    ({"transport": "ssh", "host": "h", "connect_timeout_s": 0}, ["connect_timeout_s = 0", "> 0"]),
    ({"transport": "ssh", "host": "h", "startup_timeout_s": -1}, ["startup_timeout_s = -1"]),
    (
        {"transport": "ssh", "host": "h", "known_hosts": "/nonexistent/kh"},
        ["device 'd'", "known_hosts = '/nonexistent/kh' does not exist"],
    ),
    ({"transport": "ssh", "host": "h", "cpus": "3-1"}, ["device 'd'", "'3-1' is reversed"]),
    ({"transport": "adb", "cpus": "4-"}, ["device 'd'", "cpus = '4-'"]),
    ({"transport": "adb", "cpus": "7-4"}, ["device 'd'", "reversed"]),
    ({"transport": "adb", "serial": 123}, ["device 'd'", "serial = 123"]),
    ({"transport": "cuda", "index": -1}, ["device 'd'", "index = -1"]),
    ({"transport": "cuda", "runtime": "tensorrt"}, ["device 'd'", "'tensorrt'", "'torch'"]),
]


@pytest.mark.parametrize(("table", "needles"), BAD_TABLES)
def test_a_bad_table_names_the_device_and_key(table: dict[str, Any], needles: list[str]) -> None:
    if table["transport"] == "adb":
        table = {**table, "adb": ADB}
    with pytest.raises(ConfigError) as info:
        get_device("d", Config(devices={"d": table}))
    for n in needles:
        assert n in str(info.value), str(info.value)


@pytest.mark.ssh
def test_a_corrupt_known_hosts_line_is_a_config_error(sshd: Sshd, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("# ok\n127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA!!notbase64\n")
    dev = SSHDevice("pi", sshd.device_config(known_hosts=str(kh)))
    with pytest.raises(ConfigError, match=r"line 2 is not a valid known_hosts entry"):
        dev.describe()
    dev.close()


# ---- finding 9: `latbench devices` exit status ---------------------------------------------
def test_devices_command_exit_status(
    silent_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[devices.x]\ntransport = "ssh"\nhost = "h"\nportt = 22\n')
    assert main(["--config", str(bad), "devices", "x"]) == 2
    assert "unknown key(s) 'portt'" in capsys.readouterr().err
    down = tmp_path / "down.toml"
    down.write_text(
        f'[devices.q]\ntransport = "ssh"\nhost = "127.0.0.1"\nport = {silent_port}\n'
        "connect_timeout_s = 1\n"
    )
    assert main(["--config", str(down), "devices", "q"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().out
    assert main(["--config", str(down), "devices", "q", "--json"]) == 1
    entries = json.loads(capsys.readouterr().out)
    assert entries[0]["available"] is False and "no SSH banner" in entries[0]["reason"]


# ---- finding 13: directories of a run whose connection dropped -----------------------------
@pytest.mark.ssh
def test_stale_directories_of_dropped_runs_are_removed_on_the_next_connection(
    sshd: Sshd, model: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    old = time.time() - 3600

    def board_dir(name: str, pid: int | None, age: float) -> Path:
        d = work / name
        d.mkdir()
        (d / "agent.py").write_text("")
        if pid is not None:
            (d / "agent.pid").write_text(f"{pid}\n")
        os.utime(d, (age, age))
        return d

    stale = board_dir("latbench-AAAAAA", dead.pid, old)
    fresh = board_dir("latbench-BBBBBB", dead.pid, time.time())  # another host setting up
    live = board_dir("latbench-CCCCCC", os.getpid(), old)  # an agent still running
    foreign = work / "latbench-DDDDDD"  # not ours (no agent.py)
    foreign.mkdir()
    os.utime(foreign, (old, old))
    with SSHDevice("pi", sshd.device_config(workdir=str(work))) as dev:
        assert dev.measure(model, settings=FAST).ok
    assert not stale.exists()
    assert fresh.exists() and live.exists() and foreign.exists()


# ---- finding 1: the store counts only what this run stored; Ctrl-C without a bar -----------
def _collect_cmd(db: Path, n: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "latbench.cli", "collect", "--space", "nb201", "--device", "local",
        "--sample", str(n), "--seed", "0", "--db", str(db), "--name", "rb", "--resolution", "8",
        "--min-runs", "3", "--min-time", "0", "--max-time", "0.05", "--spread", "0",
        "--warmup", "1", "--warmup-time", "0", "--drift-every", "0", "--no-progress", *extra,
    ]  # fmt: skip


def test_two_collections_of_one_store_count_only_their_own_rows(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    procs = [
        subprocess.Popen(_collect_cmd(db, 6), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    ok = 0
    for out, _ in outs:
        line = next(ln for ln in out.decode().splitlines() if ln.startswith("collection"))
        ok += int(line.split(":")[1].split()[0])
    assert ok == len(_rows(db)) == 6


def test_ctrl_c_without_a_progress_bar_says_it_is_stopping(tmp_path: Path) -> None:
    db = tmp_path / "int.db"
    proc = subprocess.Popen(
        _collect_cmd(db, 40),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not count_rows(db) > 0:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "stopping after the current architecture" in err.decode(), err.decode()[-2000:]
