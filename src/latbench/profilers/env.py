"""The environment of a measurement: CPU, frequencies, governor, load, temperatures, versions.

Standard library only (like pyperf's ``_collect_metadata``), so an on-device agent can ship it.
Every reader is best-effort: a value the system does not expose is left out (or ``None``), never
invented. :func:`collect_env` is taken before and after timing; the verdict compares the two
(frequency change, throttling).
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["collect_env", "cpu_model", "cpu_ticks", "hardware_identity", "latbench_version"]

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "ORT_NUM_THREADS",
)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def latbench_version() -> str:
    try:
        return metadata.version("latbench")
    except metadata.PackageNotFoundError:
        return ""


def _cpuinfo() -> str:
    return _read("/proc/cpuinfo") or ""


def cpu_model() -> str:
    """The CPU model name (x86 ``model name``, ARM ``Model``/``Hardware``), else platform's."""
    info = _cpuinfo()
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", info, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine()


def _cpuinfo_mhz(info: str) -> dict[int, float]:
    """``cpu MHz`` of each ``processor`` block of /proc/cpuinfo, by CPU number (an offline CPU
    has no block, so the n-th value is not always CPU n's)."""
    out: dict[int, float] = {}
    for block in re.split(r"\n\s*\n", info):
        num = re.search(r"^processor\s*:\s*(\d+)\s*$", block, re.MULTILINE)
        mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)\s*$", block, re.MULTILINE)
        if num and mhz:
            out[int(num.group(1))] = float(mhz.group(1))
    return out


def _cpu_freqs_khz(cpus: list[int]) -> dict[str, Any]:
    """Current/min/max frequency from cpufreq, else ``cpu MHz`` of /proc/cpuinfo."""
    out: dict[str, Any] = {}
    cur: dict[str, int] = {}
    for c in cpus:
        base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
        f = _read_int(f"{base}/scaling_cur_freq")
        if f is not None:
            cur[str(c)] = f
        if "cpu_min_freq_khz" not in out:
            lo = _read_int(f"{base}/cpuinfo_min_freq")
            hi = _read_int(f"{base}/cpuinfo_max_freq")
            if lo is not None:
                out["cpu_min_freq_khz"] = lo
            if hi is not None:
                out["cpu_max_freq_khz"] = hi
        if "governor" not in out:
            gov = _read(f"{base}/scaling_governor")
            if gov:
                out["governor"] = gov
    if not cur:
        for c, mhz in _cpuinfo_mhz(_cpuinfo()).items():
            if c in cpus:
                cur[str(c)] = round(mhz * 1000)
        if cur:
            out["cpu_freq_source"] = "/proc/cpuinfo"
    else:
        out["cpu_freq_source"] = "cpufreq"
    out["cpu_cur_freq_khz"] = cur
    out.setdefault("governor", None)
    return out


def _temperatures_c() -> dict[str, float]:
    temps: dict[str, float] = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        t = _read_int(f"{zone}/temp")
        if t is not None:
            kind = _read(f"{zone}/type") or Path(zone).name
            temps[f"{Path(zone).name}:{kind}"] = t / 1000.0
    return temps


def _throttle_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in sorted(glob.glob("/sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count")):
        v = _read_int(p)
        if v is not None:
            counts[p.split("/")[5] + "/" + Path(p).name] = v
    pi = _read("/sys/devices/platform/soc/soc:firmware/get_throttled")
    if pi is not None:
        with contextlib.suppress(ValueError):
            counts["rpi_get_throttled"] = int(pi, 16)
    return counts


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        m = re.match(r"(MemTotal|MemAvailable):\s+(\d+) kB", line)
        if m:
            key = "total_memory_bytes" if m.group(1) == "MemTotal" else "available_memory_bytes"
            out[key] = int(m.group(2)) * 1024
    return out


_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_ticks(cpus: list[int] | None = None, text: str | None = None) -> dict[str, Any]:
    """Cumulative CPU time of ``cpus`` from /proc/stat, in clock ticks, with steal time.

    ``{"cpu1": {"user": ..., "system": ..., "idle": ..., "steal": ..., "total": ...}, ...}``
    (all CPUs when ``cpus`` is None). On a shared VM steal time (the hypervisor running another
    guest on our virtual CPU) is a main source of noise: the difference of two snapshots gives
    the share of a measurement window that was stolen (``stats.steal_fraction``). ``text`` is
    the file's content (tests pass a saved one).
    """
    if text is None:
        text = _read("/proc/stat") or ""
    want = None if cpus is None else {f"cpu{c}" for c in cpus}
    out: dict[str, Any] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or not parts[0].startswith("cpu") or parts[0] == "cpu":
            continue
        if want is not None and parts[0] not in want:
            continue
        try:
            values = [int(x) for x in parts[1 : 1 + len(_STAT_FIELDS)]]
        except ValueError:
            continue
        row = dict(zip(_STAT_FIELDS, values, strict=False))
        row["total"] = sum(values)
        out[parts[0]] = row
    return out


def procs_running() -> int | None:
    """Runnable tasks right now (``procs_running`` of /proc/stat): the instantaneous load."""
    m = re.search(r"^procs_running\s+(\d+)$", _read("/proc/stat") or "", re.MULTILINE)
    return int(m.group(1)) if m else None


def board_serial(cpuinfo: str | None = None, device_tree: str | None = None) -> str | None:
    """The board's serial number (a Raspberry Pi's: ``/proc/device-tree/serial-number``, else
    the ``Serial`` line of ``/proc/cpuinfo``); None where the machine has none (x86 PCs) or it
    reads as zeros. Recorded to tell two boards of one model apart; not in the fingerprint, so
    the same model's measurements stay comparable."""
    text = device_tree if device_tree is not None else _read("/proc/device-tree/serial-number")
    serial = (text or "").strip("\x00 \n")
    if not serial:
        info = cpuinfo if cpuinfo is not None else _cpuinfo()
        m = re.search(r"^Serial\s*:\s*(\S+)", info, re.MULTILINE)
        serial = m.group(1) if m else ""
    return serial if serial.strip("0") else None


def hardware_identity() -> dict[str, Any]:
    """The stable part of the environment (what identifies this machine's hardware)."""
    ident: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    hi = _read_int("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if hi is not None:
        ident["cpu_max_freq_khz"] = hi
    board = _read("/proc/device-tree/model")
    if board:
        ident["board"] = board.rstrip("\x00")
    ident.update({k: v for k, v in _meminfo().items() if k == "total_memory_bytes"})
    return ident


def collect_env(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A snapshot of the environment of this process (best-effort, never raises)."""
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = list(range(os.cpu_count() or 1))
    env: dict[str, Any] = dict(hardware_identity())
    env.update(
        {
            "affinity": affinity,
            "os": platform.platform(),
            "kernel": platform.release(),
            "python": sys.version.split()[0],
            "python_implementation": platform.python_implementation(),
            "latbench_version": latbench_version(),
            "hostname": platform.node(),
            "pid": os.getpid(),
            "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        }
    )
    env.update(_cpu_freqs_khz(affinity))
    try:
        env["loadavg"] = list(os.getloadavg())
    except OSError:
        env["loadavg"] = None
    env["procs_running"] = procs_running()
    env["cpu_ticks"] = cpu_ticks(affinity)
    with contextlib.suppress(ValueError, OSError, AttributeError):
        env["clock_ticks_per_s"] = os.sysconf("SC_CLK_TCK")
    env.update(_meminfo())
    serial = board_serial()
    if serial:
        env["board_serial"] = serial
    env["temperatures_c"] = _temperatures_c()
    env["throttle_counts"] = _throttle_counts()
    if extra:
        env.update(extra)
    return env
