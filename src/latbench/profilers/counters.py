"""Hardware and software counters per inference, through Linux ``perf_event_open``.

Standard library only (``ctypes`` calls the syscall directly, as ``perf stat`` does), so the same
code runs on a Raspberry Pi agent. One counter is opened per event and per thread of this process
(``/proc/self/task``: onnxruntime's and torch's pool threads are counted too), disabled; they are
enabled around the counted inferences only, then read and scaled for multiplexing
(``value * time_enabled / time_running``).

A counter that cannot be opened is reported as unavailable with the reason, never as 0: on a VM
without a virtual PMU the hardware events fail with ``ENOENT``/``EOPNOTSUPP`` and come out as
``{"value": None, "unavailable": "not supported: ..."}``. So is a counter that opened but never
ran on the PMU (``time_running == 0`` on every thread: multiplexed out for the whole window,
perf stat's ``<not counted>``): ``{"value": None, "unavailable": "not counted: ..."}``. A value
scaled for multiplexing is marked ``"multiplexed": True``; ``"uncounted_threads": k`` says that
``k`` threads ran but their counter never did (the value is a lower bound). Software counters
(task clock, context switches, page faults, CPU migrations) come from the kernel's software
events, or from ``getrusage`` where ``perf_event_open`` is refused or never counted; peak
memory is the process's ``VmHWM``.

Counting runs in its own pass after timing, so it never distorts the timed samples.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import resource
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "HARDWARE_EVENTS",
    "SOFTWARE_EVENTS",
    "CounterSet",
    "count_inferences",
    "peak_rss_bytes",
    "reset_peak_rss",
]

# perf_event_attr.type
_TYPE_HARDWARE = 0
_TYPE_SOFTWARE = 1
_TYPE_HW_CACHE = 3
# ioctl requests
_IOC_ENABLE = 0x2400
_IOC_DISABLE = 0x2401
_IOC_RESET = 0x2403
_FORMAT_TOTAL_TIMES = 1 | 2  # PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING
_ATTR_SIZE = 128  # PERF_ATTR_SIZE_VER7
_SYSCALL_NR = {"x86_64": 298, "aarch64": 241, "armv7l": 364, "armv6l": 364, "i686": 336}


@dataclass(frozen=True)
class Event:
    name: str
    type: int
    config: int
    unit: str
    scale: float = 1.0  # raw -> unit


_LLC = 2
HARDWARE_EVENTS = (
    Event("instructions", _TYPE_HARDWARE, 1, "count"),
    Event("cycles", _TYPE_HARDWARE, 0, "count"),
    Event("cache_references", _TYPE_HARDWARE, 2, "count"),
    Event("cache_misses", _TYPE_HARDWARE, 3, "count"),
    Event("branch_instructions", _TYPE_HARDWARE, 4, "count"),
    Event("branch_misses", _TYPE_HARDWARE, 5, "count"),
    Event("stalled_cycles_frontend", _TYPE_HARDWARE, 7, "count"),
    Event("stalled_cycles_backend", _TYPE_HARDWARE, 8, "count"),
    Event("llc_loads", _TYPE_HW_CACHE, _LLC | (0 << 8) | (0 << 16), "count"),
    Event("llc_load_misses", _TYPE_HW_CACHE, _LLC | (0 << 8) | (1 << 16), "count"),
)
SOFTWARE_EVENTS = (
    Event("task_clock_ms", _TYPE_SOFTWARE, 1, "ms", 1e-6),
    Event("context_switches", _TYPE_SOFTWARE, 3, "count"),
    Event("page_faults", _TYPE_SOFTWARE, 2, "count"),
    Event("cpu_migrations", _TYPE_SOFTWARE, 4, "count"),
)


#: the reason of an event that was enabled but never ran on the PMU (multiplexed out for the
#: whole window: ``time_running == 0``); perf stat prints ``<not counted>``
_NOT_COUNTED_MULTIPLEXED = "not counted: the event never ran on the PMU (multiplexed out)"
_NOT_COUNTED_NEVER_ENABLED = "not counted: the event was never enabled (time_enabled = 0)"


def _errno_reason(err: int, event: Event) -> str:
    name = errno.errorcode.get(err, str(err))
    if err in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV, errno.EINVAL):
        what = "hardware PMU event" if event.type != _TYPE_SOFTWARE else "software event"
        return (
            f"not supported: perf_event_open failed with {name} (this CPU/VM exposes no "
            f"{what} {event.name})"
        )
    if err in (errno.EACCES, errno.EPERM):
        paranoid = _paranoid()
        return (
            f"permission denied: perf_event_open failed with {name} "
            f"(kernel.perf_event_paranoid = {paranoid}; run as root or lower it)"
        )
    return f"perf_event_open failed with {name}: {os.strerror(err)}"


def _paranoid() -> int | None:
    try:
        return int(Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip())
    except (OSError, ValueError):
        return None


class _PerfEventOpen:
    """The raw ``perf_event_open`` syscall through ctypes (None where the OS has none)."""

    def __init__(self) -> None:
        self.nr = _SYSCALL_NR.get(platform.machine())
        self.libc: Any = None
        if self.nr is not None and platform.system() == "Linux":
            self.libc = ctypes.CDLL(None, use_errno=True)
            self.libc.syscall.restype = ctypes.c_long

    def open(self, event: Event, tid: int, exclude_kernel: bool) -> int:
        if self.libc is None or self.nr is None:
            raise OSError(errno.ENOSYS, "perf_event_open is not available on this OS")
        flags = 1  # disabled
        if exclude_kernel:
            flags |= 1 << 5
        flags |= 1 << 6  # exclude_hv
        buf = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into(
            "IIQQQQQ",
            buf,
            0,
            event.type,
            _ATTR_SIZE,
            event.config,
            0,
            0,
            _FORMAT_TOTAL_TIMES,
            flags,
        )
        fd = self.libc.syscall(
            self.nr, buf, ctypes.c_int(tid), ctypes.c_int(-1), ctypes.c_int(-1), ctypes.c_ulong(0)
        )
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(fd)


def _threads() -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir("/proc/self/task"))
    except OSError:
        return [os.getpid()]


class CounterSet:
    """Counters for every thread of this process; ``start()`` / ``stop()`` bracket the work.

    ``results(n)`` gives ``{name: {"value": per_inference, "unit": ..., "total": ...}}`` for
    each event that could be opened and was counted, and ``{"value": None, "unavailable":
    reason}`` for the rest (never opened, or never ran on the PMU; a software event falls back
    to ``getrusage`` where it can).
    """

    def __init__(self, events: tuple[Event, ...] = HARDWARE_EVENTS + SOFTWARE_EVENTS) -> None:
        self.events = events
        self.fds: dict[str, list[int]] = {}
        self.unavailable: dict[str, str] = {}
        self._syscall = _PerfEventOpen()
        self._totals: dict[str, float] = {}
        self._multiplexed: set[str] = set()
        self._uncounted: dict[str, int] = {}  # event -> threads never counted (multiplexed out)
        self._rusage0: resource.struct_rusage | None = None
        self._rusage1: resource.struct_rusage | None = None
        exclude_kernel = os.geteuid() != 0 and (_paranoid() or 0) >= 2
        self.exclude_kernel = exclude_kernel
        tids = _threads()
        for ev in events:
            fds: list[int] = []
            try:
                for tid in tids:
                    try:
                        fds.append(self._syscall.open(ev, tid, exclude_kernel))
                    except OSError as exc:
                        if exc.errno == errno.ESRCH:  # the thread ended meanwhile
                            continue
                        raise
            except OSError as exc:
                for fd in fds:
                    os.close(fd)
                self.unavailable[ev.name] = _errno_reason(exc.errno or 0, ev)
                continue
            self.fds[ev.name] = fds

    def _ioctl_all(self, request: int) -> None:
        for fds in self.fds.values():
            for fd in fds:
                fcntl.ioctl(fd, request, 0)

    def start(self) -> None:
        self._rusage0 = resource.getrusage(resource.RUSAGE_SELF)
        self._ioctl_all(_IOC_RESET)
        self._ioctl_all(_IOC_ENABLE)

    def stop(self) -> None:
        self._ioctl_all(_IOC_DISABLE)
        self._rusage1 = resource.getrusage(resource.RUSAGE_SELF)
        self._totals = {}
        self._multiplexed = set()
        self._uncounted = {}
        for name, fds in self.fds.items():
            total = 0.0
            ran = False  # did any thread's counter get time on the PMU?
            uncounted = 0  # threads that ran (time_enabled > 0) but were never counted
            for fd in fds:
                value, enabled, running = struct.unpack("QQQ", os.read(fd, 24))
                if running:
                    ran = True
                    if running < enabled:
                        self._multiplexed.add(name)
                        total += value * enabled / running
                    else:
                        total += value
                elif enabled:
                    uncounted += 1
            if not ran:
                # perf stat's <not counted>: nothing is known about this event, it is not 0
                self.unavailable[name] = (
                    _NOT_COUNTED_MULTIPLEXED if uncounted else _NOT_COUNTED_NEVER_ENABLED
                )
                continue
            self.unavailable.pop(name, None)  # counted this time (a reason of an earlier stop)
            self._totals[name] = total
            if uncounted:
                self._multiplexed.add(name)
                self._uncounted[name] = uncounted

    def _rusage_fallback(self, name: str) -> float | None:
        r0, r1 = self._rusage0, self._rusage1
        if r0 is None or r1 is None:
            return None
        if name == "task_clock_ms":
            return ((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)) * 1e3
        if name == "context_switches":
            return float((r1.ru_nvcsw + r1.ru_nivcsw) - (r0.ru_nvcsw + r0.ru_nivcsw))
        if name == "page_faults":
            return float((r1.ru_minflt + r1.ru_majflt) - (r0.ru_minflt + r0.ru_majflt))
        return None

    def results(self, inferences: int) -> dict[str, dict[str, Any]]:
        n = max(1, inferences)
        out: dict[str, dict[str, Any]] = {}
        for ev in self.events:
            if ev.name in self._totals:
                total = self._totals[ev.name] * ev.scale
                entry: dict[str, Any] = {
                    "value": total / n,
                    "unit": f"{ev.unit}/inference",
                    "total": total,
                    "inferences": n,
                    "source": "perf_event_open",
                }
                if ev.name in self._multiplexed:
                    entry["multiplexed"] = True
                if ev.name in self._uncounted:
                    entry["uncounted_threads"] = self._uncounted[ev.name]
                out[ev.name] = entry
                continue
            reason = self.unavailable.get(ev.name, "not counted")
            fallback = self._rusage_fallback(ev.name) if ev.type == _TYPE_SOFTWARE else None
            if fallback is not None:
                out[ev.name] = {
                    "value": fallback / n,
                    "unit": f"{ev.unit}/inference",
                    "total": fallback,
                    "inferences": n,
                    "source": f"getrusage ({reason})",
                }
            else:
                out[ev.name] = {"value": None, "unavailable": reason}
        return out

    def close(self) -> None:
        for fds in self.fds.values():
            for fd in fds:
                os.close(fd)
        self.fds = {}


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) so a later reading covers one model only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> dict[str, Any]:
    """Peak resident memory of this process since the last :func:`reset_peak_rss`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return {"value": int(line.split()[1]) * 1024, "unit": "bytes", "source": "VmHWM"}
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"value": kib * 1024, "unit": "bytes", "source": "getrusage ru_maxrss"}


def count_inferences(
    fn: Callable[[], object], inferences: int, min_time_s: float = 0.0
) -> dict[str, dict[str, Any]]:
    """Count events over ``inferences`` calls of ``fn`` (at least ``min_time_s`` of them).

    Runs ``fn`` at least ``inferences`` times and until ``min_time_s`` has passed, with the
    counters enabled only around those calls; returns per-inference values (see
    :meth:`CounterSet.results`).
    """
    counters = CounterSet()
    try:
        n = 0
        t_end = time.perf_counter() + min_time_s
        counters.start()
        while n < inferences or time.perf_counter() < t_end:
            fn()
            n += 1
        counters.stop()
        return counters.results(n)
    finally:
        counters.close()
