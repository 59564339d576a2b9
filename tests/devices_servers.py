"""Real servers for the device tests: OpenSSH's sshd on loopback and a local adb server.

* :class:`Sshd` runs Debian's ``/usr/sbin/sshd`` (installed by ``make sysdeps``) on a free
  loopback port with its own host key and an authorized client key generated in a temporary
  directory. :meth:`Sshd.kill_connections` kills the per-connection sshd children, which is what a
  dropped link looks like to the client.
* :class:`AdbServer` speaks the adb *server* smart-socket protocol (``host:version``,
  ``host:devices``, ``host:transport:SERIAL``, ``host-serial:SERIAL:features``, ``shell,v2,raw:``,
  ``sync:`` SEND/RECV/STAT/DATA/DONE/QUIT) on a loopback port, so the real ``/usr/bin/adb``
  client (pointed at it with ``ADB_SERVER_SOCKET``) pushes and pulls real files into a sandbox
  directory and runs real shell commands on this machine. No phone is involved: the "phone" is
  this machine's shell, with ``getprop``/``dumpsys``/``benchmark_model`` stand-ins on its PATH
  that print saved real outputs. :meth:`AdbServer.unplug` drops the device (all its connections
  close, ``host:devices`` no longer lists it) and :meth:`AdbServer.plug` brings it back.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

SSHD = "/usr/sbin/sshd"
ADB = "/usr/bin/adb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


# ---- sshd --------------------------------------------------------------------------------
class Sshd:
    """A real OpenSSH server on 127.0.0.1 for the duration of a test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.host_key = tmp / "ssh_host_ed25519_key"
        self.client_key = tmp / "id_ed25519"
        self.config_path = tmp / "sshd_config"
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = os.environ.get("USER") or _whoami()

    def start(self) -> Sshd:
        for key in (self.host_key, self.client_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        auth = self.tmp / "authorized_keys"
        auth.write_text(Path(f"{self.client_key}.pub").read_text())
        self.config_path.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.tmp / 'sshd.pid'}",
                    f"AuthorizedKeysFile {auth}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin yes",
                    "MaxSessions 64",
                    "MaxStartups 64",
                    "LogLevel ERROR",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_port(self.port)
        except RuntimeError:
            self.stop()
            raise
        return self

    def device_config(self, **extra: Any) -> dict[str, Any]:
        """A ``[devices.NAME]`` table for this server (the venv's Python as the board's)."""
        import sys

        cfg: dict[str, Any] = {
            "transport": "ssh",
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "key": str(self.client_key),
            "python": sys.executable,
            "runtime": "onnxruntime",
            "reconnect_timeout_s": 10.0,
        }
        cfg.update(extra)
        return cfg

    def connection_pids(self) -> list[int]:
        """The sshd processes serving current connections (children of the listener)."""
        if self.proc is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=False)]
        except psutil.NoSuchProcess:
            return []

    def kill_connections(self) -> int:
        """Kill every per-connection sshd child (a dropped link); returns how many."""
        pids = self.connection_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        self.kill_connections()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


# ---- adb ---------------------------------------------------------------------------------
def adb_client_version() -> int:
    """The adb client's protocol version (``1.0.41`` -> 41): the server must answer the same."""
    out = subprocess.run([ADB, "version"], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0]
    return int(first.rsplit(".", 1)[1])


def _send_okay(conn: socket.socket, payload: bytes | None = None) -> None:
    msg = b"OKAY"
    if payload is not None:
        msg += f"{len(payload):04x}".encode() + payload
    conn.sendall(msg)


def _send_fail(conn: socket.socket, reason: str) -> None:
    data = reason.encode()
    conn.sendall(b"FAIL" + f"{len(data):04x}".encode() + data)


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return bytes(buf)


class AdbServer:
    """An adb-protocol server on 127.0.0.1 that runs "device" commands on this machine.

    ``root`` is the device's sandbox: absolute device paths are mapped under it (so
    ``/data/local/tmp/x`` lives at ``root/data/local/tmp/x``), shell commands run with
    ``cwd=root`` and ``$ANDROID_ROOT=root``, and ``bin_dir`` is put first on their PATH.
    """

    FEATURES = "shell_v2,cmd"

    def __init__(self, root: Path, serial: str = "LATBENCH0001", bin_dir: Path | None = None):
        self.root = root
        self.serial = serial
        self.bin_dir = bin_dir
        self.port = free_port()
        self.version = adb_client_version()
        self.plugged = True
        self.requests: list[str] = []
        self._sock: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- life cycle ------------------------------------------------------------------------
    @property
    def socket_spec(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    def start(self) -> AdbServer:
        self.root.mkdir(parents=True, exist_ok=True)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        self._drop_all()

    def device_config(self, **extra: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "transport": "adb",
            "serial": self.serial,
            "adb": ADB,
            "server": self.socket_spec,
            "reconnect_timeout_s": 10.0,
        }
        cfg.update(extra)
        return cfg

    def unplug(self) -> None:
        """The phone vanishes: its connections drop and it is no longer listed."""
        self.plugged = False
        self._drop_all()

    def plug(self) -> None:
        self.plugged = True

    def _drop_all(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns), set()
            procs, self._procs = list(self._procs), set()
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # ---- protocol --------------------------------------------------------------------------
    def _read_request(self, conn: socket.socket) -> str:
        n = int(_recv_exact(conn, 4), 16)
        return _recv_exact(conn, n).decode()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._serve_inner(conn)
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            _graceful_close(conn)

    def _device_ok(self, conn: socket.socket, serial: str | None) -> bool:
        if not self.plugged or (serial not in (None, "", self.serial)):
            _send_fail(conn, f"device '{serial or ''}' not found")
            return False
        return True

    def _serve_inner(self, conn: socket.socket) -> None:
        while True:
            req = self._read_request(conn)
            self.requests.append(req)
            if req == "host:version":
                _send_okay(conn, f"{self.version:04x}".encode())
                return
            if req == "host:kill":
                _send_okay(conn)
                return
            if req in ("host:devices", "host:devices-l"):
                line = f"{self.serial}\tdevice\n" if self.plugged else ""
                _send_okay(conn, line.encode())
                return
            if req.startswith("host-serial:"):
                serial, _, cmd = req[len("host-serial:") :].rpartition(":")
                if not self._device_ok(conn, serial):
                    return
                self._host_query(conn, cmd)
                return
            if req.startswith(("host:features", "host:get-state", "host:get-serialno")):
                if not self._device_ok(conn, None):
                    return
                self._host_query(conn, req.split(":", 1)[1])
                return
            if req.startswith("host:host-features"):
                _send_okay(conn, self.FEATURES.encode())
                return
            if req.startswith("host:tport:"):
                which = req[len("host:tport:") :]
                wanted = which[len("serial:") :] if which.startswith("serial:") else None
                if not self._device_ok(conn, wanted):
                    return
                conn.sendall(b"OKAY" + struct.pack("<Q", 1))
                continue  # the service request follows on the same socket
            if req.startswith("host:transport"):
                target = req.split(":", 2)[2] if req.startswith("host:transport:") else None
                if not self._device_ok(conn, target):
                    return
                _send_okay(conn)
                continue
            if req.startswith("shell"):
                self._shell(conn, req)
                return
            if req == "sync:":
                _send_okay(conn)
                self._sync(conn)
                return
            _send_fail(conn, f"unsupported request {req!r}")
            return

    def _host_query(self, conn: socket.socket, cmd: str) -> None:
        if cmd == "features":
            _send_okay(conn, self.FEATURES.encode())
        elif cmd == "get-state":
            _send_okay(conn, b"device")
        elif cmd == "get-serialno":
            _send_okay(conn, self.serial.encode())
        else:
            _send_fail(conn, f"unsupported host query {cmd!r}")

    # ---- shell -------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.bin_dir is not None:
            env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
        env["ANDROID_ROOT"] = str(self.root)
        return env

    def _map(self, device_path: str) -> Path:
        return self.root / device_path.lstrip("/")

    def _rewrite(self, command: str) -> str:
        """Device paths under /data live in the sandbox."""
        return command.replace("/data/", f"{self.root}/data/")

    def _shell(self, conn: socket.socket, req: str) -> None:
        head, _, command = req.partition(":")
        v2 = "v2" in head.split(",")
        _send_okay(conn)
        proc = subprocess.Popen(
            ["/bin/sh", "-c", self._rewrite(command)],
            cwd=self.root,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if v2 else subprocess.STDOUT,
            start_new_session=True,
        )
        with self._lock:
            self._procs.add(proc)
        try:
            self._stream(conn, proc, v2)
        finally:
            if proc.poll() is None:  # the client went away: stop the command
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            with self._lock:
                self._procs.discard(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def _stream(self, conn: socket.socket, proc: subprocess.Popen[bytes], v2: bool) -> None:
        assert isinstance(proc.stdout, io.BufferedReader)
        out = proc.stdout
        if v2:
            err_chunks: list[bytes] = []

            def pump_err() -> None:
                assert isinstance(proc.stderr, io.BufferedReader)
                err = proc.stderr
                for chunk in iter(lambda: err.read1(65536), b""):
                    err_chunks.append(chunk)

            t = threading.Thread(target=pump_err, daemon=True)
            t.start()
            for chunk in iter(lambda: out.read1(65536), b""):
                conn.sendall(struct.pack("<BI", 1, len(chunk)) + chunk)
            t.join()
            for chunk in err_chunks:
                conn.sendall(struct.pack("<BI", 2, len(chunk)) + chunk)
            code = proc.wait()
            conn.sendall(struct.pack("<BI", 3, 1) + bytes([code & 0xFF]))
        else:
            for chunk in iter(lambda: out.read1(65536), b""):
                conn.sendall(chunk)
            proc.wait()

    # ---- sync --------------------------------------------------------------------------------
    def _sync(self, conn: socket.socket) -> None:
        while True:
            ident = _recv_exact(conn, 4)
            (n,) = struct.unpack("<I", _recv_exact(conn, 4))
            if ident == b"QUIT":
                return
            arg = _recv_exact(conn, n).decode()
            if ident in (b"STAT", b"LST1", b"STA2"):
                path = self._map(arg)
                if ident == b"STAT":
                    try:
                        st = path.stat()
                        conn.sendall(
                            b"STAT" + struct.pack("<III", st.st_mode, st.st_size, int(st.st_mtime))
                        )
                    except OSError:
                        conn.sendall(b"STAT" + struct.pack("<III", 0, 0, 0))
                else:
                    _sync_fail(conn, "stat v2 not supported")
            elif ident == b"SEND":
                self._recv_file(conn, arg)
            elif ident == b"RECV":
                self._send_file(conn, arg)
            elif ident == b"LIST":
                conn.sendall(b"DONE" + b"\0" * 16)
            else:
                _sync_fail(conn, f"unknown sync request {ident!r}")
                return

    def _recv_file(self, conn: socket.socket, arg: str) -> None:
        path_s, _, mode_s = arg.rpartition(",")
        path = self._map(path_s)
        error: str | None = None
        f = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = path.open("wb")
        except OSError as exc:
            error = f"couldn't create file: {exc.strerror}"
        while True:
            ident = _recv_exact(conn, 4)
            (n,) = struct.unpack("<I", _recv_exact(conn, 4))
            if ident == b"DATA":
                data = _recv_exact(conn, n)
                if f is not None and error is None:
                    try:
                        f.write(data)
                    except OSError as exc:
                        error = f"write failed: {exc.strerror}"
            elif ident == b"DONE":
                break
            else:
                raise ConnectionError(f"unexpected {ident!r} in SEND")
        if f is not None:
            try:
                f.close()
            except OSError as exc:
                error = error or f"write failed: {exc.strerror}"
        if error is None:
            with contextlib.suppress(ValueError, OSError):
                os.chmod(path, int(mode_s) & 0o7777)
            conn.sendall(b"OKAY" + b"\0" * 4)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
            _sync_fail(conn, error)

    def _send_file(self, conn: socket.socket, arg: str) -> None:
        path = self._map(arg)
        try:
            data = path.read_bytes()
        except OSError as exc:
            _sync_fail(conn, f"remote object '{arg}' does not exist: {exc.strerror}")
            return
        for i in range(0, len(data), 64 * 1024):
            chunk = data[i : i + 64 * 1024]
            conn.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        conn.sendall(b"DONE" + b"\0" * 4)


def _graceful_close(conn: socket.socket) -> None:
    """Half-close, then drain what the client still sends (stdin packets) before closing.

    Closing a socket with unread input makes the kernel send a reset, and the client would
    lose the last packets (stderr, the exit status) still in flight.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(2.0)
        while conn.recv(65536):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def _sync_fail(conn: socket.socket, reason: str) -> None:
    data = reason.encode()
    conn.sendall(b"FAIL" + struct.pack("<I", len(data)) + data)


def which_or_none(name: str) -> str | None:
    return shutil.which(name)


# ---- tiny models -------------------------------------------------------------------------
def tiny_onnx(path: Path, seed: int = 0, size: int = 32, batch: int | str = 1) -> Path:
    """A small real ONNX model (MatMul + Relu); distinct seeds give distinct files; a ``batch``
    name (``"N"``) makes the batch dimension symbolic."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    w = helper.make_tensor(
        "W", TensorProto.FLOAT, [size, size], rng.standard_normal(size * size).astype("float32")
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, size])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
