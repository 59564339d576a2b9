"""Reading a ``[devices.NAME]`` table of bench.toml: known keys and typed values.

A typo in a device table (``timout_s = 30``) or a value of the wrong type (``port = "22a"``)
is a :class:`~latbench.errors.ConfigError` that names the device, the key, the value and what
was expected, raised when the device is created rather than as a traceback mid-run.
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


def check_keys(config: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Refuse keys of ``config`` that are neither ``allowed`` nor :data:`COMMON_KEYS`, and
    harness settings that are not finite numbers of their range."""
    known = COMMON_KEYS | frozenset(allowed)
    unknown = sorted(set(config) - known)
    if unknown:
        keys = ", ".join(repr(k) for k in unknown)
        raise ConfigError(
            f"{where}: unknown key(s) {keys} in its bench.toml table; expected some of "
            f"{', '.join(sorted(known))}"
        )
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


def parse_cpu_list(value: Any, *, where: str) -> list[int] | None:
    """``"4-7"``, ``"2,3"``, ``"0-1,4"``, ``3`` or ``[2, 3]`` -> sorted CPU ids; None/"" -> None.

    A reversed range (``"7-4"``), an open one (``"4-"``) or a negative id is refused, naming
    ``where`` (the device).
    """
    if value is None or value == "" or value == []:
        return None
    want = "a CPU list like '4-7', '2,3' or [2, 3]"
    if isinstance(value, bool):
        raise ConfigError(f"{where}: cpus = {value!r}; expected {want}")
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        items = value.replace(" ", "").split(",")
    else:
        raise ConfigError(f"{where}: cpus = {value!r}; expected {want}")
    ids: set[int] = set()
    for part in items:
        if isinstance(part, bool) or not isinstance(part, int | str):
            raise ConfigError(f"{where}: cpus = {value!r}; expected {want}")
        text_part = str(part).strip()
        lo_s, sep, hi_s = text_part.partition("-")
        if not lo_s.isdigit() or (sep and not hi_s.isdigit()):
            raise ConfigError(f"{where}: cpus = {value!r}; expected {want}")
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
        if hi < lo:
            raise ConfigError(
                f"{where}: cpus = {value!r}: the range {text_part!r} is reversed (an empty set); "
                f"expected LOW-HIGH such as '{hi}-{lo}'"
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
