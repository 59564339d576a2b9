"""The ssh device against a real OpenSSH server on loopback (the "board" is this machine).

sshd is Debian's openssh-server (``make sysdeps``); the board's Python is this virtualenv's, so
onnxruntime is there. Faults are real: killed sshd connection children, a run past its timeout,
a full tmpfs as the remote disk, a killed agent process.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from device_fixtures import sshd_fixture
from devices_servers import Sshd, tiny_onnx
from latbench.config import Config
from latbench.devices import get_device
from latbench.devices.remote import failure_kind, file_sha256
from latbench.devices.ssh import SSHDevice
from latbench.devices.transports import CommandTimeout, SSHTransport
from latbench.errors import DeviceError, ModelError
from latbench.profilers.harness import HarnessSettings

pytestmark = pytest.mark.ssh

FAST = HarnessSettings(
    warmup_runs=2, warmup_time_s=0.0, min_runs=5, min_time_s=0.05, max_time_s=0.3
)


sshd = sshd_fixture()


@pytest.fixture
def models(tmp_path: Path) -> list[Path]:
    return [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(3)]


def test_measures_many_models_over_one_connection(sshd: Sshd, models: list[Path]) -> None:
    dev = get_device("pi4", Config(devices={"pi4": sshd.device_config()}))
    assert isinstance(dev, SSHDevice)
    with dev:
        results = [dev.measure(m, settings=FAST) for m in models]
        remote = dev.remote_dir
        assert remote is not None and Path(remote).is_dir()
        assert len(sshd.connection_pids()) == 1  # one connection served every model
        assert not list(Path(remote).glob("m-*"))  # each model file removed after its run
    for m, r in zip(models, results, strict=True):
        assert r.ok, r.error
        assert r.device == "pi4" and r.runtime == "onnxruntime"
        assert r.model_path == str(m) and r.model_sha256 == file_sha256(m)
        assert r.runs >= 5 and all(x > 0 for x in r.samples_ms)
        assert r.device_fingerprint == dev.fingerprint()
        assert r.harness["remote"]["transport"] == "ssh"
        assert r.env["cpu_model"]
    assert not Path(remote).exists()  # close() deleted the board's directory


def test_describe_comes_from_the_board(sshd: Sshd) -> None:
    with SSHDevice("pi4", sshd.device_config()) as dev:
        desc = dev.describe()
        fp = dev.fingerprint()
        assert len(sshd.connection_pids()) == 1
    assert desc["kind"] == "ssh" and desc["host"] == "127.0.0.1"
    assert desc["cpu_model"] and desc["cpu_count"] == os.cpu_count()
    assert "governor" in desc and isinstance(desc["temperatures_c"], dict)
    assert desc["runtimes"]["onnxruntime"][0].isdigit()
    with SSHDevice("pi4b", sshd.device_config()) as dev2:
        assert dev2.fingerprint() == fp  # same board, same identity


def test_dropped_connection_fails_one_item_then_reconnects(sshd: Sshd, models: list[Path]) -> None:
    slow = HarnessSettings(warmup_runs=2, min_runs=5, min_time_s=2.0, max_time_s=2.0)
    with SSHDevice("pi4", sshd.device_config()) as dev:
        first = dev.measure(models[0], settings=FAST)
        old_dir = dev.remote_dir
        killer = threading.Timer(0.5, sshd.kill_connections)
        killer.start()
        dropped = dev.measure(models[1], settings=slow)
        killer.join()
        after = [dev.measure(m, settings=FAST) for m in models[1:]]
        assert dev.reconnects == 1
        assert dev.remote_dir != old_dir
    assert first.ok
    assert failure_kind(dropped) == "transport" and "connection lost" in str(dropped.error)
    assert all(r.ok for r in after), [r.error for r in after]
    assert old_dir is not None and not Path(old_dir).exists()  # stale directory cleaned


def test_hung_run_crashed_agent_and_bad_model_each_fail_one_item(
    sshd: Sshd, models: list[Path], tmp_path: Path
) -> None:
    hang = HarnessSettings(min_runs=5, min_time_s=60.0, max_time_s=60.0, timeout_s=1.0)
    slow = HarnessSettings(min_runs=5, min_time_s=2.0, max_time_s=2.0)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with SSHDevice("pi4", sshd.device_config()) as dev:
        assert dev.measure(models[0], settings=FAST).ok
        pid = dev._agent.pid if dev._agent else None
        t0 = time.monotonic()
        hung = dev.measure(models[1], settings=hang)  # a run that would take a minute
        assert time.monotonic() - t0 < 10
        assert pid is not None and _gone_within(pid, 5.0)  # the hung agent was killed
        after_hang = dev.measure(models[1], settings=FAST)
        pid = dev._agent.pid if dev._agent else None
        assert pid is not None
        threading.Timer(0.5, os.kill, (pid, 9)).start()  # the agent dies mid-run
        crashed = dev.measure(models[2], settings=slow)
        after_crash = dev.measure(models[2], settings=FAST)
        rejected = dev.measure(bad, settings=FAST)
        after_reject = dev.measure(models[0], settings=FAST)
        with pytest.raises(ModelError, match="does not exist"):
            dev.measure(tmp_path / "missing.onnx")
        assert len(sshd.connection_pids()) == 1  # none of these needed a new connection
    assert failure_kind(hung) == "timeout" and "timed out after 1 s" in str(hung.error)
    assert failure_kind(crashed) == "crashed" and "agent" in str(crashed.error)
    assert failure_kind(rejected) == "model" and "not a valid ONNX model" in str(rejected.error)
    for r in (after_hang, after_crash, after_reject):
        assert r.ok, r.error


def test_full_remote_disk_fails_the_push_then_recovers(
    sshd: Sshd, models: list[Path], tmp_path: Path
) -> None:
    disk = tmp_path / "small_disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs as the full disk: {mounted.stderr!r}")
    big = tiny_onnx(tmp_path / "big.onnx", seed=9, size=128)  # 64 KiB of weights
    try:
        with SSHDevice("pi4", sshd.device_config(workdir=str(disk))) as dev:
            assert dev.measure(models[0], settings=FAST).ok
            filler = disk / "filler"
            subprocess.run(
                ["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True, check=False
            )
            full = dev.measure(big, settings=FAST)
            filler.unlink()
            again = dev.measure(big, settings=FAST)
            assert not list(disk.glob("latbench-*/m-*"))  # no half-written model left
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert failure_kind(full) == "disk_full", full.error
    assert "remote disk full" in str(full.error)
    assert again.ok, again.error


def test_transport_runs_argv_and_kills_a_hung_command(sshd: Sshd, tmp_path: Path) -> None:
    t = SSHTransport(sshd.device_config(), label="board")
    with t:
        res = t.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
        assert t.run(["echo", "a b; rm -rf /nope"]).stdout == "a b; rm -rf /nope\n"  # quoted
        marker = tmp_path / "hung.pid"
        with pytest.raises(CommandTimeout, match=r"ran longer than 0\.5 s"):
            t.run_shell("sleep 30", timeout_s=0.5, pidfile=str(marker))
        time.sleep(0.2)
        assert not any(
            p.info["name"] == "sleep" and p.info["cmdline"] == ["sleep", "30"]
            for p in psutil.process_iter(["name", "cmdline"])
        )
        local = tmp_path / "x.bin"
        local.write_bytes(os.urandom(3000))
        t.push(local, str(tmp_path / "remote.bin"))
        t.pull(str(tmp_path / "remote.bin"), tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()


def test_a_timed_out_command_is_killed_on_the_board_with_its_children(
    sshd: Sshd, tmp_path: Path
) -> None:
    """A helper command without a pidfile (a shell line that starts children) that runs past
    its timeout is stopped on the board, every process of it, not left running."""

    def leftovers() -> list[list[str]]:
        return [
            p.info["cmdline"]
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "sleep" and p.info["cmdline"] in (["sleep", "31"], ["sleep", "32"])
        ]

    t = SSHTransport(sshd.device_config(), label="board")
    with t:
        with pytest.raises(CommandTimeout, match=r"ran longer than 0\.5 s") as info:
            t.run_shell("sleep 31 & sleep 32; wait", timeout_s=0.5)
        assert info.value.remote_pid is not None
        deadline = time.monotonic() + 5
        while leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leftovers() == []
        # the transport's own stderr line never reaches the caller, and the link still works
        res = t.run_shell("echo e >&2; echo o")
        assert (res.stdout, res.stderr) == ("o\n", "e\n")


def test_wrong_key_is_a_clear_error(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    dev = SSHDevice("pi4", sshd.device_config(key=str(other)))
    with pytest.raises(DeviceError, match="authentication failed"):
        dev.describe()
    dev.close()


def _gone_within(pid: int, seconds: float) -> bool:
    """The process exits within ``seconds`` (a SIGKILL is delivered at once, but on a loaded
    machine the killed process may need a moment to be scheduled and exit)."""
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
