"""Helpers shared by the remote adapters (ssh, adb): argument checks, failed records, hashing.

A failed measurement carries *why* it failed in ``harness["failure"]`` so that callers (the
:class:`~latbench.devices.fleet.Fleet`) can tell a transient transport fault, worth one retry
after a reconnect, from a model that fails every time:

* ``"transport"`` -- the connection dropped or the phone vanished (retryable);
* ``"timeout"`` -- the run exceeded its timeout and was killed;
* ``"disk_full"`` -- the model could not be written on the device;
* ``"crashed"`` -- the on-device process died;
* ``"model"`` -- the model or runtime was rejected on the device;
* ``"device"`` -- the device itself is not usable (the agent did not start, the runtime is not
  installed on the board, the remote directory is unusable, SSH authentication failed, the
  ``cpus`` do not exist there): no model can be measured on it until its setup is fixed, so
  callers stop that device and do not store the failure as the model's.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latbench.errors import ModelError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement
from latbench.profilers.runtimes import (
    RUNTIMES,
    check_batch,
    check_threads,
    missing_model_message,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEVICE_FAILURES",
    "FAILURE_KINDS",
    "RETRYABLE_FAILURES",
    "check_args",
    "failed_record",
    "failure_kind",
    "file_sha256",
    "measure_once_more",
    "settings_from",
]

FAILURE_KINDS = ("transport", "timeout", "disk_full", "crashed", "model", "device")
RETRYABLE_FAILURES = frozenset({"transport"})
#: failures that are the device's, not the measured model's: never stored as the model's result
DEVICE_FAILURES = frozenset({"transport", "device"})

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, cached by (path, size, mtime) so a model is hashed once."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    sha = _SHA_CACHE.get(key)
    if sha is None:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        sha = _SHA_CACHE[key] = h.hexdigest()
    return sha


def check_args(
    device: str,
    model: Any,
    runtime: str,
    threads: int | None,
    batch: int | None,
    suffixes: tuple[str, ...] | None = None,
) -> Path:
    """Validate what a remote device can measure: a model *file* of a known runtime."""
    RUNTIMES.get(runtime)  # UnknownNameError lists the runtimes
    if not isinstance(model, str | os.PathLike):
        raise ModelError(
            f"device {device!r} measures model files (pushed to the device); got "
            f"{type(model).__name__}; export the model first (latbench export)"
        )
    path = Path(model)
    if not path.is_file():
        raise ModelError(missing_model_message(path))
    if suffixes and path.suffix.lower() not in suffixes:
        raise ModelError(
            f"model file {str(path)!r} has suffix {path.suffix!r}; device {device!r} with "
            f"runtime {runtime!r} expects {' or '.join(suffixes)}"
        )
    check_threads(threads)  # int("abc") would be a ValueError, int(2.5) a silent 2
    check_batch(batch)
    return path


def settings_from(settings: HarnessSettings | None, config: Mapping[str, Any]) -> HarnessSettings:
    """The harness settings: explicit ones, else those of the device table, else defaults."""
    if settings is not None:
        return settings
    return HarnessSettings.from_mapping(config)


def failed_record(
    error: str,
    kind: str,
    *,
    device: str,
    fingerprint: str,
    model: str,
    runtime: str,
    threads: int | None,
    batch: int | None,
    settings: HarnessSettings,
    wall_s: float = 0.0,
) -> Measurement:
    """A failed :class:`Measurement` with ``harness["failure"] = kind``."""
    if kind not in FAILURE_KINDS:
        raise ValueError(f"failure kind {kind!r}; expected one of {FAILURE_KINDS}")
    return Measurement.failed(
        error,
        runtime=runtime,
        device=device,
        device_fingerprint=fingerprint,
        model_path=model,
        threads=threads,
        batch=batch or 1,
        wall_s=wall_s,
        harness={"settings": settings.to_dict(), "failure": kind},
    )


def measure_once_more(device: Any, model: Any, what: str = "", **kwargs: Any) -> Measurement:
    """``device.measure(model, **kwargs)``, measured once more after a dropped link (a
    :data:`RETRYABLE_FAILURES` record): the one retry of the commands that measure item by
    item (``devices describe``, live ``adapt``); ``what`` names the item in the log."""
    m: Measurement = device.measure(model, **kwargs)
    if not m.ok and failure_kind(m) in RETRYABLE_FAILURES:
        log.info("%s: measuring %s again after: %s", device.name, what or model, m.error)
        m = device.measure(model, **kwargs)
    return m


def failure_kind(m: Measurement) -> str | None:
    """Why a record failed (``"transport"``, ``"timeout"``, ...); None for a good record."""
    if m.status == "ok":
        return None
    kind = m.harness.get("failure") if isinstance(m.harness, dict) else None
    return str(kind) if kind else "model"
