"""``ssh``: a Raspberry Pi (or any Linux board) measured over SSH by an on-device agent.

bench.toml::

    [devices.pi4]
    transport = "ssh"
    host = "pi4.local"
    user = "pi"
    key = "~/.ssh/id_ed25519"
    python = "python3"              # the board's Python (with the runtime installed)
    runtime = "tflite_runtime"      # or "ai_edge_litert" / "onnxruntime": what the board has
    cpus = "2,3"                    # optional: pin the agent (big cores, away from IRQs)
    workdir = "/tmp"                # where the temporary directory goes
    timeout_s = 120                 # per model (a --timeout on the command line goes over it)
    startup_timeout_s = 30          # how long the agent may take to start

How it works: one SSH connection (paramiko) per device. On first use latbench creates a
temporary directory on the board (``mktemp -d``), copies the agent
(:mod:`latbench.devices.agent`) and the standard-library measurement modules into it over SFTP,
and starts ``python agent.py serve`` on one channel. Each model is then pushed (SFTP), measured by
the agent with the same harness as local runs (JSON request and reply on the channel), and its
remote file removed; the connection and the agent serve every model. ``close()`` stops the agent
and deletes the directory.

Faults: a dropped connection, a board that stops answering (no reply within the per-model
timeout, at least ``connect_timeout_s``), a hung run (killed through the agent's process id after
``timeout_s``), a full remote disk or a crashed agent each give a failed record for that model
(``harness["failure"]`` says which); the next model reconnects (retrying for
``reconnect_timeout_s``) and restarts the agent as needed. A board that cannot measure anything
(authentication refused, a ``key`` that is not a private key, the agent does not start with
``python`` or within ``startup_timeout_s``, the runtime is not installed there, ``workdir`` is
unusable, ``cpus`` the board does not have) gives a failed record of kind ``"device"``: the
device's fault, not the model's.

Temporary directories of earlier runs whose connection dropped (so that ``close()`` could not
delete them) are removed on the next connection, once their agent is gone and they have been
left untouched for :data:`STALE_DIR_MINUTES` minutes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import shlex
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import latbench
from latbench.devices import agent, parsers
from latbench.devices._config import format_cpu_list, number, parse_cpu_list, text
from latbench.devices.base import DEVICES, Device, ModelRef
from latbench.devices.remote import check_args, failed_record, file_sha256, settings_from
from latbench.devices.transports import (
    CommandTimeout,
    ConnectFailed,
    ConnectionLost,
    RemoteCommandError,
    RemoteDiskFull,
    SSHTransport,
)
from latbench.errors import ConfigError, DeviceError, ParseError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement

__all__ = ["AgentDied", "DeviceFault", "SSHDevice", "agent_bundle"]

log = logging.getLogger(__name__)

#: ``runtime`` values of bench.toml -> the latbench runtime they serve
RUNTIME_PACKAGES = {
    "tflite_runtime": "litert",
    "ai_edge_litert": "litert",
    "litert": "litert",
    "onnxruntime": "onnxruntime",
    "torch": "torch",
}

#: modules of latbench the agent needs, relative to the package root (all standard library)
AGENT_MODULES = (
    "errors.py",
    "_registry.py",
    "profilers/__init__.py",
    "profilers/stats.py",
    "profilers/harness.py",
    "profilers/record.py",
    "profilers/env.py",
    "profilers/counters.py",
    "profilers/runtimes.py",
    "profilers/task.py",
)


#: a board's temporary directory without a live agent, untouched this long, is stale
STALE_DIR_MINUTES = 5

#: what to install on the board for a latbench runtime
BOARD_PACKAGES = {
    "litert": "pip install tflite-runtime (or ai-edge-litert)",
    "onnxruntime": "pip install onnxruntime",
    "torch": "pip install torch",
}


class AgentDied(DeviceError):
    """The on-device agent process exited (crash, kill) while the connection stayed up."""


class DeviceFault(DeviceError):
    """The board cannot measure anything until its setup is fixed (see ``"device"`` failures)."""


def agent_bundle() -> dict[str, bytes]:
    """The files to copy to the board: ``{relative path: content}``."""
    root = Path(latbench.__file__).resolve().parent
    files = {"agent.py": (root / "devices" / "agent.py").read_bytes()}
    files["latbench/__init__.py"] = f'__version__ = "{latbench.__version__}"\n'.encode()
    for rel in AGENT_MODULES:
        files[f"latbench/{rel}"] = (root / rel).read_bytes()
    return files


class _AgentChannel:
    """The JSON-lines conversation with one running agent over one SSH channel."""

    def __init__(self, chan: Any, transport: SSHTransport) -> None:
        self.chan = chan
        self.transport = transport
        self._buf = bytearray()
        self._err = bytearray()
        self.pid: int | None = None
        self.shell_pid: int | None = None  # printed by the shell before it execs the agent
        self.hello: dict[str, Any] = {}

    def _drain_stderr(self) -> None:
        while self.chan.recv_stderr_ready():
            self._err += self.chan.recv_stderr(65536)
        del self._err[:-4000]

    @property
    def stderr_tail(self) -> str:
        self._drain_stderr()
        return self._err.decode("utf-8", "replace").strip()[-800:]

    def readline(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                if line.startswith(b"latbench-agent-pid "):
                    with contextlib.suppress(ValueError):
                        self.shell_pid = int(line.split()[1])
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    log.debug("agent said: %s", line[:200])
                    continue
                if isinstance(obj, dict):
                    return obj
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandTimeout(f"no reply from the agent within {timeout_s:g} s")
            ready, _, _ = select.select([self.chan], [], [], min(remaining, 1.0))
            self._drain_stderr()
            if ready:
                data = self.chan.recv(65536)
                if data:
                    self._buf += data
                    continue
                if not self.transport.connected:
                    raise ConnectionLost(f"{self.transport.label}: connection dropped")
                status = self.chan.recv_exit_status() if self.chan.exit_status_ready() else None
                raise AgentDied(
                    f"the agent exited (status {status})"
                    + (f": {self.stderr_tail}" if self.stderr_tail else "")
                )
            if not self.transport.connected:
                raise ConnectionLost(f"{self.transport.label}: connection dropped")

    def send(self, obj: Mapping[str, Any]) -> None:
        self.chan.sendall((json.dumps(obj) + "\n").encode())

    def request(self, obj: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        try:
            self.send(obj)
        except TimeoutError:
            self.transport.close()
            raise ConnectionLost(
                f"{self.transport.label}: the board accepted no request for "
                f"{self.transport.io_timeout_s:g} s; the connection was closed"
            ) from None
        except OSError as exc:
            if not self.transport.connected:
                raise ConnectionLost(f"{self.transport.label}: connection dropped: {exc}") from None
            raise AgentDied(f"cannot write to the agent: {exc}") from None
        return self.readline(timeout_s)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send({"op": "quit"})
        self.chan.close()


@DEVICES.register("ssh")
class SSHDevice(Device):
    """A Linux board over SSH (see the module docstring for the bench.toml keys)."""

    kind = "ssh"
    config_keys = SSHTransport.config_keys | {
        "python",
        "runtime",
        "workdir",
        "reconnect_timeout_s",
        "startup_timeout_s",
    }

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        where = f"device {name!r}"
        self.python = text(
            self.config, "python", "python3", where=where, what="the board's Python (a command)"
        )
        package = text(
            self.config,
            "runtime",
            "onnxruntime",
            where=where,
            what=f"one of {', '.join(sorted(RUNTIME_PACKAGES))}",
        )
        if package not in RUNTIME_PACKAGES:
            raise ConfigError(
                f"device {name!r}: runtime = {package!r}; expected one of "
                f"{', '.join(sorted(RUNTIME_PACKAGES))}"
            )
        self.runtime_package = package
        self.default_runtime = RUNTIME_PACKAGES[package]
        self._cpus_given = self.config.get("cpus")
        ids = parse_cpu_list(self._cpus_given, where=where)
        self.cpus = ",".join(str(i) for i in ids) if ids else ""
        self.workdir = text(
            self.config, "workdir", "/tmp", where=where, what="a directory on the board"
        )
        self.timeout_s = number(self.config, "timeout_s", None, where=where, positive=True)
        self.reconnect_timeout_s = number(
            self.config, "reconnect_timeout_s", 30.0, where=where, minimum=0
        )
        self.startup_timeout_s = number(
            self.config, "startup_timeout_s", 30.0, where=where, positive=True
        )
        self.transport = SSHTransport(self.config, label=f"{name} (ssh)", where=where)
        self._dir: str | None = None
        self._bundle_ok = False
        self._stale_dirs: list[str] = []
        self._agent: _AgentChannel | None = None
        self._describe: dict[str, Any] | None = None
        self._fingerprint: str | None = None
        self._lock = threading.RLock()
        self.reconnects = 0

    @property
    def table_runtime(self) -> str | None:
        """The latbench runtime the device table's ``runtime`` names (None: not set)."""
        return self.default_runtime if "runtime" in self.config else None

    # ---- connection and agent -------------------------------------------------------------
    def _connect(self) -> None:
        if self.transport.connected:
            return
        if self._dir is not None:  # the link dropped: the old directory is stale
            self._stale_dirs.append(self._dir)
            self._dir = None
            self._bundle_ok = False
            self._agent = None
            self.reconnects += 1
            self.transport.reconnect(timeout_s=self.reconnect_timeout_s)
        else:
            self.transport.connect()
            self._remove_abandoned_dirs()
        if self._stale_dirs:
            stale = self._stale_dirs
            self._stale_dirs = []
            try:
                self.transport.run(["rm", "-rf", *stale], timeout_s=30.0)
            except DeviceError as exc:
                log.warning("%s: could not remove stale %s: %s", self.name, stale, exc)

    def _remove_abandoned_dirs(self) -> None:
        """Remove latbench directories of earlier runs whose connection dropped before their
        ``close()``: no live agent (``agent.pid``) and untouched for STALE_DIR_MINUTES."""
        base = shlex.quote(self.workdir.rstrip("/") or "/")
        script = (
            f"for d in {base}/latbench-??????; do "
            '[ -f "$d/agent.py" ] || continue; '
            'p=$(cat "$d/agent.pid" 2>/dev/null); '
            '[ -n "$p" ] && kill -0 "$p" 2>/dev/null && continue; '
            f'[ -n "$(find "$d" -maxdepth 0 -mmin +{STALE_DIR_MINUTES} 2>/dev/null)" ] '
            '|| continue; rm -rf "$d" && echo "$d"; done'
        )
        try:
            res = self.transport.run_shell(script, timeout_s=30.0)
        except (ConnectionLost, CommandTimeout):
            raise
        except DeviceError as exc:
            log.warning("%s: could not look for stale directories: %s", self.name, exc)
            return
        removed = res.stdout.split()
        if removed:
            log.info("%s: removed stale directories of earlier runs: %s", self.name, removed)

    def _ensure_dir(self) -> str:
        self._connect()
        if self._dir is None:
            try:
                res = self.transport.run(
                    ["mktemp", "-d", f"{self.workdir.rstrip('/')}/latbench-XXXXXX"],
                    timeout_s=30.0,
                ).check(f"creating a temporary directory in {self.workdir}")
            except RemoteCommandError as exc:
                raise DeviceFault(
                    f"device {self.name!r}: workdir = {self.workdir!r} is not usable on the "
                    f"board ({exc}); expected a writable directory there"
                ) from None
            remote = res.stdout.strip()
            self._dir = remote  # from here on, close() removes it
            for sub in ("latbench", "latbench/profilers"):
                self.transport.mkdir(f"{remote}/{sub}")
            for rel, data in agent_bundle().items():
                self.transport.push_bytes(data, f"{remote}/{rel}")
            self._bundle_ok = True
        return self._dir

    def _ensure_agent(self) -> _AgentChannel:
        remote = self._ensure_dir()
        if not self._bundle_ok:  # an earlier copy failed half-way (e.g. disk full): redo it
            for rel, data in agent_bundle().items():
                self.transport.push_bytes(data, f"{remote}/{rel}")
            self._bundle_ok = True
        if self._agent is not None and not self._agent.chan.closed:
            return self._agent
        argv = [self.python, "-u", "agent.py", "serve", "--version", latbench.__version__]
        if self.cpus:
            argv += ["--cpus", self.cpus]
        # the shell records and prints its pid before it execs the agent (the pid stays), so a
        # start-up that hangs can be killed and a later run can tell a live directory
        cmd = (
            f"cd {shlex.quote(remote)} && echo $$ > agent.pid && echo latbench-agent-pid $$ && "
            f"exec {' '.join(shlex.quote(a) for a in argv)}"
        )
        agent = _AgentChannel(self.transport.open_channel(cmd), self.transport)
        try:
            hello = agent.readline(timeout_s=self.startup_timeout_s)
        except CommandTimeout:
            self._kill_pid(agent.shell_pid)
            agent.chan.close()
            raise DeviceFault(
                f"device {self.name!r}: the agent did not start within "
                f"{self.startup_timeout_s:g} s (startup_timeout_s) with python = "
                f"{self.python!r}; it was "
                + ("killed on the board" if agent.shell_pid else "abandoned (no process id)")
                + "; expected a Python 3.11+ interpreter that starts promptly"
            ) from None
        except AgentDied as exc:
            agent.chan.close()
            raise DeviceFault(
                f"device {self.name!r}: the agent did not start with python = {self.python!r} "
                f"on the board: {exc}; expected python = a Python 3.11+ interpreter with the "
                "runtime installed"
            ) from None
        if "hello" not in hello:
            agent.chan.close()
            if hello.get("type") == "BadCpus":
                have = format_cpu_list(int(c) for c in hello.get("available") or [])
                raise DeviceFault(
                    f"device {self.name!r}: cpus {self._cpus_given!r} does not fit the board: "
                    f"{hello.get('error')}; the board has CPUs {have or '?'}"
                )
            raise DeviceFault(
                f"device {self.name!r}: the agent started with an unexpected line {hello!r}"
            )
        agent.pid = int(hello.get("hello", 0)) or None
        agent.hello = hello
        self._agent = agent
        return agent

    def _kill_pid(self, pid: int | None) -> None:
        if not pid or not self.transport.connected:
            return
        try:
            self.transport.run(["kill", "-9", str(pid)], timeout_s=10.0)
        except DeviceError as exc:
            log.warning("%s: could not kill agent %s: %s", self.name, pid, exc)

    def _kill_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent is None:
            return
        self._kill_pid(agent.pid or agent.shell_pid)
        agent.chan.close()

    def _drop_connection(self) -> None:
        self._agent = None
        self.transport.close()

    # ---- the contract ---------------------------------------------------------------------
    def measure(
        self,
        model: ModelRef,
        *,
        runtime: str | None = None,
        threads: int | None = 1,
        batch: int | None = None,
        settings: HarnessSettings | None = None,
        per_op: bool = False,
        counters: bool = False,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Measurement:
        rt = runtime or self.default_runtime
        path = check_args(self.name, model, rt, threads, batch)
        # the settings' timeout: given settings (the command line over the device table, see
        # Config.measure_for) win; without settings those of the device table apply
        s = settings_from(settings, self.config)
        timeout = float(s.timeout_s)
        fp = self._fingerprint or ""
        t0 = time.perf_counter()
        push_s = 0.0
        stage = "setup"

        def fail(error: str, kind: str) -> Measurement:
            return failed_record(
                f"{self.name}: {error}",
                kind,
                device=self.name,
                fingerprint=fp,
                model=str(path),
                runtime=rt,
                threads=threads,
                batch=batch,
                settings=s,
                wall_s=time.perf_counter() - t0,
            )

        with self._lock:
            remote_model: str | None = None
            try:
                agent_ch = self._ensure_agent()
                if self._fingerprint is None:
                    self._describe_raw()
                    fp = self.fingerprint()
                assert self._dir is not None
                stage = "push"
                # a board silent for longer than a model may run is given up on
                self.transport.io_timeout_s = max(timeout, float(self.transport.connect_timeout_s))
                remote_model = f"{self._dir}/m-{file_sha256(path)[:16]}{path.suffix}"
                t_push = time.perf_counter()
                self.transport.push(path, remote_model)
                push_s = time.perf_counter() - t_push
                request = {
                    "op": "measure",
                    "model": remote_model,
                    "runtime": rt,
                    "threads": threads,
                    "batch": batch,
                    "settings": s.to_dict(),
                    "per_op": per_op,
                    "counters": counters,
                    "options": dict(options or {}),
                    "seed": seed,
                    "device": self.name,
                    "device_fingerprint": fp,
                    "remove_model": True,
                    "model_bytes": path.stat().st_size,
                }
                stage = "run"
                reply = agent_ch.request(request, timeout_s=timeout)
                remote_model = None  # the agent removed it
            except RemoteDiskFull as exc:
                return fail(str(exc), "disk_full")
            except CommandTimeout as exc:
                self._kill_agent()
                if stage != "run":
                    return fail(f"the board did not answer while setting up: {exc}", "device")
                return fail(f"timed out after {timeout:g} s; the agent was killed", "timeout")
            except ConnectionLost as exc:
                self._drop_connection()
                lost = "" if isinstance(exc, ConnectFailed) else "connection lost: "
                return fail(f"{lost}{exc}", "transport")
            except AgentDied as exc:
                self._kill_agent()
                return fail(f"the agent crashed: {exc}", "crashed")
            except DeviceError as exc:  # authentication, agent start-up, workdir, cpus, ...
                return fail(str(exc), "device")
            finally:
                if remote_model is not None and self.transport.connected:
                    with contextlib.suppress(DeviceError):
                        self.transport.remove(remote_model)
        if not reply.get("ok"):
            error = str(reply.get("error", "unknown agent error"))
            if reply.get("type") == "TruncatedModel":
                # SFTP pipelines writes, so a failed write can go unreported: the agent checks
                free = self.transport.free_kib(self._dir or self.workdir)
                if free is not None and free <= path.stat().st_size // 1024 + 4:
                    return fail(f"remote disk full ({free} KiB free): {error}", "disk_full")
                return fail(error, "transport")
            if reply.get("type") == "RuntimeNotInstalledError":
                # the host-side advice (pip install 'latbench[...]') does not apply on a board
                why = error.split("; install it with:")[0]
                return fail(
                    f"the runtime {rt!r} is not installed for python = {self.python!r} on the "
                    f"board ({why}); install it there ({BOARD_PACKAGES.get(rt, 'pip install')}) "
                    "or set python / runtime in the device table to what the board has",
                    "device",
                )
            return fail(error, "model")
        record = reply.get("measurement")
        try:
            if not isinstance(record, dict):
                raise ValueError(
                    f"measurement = {str(record)[:60]!r}; expected an object (a record)"
                )
            for key in agent.PACKED_FIELDS:
                record[key] = agent.unpack_floats(record.get(key, []))
            m = Measurement.from_dict(record)
        except (ValueError, TypeError, KeyError) as exc:  # a non-finite sample, a missing field
            return fail(f"the board's agent sent an invalid measurement: {exc}", "device")
        wall = time.perf_counter() - t0
        harness = dict(m.harness)
        harness["remote"] = {
            "transport": "ssh",
            "host": self.transport.host,
            "port": self.transport.port,
            "push_s": push_s,
            "agent_s": reply.get("agent_s"),
            "round_trip_s": wall,
            "overhead_s": wall - float(harness.get("elapsed_s", 0.0)),
            "python": self._agent.hello.get("python") if self._agent else None,
        }
        return m.with_(model_path=str(path), wall_s=wall, harness=harness)

    def describe(self) -> dict[str, Any]:
        """The board's descriptor: CPU, governor, frequencies, temperatures, throttling."""
        if self._describe is not None:
            return dict(self._describe)
        with self._lock:
            try:
                return self._describe_raw()
            except (ConnectionLost, AgentDied, CommandTimeout) as exc:
                self._kill_agent()
                raise DeviceError(f"{self.name}: cannot describe the board: {exc}") from None

    def _describe_raw(self) -> dict[str, Any]:
        reply = self._ensure_agent().request({"op": "describe"}, timeout_s=60.0)
        if not reply.get("ok"):
            raise DeviceError(f"{self.name}: the agent could not describe the board: {reply}")
        desc: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "host": self.transport.host,
            "runtime_package": self.runtime_package,
            **reply["describe"],
        }
        raw = desc.get("vcgencmd_get_throttled")
        if isinstance(raw, str):
            try:
                desc["throttled"] = parsers.parse_vcgencmd_throttled(raw)
            except ParseError as exc:
                desc["throttled"] = {"unavailable": str(exc)}
        self._describe = desc
        return dict(desc)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = super().fingerprint()
        return self._fingerprint

    def close(self) -> None:
        """Stop the agent, delete the remote directory, close the connection. Idempotent."""
        with self._lock:
            if self._agent is not None:
                self._agent.close()
                self._agent = None
            dirs = [*self._stale_dirs, *([self._dir] if self._dir else [])]
            if dirs and self.transport.connected:
                try:
                    self.transport.run(["rm", "-rf", *dirs], timeout_s=30.0)
                except DeviceError as exc:
                    log.warning("%s: could not remove %s: %s", self.name, dirs, exc)
            self._dir = None
            self._stale_dirs = []
            self.transport.close()

    @property
    def remote_dir(self) -> str | None:
        """The board's temporary directory while connected (None before first use)."""
        return self._dir
