"""Pure parsers: captured device output -> numbers.

Each function takes text a device printed and returns plain data; none touches a device, so all
are tested on saved real outputs (``tests/fixtures/devices/``). A parser that finds nothing it
recognises raises :class:`~latbench.errors.ParseError` naming what it looked for; it never
returns 0 for a missing number.

LiteRT's ``benchmark_model`` has printed its results in several shapes over the years, all
handled here:

* ``count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442`` (optionally
  followed by ``p5= median= p95=``); the first ``count=`` line is the warm-up, the last the timed
  run; values are microseconds and may use scientific notation (``avg=2.95034e+06``);
* ``Inference timings in us: Init: 16242, First inference: 360262, Warmup (avg): 304586,
  Inference (avg): 249684``;
* prefixes: ``INFO: ``, logcat's ``I tflite  : ``, glog's ``I0101 12:00:00.000 123 file.cc:45] ``;
* delegate lines (``Created TensorFlow Lite XNNPACK delegate for CPU.``, ``Replacing 64 out of
  66 node(s) with delegate (...)``) and the fallback tells (``... the model graph will not be
  executed by the delegate``, ``N operations will run on the GPU, and the remaining M operations
  will run on the CPU``, ``Failed to apply ... delegate``);
* ``Peak memory footprint (MB): init=4.9 overall=138.8`` and ``Memory footprint delta from the
  start of the tool (MB): init=... overall=...``;
* the ``Summary by node type`` table of ``--enable_op_profiling=true``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from latbench.errors import ParseError

__all__ = [
    "benchmark_model_errors",
    "parse_benchmark_model",
    "parse_cpufreq_table",
    "parse_dumpsys_battery",
    "parse_getprop",
    "parse_op_profile",
    "parse_thermal_table",
    "parse_vcgencmd_throttled",
    "strip_log_prefix",
]

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PREFIX = re.compile(
    r"^\s*(?:"
    r"(?:INFO|WARNING|ERROR|VERBOSE|DEBUG):\s"  # tflite's own logger
    r"|[VDIWEF]\s+tflite\s*:\s"  # logcat
    r"|[IWEF]\d{4}\s+[\d:.]+\s+\d+\s+[\w./-]+:\d+\]\s"  # glog
    r"|\d{4}-\d\d-\d\d [\d:.]+: [IWE] [\w./-]+:\d+\]\s"  # TF's logger
    r")"
)
_COUNT = re.compile(rf"\bcount=(\d+)((?:\s+\w+={_NUM})*)")
_KV = re.compile(rf"(\w+)=({_NUM})")
_TIMINGS = re.compile(
    rf"Inference timings in us:\s*Init:\s*({_NUM}),\s*First inference:\s*({_NUM}),"
    rf"\s*Warmup \(avg\):\s*({_NUM}),\s*Inference \(avg\):\s*({_NUM})"
)
_MEMORY = re.compile(
    rf"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\):"
    rf"\s*init=({_NUM})\s+overall=({_NUM})"
)
_OVERALL_PEAK = re.compile(
    rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})"
)
_CREATED = re.compile(r"Created TensorFlow Lite (?:(\w+) )?delegate for (\w+)")
_REPLACING = re.compile(
    r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\) node"
    r"(?:, yielding (\d+) partitions)?"
)
_PARTIAL = re.compile(
    r"(\d+) operations will run on the (\w+), and the remaining (\d+) operations? will run on "
    r"the CPU"
)
_FALLBACK = re.compile(
    r"will not be executed by the delegate|Failed to (?:apply|create) .*delegate"
    r"|falling back to (?:the )?CPU|fallback to CPU",
    re.IGNORECASE,
)
_FAILED = re.compile(
    r"Benchmarking failed|Failed to invoke|Failed to allocate tensors|Failed to initialize"
    r"|Could not open|Failed to mmap model|Model file doesn't exist|Invalid flag",
    re.IGNORECASE,
)
_PARAM = re.compile(r"^([A-Za-z][\w #()/.-]*?):\s*\[(.*)\]\s*$")
_RUN_START = re.compile(r"^Running benchmark for at least")


def strip_log_prefix(line: str) -> str:
    """``INFO: count=...`` / ``I tflite  : count=...`` / glog prefixes -> ``count=...``."""
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1).strip()


def benchmark_model_errors(text: str) -> list[str]:
    """The lines in which ``benchmark_model`` says it failed (``Failed to mmap model ...``,
    ``Benchmarking failed.``), log prefixes stripped; delegate fallback lines are not failures."""
    lines = (strip_log_prefix(raw) for raw in text.splitlines())
    return [ln for ln in lines if ln and _FAILED.search(ln) and not _FALLBACK.search(ln)]


def _stat_line(rest: str, count: int) -> dict[str, Any]:
    stats: dict[str, Any] = {"count": count}
    for key, value in _KV.findall(rest):
        stats[f"{key}_us"] = float(value)
    return stats


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """Parse everything ``benchmark_model`` printed (see the module docstring for the formats).

    Returns ``{"timed": {"count", "first_us", "curr_us", "min_us", "max_us", "avg_us",
    "std_us", ["p5_us", "median_us", "p95_us"]}, "warmup": {...} | None, "init_us",
    "first_inference_us", "warmup_avg_us", "inference_avg_us", "memory_mb": {...},
    "delegates": [...], "delegated_nodes", "total_nodes", "fallback": bool,
    "fallback_lines": [...], "params": {"Num threads": "4", ...}}`` (keys absent when not
    printed). Raises :class:`ParseError` when the run failed or no timing is present.
    """
    lines = [strip_log_prefix(raw) for raw in text.splitlines()]
    counts: list[dict[str, Any]] = []
    out: dict[str, Any] = {"delegates": [], "fallback": False, "fallback_lines": [], "params": {}}
    failures = benchmark_model_errors(text)
    runs_started = 0
    for line in lines:
        if not line:
            continue
        if _RUN_START.match(line):
            runs_started += 1
            continue
        m = _COUNT.search(line)
        if m and line.startswith("count="):
            counts.append(_stat_line(m.group(2), int(m.group(1))))
            continue
        m = _TIMINGS.search(line)
        if m:
            init, first, warm, inf = (float(g) for g in m.groups())
            out.update(
                init_us=init, first_inference_us=first, warmup_avg_us=warm, inference_avg_us=inf
            )
            continue
        m = _MEMORY.search(line)
        if m:
            kind = "peak" if m.group(1).startswith("Peak") else "delta"
            out.setdefault("memory_mb", {})[f"{kind}_init"] = float(m.group(2))
            out["memory_mb"][f"{kind}_overall"] = float(m.group(3))
            continue
        m = _OVERALL_PEAK.search(line)
        if m:
            out.setdefault("memory_mb", {})["overall_peak"] = float(m.group(1))
            continue
        m = _CREATED.search(line)
        if m and (m.group(1) or m.group(2)) not in out["delegates"]:
            out["delegates"].append(m.group(1) or m.group(2))
        m = _REPLACING.search(line)
        if m:
            out["delegated_nodes"] = out.get("delegated_nodes", 0) + int(m.group(1))
            out["total_nodes"] = int(m.group(2))
            if m.group(3) not in out["delegates"]:
                out["delegates"].append(m.group(3))
            if m.group(4):
                out["partitions"] = int(m.group(4))
        m = _PARTIAL.search(line)
        if m:
            out["fallback"] = True
            out["fallback_ops"] = int(m.group(3))
            out["fallback_lines"].append(line)
        elif _FALLBACK.search(line):
            out["fallback"] = True
            out["fallback_lines"].append(line)
        p = _PARAM.match(line)
        if p:
            out["params"][p.group(1).strip()] = p.group(2)
    if failures and (not counts or any("benchmarking failed" in f.lower() for f in failures)):
        raise ParseError(f"benchmark_model failed: {' | '.join(failures[:5])[:500]}")
    if counts and runs_started > len(counts):
        # each run (warm-up, then timed) announces itself before its count= line: a run that
        # started and never reported was cut short, and the line before it is not the result
        raise ParseError(
            f"benchmark_model's output ends before the results of its run {runs_started} "
            f"({runs_started} runs started, {len(counts)} reported): the run was cut short; "
            "expected a 'count=N ... avg=...' line for every 'Running benchmark' line"
        )
    if counts:
        out["timed"] = counts[-1]
        out["warmup"] = counts[0] if len(counts) > 1 else None
    timed = out.get("timed")
    if timed is not None and "avg_us" not in timed and "inference_avg_us" in out:
        timed["avg_us"] = out["inference_avg_us"]
    if timed is None or "avg_us" not in timed:
        if "inference_avg_us" not in out:
            raise ParseError(
                "no benchmark_model timing found: expected a 'count=N ... avg=...' line or "
                "'Inference timings in us: ...'; got "
                + (repr(text.strip()[-300:]) if text.strip() else "no output")
            )
        out["timed"] = {"count": 0, "avg_us": out["inference_avg_us"]}
    _check_times(out)
    if failures:
        out["errors"] = failures
    return out


def _check_times(out: dict[str, Any]) -> None:
    """Every time must be a finite number >= 0 and the timed average > 0: an ``avg=0``,
    ``avg=-3`` or an overflowing ``avg=1e400`` is not a latency, and a record of it would be
    wrong or refused later with less context."""
    stats = [("timed", out["timed"]), ("warm-up", out.get("warmup") or {})]
    for what, row in stats:
        for key, value in row.items():
            if key.endswith("_us") and not (math.isfinite(value) and value >= 0):
                raise ParseError(
                    f"benchmark_model's {what} {key.removesuffix('_us')}={value!r}; expected a "
                    "finite time in microseconds >= 0"
                )
    for key in ("init_us", "first_inference_us", "warmup_avg_us", "inference_avg_us"):
        value = out.get(key)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ParseError(f"benchmark_model's {key} = {value!r}; expected a finite time >= 0")
    if not out["timed"]["avg_us"] > 0:
        raise ParseError(
            f"benchmark_model's timed average is {out['timed']['avg_us']!r} us; expected a "
            "positive time (a run that measured nothing)"
        )


_OP_HEADER = re.compile(r"=+\s*Summary by node type\s*=+")


def parse_op_profile(text: str) -> list[dict[str, Any]]:
    """The ``Summary by node type`` table of ``--enable_op_profiling=true`` -> per-op rows.

    Rows are ``{"op", "name", "count", "time_ms", "share"}`` sorted by time (``time_ms`` is the
    average per inference; ``share`` sums to 1). The last such table printed is used (the first
    belongs to initialisation). Raises :class:`ParseError` when no table is present.
    """
    lines = [strip_log_prefix(raw) for raw in text.splitlines()]
    starts = [i for i, ln in enumerate(lines) if _OP_HEADER.search(ln)]
    if not starts:
        raise ParseError("no 'Summary by node type' table in benchmark_model output")
    rows: list[dict[str, Any]] = []
    for line in lines[starts[-1] + 1 :]:
        cells = [c for c in re.split(r"\t+|\s{2,}", line.strip()) if c]
        if not cells or line.startswith("="):
            if rows:
                break
            continue
        if cells[0].startswith("["):
            continue  # the header row
        if len(cells) < 4:
            break
        try:
            count, time_ms = int(float(cells[1])), float(cells[2])
        except (ValueError, OverflowError):
            break
        if count < 0 or not (math.isfinite(time_ms) and time_ms >= 0):
            raise ParseError(
                f"the 'Summary by node type' row {line.strip()[:120]!r} has count {count} and "
                f"time {time_ms!r} ms; expected a count >= 0 and a finite time >= 0"
            )
        rows.append({"op": cells[0], "name": cells[0], "count": count, "time_ms": time_ms})
    if not rows:
        raise ParseError("the 'Summary by node type' table has no rows")
    total = sum(r["time_ms"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["time_ms"] / total
    rows.sort(key=lambda r: -float(r["time_ms"]))
    return rows


_GETPROP = re.compile(r"^\[([^\]]+)\]:\s*\[(.*)\]\s*$")


def parse_getprop(text: str) -> dict[str, str]:
    """Android ``getprop`` output (``[key]: [value]`` lines) -> dict; raises when none parse."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        m = _GETPROP.match(line.strip())
        if m:
            props[m.group(1)] = m.group(2)
    if not props:
        raise ParseError(f"no '[key]: [value]' lines in getprop output: {text.strip()[:200]!r}")
    return props


def _int_or_none(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None


def parse_cpufreq_table(text: str) -> dict[str, dict[str, Any]]:
    """Lines ``cpuN governor cur_khz min_khz max_khz`` (``-`` when unreadable) -> per CPU."""
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5 or not re.fullmatch(r"cpu\d+", parts[0]):
            continue
        out[parts[0]] = {
            "governor": None if parts[1] == "-" else parts[1],
            "cur_khz": _int_or_none(parts[2]),
            "min_khz": _int_or_none(parts[3]),
            "max_khz": _int_or_none(parts[4]),
        }
    return out


def parse_thermal_table(text: str) -> dict[str, float]:
    """Lines ``thermal_zoneN type millidegrees`` -> ``{"thermal_zoneN:type": celsius}``.

    Some kernels report whole degrees instead of millidegrees; values below 200 are taken as
    degrees.
    """
    temps: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[0].startswith("thermal_zone"):
            continue
        try:
            raw = float(parts[2])
        except ValueError:
            continue
        if not math.isfinite(raw):
            continue
        temps[f"{parts[0]}:{parts[1]}"] = raw if abs(raw) < 200 else raw / 1000.0
    return temps


_BATTERY_STATUS = {1: "unknown", 2: "charging", 3: "discharging", 4: "not charging", 5: "full"}


def parse_dumpsys_battery(text: str) -> dict[str, Any]:
    """``dumpsys battery`` -> level, temperature, status, plugged; raises when it is not there."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.strip().partition(":")
            fields[key.strip()] = value.strip()
    if "level" not in fields:
        raise ParseError(f"no battery level in dumpsys battery output: {text.strip()[:200]!r}")

    def integer(key: str) -> int:
        value = _int_or_none(fields[key])
        if value is None:
            raise ParseError(
                f"dumpsys battery printed {key}: {fields[key][:50]!r}; expected an integer"
            )
        return value

    out: dict[str, Any] = {"level_pct": integer("level")}
    if "temperature" in fields:
        out["temperature_c"] = integer("temperature") / 10.0  # tenths of a degree
    if "voltage" in fields:
        out["voltage_mv"] = integer("voltage")
    if "status" in fields:
        code = _int_or_none(fields["status"])
        out["status"] = _BATTERY_STATUS.get(code or 1, fields["status"])
    plugged = [
        k.split()[0].lower()
        for k in ("AC powered", "USB powered", "Wireless powered", "Dock powered")
        if fields.get(k) == "true"
    ]
    out["plugged"] = plugged
    return out


_THROTTLE_BITS = {
    0: "under_voltage",
    1: "arm_freq_capped",
    2: "throttled",
    3: "soft_temp_limit",
    16: "under_voltage_occurred",
    17: "arm_freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}


def parse_vcgencmd_throttled(text: str) -> dict[str, Any]:
    """Raspberry Pi ``vcgencmd get_throttled`` (``throttled=0x50005``) -> flags by name."""
    m = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)(?![\w.])", text)
    if not m:
        raise ParseError(f"expected 'throttled=0x...' from vcgencmd; got {text.strip()[:200]!r}")
    value = int(m.group(1), 0)
    flags = {name: bool(value >> bit & 1) for bit, name in _THROTTLE_BITS.items()}
    return {"raw": value, **flags}
