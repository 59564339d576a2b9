"""``adb``: an Android phone measured with LiteRT's ``benchmark_model`` over the real adb client.

bench.toml::

    [devices.phone1]
    transport = "adb"
    serial = "18091FDF6001XR"                  # adb devices
    benchmark_binary = "~/bin/android_aarch64_benchmark_model"
    cpus = "4-7"                               # pin with taskset (the big cores)
    cooldown_s = 30                            # rest before each model (thermal recovery)
    rounds = 3                                 # benchmark_model invocations per model
    extra_args = ["--use_xnnpack=true"]        # passed to benchmark_model as is
    # adb = "/path/to/adb"; server = "tcp:127.0.0.1:5037"; remote_dir = "/data/local/tmp/latbench"

How a model is measured: the binary is pushed once per connection; the model is pushed, then
``taskset MASK benchmark_model --graph=... --num_threads=T --warmup_runs=... --num_runs=...
--min_secs=... --max_secs=...`` runs ``rounds`` times (each round a separate process, so one
bad round is visible) and every output is parsed by
:func:`latbench.devices.parsers.parse_benchmark_model`. ``benchmark_model`` reports summary
statistics, not per-run times, so each round contributes one sample: the mean of its ``count``
timed runs (``loops`` in the record is the smallest ``count``); every round's full statistics
(min, max, std, percentiles, warm-up, init, memory, delegates and fallback lines) are kept in
``harness["rounds"]``. The environment (cpufreq, thermal zones, battery) is read before and
after, and the model file is removed afterwards.

Faults: a phone that disappears (``adb`` reports it missing, or a command's output ends before
its exit status), a run past ``timeout_s`` (killed on the phone through its pid file), a
``benchmark_model`` that exits non-zero (its output is never used: a run killed after its warm-up
has printed only the warm-up's numbers) or a full ``/data`` give a failed record for that model;
the next model waits up to ``reconnect_timeout_s`` for the phone to come back. A phone that cannot
measure anything -- not authorized for USB debugging, ``remote_dir`` unusable, ``cpus`` it does
not have, a ``benchmark_binary`` it cannot execute (another ABI) -- or one that stops answering
outside the benchmark run gives a failed record of kind ``"device"``.
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from latbench.devices import parsers
from latbench.devices._config import format_cpu_list, number, parse_cpu_list, text
from latbench.devices.base import DEVICES, Device, ModelRef
from latbench.devices.remote import check_args, failed_record, file_sha256, settings_from
from latbench.devices.transports import (
    AdbTransport,
    CommandResult,
    CommandTimeout,
    ConnectionLost,
    RemoteCommandError,
    RemoteDiskFull,
    quote_argv,
)
from latbench.errors import ConfigError, DeviceError, ParseError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement

__all__ = ["AdbDevice", "PhoneFault", "cpu_mask"]

log = logging.getLogger(__name__)

CPUFREQ_SH = (
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do f=$c/cpufreq; "
    'echo "${c##*/} $(cat $f/scaling_governor 2>/dev/null || echo -) '
    "$(cat $f/scaling_cur_freq 2>/dev/null || echo -) "
    "$(cat $f/cpuinfo_min_freq 2>/dev/null || echo -) "
    '$(cat $f/cpuinfo_max_freq 2>/dev/null || echo -)"; done'
)
THERMAL_SH = (
    "for z in /sys/class/thermal/thermal_zone*; do [ -e $z/temp ] || continue; "
    'echo "${z##*/} $(cat $z/type 2>/dev/null | tr " " _) $(cat $z/temp 2>/dev/null || echo -)"; '
    "done"
)
GETPROP_KEYS = {
    "ro.product.model": "model",
    "ro.product.manufacturer": "manufacturer",
    "ro.board.platform": "soc",
    "ro.soc.model": "soc_model",
    "ro.hardware": "board",
    "ro.build.version.release": "android_release",
    "ro.build.version.sdk": "android_sdk",
    "ro.product.cpu.abi": "abi",
    "ro.serialno": "serial",
    "ro.build.fingerprint": "build_fingerprint",
}


def cpu_mask(cpus: Any, where: str = "adb device") -> str | None:
    """``"4-7"``, ``"4,5"``, ``[4, 5]`` -> the hex mask ``taskset`` takes (``"f0"``).

    A reversed (``"7-4"``) or open (``"4-"``) range is a ConfigError naming ``where``.
    """
    ids = parse_cpu_list(cpus, where=where)
    if not ids:
        return None
    return format(sum(1 << i for i in ids), "x")


_TASKSET_FAILED = re.compile(r"taskset:.*(affinity|invalid|mask)", re.IGNORECASE)


class PhoneFault(DeviceError):
    """The phone cannot measure anything until its setup is fixed (a ``"device"`` failure)."""


@DEVICES.register("adb")
class AdbDevice(Device):
    """An Android phone over adb (see the module docstring for the bench.toml keys)."""

    kind = "adb"
    #: the one runtime benchmark_model runs (what collection and descriptors emit for)
    default_runtime = "litert"
    table_runtime = "litert"
    #: seconds a command other than the benchmark run (mkdir, getprop, dumpsys, rm) may take
    command_timeout_s = 30.0
    config_keys = AdbTransport.config_keys | {
        "benchmark_binary",
        "benchmark_version",
        "cooldown_s",
        "extra_args",
        "reconnect_timeout_s",
        "remote_dir",
        "rounds",
    }

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        where = f"device {name!r}"
        self.transport = AdbTransport(self.config, label=f"{name} (adb)", where=where)
        binary = text(
            self.config, "benchmark_binary", None, where=where, what="the path of benchmark_model"
        )
        self.benchmark_binary = Path(binary).expanduser() if binary else None
        self.remote_dir = text(
            self.config,
            "remote_dir",
            "/data/local/tmp/latbench",
            where=where,
            what="a directory on the phone",
        ).rstrip("/")
        if not self.remote_dir.startswith("/"):
            raise ConfigError(
                f"{where}: remote_dir = {self.config.get('remote_dir')!r}; expected an absolute "
                "directory on the phone such as '/data/local/tmp/latbench'"
            )
        text(self.config, "benchmark_version", None, where=where, what="a version label")
        self.cpu_ids = parse_cpu_list(self.config.get("cpus"), where=where)
        self.mask = cpu_mask(self.config.get("cpus"), where)
        self.cooldown_s = number(self.config, "cooldown_s", 0.0, where=where, minimum=0)
        self.rounds = number(self.config, "rounds", 3, where=where, integer=True, minimum=1)
        extra = self.config.get("extra_args", [])
        if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
            raise ConfigError(f"device {name!r}: extra_args = {extra!r}; expected a string list")
        self.extra_args: list[str] = extra
        self.timeout_s = number(self.config, "timeout_s", None, where=where, positive=True)
        self.reconnect_timeout_s = number(
            self.config, "reconnect_timeout_s", 60.0, where=where, minimum=0
        )
        self._binary_pushed = False
        self._pushed: set[str] = set()  # the model files this device put on the phone
        self._was_connected = False
        self._describe: dict[str, Any] | None = None
        self._fingerprint: str | None = None
        self._lock = threading.RLock()
        self.reconnects = 0

    # ---- transport helpers ----------------------------------------------------------------
    @property
    def remote_binary(self) -> str:
        return f"{self.remote_dir}/benchmark_model"

    def _ready(self) -> None:
        """Connect (waiting for a phone that went away) and push the benchmark binary once."""
        if not self.transport.connected:
            if self._was_connected:
                self.reconnects += 1
                self._binary_pushed = False
                self.transport.reconnect(timeout_s=self.reconnect_timeout_s)
            else:
                self.transport.connect()
            self._was_connected = True
        if not self._binary_pushed:
            if self.benchmark_binary is None or not self.benchmark_binary.is_file():
                raise ConfigError(
                    f"device {self.name!r}: benchmark_binary = "
                    f"{str(self.benchmark_binary) if self.benchmark_binary else None!r}; expected "
                    "LiteRT's benchmark_model for the phone's ABI (see docs/devices.md)"
                )
            self._check_cpus()
            try:
                self.transport.run(
                    ["mkdir", "-p", self.remote_dir], timeout_s=self.command_timeout_s
                ).check(f"mkdir {self.remote_dir}")
                self.transport.push(self.benchmark_binary, self.remote_binary)
                self.transport.run(
                    ["chmod", "755", self.remote_binary], timeout_s=self.command_timeout_s
                ).check(f"chmod 755 {self.remote_binary}")
            except RemoteCommandError as exc:
                raise PhoneFault(
                    f"device {self.name!r}: remote_dir = {self.remote_dir!r} is not usable on "
                    f"the phone ({exc}); expected a writable directory such as "
                    "'/data/local/tmp/latbench'"
                ) from None
            except (RemoteDiskFull, ConnectionLost, CommandTimeout):
                raise
            except DeviceError as exc:  # the push itself was refused (not disk full, not gone)
                raise PhoneFault(
                    f"device {self.name!r}: cannot copy benchmark_binary to {self.remote_binary!r}"
                    f" on the phone: {exc}"
                ) from None
            self._binary_pushed = True

    def _phone_cpus(self) -> list[int] | None:
        """The phone's CPU ids (``/sys/devices/system/cpu/present``); None when unknown."""
        res = self.transport.run(
            ["cat", "/sys/devices/system/cpu/present"], timeout_s=self.command_timeout_s
        )
        if res.returncode != 0:
            return None
        try:
            return parse_cpu_list(res.stdout.strip(), where=self.name)
        except ConfigError:
            return None

    def _check_cpus(self) -> None:
        """``cpus`` the phone does not have is the table's fault, said before any model runs."""
        if not self.cpu_ids:
            return
        have = self._phone_cpus()
        if have is not None and not set(self.cpu_ids) <= set(have):
            raise PhoneFault(
                f"device {self.name!r}: cpus {self.config.get('cpus')!r} names CPU(s) "
                f"{format_cpu_list(set(self.cpu_ids) - set(have))} the phone does not have; "
                f"the phone has CPUs {format_cpu_list(have)}"
            )

    def _shell_text(self, command: str) -> str:
        return self.transport.run_shell(command, timeout_s=self.command_timeout_s).stdout

    def _snapshot(self) -> dict[str, Any]:
        """Momentary state: per-CPU governor and frequencies, thermal zones."""
        cpus = parsers.parse_cpufreq_table(self._shell_text(CPUFREQ_SH))
        env: dict[str, Any] = {
            "cpufreq": cpus,
            "cpu_cur_freq_khz": {
                k.removeprefix("cpu"): v["cur_khz"] for k, v in cpus.items() if v["cur_khz"]
            },
            "governor": next((v["governor"] for v in cpus.values() if v["governor"]), None),
            "temperatures_c": parsers.parse_thermal_table(self._shell_text(THERMAL_SH)),
        }
        return env

    def _battery(self) -> dict[str, Any]:
        res = self.transport.run(["dumpsys", "battery"], timeout_s=self.command_timeout_s)
        try:
            return parsers.parse_dumpsys_battery(res.stdout)
        except ParseError as exc:
            return {"unavailable": str(exc)}

    # ---- the contract ---------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """getprop identity, cpufreq (governors, min/max/current), thermal zones, battery."""
        if self._describe is not None:
            return dict(self._describe)
        with self._lock:
            try:
                return self._describe_raw()
            except (ConnectionLost, CommandTimeout) as exc:
                raise DeviceError(f"{self.name}: cannot describe the phone: {exc}") from None

    def _describe_raw(self) -> dict[str, Any]:
        """:meth:`describe`, letting a dropped link (ConnectionLost) or a hung command
        (CommandTimeout) through, so that :meth:`measure` reports them as such and not as a
        fault of the phone's setup."""
        self.transport.connect()
        try:
            props = parsers.parse_getprop(self._shell_text("getprop"))
        except ParseError as exc:
            raise DeviceError(f"{self.name}: unexpected getprop output: {exc}") from None
        snap = self._snapshot()
        battery = self._battery()
        desc: dict[str, Any] = {"kind": self.kind, "name": self.name}
        desc.update({GETPROP_KEYS[k]: v for k, v in props.items() if k in GETPROP_KEYS})
        desc.setdefault("serial", self.transport.serial)
        desc["cpu_model"] = desc.get("soc_model") or desc.get("soc")
        desc["cpu_count"] = len(snap["cpufreq"])
        max_freqs = [v["max_khz"] for v in snap["cpufreq"].values() if v["max_khz"]]
        desc["cpu_max_freq_khz"] = max(max_freqs) if max_freqs else None
        desc.update(snap)
        desc["battery"] = battery
        desc["taskset_mask"] = self.mask
        self._describe = desc
        return dict(desc)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = super().fingerprint()
        return self._fingerprint

    def _command(
        self, remote_model: str, threads: int | None, s: HarnessSettings, per_op: bool
    ) -> list[str]:
        per_round = 1.0 / self.rounds
        argv = [
            self.remote_binary,
            f"--graph={remote_model}",
            f"--num_threads={int(threads or 1)}",
            f"--warmup_runs={s.warmup_runs}",
            f"--warmup_min_secs={s.warmup_time_s:g}",
            f"--num_runs={max(1, -(-s.min_runs // self.rounds))}",
            f"--min_secs={s.min_time_s * per_round:g}",
            f"--max_secs={max(s.max_time_s * per_round, s.min_time_s * per_round):g}",
        ]
        if per_op:
            argv.append("--enable_op_profiling=true")
        argv += self.extra_args
        return ["taskset", self.mask, *argv] if self.mask else argv

    def measure(
        self,
        model: ModelRef,
        *,
        runtime: str | None = "litert",
        threads: int | None = 1,
        batch: int | None = None,
        settings: HarnessSettings | None = None,
        per_op: bool = False,
        counters: bool = False,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Measurement:
        rt = runtime or "litert"
        if rt != "litert":
            raise ConfigError(
                f"device {self.name!r} runs LiteRT's benchmark_model; runtime = {rt!r}, "
                "expected 'litert'"
            )
        path = check_args(self.name, model, rt, threads, batch, suffixes=(".tflite",))
        if batch not in (None, 1):
            raise ConfigError(
                f"device {self.name!r}: batch = {batch!r}; benchmark_model runs the model's own "
                "batch size, so export the model with that batch instead"
            )
        # the settings' timeout: given settings (the command line over the device table, see
        # Config.measure_for) win; without settings those of the device table apply
        s = settings_from(settings, self.config)
        timeout = float(s.timeout_s)
        t0 = time.perf_counter()
        fp = self._fingerprint or ""

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
            remote_model = f"{self.remote_dir}/m-{file_sha256(path)[:16]}.tflite"
            outputs: list[str] = []
            stage = "setup"
            try:
                self._ready()
                if self._describe is None:
                    self._describe_raw()
                fp = self.fingerprint()
                stage = "push of the model"
                self.transport.push(path, remote_model)
                self._pushed.add(remote_model)
                if self.cooldown_s > 0:
                    time.sleep(self.cooldown_s)
                stage = "reading of its cpufreq and thermal state"
                env = self._snapshot()
                started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
                for r in range(self.rounds):
                    argv = self._command(remote_model, threads, s, per_op and r == self.rounds - 1)
                    stage = "run"
                    res = self.transport.run_shell(
                        quote_argv(argv),
                        timeout_s=timeout,
                        argv=tuple(argv),
                        pidfile=f"{self.remote_dir}/run.pid",
                    )
                    stage = "reading of its cpufreq and thermal state"
                    if res.returncode != 0:
                        return self._failed_round(res, r, fail)
                    outputs.append(res.stdout + res.stderr)
                env_after = self._snapshot()
            except RemoteDiskFull as exc:
                return fail(str(exc), "disk_full")
            except CommandTimeout as exc:
                if stage != "run":
                    return fail(f"the phone did not answer during the {stage}: {exc}", "device")
                return fail(f"timed out after {timeout:g} s; the run was killed", "timeout")
            except ConnectionLost as exc:
                self.transport.close()
                # a phone never reached (a wrong serial, no adb server) did not disconnect
                what = "phone disconnected" if self._was_connected else "phone not reachable"
                return fail(f"{what}: {exc}", "transport")
            except DeviceError as exc:  # remote_dir, cpus, the binary: the phone's setup
                return fail(str(exc), "device")
            finally:
                if self.transport.connected:
                    try:
                        self.transport.run(
                            ["rm", "-f", remote_model], timeout_s=self.command_timeout_s
                        )
                    except DeviceError as exc:
                        log.warning("%s: could not remove %s: %s", self.name, remote_model, exc)
        try:
            parsed = [parsers.parse_benchmark_model(text) for text in outputs]
        except ParseError as exc:
            return fail(str(exc), "model")
        return self._record(path, rt, threads, s, parsed, outputs, env, env_after, started, fp, t0)

    def _failed_round(
        self, res: CommandResult, r: int, fail: Callable[[str, str], Measurement]
    ) -> Measurement:
        """The record of a round whose ``benchmark_model`` exited non-zero: its output is never
        used as a result (a process killed after its warm-up printed the warm-up's line).

        * ``taskset`` refusing the mask, or a binary the phone cannot execute (status 126/127:
          wrong ABI, a ``noexec`` remote_dir, a missing loader), is the phone's setup
          (``"device"``): every model would fail alike;
        * killed by a signal (status > 128: a segfault, the low-memory killer) is a crash;
        * any other non-zero exit is the model's failure (with benchmark_model's reason,
          ``Failed to mmap model``, ..., where it printed one).
        """
        said = (res.stdout + res.stderr).strip()
        tail = said[-300:] or "no output"
        where = f"round {r + 1} of {self.rounds}"
        if self.mask and _TASKSET_FAILED.search(said):
            raise PhoneFault(
                f"device {self.name!r}: taskset refused cpus {self.config.get('cpus')!r} "
                f"(mask {self.mask}): {tail}; expected CPUs the phone has online"
            )
        if res.returncode in (126, 127):
            raise PhoneFault(
                f"device {self.name!r}: benchmark_binary cannot be executed on the phone "
                f"from {self.remote_binary!r} (exit status {res.returncode}: {tail}); expected "
                "LiteRT's benchmark_model built for the phone's ABI in a remote_dir that allows "
                "executables (such as /data/local/tmp/latbench)"
            )
        if res.returncode > 128:
            return fail(
                f"benchmark_model was killed by signal {res.returncode - 128} (exit status "
                f"{res.returncode}) in {where}; its output is not used: {tail}",
                "crashed",
            )
        reasons = parsers.benchmark_model_errors(said)
        if reasons:  # its own reason: Failed to mmap model, ...
            return fail(
                f"benchmark_model failed: {' | '.join(reasons[:5])[:500]} (exit status "
                f"{res.returncode}, {where})",
                "model",
            )
        return fail(
            f"benchmark_model exited with status {res.returncode} in {where}; its output is not "
            f"used: {tail}",
            "model",
        )

    def _record(
        self,
        path: Path,
        runtime: str,
        threads: int | None,
        s: HarnessSettings,
        parsed: list[dict[str, Any]],
        outputs: list[str],
        env: dict[str, Any],
        env_after: dict[str, Any],
        started: str,
        fp: str,
        t0: float,
    ) -> Measurement:
        samples = tuple(p["timed"]["avg_us"] / 1e3 for p in parsed)
        counts = [int(p["timed"].get("count") or 1) for p in parsed]
        warmups = tuple(
            p["warmup"]["avg_us"] / 1e3
            for p in parsed
            if p.get("warmup") and "avg_us" in p["warmup"]
        )
        last = parsed[-1]
        counters: dict[str, dict[str, Any]] = {}
        for key, value in (last.get("memory_mb") or {}).items():
            counters[f"memory_{key}_mb"] = {"value": value, "unit": "MB"}
        per_op: tuple[dict[str, Any], ...] = ()
        settings: dict[str, Any] = {
            "tool": "benchmark_model",
            # benchmark_model prints no version: the binary's hash tells two builds apart
            "benchmark_binary_sha256": (
                file_sha256(self.benchmark_binary)
                if self.benchmark_binary is not None and self.benchmark_binary.is_file()
                else None
            ),
            "num_threads": int(threads or 1),
            "taskset_mask": self.mask,
            "extra_args": list(self.extra_args),
            "delegates": last.get("delegates", []),
            "delegate_fallback": any(p.get("fallback") for p in parsed),
            "fallback_lines": sorted({ln for p in parsed for ln in p.get("fallback_lines", [])}),
        }
        for key in ("delegated_nodes", "total_nodes", "partitions", "fallback_ops"):
            if key in last:
                settings[key] = last[key]
        if "--enable_op_profiling=true" in " ".join(outputs[-1:]) or any(
            "Summary by node type" in o for o in outputs[-1:]
        ):
            try:
                per_op = tuple(parsers.parse_op_profile(outputs[-1]))
            except ParseError as exc:
                settings["per_op_unavailable"] = str(exc)
        desc = self._describe or {}
        env = {**{k: desc.get(k) for k in ("model", "soc", "serial", "android_release")}, **env}
        rounds = [
            {k: v for k, v in p.items() if k not in ("params", "fallback_lines")} for p in parsed
        ]
        return Measurement(
            status="ok",
            samples_ms=samples,
            loops=min(counts),
            warmup_runs=len(warmups),
            warmup_ms=warmups,
            runtime=runtime,
            runtime_version=str(self.config.get("benchmark_version", "benchmark_model")),
            runtime_settings=settings,
            device=self.name,
            device_fingerprint=fp,
            model_path=str(path),
            model_sha256=file_sha256(path),
            batch=1,
            threads=threads,
            counters=counters,
            per_op=per_op,
            env=env,
            env_after=env_after,
            started_at=started,
            wall_s=time.perf_counter() - t0,
            latbench_version=_version(),
            harness={
                "settings": s.to_dict(),
                "stop_reason": f"rounds:{self.rounds}",
                "rounds": rounds,
                "round_counts": counts,
                "elapsed_s": sum(
                    p["timed"].get("count", 0) * p["timed"]["avg_us"] / 1e6 for p in parsed
                ),
                "cooldown_s": self.cooldown_s,
                "command": shlex.join(self._command("MODEL", threads, s, False)),
                "remote": {"transport": "adb", "serial": self.transport.serial},
            },
        )

    def close(self) -> None:
        """Remove what latbench put on the phone (the binary, the models, the pid file) and
        the directory if that leaves it empty: a ``remote_dir`` shared with other files
        (``/data/local/tmp``) keeps them. Idempotent."""
        with self._lock:
            if self._binary_pushed and self.transport.connected:
                ours = [self.remote_binary, f"{self.remote_dir}/run.pid", *sorted(self._pushed)]
                try:
                    self.transport.run(["rm", "-f", *ours], timeout_s=self.command_timeout_s)
                    self.transport.run(
                        ["rmdir", self.remote_dir], timeout_s=self.command_timeout_s
                    )  # if empty
                except DeviceError as exc:
                    log.warning("%s: could not remove %s: %s", self.name, self.remote_dir, exc)
            self._binary_pushed = False
            self._pushed.clear()
            self.transport.close()


def _version() -> str:
    import latbench

    return str(latbench.__version__)
