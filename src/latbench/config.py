"""bench.toml: devices and measurement defaults.

The file is optional; without it latbench uses the defaults below and the ``local`` device. A
broken file raises :class:`~latbench.errors.ConfigError` naming the file, the key and what was
expected.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latbench.errors import ConfigError

DEFAULT_CONFIG_NAME = "bench.toml"

MEASURE_DEFAULTS: dict[str, Any] = {
    "runtime": "onnxruntime",
    "threads": 1,
    "batch": 1,
    "warmup_runs": 10,
    "warmup_time_s": 0.2,
    "min_runs": 20,
    "min_time_s": 1.0,
    "max_time_s": 10.0,
    "spread_threshold": 0.05,
    "timeout_s": 120.0,
    "cpus": None,
}

KNOWN_SECTIONS = {"measure", "store", "devices", "collect"}


@dataclass
class Config:
    path: Path | None = None
    measure: dict[str, Any] = field(default_factory=lambda: dict(MEASURE_DEFAULTS))
    store: dict[str, Any] = field(default_factory=lambda: {"path": "latbench.db"})
    collect: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def store_path(self) -> Path:
        return Path(str(self.store.get("path", "latbench.db")))

    def device(self, name: str) -> dict[str, Any]:
        """The table of device ``name`` (``local`` is always there)."""
        if name in self.devices:
            return self.devices[name]
        if name == "local":
            return {"transport": "local"}
        known = ", ".join(["local", *sorted(self.devices)])
        where = f" in {self.path}" if self.path else ""
        raise ConfigError(f"unknown device {name!r}{where}; expected one of: {known}")

    def measure_for(self, name: str) -> dict[str, Any]:
        """``[measure]`` with the timing-harness keys of device ``name``'s own table over it
        (``max_time_s = 30`` for a slow board); command-line options go over both."""
        from latbench.profilers.harness import HARNESS_KEYS

        table = self.devices.get(name, {})
        return {**self.measure, **{k: v for k, v in table.items() if k in HARNESS_KEYS}}


def _check_type(path: Path, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    if not isinstance(value, expected) or (
        isinstance(value, bool)
        and bool not in (expected if isinstance(expected, tuple) else (expected,))
    ):
        names = (
            " or ".join(t.__name__ for t in expected)
            if isinstance(expected, tuple)
            else expected.__name__
        )
        raise ConfigError(f"{path}: {key} = {value!r}; expected {names}")


def _did_you_mean(word: str, choices: Any) -> str:
    from latbench.devices._config import did_you_mean

    return did_you_mean(word, choices)


#: the range of each number of ``[measure]`` (the keywords of ``expected_number``); the others
#: are seconds or ratios >= 0
MEASURE_RULES: dict[str, dict[str, Any]] = {
    "threads": {"integer": True, "low": 1},
    "batch": {"integer": True, "low": 1},
    "warmup_runs": {"integer": True, "low": 0},
    # the harness takes at least one timed sample whatever this says: 0 is no count of runs
    "min_runs": {"integer": True, "low": 1},
    "max_runs": {"integer": True, "low": 1},
    "loops": {"integer": True, "low": 1},
    "timeout_s": {"positive": True},
    "max_time_s": {"positive": True},
}


def _check_measure_value(path: Path, key: str, value: Any) -> None:
    from latbench._validate import expected_number

    _check_type(path, f"measure.{key}", value, (int, float))
    want = expected_number(value, **MEASURE_RULES.get(key, {"low": 0}))
    if want is not None:
        raise ConfigError(f"{path} [measure] {key} = {value!r}; expected {want}")


def _check_name(path: Path, key: str, value: str) -> None:
    """``[measure] runtime`` a runtime of ``latbench.profilers.runtimes`` serves (a plugin's
    too), ``[measure] statistic`` one of ``latbench.profilers.stats`` but ``normalized``."""
    if key == "runtime":
        from latbench.profilers.runtimes import RUNTIMES

        known = None if value in RUNTIMES else RUNTIMES.names()
    else:
        from latbench.profilers.stats import STATISTICS

        # ``normalized`` needs an interleaved reference run, which a table cannot ask for
        choices = [x for x in STATISTICS if x != "normalized"]
        known = None if value in choices else choices
    if known is not None:
        raise ConfigError(
            f"{path} [measure] {key} = {value!r}; expected one of: {', '.join(known)}"
            + _did_you_mean(value, known)
        )


def _check_harness(path: Path, where: str, values: dict[str, Any]) -> None:
    """The harness settings of ``values`` together (``max_time_s >= min_time_s``); ``where``
    names the table(s) they come from."""
    from latbench.profilers.harness import HarnessSettings

    try:
        HarnessSettings.from_mapping(values)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{path} {where} {str(exc).removeprefix('harness setting ')}") from None


def _check_drift_arch(path: Path, value: str) -> None:
    """``collect.drift_arch`` must be an architecture of some search space (which one is known
    only when collecting, where it is checked against that space)."""
    from latbench.errors import LatbenchError
    from latbench.spaces.base import SPACES

    reasons = []
    for name in SPACES.names():
        try:
            SPACES.get(name)().canonical(value)
            return
        except (LatbenchError, TypeError, ValueError) as exc:
            reasons.append(str(exc))
    raise ConfigError(
        f"{path}: collect.drift_arch = {value!r} is no architecture of any search space; "
        f"expected one of a space's architectures ({'; '.join(reasons)})"
    )


def _check_table(
    path: Path, section: str, table: dict[str, Any], keys: dict[str, type | tuple[type, ...]]
) -> None:
    """Every key of ``[section]`` known, each value of its type."""
    for key, value in table.items():
        if key not in keys:
            raise ConfigError(
                f"{path}: unknown key {section}.{key}; expected one of {sorted(keys)}"
                + _did_you_mean(key, keys)
            )
        _check_type(path, f"{section}.{key}", value, keys[key])


#: the environment variable naming the bench.toml to read when no ``--config`` is given
CONFIG_ENV = "LATBENCH_CONFIG"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read bench.toml (``path``, else ``$LATBENCH_CONFIG``, else ``./bench.toml`` if present).

    A file named by ``path`` or ``$LATBENCH_CONFIG`` must exist; the error for a missing one
    says when its name came from the environment variable.
    """
    source = ""
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if env:
            path, source = env, f" (from ${CONFIG_ENV})"
        elif Path(DEFAULT_CONFIG_NAME).is_file():
            path = DEFAULT_CONFIG_NAME
        else:
            return Config()
    p = Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "does not exist"
        hint = f" (point {CONFIG_ENV} at one, unset it, or pass --config FILE)" if source else ""
        raise ConfigError(f"config file {str(p)!r}{source} {what}; expected a bench.toml{hint}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except OSError as exc:  # unreadable (permissions), or gone since the check above
        raise ConfigError(
            f"config file {str(p)!r}{source} cannot be read ({exc.strerror or exc}); expected "
            "a readable bench.toml"
        ) from None
    unknown = set(data) - KNOWN_SECTIONS
    if unknown:
        raise ConfigError(
            f"{p}: unknown section(s) {sorted(unknown)}; expected {sorted(KNOWN_SECTIONS)}"
            + _did_you_mean(sorted(unknown)[0], KNOWN_SECTIONS)
        )
    cfg = Config(path=p)
    measure = data.get("measure", {})
    _check_type(p, "[measure]", measure, dict)
    from latbench.profilers.harness import HARNESS_KEYS

    known = sorted(set(MEASURE_DEFAULTS) | HARNESS_KEYS)
    for key, value in measure.items():
        if key not in known:
            raise ConfigError(
                f"{p}: unknown key measure.{key}; expected one of {known}"
                + _did_you_mean(key, known)
            )
        if key in ("runtime", "statistic"):
            _check_type(p, f"measure.{key}", value, str)
            _check_name(p, key, value)
        elif key == "cpus":
            _check_cpus(p, "measure.cpus", value)
        else:
            _check_measure_value(p, key, value)
        cfg.measure[key] = value
    _check_harness(p, "[measure]", cfg.measure)
    store = data.get("store", {})
    _check_type(p, "[store]", store, dict)
    _check_table(p, "store", store, {"path": str})
    if "path" in store and not store["path"].strip():
        raise ConfigError(
            f"{p}: store.path = {store['path']!r}; expected the store file's name, such as "
            '"latbench.db" (leave the key out for that default)'
        )
    cfg.store.update(store)
    collect = data.get("collect", {})
    _check_type(p, "[collect]", collect, dict)
    _check_table(
        p,
        "collect",
        collect,
        {"drift_every": int, "drift_threshold": (int, float), "drift_arch": str},
    )
    drift_every = collect.get("drift_every")
    if drift_every is not None and drift_every < 0:
        raise ConfigError(
            f"{p}: collect.drift_every = {drift_every!r}; expected an integer >= 0 (the drift "
            "reference is measured every N architectures; 0: never)"
        )
    threshold = collect.get("drift_threshold")
    if threshold is not None:
        from latbench._validate import expected_number

        want = expected_number(threshold, positive=True)
        if want is not None:
            raise ConfigError(
                f"{p}: collect.drift_threshold = {threshold!r}; expected {want} (the share "
                "of drift that is warned about, such as 0.10)"
            )
    if "drift_arch" in collect:
        _check_drift_arch(p, collect["drift_arch"])
    cfg.collect.update(collect)
    devices = data.get("devices", {})
    _check_type(p, "[devices]", devices, dict)
    for name, table in devices.items():
        _check_type(p, f"[devices.{name}]", table, dict)
        transport = table.get("transport")
        if not isinstance(transport, str):
            raise ConfigError(
                f'{p}: [devices.{name}] needs transport = "local", "ssh", "adb" or "cuda"'
            )
        if not name.strip() or "," in name:
            raise ConfigError(
                f"{p}: [devices.{name}]: {name!r} is no device name (--device takes a comma "
                "list of names); expected a name without commas, such as pi4"
            )
        builtin = _check_transport(p, name, transport)
        if builtin:  # every built-in transport reads cpus the same way; plugins their own way
            _check_cpus(p, f"[devices.{name}] cpus", table.get("cpus"))
            _check_device_table(p, name, transport, table)
        cfg.devices[name] = dict(table)
    for name, table in cfg.devices.items():
        if any(k in HARNESS_KEYS for k in table) and _check_transport(p, name, table["transport"]):
            own = {k: v for k, v in table.items() if k in HARNESS_KEYS}
            _check_harness(p, f"[devices.{name}]", own)
            _check_harness(p, f"[devices.{name}] (over [measure])", cfg.measure_for(name))
    return cfg


def _check_device_table(path: Path, name: str, transport: str, table: dict[str, Any]) -> None:
    """A built-in transport's table: its keys, the keys it needs, its values, all checked
    without connecting anywhere (an ssh key file or a CPU of this machine is checked when the
    device is created, where it is used)."""
    from latbench.devices import adapter_class
    from latbench.devices._config import check_table
    from latbench.errors import DeviceError

    try:
        allowed = adapter_class(transport).config_keys
    except DeviceError:  # the adapter cannot be imported here: its keys are checked in use
        allowed = None
    check_table(table, transport, allowed, f"{path}: [devices.{name}] (transport = {transport!r})")


def _check_cpus(path: Path, key: str, value: Any) -> None:
    """A ``cpus`` value of ``[measure]`` or a device table: CPU ids >= 0, lists or ranges."""
    from latbench.devices._config import parse_cpu_list

    parse_cpu_list(value, where=str(path), key=key)


def _check_transport(path: Path, name: str, transport: str) -> bool:
    """Refuse a ``transport`` no adapter serves (built in or a plugin of the entry-point group
    ``latbench.devices``); True for a built-in one."""
    # imported here: latbench.devices imports this module
    from latbench.devices import ADAPTER_MODULES
    from latbench.devices.base import DEVICES

    if transport in ADAPTER_MODULES:
        return True
    if transport in DEVICES:  # a plugin (loads the entry points, only for an unknown name)
        return False
    known = ", ".join(sorted(set(ADAPTER_MODULES) | set(DEVICES.names())))
    raise ConfigError(
        f"{path}: [devices.{name}] transport = {transport!r}: no such device transport; "
        f"expected one of: {known}"
    )
