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


def check_keys(config: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Refuse keys of ``config`` that are neither ``allowed`` nor :data:`COMMON_KEYS`."""
    known = COMMON_KEYS | frozenset(allowed)
    unknown = sorted(set(config) - known)
    if unknown:
        keys = ", ".join(repr(k) for k in unknown)
        raise ConfigError(
            f"{where}: unknown key(s) {keys} in its bench.toml table; expected some of "
            f"{', '.join(sorted(known))}"
        )
    try:
        HarnessSettings.from_mapping(config)
    except (TypeError, ValueError) as exc:
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
) -> Any:
    """``config[key]`` (else ``default``) as an int or float in [minimum, maximum]."""
    value = config.get(key, default)
    if value is None:
        return None
    want = expected_number(value, integer=integer, low=minimum, high=maximum)
    if want:
        raise ConfigError(f"{where}: {key} = {value!r}; expected {want}")
    return int(value) if integer else float(value)
