"""Reading a ``[devices.NAME]`` table of bench.toml: known keys and typed values.

A typo in a device table (``timout_s = 30``) or a value of the wrong type (``port = "22a"``)
is a :class:`~latbench.errors.ConfigError` that names the device, the key, the value and what
was expected, raised when the device is created rather than as a traceback mid-run; for the
built-in transports :func:`check_table` does the checks that need no machine when bench.toml is
loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from latbench._validate import expected_number
from latbench.errors import ConfigError
from latbench.profilers.harness import HARNESS_KEYS, HarnessSettings

# keys every device table may hold: the transport, CPU pinning, the per-model timeout and the
# timing harness settings (``min_runs``, ``max_time_s``, ...), which go over [measure] for that
# device (``Config.measure_for``) and which ``Device.measure`` uses when given no ``settings``
COMMON_KEYS = frozenset({"transport", "cpus", "timeout_s"}) | HARNESS_KEYS

# harness settings that hold integers (the others but ``statistic`` are seconds or ratios)
_INTEGER_HARNESS_KEYS = frozenset({"warmup_runs", "min_runs", "max_runs", "loops"})


def check_keys(
    config: Mapping[str, Any], allowed: Iterable[str], where: str, *, harness: bool = True
) -> None:
    """Refuse keys of ``config`` that are neither ``allowed`` nor :data:`COMMON_KEYS`, and
    (with ``harness``) harness settings that are not finite numbers of their range."""
    known = COMMON_KEYS | frozenset(allowed)
    unknown = sorted(set(config) - known)
    if unknown:
        keys = ", ".join(repr(k) for k in unknown)
        raise ConfigError(
            f"{where}: unknown key(s) {keys} in its bench.toml table; expected some of "
            f"{', '.join(sorted(known))}" + did_you_mean(unknown[0], known)
        )
    if not harness:
        return
    for key in sorted(HARNESS_KEYS & set(config)):
        value = config[key]
        if key == "statistic" or isinstance(value, bool) or not isinstance(value, int | float):
            continue  # not a number at all: from_mapping below says so
        want = expected_number(
            value,
            integer=key in _INTEGER_HARNESS_KEYS,
            low=1 if key == "loops" else 0,
            positive=key == "timeout_s",
        )
        if want:
            raise ConfigError(f"{where}: {key} = {value!r}; expected {want}")
    try:
        HarnessSettings.from_mapping(config)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def number(
    config: Mapping[str, Any],
    key: str,
    default: float | None,
    *,
    where: str,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> Any:
    """``config[key]`` (else ``default``) as a finite int or float in [minimum, maximum]
    (and > 0 with ``positive``)."""
    value = config.get(key, default)
    if value is None:
        return None
    want = expected_number(value, integer=integer, low=minimum, high=maximum, positive=positive)
    if want:
        raise ConfigError(f"{where}: {key} = {value!r}; expected {want}")
    return int(value) if integer else float(value)


def text(
    config: Mapping[str, Any],
    key: str,
    default: str | None,
    *,
    where: str,
    what: str = "a string",
) -> Any:
    """``config[key]`` (else ``default``) as a non-empty string; a number, a list or ``""``
    is refused rather than silently turned into text."""
    value = config.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} = {value!r}; expected {what}")
    return value


#: what a ``cpus`` value may be, in the messages that refuse one
CPU_LIST_FORM = (
    "a CPU list: CPU ids >= 0 as an integer (3), a list of integers ([2, 3]) or a string of "
    "ids and LOW-HIGH ranges ('4-7', '2,3', '0-1,4')"
)


#: the largest CPU id a ``cpus`` value may name (Linux supports at most 8192 CPUs; a larger one
#: is a typo, and a range up to it would be a set of millions)
MAX_CPU_ID = 65535


def _is_cpu_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_cpu_list(value: Any, *, where: str, key: str = "cpus") -> list[int] | None:
    """``"4-7"``, ``"2,3"``, ``"0-1,4"``, ``3`` or ``[2, 3]`` -> sorted CPU ids; None/"" -> None.

    A list holds integers (or strings of the same form as above); a float (``1.7``), a bool, a
    negative id, a reversed range (``"7-4"``) or an open one (``"4-"``) is refused with a
    :class:`~latbench.errors.ConfigError` naming ``where`` (the device, or the file and table)
    and ``key``.
    """
    if value is None or value == "" or value == []:
        return None
    bad = f"{where}: {key} = {value!r}; expected {CPU_LIST_FORM}"
    if isinstance(value, bool):
        raise ConfigError(bad)
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        items = value.replace(" ", "").split(",")
    else:
        raise ConfigError(bad)
    ids: set[int] = set()
    for part in items:
        if isinstance(part, bool) or not isinstance(part, int | str):
            raise ConfigError(bad)
        text_part = str(part).strip()
        lo_s, sep, hi_s = text_part.partition("-")
        if not _is_cpu_id(lo_s) or (sep and not _is_cpu_id(hi_s)):
            raise ConfigError(bad)
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
        if max(lo, hi) > MAX_CPU_ID:
            raise ConfigError(
                f"{where}: {key} = {value!r}: CPU {max(lo, hi)} is beyond any machine's; "
                f"expected CPU ids in [0, {MAX_CPU_ID}]"
            )
        if hi < lo:
            raise ConfigError(
                f"{where}: {key} {value!r}: a range must go up (expected e.g. {hi}-{lo}); the "
                f"range {text_part!r} is reversed (an empty set)"
            )
        ids.update(range(lo, hi + 1))
    return sorted(ids)


def format_cpu_list(ids: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(set(ids)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'timeout_s'?)"`` for a close match of ``word`` among ``choices``; ``""``
    when none is close."""
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: how the built-in adapters read the values of their tables, so that a bench.toml is refused
#: when it is loaded rather than when the device is first used: key -> the keywords of
#: :func:`number`, or the words of :func:`text` (what a string key holds)
NUMBER_KEYS: dict[str, dict[str, Any]] = {
    "port": {"integer": True, "minimum": 1, "maximum": 65535},
    "index": {"integer": True, "minimum": 0},
    "rounds": {"integer": True, "minimum": 1},
    "memory_limit_mb": {"integer": True, "minimum": 0},
    "timeout_s": {"positive": True},
    "connect_timeout_s": {"positive": True},
    "startup_timeout_s": {"positive": True},
    "reconnect_timeout_s": {"minimum": 0},
    "cooldown_s": {"minimum": 0},
}
TEXT_KEYS: dict[str, str] = {
    "host": "a host name",
    "user": "a user name",
    "key": "the path of a private key file",
    "password": "a string",
    "known_hosts": "a known_hosts file",
    "python": "the board's Python (a command)",
    "workdir": "a directory on the board",
    "adb": "the adb client (a path or name)",
    "serial": "a serial (adb devices)",
    "server": "an adb server socket (tcp:HOST:PORT)",
    "benchmark_binary": "the path of benchmark_model",
    "benchmark_version": "a version label",
    "remote_dir": "a directory on the phone",
    "runtime": "a runtime name",
    "dtype": "a dtype name",
}
#: the values some string keys may take, per transport
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("ssh", "runtime"): ("ai_edge_litert", "litert", "onnxruntime", "tflite_runtime", "torch"),
    ("cuda", "runtime"): ("onnxruntime", "torch"),
    ("cuda", "dtype"): ("bfloat16", "float16", "float32"),
    ("ssh", "host_key_check"): ("accept-new", "yes"),
}
#: the keys a transport cannot do without, and what each holds
REQUIRED_KEYS: dict[str, dict[str, str]] = {"ssh": {"host": "a host name"}}


def check_table(
    config: Mapping[str, Any], kind: str, allowed: Iterable[str] | None, where: str
) -> None:
    """Check a built-in transport ``kind``'s table without connecting anywhere or looking at
    this machine: known keys (:func:`check_keys`, unless ``allowed`` is None), the keys the
    transport needs, and every value of its type and range but the harness settings (checked
    with ``[measure]`` by the caller). A :class:`ConfigError` names ``where``, the key, the
    value and what was expected."""
    if allowed is not None:
        check_keys(config, allowed, where, harness=False)
    for key, what in REQUIRED_KEYS.get(kind, {}).items():
        if key not in config:
            raise ConfigError(
                f"{where}: {key} is missing; transport = {kind!r} needs {key} = {what}"
            )
    for key in sorted(config):
        if key in NUMBER_KEYS:
            number(config, key, None, where=where, **NUMBER_KEYS[key])
        elif key in TEXT_KEYS or (kind, key) in CHOICES:
            value = text(config, key, None, where=where, what=TEXT_KEYS.get(key, "a string"))
            choices = CHOICES.get((kind, key))
            if choices and value not in choices:
                raise ConfigError(
                    f"{where}: {key} = {value!r}; expected one of {', '.join(choices)}"
                    + did_you_mean(value, choices)
                )
    if kind == "adb":
        extra = config.get("extra_args", [])
        if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
            raise ConfigError(f"{where}: extra_args = {extra!r}; expected a list of strings")
        remote = config.get("remote_dir")
        if remote is not None and not str(remote).startswith("/"):
            raise ConfigError(
                f"{where}: remote_dir = {remote!r}; expected an absolute directory on the "
                "phone such as '/data/local/tmp/latbench'"
            )
