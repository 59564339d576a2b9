"""Transports: how files and commands reach a remote device (SSH, adb).

A transport moves files and runs commands; it knows nothing about models or numbers (that is the
parser's job, :mod:`latbench.devices.parsers`). Every transport has the same small surface:

* ``run(argv, timeout_s=...) -> CommandResult`` runs an argument list (never a shell string:
  each argument is quoted for the remote shell) and returns its exit status and output;
* ``push(local, remote)`` / ``pull(remote, local)`` copy files;
* ``connect()`` / ``close()``, idempotent; ``connected`` says whether the link is up.

Failures map onto a few exception classes so adapters can react (all are
:class:`~latbench.errors.DeviceError`):

* :class:`ConnectionLost` -- the link dropped or the device vanished; ``connect()`` again;
* :class:`CommandTimeout` -- a command ran past its timeout; it was killed where possible;
* :class:`RemoteDiskFull` -- a write failed because the remote file system is full.

To add a transport (a new kind of board), subclass :class:`Transport`, implement the five
methods, and build a device adapter on it (see ``docs/devices.md``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from latbench.devices._config import number, text
from latbench.errors import ConfigError, DeviceError

__all__ = [
    "AdbTransport",
    "CommandResult",
    "CommandTimeout",
    "ConnectFailed",
    "ConnectionLost",
    "RemoteCommandError",
    "RemoteDiskFull",
    "SSHTransport",
    "Transport",
    "quote_argv",
]

log = logging.getLogger(__name__)


class ConnectionLost(DeviceError):
    """The link to the device dropped (killed connection, unplugged phone, rebooted board)."""


class ConnectFailed(ConnectionLost):
    """No link could be made at all (refused, unreachable, no SSH server): a transport fault,
    retried as a dropped link is, but said as what it is."""


class CommandTimeout(DeviceError):
    """A remote command ran longer than its timeout and was stopped."""

    #: the remote shell's process id, where the transport learnt it before the timeout
    remote_pid: int | None = None


#: the first stderr line of every SSH command: its shell's process id (see ``run_shell``)
_PID_MARK = "__latbench_pid__="


def _split_pid_mark(err: bytes | bytearray) -> tuple[int | None, bytearray]:
    """The process id named by the first stderr line, and stderr without that line."""
    mark = _PID_MARK.encode()
    if not err.startswith(mark):
        return None, bytearray(err)
    end = err.find(b"\n")
    if end < 0:
        return None, bytearray()  # the line itself was cut short
    digits = bytes(err[len(mark) : end])
    return (int(digits) if digits.isdigit() else None), bytearray(err[end + 1 :])


class RemoteDiskFull(DeviceError):
    """A file could not be written on the device because its file system is full."""


class RemoteCommandError(DeviceError):
    """A remote command exited with a non-zero status where success was required."""


@dataclass(frozen=True)
class CommandResult:
    """What a remote command returned (text decoded as UTF-8 with replacement)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float

    def check(self, what: str = "") -> CommandResult:
        """Raise :class:`RemoteCommandError` (with the command's stderr) unless it succeeded."""
        if self.returncode != 0:
            label = what or shlex.join(self.argv)[:200]
            tail = (self.stderr or self.stdout).strip()[-500:]
            raise RemoteCommandError(
                f"{label}: exited with status {self.returncode}; expected 0"
                + (f": {tail}" if tail else "")
            )
        return self


def quote_argv(argv: Sequence[str]) -> str:
    """An argument list as one POSIX shell command line, every argument quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def _is_enospc(text: str) -> bool:
    low = text.lower()
    return "no space left" in low or "enospc" in low or "disk full" in low


def _line_number(path: Path, line: str) -> str:
    """The 1-based number of ``line`` in the text file ``path`` ("?" when not found)."""
    try:
        for i, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if text.strip() == line.strip():
                return str(i)
    except OSError:
        pass
    return "?"


def _tcp_keepalive(sock: Any, seconds: float) -> None:
    """TCP keepalive on the SSH socket: a board whose network went away is noticed."""
    import socket

    if not isinstance(sock, socket.socket):
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle = max(1, int(seconds))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


class Transport(ABC):
    """Moves files to and from a device and runs commands on it."""

    #: a short name for messages, e.g. ``"pi4 (ssh pi@10.0.0.7:22)"``
    label: str = "device"

    @abstractmethod
    def connect(self) -> None:
        """Open the link (no-op when it is up); raises :class:`ConnectionLost` on failure."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether the link is believed to be up."""

    @abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run ``argv`` on the device and wait for it (at most ``timeout_s`` seconds)."""

    @abstractmethod
    def push(self, local: str | os.PathLike[str], remote: str) -> None:
        """Copy a local file to the device."""

    @abstractmethod
    def pull(self, remote: str, local: str | os.PathLike[str]) -> None:
        """Copy a file from the device."""

    @abstractmethod
    def close(self) -> None:
        """Close the link. Idempotent."""

    def reconnect(self, timeout_s: float = 30.0, interval_s: float = 0.5) -> None:
        """Close, then try to connect again until ``timeout_s`` passes (then ConnectionLost)."""
        self.close()
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while True:
            try:
                self.connect()
                return
            except ConnectionLost as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise ConnectionLost(
                    f"{self.label}: could not reconnect within {timeout_s:g} s: {last}"
                ) from last
            time.sleep(interval_s)

    def free_kib(self, path: str) -> int | None:
        """Free KiB of the file system holding ``path`` (``df -Pk``); None when unknown."""
        try:
            res = self.run(["df", "-Pk", path], timeout_s=10.0)
        except DeviceError:
            return None
        lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
        if res.returncode != 0 or len(lines) < 2:
            return None
        parts = lines[-1].split()
        try:
            return int(parts[3])
        except (IndexError, ValueError):
            return None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---- SSH ---------------------------------------------------------------------------------
def _connect_reason(exc: BaseException) -> str:
    """Why a connection failed, in words: paramiko's "[Errno None] Unable to connect to port 22
    on 127.0.0.1" says neither refused nor unreachable."""
    per_address = getattr(exc, "errors", None)  # paramiko's NoValidConnectionsError
    if isinstance(per_address, dict) and per_address:
        parts = []
        for address, err in per_address.items():
            no = getattr(err, "errno", None)
            why = os.strerror(no) if isinstance(no, int) else str(err)
            parts.append(f"{address[0]}: {why}")
        refused = all(getattr(e, "errno", None) == errno.ECONNREFUSED for e in per_address.values())
        hint = (
            "; expected an SSH server listening on that port (is sshd running, the port right?)"
            if refused
            else ""
        )
        return "; ".join(parts) + hint
    return str(exc) or type(exc).__name__


class SSHTransport(Transport):
    """SSH through paramiko: one TCP connection, many commands and SFTP transfers over it.

    Settings (the ``[devices.NAME]`` keys of bench.toml): ``host``, ``port`` (22), ``user``,
    ``key`` (a private key file; else the SSH agent and ``~/.ssh`` keys), ``password``
    (discouraged), ``host_key_check`` (``"accept-new"`` adds an unknown host key to the
    in-memory list as OpenSSH's ``accept-new`` does; ``"yes"`` refuses hosts not in
    ``~/.ssh/known_hosts`` or ``known_hosts``), ``connect_timeout_s`` (10).

    A refused key, or a ``key`` that does not load as a private key, is a
    :class:`~latbench.errors.DeviceError` (waiting would not help); a link that drops, even
    during authentication, is :class:`ConnectionLost`.
    """

    # the keys of a device table this transport reads
    config_keys = frozenset(
        {"host", "port", "user", "key", "password", "host_key_check", "known_hosts"}
        | {"connect_timeout_s"}
    )

    def __init__(self, settings: Mapping[str, Any], label: str = "", where: str = "") -> None:
        try:
            import paramiko
        except ImportError as exc:
            raise DeviceError(
                f"the ssh transport needs paramiko ({exc}); install it with: "
                "pip install 'latbench[ssh]'"
            ) from None
        self._paramiko = paramiko
        host = settings.get("host")
        if not isinstance(host, str) or not host:
            raise ConfigError(
                f"{where or label or 'ssh device'}: host = {host!r}; expected a host name"
            )
        self.host = host
        where = where or label or host
        self.port = number(
            settings, "port", 22, where=where, integer=True, minimum=1, maximum=65535
        )
        self.user = text(settings, "user", None, where=where, what="a user name") or (
            os.environ.get("USER") or "root"
        )
        key = text(settings, "key", None, where=where, what="the path of a private key file")
        self.key = str(Path(key).expanduser()) if key else None
        if self.key and not Path(self.key).is_file():
            raise ConfigError(f"{where}: key = {key!r} does not exist; expected a file")
        self.password = text(settings, "password", None, where=where)
        self.host_key_check = text(
            settings, "host_key_check", "accept-new", where=where, what="'accept-new' or 'yes'"
        )
        if self.host_key_check not in ("accept-new", "yes"):
            raise ConfigError(
                f"{where}: host_key_check = {self.host_key_check!r}; expected 'accept-new' or 'yes'"
            )
        known = text(settings, "known_hosts", None, where=where, what="a known_hosts file")
        self.known_hosts = str(Path(known).expanduser()) if known else None
        if self.known_hosts and not Path(self.known_hosts).is_file():
            raise ConfigError(
                f"{where}: known_hosts = {known!r} does not exist; expected an OpenSSH "
                "known_hosts file"
            )
        self.connect_timeout_s = number(
            settings, "connect_timeout_s", 10.0, where=where, positive=True
        )
        #: seconds without a reply from the board before a transfer or command is given up
        #: (the connection is then closed as lost); devices raise it to their per-model timeout
        self.io_timeout_s = max(30.0, 3 * float(self.connect_timeout_s))
        self.label = label or f"{self.user}@{self.host}:{self.port}"
        self._client: Any = None
        self._sftp: Any = None
        self._lock = threading.RLock()

    # ---- link ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        t = self._client.get_transport() if self._client is not None else None
        return bool(t is not None and t.is_active())

    def connect(self) -> None:
        with self._lock:
            if self.connected:
                return
            self.close()
            pk = self._paramiko
            client = pk.SSHClient()
            self._load_host_keys(client)
            policy = (
                pk.AutoAddPolicy() if self.host_key_check == "accept-new" else pk.RejectPolicy()
            )
            client.set_missing_host_key_policy(policy)
            if self.key:
                self._check_key()
            try:
                client.connect(
                    self.host,
                    port=self.port,
                    username=self.user,
                    key_filename=self.key,
                    password=self.password,
                    timeout=self.connect_timeout_s,
                    banner_timeout=self.connect_timeout_s,
                    auth_timeout=self.connect_timeout_s,
                    channel_timeout=self.connect_timeout_s,
                    allow_agent=self.key is None,
                    look_for_keys=self.key is None,
                )
            except pk.AuthenticationException as exc:
                t = client.get_transport()
                dropped = t is None or not t.is_active()
                client.close()
                if dropped:  # the link died during authentication: not a refused key
                    raise ConnectionLost(
                        f"{self.label}: the connection to {self.host}:{self.port} dropped during "
                        f"SSH authentication ({exc})"
                    ) from None
                raise DeviceError(
                    f"{self.label}: SSH authentication failed ({exc}); expected a key that the "
                    "board's authorized_keys accepts (set key = ... in bench.toml)"
                ) from None
            except (pk.SSHException, OSError, EOFError) as exc:
                silent = self._no_banner(client, exc)
                client.close()
                if silent:
                    raise ConnectionLost(
                        f"{self.label}: host {self.host}:{self.port} accepted the connection but "
                        f"sent no SSH banner within {self.connect_timeout_s:g} s; expected an SSH "
                        "server there (is it the right port, or is the board overloaded?)"
                    ) from None
                target = f"{self.user}@{self.host}:{self.port}"
                to = "" if target in self.label else f" to {target}"
                raise ConnectFailed(
                    f"{self.label}: cannot connect{to}: {_connect_reason(exc)}"
                ) from None
            transport = client.get_transport()
            if transport is not None:
                # keepalives every few seconds: paramiko notices a peer that stopped answering
                # (SSH level), TCP keepalive one whose network went away
                transport.set_keepalive(max(1, min(15, int(self.connect_timeout_s))))
                _tcp_keepalive(transport.sock, self.connect_timeout_s)
            self._client = client
            log.debug("connected to %s", self.label)

    def _check_key(self) -> None:
        """``key`` must load as a private key (as paramiko's client loads it), else a
        :class:`DeviceError` that names the file: paramiko's own error for a ``.pub`` file, a
        corrupt key or a wrong passphrase is a generic ``SSHException`` that would read as a
        network fault and be retried as one."""
        pk = self._paramiko
        errors: list[str] = []
        for name in ("RSAKey", "ECDSAKey", "Ed25519Key"):
            cls = getattr(pk, name, None)
            if cls is None:
                continue
            try:
                cls.from_private_key_file(self.key, self.password)
                return
            except pk.PasswordRequiredException:
                return  # authentication reports the encrypted key (no passphrase given)
            except (pk.SSHException, ValueError, OSError) as exc:
                if str(exc) not in errors:
                    errors.append(str(exc))
        raise DeviceError(
            f"{self.label}: key = {self.key!r} cannot be loaded as a private key "
            f"({'; '.join(errors)[:300]}); expected an OpenSSH private key file (RSA, ECDSA or "
            "Ed25519; not the .pub file), and for an encrypted key its passphrase as password"
        )

    def _no_banner(self, client: Any, exc: BaseException) -> bool:
        """Whether a failed connect is a host that accepted TCP but never spoke SSH."""
        low = str(exc).lower()
        if "reset by peer" in low or "[errno" in low:
            return False  # the host broke the connection: it did not stay silent
        if "banner" in low:
            return True
        t = client.get_transport()
        return bool(
            t is not None and not getattr(t, "remote_version", "") and "session" in str(exc)
        )

    def _load_host_keys(self, client: Any) -> None:
        """Load ~/.ssh/known_hosts and ``known_hosts``; a corrupt line is a ConfigError."""
        pk = self._paramiko
        system = Path("~/.ssh/known_hosts").expanduser()
        files: list[tuple[Path, str, Any]] = [(system, "", client.load_system_host_keys)]
        if self.known_hosts:
            files.append((Path(self.known_hosts), "known_hosts = ", client.load_host_keys))
        for path, key, load in files:
            try:
                if key:
                    load(str(path))
                elif path.is_file():
                    load()
            except pk.hostkeys.InvalidHostKey as exc:
                line = _line_number(path, str(exc.line))
                raise ConfigError(
                    f"{self.label}: {key}{str(path)!r}: line {line} is not a valid known_hosts "
                    f"entry ({exc.exc!r}); expected 'HOST KEYTYPE BASE64KEY': fix or delete it"
                ) from None
            except (OSError, UnicodeDecodeError, ValueError, pk.SSHException) as exc:
                raise ConfigError(
                    f"{self.label}: cannot read the known_hosts file {str(path)!r}: {exc}; "
                    "expected an OpenSSH known_hosts file"
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._sftp is not None:
                with contextlib.suppress(OSError, EOFError, self._paramiko.SSHException):
                    self._sftp.close()
                self._sftp = None
            if self._client is not None:
                self._client.close()
                self._client = None

    def _lost(self, exc: BaseException, what: str) -> ConnectionLost:
        self.close()
        if isinstance(exc, TimeoutError):
            return self._stalled(what, self.io_timeout_s)
        return ConnectionLost(f"{self.label}: connection lost during {what}: {exc!r}")

    def _stalled(self, what: str, seconds: float) -> ConnectionLost:
        self.close()
        return ConnectionLost(
            f"{self.label}: the board sent nothing for {seconds:g} s during {what}; the "
            "connection was closed (a frozen board or a network partition)"
        )

    @contextlib.contextmanager
    def _watchdog(self, what: str, seconds: float) -> Iterator[None]:
        """Bound a paramiko call that waits without a timeout of its own (channel requests):
        past ``seconds`` the SSH connection is closed, which wakes the call up, and the call
        raises :class:`ConnectionLost` saying the board stalled."""
        fired = threading.Event()
        client = self._client

        def fire() -> None:
            fired.set()
            t = client.get_transport() if client is not None else None
            if t is not None:
                t.close()

        timer = threading.Timer(seconds, fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except Exception:
            if fired.is_set():
                raise self._stalled(what, seconds) from None
            raise
        finally:
            timer.cancel()

    def _transport(self) -> Any:
        self.connect()
        t = self._client.get_transport() if self._client is not None else None
        if t is None or not t.is_active():
            raise ConnectionLost(f"{self.label}: the SSH connection is not active")
        return t

    def open_channel(self, command: str) -> Any:
        """A session channel running the shell command line ``command`` (for long-lived agents).

        The caller owns the channel (reads its stdout, closes it). Sends and receives on it
        time out after :attr:`io_timeout_s` (``TimeoutError``).
        """
        pk = self._paramiko
        what = f"starting {command[:80]!r}"
        try:
            t = self._transport()
            with self._watchdog(what, self.connect_timeout_s + 5.0):
                chan = t.open_session(timeout=self.connect_timeout_s)
                chan.settimeout(self.io_timeout_s)
                chan.exec_command(command)
        except ConnectionLost:
            raise
        except (pk.SSHException, OSError, EOFError) as exc:
            raise self._lost(exc, "opening a channel") from None
        return chan

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        cmd = quote_argv(argv)
        if env:
            cmd = quote_argv(["env", *(f"{k}={v}" for k, v in env.items())]) + " " + cmd
        return self.run_shell(cmd, timeout_s=timeout_s, argv=tuple(argv))

    def run_shell(
        self,
        command: str,
        *,
        timeout_s: float = 60.0,
        argv: tuple[str, ...] = (),
        pidfile: str | None = None,
    ) -> CommandResult:
        """Run a shell command line (the caller quoted it); a timeout kills it on the board.

        Closing an SSH channel does not stop the remote process, so every command first names
        its shell's process id on stderr (a line the caller never sees). sshd starts each
        command's shell as a session leader, so on a timeout ``kill -9 -- -PID`` stops the whole
        process group: the command and whatever it started (a helper's ``rm -rf`` or ``df`` on a
        hung NFS mount would otherwise run on after we gave up). With ``pidfile`` the id is also
        written there, for callers that kill the process later themselves.
        """
        pk = self._paramiko
        t0 = time.perf_counter()
        head = f"echo {_PID_MARK}$$ >&2; "
        if pidfile:
            line = f"{head}echo $$ > {shlex.quote(pidfile)}; exec {command}"
        else:
            line = head + command
        try:
            return self._run_channel(line, command, timeout_s, argv, t0)
        except CommandTimeout as exc:
            pid = exc.remote_pid
            if self.connected and (pid is not None or pidfile):
                if pid is not None:
                    kill = f"kill -9 -- -{pid} 2>/dev/null || kill -9 {pid} 2>/dev/null"
                else:
                    kill = f"kill -9 $(cat {shlex.quote(str(pidfile))}) 2>/dev/null"
                if pidfile:
                    kill += f"; rm -f {shlex.quote(pidfile)}"
                try:
                    self._run_channel(kill, "kill", 10.0, (), t0)
                except (DeviceError, pk.SSHException):
                    log.warning("%s: could not kill the timed-out command", self.label)
            raise

    def _run_channel(
        self, line: str, command: str, timeout_s: float, argv: tuple[str, ...], t0: float
    ) -> CommandResult:
        pk = self._paramiko
        chan = self.open_channel(line)
        out = bytearray()
        err = bytearray()
        deadline = time.monotonic() + timeout_s
        nap = 0.0005
        try:
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                    nap = 0.0005
                    continue
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    nap = 0.0005
                    continue
                if chan.exit_status_ready():
                    break  # OpenSSH sends the exit status after the last byte of output
                if chan.closed or not self.connected:
                    raise ConnectionLost(
                        f"{self.label}: connection dropped while running {command[:100]!r}"
                    )
                if time.monotonic() > deadline:
                    timeout = CommandTimeout(
                        f"{self.label}: {command[:200]!r} ran longer than {timeout_s:g} s"
                    )
                    timeout.remote_pid = _split_pid_mark(err)[0]
                    raise timeout
                time.sleep(nap)
                nap = min(nap * 2, 0.02)
            status = chan.recv_exit_status()
        except (pk.SSHException, OSError, EOFError) as exc:
            raise self._lost(exc, f"{command[:100]!r}") from None
        except ConnectionLost:
            self.close()
            raise
        finally:
            chan.close()
        err = _split_pid_mark(err)[1]
        return CommandResult(
            argv=argv or (command,),
            returncode=int(status),
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            wall_s=time.perf_counter() - t0,
        )

    def _sftp_client(self) -> Any:
        pk = self._paramiko
        with self._lock:
            if self._sftp is None:
                try:
                    t = self._transport()
                    with self._watchdog("opening SFTP", self.connect_timeout_s + 5.0):
                        chan = t.open_session(timeout=self.connect_timeout_s)
                        chan.invoke_subsystem("sftp")
                        self._sftp = pk.SFTPClient(chan)
                except ConnectionLost:
                    raise
                except (pk.SSHException, OSError, EOFError) as exc:
                    raise self._lost(exc, "opening SFTP") from None
            # every SFTP reply is awaited at most this long: a board that stops answering
            # mid-transfer raises TimeoutError instead of blocking forever
            self._sftp.get_channel().settimeout(self.io_timeout_s)
            return self._sftp

    def push(self, local: str | os.PathLike[str], remote: str) -> None:
        pk = self._paramiko
        sftp = self._sftp_client()
        try:
            sftp.put(str(local), remote, confirm=False)  # a stat per file costs a round trip
        except (pk.SSHException, EOFError, TimeoutError) as exc:
            raise self._lost(exc, f"push of {local}") from None
        except OSError as exc:
            if not self.connected:
                raise self._lost(exc, f"push of {local}") from None
            self._push_failed(exc, local, remote)

    def _push_failed(self, exc: OSError, local: str | os.PathLike[str], remote: str) -> None:
        """Turn an SFTP write failure into DiskFull when the remote file system is full."""
        # OpenSSH's sftp-server maps ENOSPC to the generic SSH_FX_FAILURE ("Failure"), so ask
        # the board how much room is left instead of trusting the message.
        with contextlib.suppress(OSError, EOFError, self._paramiko.SSHException):
            self._sftp_client().remove(remote)
        size_kib = Path(local).stat().st_size // 1024
        free = self.free_kib(str(Path(remote).parent))
        if _is_enospc(str(exc)) or (free is not None and free <= size_kib + 4):
            raise RemoteDiskFull(
                f"{self.label}: cannot write {remote!r}: remote disk full "
                f"({free if free is not None else '?'} KiB free, {size_kib} KiB needed)"
            ) from None
        raise DeviceError(f"{self.label}: cannot write {remote!r}: {exc}") from None

    def push_bytes(self, data: bytes, remote: str) -> None:
        """Write ``data`` to the remote file ``remote`` (same failures as :meth:`push`)."""
        pk = self._paramiko
        sftp = self._sftp_client()
        try:
            with sftp.open(remote, "wb") as f:
                f.write(data)
        except (pk.SSHException, EOFError, TimeoutError) as exc:
            raise self._lost(exc, f"write of {remote}") from None
        except OSError as exc:
            if not self.connected:
                raise self._lost(exc, f"write of {remote}") from None
            free = self.free_kib(str(Path(remote).parent))
            if _is_enospc(str(exc)) or (free is not None and free <= len(data) // 1024 + 4):
                raise RemoteDiskFull(
                    f"{self.label}: cannot write {remote!r}: remote disk full ({free} KiB free)"
                ) from None
            raise DeviceError(f"{self.label}: cannot write {remote!r}: {exc}") from None

    def mkdir(self, remote: str) -> None:
        """Create a remote directory (its parent must exist)."""
        pk = self._paramiko
        try:
            self._sftp_client().mkdir(remote)
        except (pk.SSHException, EOFError, TimeoutError) as exc:
            raise self._lost(exc, f"mkdir {remote}") from None
        except OSError as exc:
            if not self.connected:
                raise self._lost(exc, f"mkdir {remote}") from None
            raise DeviceError(f"{self.label}: cannot create {remote!r}: {exc}") from None

    def pull(self, remote: str, local: str | os.PathLike[str]) -> None:
        pk = self._paramiko
        sftp = self._sftp_client()
        try:
            sftp.get(remote, str(local))
        except (pk.SSHException, EOFError, TimeoutError) as exc:
            raise self._lost(exc, f"pull of {remote}") from None
        except OSError as exc:
            if not self.connected:
                raise self._lost(exc, f"pull of {remote}") from None
            raise DeviceError(f"{self.label}: cannot read {remote!r}: {exc}") from None

    def remove(self, remote: str) -> None:
        """Delete a remote file (missing files are fine)."""
        try:
            self._sftp_client().remove(remote)
        except TimeoutError as exc:
            raise self._lost(exc, f"removing {remote}") from None
        except (OSError, EOFError):
            pass


# ---- adb ---------------------------------------------------------------------------------
#: what the adb client prints when the phone or the adb server went away (a transient fault)
_ADB_GONE = re.compile(
    r"device '[^']*' not found|no devices(?:/emulators)? found|device offline|error: closed"
    r"|cannot connect to daemon|protocol fault|failed to get feature set|device still connecting"
    r"|connection reset|broken pipe",
    re.IGNORECASE,
)
#: what an ``adb`` client says when nothing listens on the server socket it was given
_ADB_NO_SERVER = re.compile(
    r"cannot connect to daemon at \S+: failed to connect to '([^']+)': Connection refused"
)
#: the adb server socket forms (``ADB_SERVER_SOCKET``) that the adb client understands
_ADB_SOCKET_SPEC = re.compile(
    r"^(?:tcp:(?:(?:\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+):)?\d{1,5}|localfilesystem:\S+|local:\S+)$"
)
#: the last line of every ``adb shell`` command latbench runs: the command's exit status
_EXIT_MARK = "__latbench_exit__"
_EXIT_LINE = re.compile(rf"\r?\n{_EXIT_MARK} (\d+)\r?\n?\Z")


class AdbTransport(Transport):
    """Android through the real ``adb`` client (``subprocess.run`` with argument lists).

    Settings: ``serial`` (required when several phones are attached), ``adb`` (the client binary,
    default ``adb`` on PATH), ``server`` (the adb server socket, e.g. ``"tcp:127.0.0.1:5037"``;
    passed as ``ADB_SERVER_SOCKET``), ``connect_timeout_s`` (10).

    Shell commands go through ``adb shell``; every argument is quoted for the phone's shell. The
    command runs in a subshell followed by ``printf`` of its exit status, and that last line is
    what says the command finished: the adb client's own exit status cannot be trusted for it (an
    adb client whose connection drops mid-command exits 0 with the output cut short, and a phone
    without the shell v2 protocol always reports 0). Output that ends without the line is a
    dropped connection (:class:`ConnectionLost`), never a result. A command past its timeout is
    killed on the phone through the process id it wrote to a pid file.

    A phone that has not authorized this computer (``unauthorized``), or a missing ``serial``
    with several phones attached, is a :class:`~latbench.errors.DeviceError` that says what to
    do, not a dropped link: waiting for it to come back would not help.
    """

    # the keys of a device table this transport reads
    config_keys = frozenset({"adb", "serial", "server", "connect_timeout_s"})

    def __init__(self, settings: Mapping[str, Any], label: str = "", where: str = "") -> None:
        where = where or label or "adb device"
        adb = text(settings, "adb", "adb", where=where, what="the adb client (a path or name)")
        path = shutil.which(adb)
        if path is None:
            if os.sep in adb:  # a path, not a name looked up on PATH
                raise DeviceError(
                    f"{label or 'adb device'}: adb = {adb!r} is not an executable file; expected "
                    "the path of the adb client (Android's platform-tools), or a name on PATH"
                )
            raise DeviceError(
                f"{label or 'adb device'}: the adb client {adb!r} is not on PATH; install it "
                "(Debian: apt-get install adb; or Android's platform-tools) or set adb = '/path'"
            )
        self.adb = path
        self.serial = text(settings, "serial", None, where=where, what="a serial (adb devices)")
        self.server = text(
            settings, "server", None, where=where, what="an adb server socket like 'tcp:HOST:PORT'"
        )
        if self.server is not None and not _ADB_SOCKET_SPEC.match(str(self.server)):
            raise ConfigError(
                f"{where}: server = {self.server!r}; expected an adb server socket such as "
                "'tcp:127.0.0.1:5037' (tcp:PORT, tcp:HOST:PORT or localfilesystem:PATH)"
            )
        self.connect_timeout_s = number(
            settings, "connect_timeout_s", 10.0, where=where, positive=True
        )
        self.label = label or f"adb:{self.serial or 'any'}"
        self._connected = False
        self._env = dict(os.environ)
        if self.server:
            self._env["ADB_SERVER_SOCKET"] = str(self.server)

    def _base(self) -> list[str]:
        return [self.adb, *(["-s", str(self.serial)] if self.serial else [])]

    def _adb(
        self, args: Sequence[str], timeout_s: float, *, phone: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """``adb [-s SERIAL] ARGS`` (``phone=False``: without the serial, a server command)."""
        try:
            res = subprocess.run(
                [*(self._base() if phone else [self.adb]), *args],
                capture_output=True,
                timeout=timeout_s,
                env=self._env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(
                f"{self.label}: adb {' '.join(args)[:200]} ran longer than {timeout_s:g} s"
            ) from exc
        except OSError as exc:  # the client was removed (or lost its x bit) since it was found
            raise DeviceError(
                f"{self.label}: cannot run the adb client {self.adb!r}: "
                f"{exc.strerror or exc}; expected an executable adb (set adb = '/path')"
            ) from None
        if res.returncode == 0:
            return res
        refused = _ADB_NO_SERVER.search((res.stderr + res.stdout).decode("utf-8", "replace"))
        if refused is not None:
            self._connected = False
            raise ConnectFailed(
                f"{self.label}: {refused.group(1)}: Connection refused; expected an adb server "
                "listening on that port (server = "
                f"{self.server or 'the default tcp:localhost:5037'!r}: is `adb start-server` "
                "running there, the port right?)"
            )
        return res

    def _gone(self, text: str) -> bool:
        return _ADB_GONE.search(text) is not None

    def _unusable(self, said: str) -> DeviceError | None:
        """The error for a phone adb reaches but cannot use until someone acts; else None."""
        low = said.lower()
        serial = f" {self.serial!r}" if self.serial else ""
        if "unauthorized" in low:
            return DeviceError(
                f"{self.label}: the phone{serial} has not authorized this computer for USB "
                f"debugging (adb: {said.strip()[:300]}); expected: unlock the phone and accept "
                "its 'Allow USB debugging?' prompt (adb devices lists it as 'unauthorized' "
                "until then)"
            )
        if "more than one device" in low:
            return DeviceError(
                f"{self.label}: several phones are attached and no serial is set (adb: "
                f"{said.strip()[:200]}); expected serial = one of the serials `adb devices` lists"
            )
        return None

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        if self._connected:
            return
        try:
            res = self._adb(["get-state"], self.connect_timeout_s)
        except CommandTimeout as exc:
            raise ConnectionLost(f"{self.label}: adb get-state timed out: {exc}") from None
        state = res.stdout.decode(errors="replace").strip()
        if res.returncode != 0 or state != "device":
            msg = (res.stderr or res.stdout).decode(errors="replace").strip()
            unusable = self._unusable(f"{state} {msg}")
            if unusable is not None:
                raise unusable
            if self.serial and "not found" in msg:
                attached = self._attached()
                raise ConnectionLost(
                    f"{self.label}: serial = {self.serial!r}: no such phone is attached (adb "
                    f"devices lists {', '.join(attached) if attached else 'none'}); expected "
                    "serial = one of the serials `adb devices` lists, with the phone plugged in"
                )
            raise ConnectionLost(
                f"{self.label}: the phone is not available (state {state or '?'}): {msg}"
            )
        self._connected = True

    def _attached(self) -> list[str]:
        """``SERIAL (STATE)`` of every phone the adb server lists (empty when it lists none)."""
        try:
            res = self._adb(["devices"], self.connect_timeout_s, phone=False)
        except DeviceError:
            return []
        found = []
        for line in res.stdout.decode("utf-8", "replace").splitlines()[1:]:
            serial, sep, state = line.rpartition("\t")
            if sep and serial:
                found.append(f"{serial!r} ({state.strip()})")
        return found

    def close(self) -> None:
        self._connected = False

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        cmd = quote_argv(argv)
        if env:
            cmd = quote_argv(["env", *(f"{k}={v}" for k, v in env.items())]) + " " + cmd
        return self.run_shell(cmd, timeout_s=timeout_s, argv=tuple(argv))

    def run_shell(
        self,
        command: str,
        *,
        timeout_s: float = 60.0,
        argv: tuple[str, ...] = (),
        pidfile: str | None = None,
    ) -> CommandResult:
        """Run a shell command line on the phone; with ``pidfile`` a timeout kills it there.

        Raises :class:`ConnectionLost` when the output ends before the command's exit status
        (the phone or the link went away while it ran), :class:`CommandTimeout` past
        ``timeout_s``.
        """
        self.connect()
        if pidfile:
            # a child shell writes its pid and becomes the command, so the pid is the command's
            inner = "sh -c " + shlex.quote(f"echo $$ > {shlex.quote(pidfile)}; exec {command}")
        else:
            inner = f"(\n{command}\n)"  # a subshell: an `exit` or a trailing comment is harmless
        line = f"{inner}\nprintf '\\n{_EXIT_MARK} %d\\n' \"$?\""
        t0 = time.perf_counter()
        try:
            res = self._adb(["shell", line], timeout_s)
        except CommandTimeout:
            if pidfile:
                self._kill_from_pidfile(pidfile)
            raise
        out = res.stdout.decode("utf-8", "replace")
        err = res.stderr.decode("utf-8", "replace")
        end = _EXIT_LINE.search(out)
        if end is None:
            self._connected = False
            unusable = self._unusable(err)
            if unusable is not None:
                raise unusable
            said = err.strip()[-300:] or f"adb exited with status {res.returncode}"
            raise ConnectionLost(
                f"{self.label}: the connection to the phone dropped while running "
                f"{command[:100]!r}: its output ended before the command's exit status ({said})"
            )
        return CommandResult(
            argv=argv or (command,),
            returncode=int(end.group(1)),
            stdout=out[: end.start()],
            stderr=err,
            wall_s=time.perf_counter() - t0,
        )

    def _kill_from_pidfile(self, pidfile: str) -> None:
        q = shlex.quote(pidfile)
        try:
            self._adb(["shell", f"kill -9 $(cat {q}) 2>/dev/null; rm -f {q}"], 10.0)
        except CommandTimeout:
            log.warning("%s: could not kill the timed-out command", self.label)

    def _transfer(self, args: list[str], what: str, timeout_s: float) -> None:
        self.connect()
        res = self._adb(args, timeout_s)
        text = (res.stderr + res.stdout).decode("utf-8", "replace").strip()
        if res.returncode == 0:
            return
        if _is_enospc(text):
            raise RemoteDiskFull(f"{self.label}: {what}: remote disk full: {text[-300:]}")
        unusable = self._unusable(text)
        if unusable is not None:
            self._connected = False
            raise unusable
        if self._gone(text) or not self._still_there():
            self._connected = False
            raise ConnectionLost(f"{self.label}: {what}: {text[-300:]}")
        raise DeviceError(f"{self.label}: {what} failed: {text[-300:]}")

    def _still_there(self) -> bool:
        """Whether adb still sees the phone (``get-state``), after a failure adb did not explain."""
        try:
            res = self._adb(["get-state"], self.connect_timeout_s)
        except CommandTimeout:
            return False
        return res.returncode == 0 and res.stdout.decode(errors="replace").strip() == "device"

    def push(self, local: str | os.PathLike[str], remote: str, timeout_s: float = 300.0) -> None:
        self._transfer(["push", str(local), remote], f"push {local} -> {remote}", timeout_s)

    def pull(self, remote: str, local: str | os.PathLike[str], timeout_s: float = 300.0) -> None:
        self._transfer(["pull", remote, str(local)], f"pull {remote}", timeout_s)
