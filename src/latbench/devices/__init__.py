"""Devices: where a model is measured (this CPU, SSH boards, Android phones, GPUs).

``DEVICES`` maps a transport kind (``local``, ``ssh``, ``adb``, ``cuda``) to its adapter class;
:func:`get_device` creates the device a bench.toml ``[devices.NAME]`` table describes. Adapter
modules are imported on first use, so a missing optional dependency of one adapter (paramiko,
adbutils, CUDA) never breaks the others.
"""

from __future__ import annotations

import importlib
import logging

from latbench.config import Config
from latbench.devices.base import DEVICES, FINGERPRINT_KEYS, Device, ModelRef
from latbench.errors import ConfigError, DeviceError, UnknownNameError

__all__ = [
    "ADAPTER_MODULES",
    "DEVICES",
    "FINGERPRINT_KEYS",
    "Device",
    "ModelRef",
    "adapter_class",
    "get_device",
]

log = logging.getLogger(__name__)

#: transport kind -> module that registers its adapter with ``@DEVICES.register(kind)``.
ADAPTER_MODULES = {
    "local": "latbench.devices.local",
    "ssh": "latbench.devices.ssh",
    "adb": "latbench.devices.adb",
    "cuda": "latbench.devices.cuda",
}


def adapter_class(kind: str) -> type[Device]:
    """The adapter class of a transport ``kind``, importing its module on first use.

    Raises :class:`~latbench.errors.UnknownNameError` for an unknown kind and
    :class:`~latbench.errors.DeviceError` when the adapter's module cannot be imported (the
    message says why, e.g. a missing optional package).
    """
    if kind not in DEVICES and kind in ADAPTER_MODULES:
        try:
            importlib.import_module(ADAPTER_MODULES[kind])
        except ImportError as exc:
            raise DeviceError(f"the {kind!r} device adapter is not available: {exc}") from exc
    if kind not in DEVICES:
        known = ", ".join(sorted(set(DEVICES.names()) | set(ADAPTER_MODULES)))
        if kind in ADAPTER_MODULES:
            raise DeviceError(f"the {kind!r} device adapter is not available in this latbench")
        raise UnknownNameError(f"unknown device transport {kind!r}; expected one of: {known}")
    return DEVICES.get(kind)


def get_device(name: str, config: Config | None = None) -> Device:
    """The device ``name`` of ``config`` (``local`` always exists), ready to measure."""
    cfg = config or Config()
    table = cfg.device(name)
    kind = table.get("transport")
    where = f" in {cfg.path}" if cfg.path else ""
    if not isinstance(kind, str):
        raise ConfigError(
            f"device {name!r}{where} has no transport; expected local, ssh, adb or cuda"
        )
    try:
        cls = adapter_class(kind)
    except UnknownNameError as exc:  # a Config built in Python (load_config checks its file's)
        raise UnknownNameError(f"device {name!r}{where}: {exc}") from None
    if "cpus" not in table and cfg.measure.get("cpus") is not None:
        # [measure] cpus is every device's default, as its harness keys are (the table's own
        # cpus go over it): collect, describe, adapt --device and search --verify pin as
        # measure does
        table = {**table, "cpus": cfg.measure["cpus"]}
    return cls(name, table)
