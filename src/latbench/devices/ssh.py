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
    timeout_s = 120                 # per model

How it works: one SSH connection (paramiko) per device. On first use latbench creates a
temporary directory on the board (``mktemp -d``), copies the agent
(:mod:`latbench.devices.agent`) and the standard-library measurement modules into it over SFTP,
and starts ``python agent.py serve`` on one channel. Each model is then pushed (SFTP), measured by
the agent with the same harness as local runs (JSON request and reply on the channel), and its
remote file removed; the connection and the agent serve every model. ``close()`` stops the agent
and deletes the directory.

Faults: a dropped connection, a hung run (killed through the agent's process id after
``timeout_s``), a full remote disk or a crashed agent each give a failed record for that model
(``harness["failure"]`` says which); the next model reconnects (retrying for
``reconnect_timeout_s``) and restarts the agent as needed.
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
from latbench.devices._config import number
from latbench.devices.base import DEVICES, Device, ModelRef
from latbench.devices.remote import check_args, failed_record, file_sha256, settings_from
from latbench.devices.transports import (
    CommandTimeout,
    ConnectionLost,
    RemoteDiskFull,
    SSHTransport,
)
from latbench.errors import ConfigError, DeviceError, ParseError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement

__all__ = ["AgentDied", "SSHDevice", "agent_bundle"]

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


class AgentDied(DeviceError):
    """The on-device agent process exited (crash, kill) while the connection stayed up."""


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
    config_keys = SSHTransport.config_keys | {"python", "runtime", "workdir", "reconnect_timeout_s"}

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.transport = SSHTransport(self.config, label=f"{name} (ssh)")
        self.python = str(self.config.get("python", "python3"))
        package = str(self.config.get("runtime", "onnxruntime"))
        if package not in RUNTIME_PACKAGES:
            raise ConfigError(
                f"device {name!r}: runtime = {package!r}; expected one of "
                f"{', '.join(sorted(RUNTIME_PACKAGES))}"
            )
        self.runtime_package = package
        self.default_runtime = RUNTIME_PACKAGES[package]
        cpus = self.config.get("cpus")
        if isinstance(cpus, list):
            cpus = ",".join(str(c) for c in cpus)
        self.cpus = str(cpus).replace(" ", "") if cpus not in (None, "") else ""
        if self.cpus and not all(p.isdigit() for p in self.cpus.split(",")):
            raise ConfigError(f"device {name!r}: cpus = {cpus!r}; expected e.g. '2,3' or [2, 3]")
        self.workdir = str(self.config.get("workdir", "/tmp"))
        where = f"device {name!r}"
        self.timeout_s = number(self.config, "timeout_s", None, where=where, minimum=0)
        self.reconnect_timeout_s = number(
            self.config, "reconnect_timeout_s", 30.0, where=where, minimum=0
        )
        self._dir: str | None = None
        self._bundle_ok = False
        self._stale_dirs: list[str] = []
        self._agent: _AgentChannel | None = None
        self._describe: dict[str, Any] | None = None
        self._fingerprint: str | None = None
        self._lock = threading.RLock()
        self.reconnects = 0

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
        if self._stale_dirs:
            stale = self._stale_dirs
            self._stale_dirs = []
            try:
                self.transport.run(["rm", "-rf", *stale], timeout_s=30.0)
            except DeviceError as exc:
                log.warning("%s: could not remove stale %s: %s", self.name, stale, exc)

    def _ensure_dir(self) -> str:
        self._connect()
        if self._dir is None:
            res = self.transport.run(
                ["mktemp", "-d", f"{self.workdir.rstrip('/')}/latbench-XXXXXX"], timeout_s=30.0
            ).check(f"{self.name}: creating a temporary directory in {self.workdir}")
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
        cmd = f"cd {shlex.quote(remote)} && exec {' '.join(shlex.quote(a) for a in argv)}"
        agent = _AgentChannel(self.transport.open_channel(cmd), self.transport)
        try:
            hello = agent.readline(timeout_s=60.0)
        except AgentDied as exc:
            raise DeviceError(
                f"{self.name}: the agent did not start with {self.python!r} on the board: {exc}; "
                "expected python = a Python 3.11+ interpreter with the runtime installed"
            ) from None
        agent.pid = int(hello.get("hello", 0)) or None
        agent.hello = hello
        self._agent = agent
        return agent

    def _kill_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent is None:
            return
        if agent.pid and self.transport.connected:
            try:
                self.transport.run(["kill", "-9", str(agent.pid)], timeout_s=10.0)
            except DeviceError as exc:
                log.warning("%s: could not kill agent %s: %s", self.name, agent.pid, exc)
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
        s = settings_from(settings, self.config)
        timeout = float(self.timeout_s) if self.timeout_s else s.timeout_s
        fp = self._fingerprint or ""
        t0 = time.perf_counter()
        push_s = 0.0

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
                reply = agent_ch.request(request, timeout_s=timeout)
                remote_model = None  # the agent removed it
            except RemoteDiskFull as exc:
                return fail(str(exc), "disk_full")
            except CommandTimeout:
                self._kill_agent()
                return fail(f"timed out after {timeout:g} s; the agent was killed", "timeout")
            except ConnectionLost as exc:
                self._drop_connection()
                return fail(f"connection lost: {exc}", "transport")
            except AgentDied as exc:
                self._kill_agent()
                return fail(f"the agent crashed: {exc}", "crashed")
            finally:
                if remote_model is not None and self.transport.connected:
                    self.transport.remove(remote_model)
        if not reply.get("ok"):
            error = str(reply.get("error", "unknown agent error"))
            if reply.get("type") == "TruncatedModel":
                # SFTP pipelines writes, so a failed write can go unreported: the agent checks
                free = self.transport.free_kib(self._dir or self.workdir)
                if free is not None and free <= path.stat().st_size // 1024 + 4:
                    return fail(f"remote disk full ({free} KiB free): {error}", "disk_full")
                return fail(error, "transport")
            return fail(error, "model")
        record = reply["measurement"]
        for key in agent.PACKED_FIELDS:
            record[key] = agent.unpack_floats(record.get(key, []))
        m = Measurement.from_dict(record)
        wall = time.perf_counter() - t0
        harness = dict(m.harness)
        harness["remote"] = {
            "transport": "ssh",
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
