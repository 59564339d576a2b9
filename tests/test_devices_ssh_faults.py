"""SSH faults against the real sshd on loopback: keys that are not keys, a link that drops during
authentication, hosts that refuse or reset, paths full of shell metacharacters."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from device_fixtures import make_script, sshd_fixture
from devices_servers import Sshd, free_port, tiny_onnx
from latbench.devices.remote import failure_kind
from latbench.devices.ssh import SSHDevice
from latbench.devices.transports import ConnectionLost, SSHTransport
from latbench.errors import DeviceError
from latbench.profilers.harness import HarnessSettings

pytestmark = pytest.mark.ssh

FAST = HarnessSettings(
    warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.02, max_time_s=0.2
)

sshd = sshd_fixture()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return tiny_onnx(tmp_path / "m.onnx")


def test_a_key_file_that_is_not_a_private_key_is_a_device_fault(
    sshd: Sshd, model: Path, tmp_path: Path
) -> None:
    """A .pub file or a corrupt key is the table's mistake: said at once, naming the file, and
    not retried as a dropped link for reconnect_timeout_s."""
    garbage = tmp_path / "garbage_key"
    garbage.write_text("not a key\n")
    for key in (f"{sshd.client_key}.pub", str(garbage)):
        t0 = time.monotonic()
        with SSHDevice("pi", sshd.device_config(key=key, reconnect_timeout_s=30)) as dev:
            m = dev.measure(model, settings=FAST)
        assert time.monotonic() - t0 < 5
        assert failure_kind(m) == "device", m.error
        assert f"key = {key!r} cannot be loaded as a private key" in str(m.error)
        assert "not the .pub file" in str(m.error)
        t = SSHTransport(sshd.device_config(key=key), label="pi")
        with pytest.raises(DeviceError, match="cannot be loaded") as info:
            t.reconnect(timeout_s=30)
        assert not isinstance(info.value, ConnectionLost)


def test_an_encrypted_key_without_its_passphrase_is_an_authentication_failure(
    sshd: Sshd, tmp_path: Path
) -> None:
    enc = tmp_path / "enc_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", str(enc)], check=True)
    t = SSHTransport(sshd.device_config(key=str(enc)), label="pi")
    with pytest.raises(DeviceError, match=r"authentication failed \(Private key file is encrypted"):
        t.connect()


def test_a_link_dropped_during_authentication_is_not_a_refused_key(
    sshd: Sshd, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sshd's session process dies as the key is offered: paramiko raises its
    AuthenticationException, but the key was never refused, so the failure is the link's
    (retried after a reconnect), not the device's (which would stop it for the run)."""
    real = paramiko.Transport.auth_publickey
    drops = [1]

    def dropping(self: paramiko.Transport, *args: Any, **kwargs: Any) -> Any:
        if drops:
            drops.pop()
            sshd.kill_connections()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(paramiko.Transport, "auth_publickey", dropping)
    with SSHDevice("pi", sshd.device_config()) as dev:
        m = dev.measure(model, settings=FAST)
        assert failure_kind(m) == "transport", m.error
        assert "dropped during SSH authentication" in str(m.error)
        assert dev.measure(model, settings=FAST).ok  # the next model connects


def test_a_refused_connection_names_the_host_and_port(model: Path) -> None:
    port = free_port()
    table = {"host": "127.0.0.1", "port": port, "user": "pi", "connect_timeout_s": 2}
    with SSHDevice("pi", {"transport": "ssh", **table, "reconnect_timeout_s": 0}) as dev:
        m = dev.measure(model, settings=FAST)
    assert failure_kind(m) == "transport"
    assert f"cannot connect to pi@127.0.0.1:{port}: 127.0.0.1: Connection refused" in str(m.error)
    assert "expected an SSH server listening on that port" in str(m.error)
    assert "connection lost" not in str(m.error) and "Errno None" not in str(m.error)


@pytest.fixture
def resetting_port() -> Iterator[int]:
    """A host that accepts, lets the client wait for the banner, then resets the connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            time.sleep(0.3)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join()
    srv.close()


def test_a_host_that_resets_is_not_reported_as_silent(resetting_port: int) -> None:
    table = {"host": "127.0.0.1", "port": resetting_port, "connect_timeout_s": 5}
    t = SSHTransport(table, label="board")
    t0 = time.monotonic()
    with pytest.raises(ConnectionLost) as info:
        t.connect()
    assert time.monotonic() - t0 < 4  # told when it happened, not after the banner timeout
    msg = str(info.value)
    assert f"board: cannot connect to {t.user}@127.0.0.1:{resetting_port}: " in msg
    assert "sent no SSH banner" not in msg and not msg.endswith(": ")


def test_paths_with_spaces_and_shell_metacharacters(sshd: Sshd, tmp_path: Path) -> None:
    """workdir, python and the model's path full of quotes, spaces and substitutions: all
    reach the board as plain names, and nothing in them is executed."""
    weird = tmp_path / "work dir 'q' \"dq\" $(touch injected) `touch injected2`; x"
    weird.mkdir()
    python = make_script(weird / "py thon $(id)", f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    model = tiny_onnx(weird / "m o'del $HOME.onnx")
    cfg = sshd.device_config(workdir=str(weird), python=str(python))
    with SSHDevice("pi", cfg) as dev:
        m = dev.measure(model, settings=FAST)
        remote = dev.remote_dir
        assert remote is not None and Path(remote).parent == weird
    assert m.ok, m.error
    assert m.model_path == str(model)
    assert m.harness["remote"]["host"] == "127.0.0.1"
    assert m.harness["remote"]["port"] == sshd.port
    assert not Path(remote).exists()  # close() removed the board's directory
    leftovers = [p.name for p in weird.iterdir()]
    assert sorted(leftovers) == sorted([python.name, model.name])
    assert not list(tmp_path.rglob("injected*")) and not list(Path.home().glob("injected*"))
