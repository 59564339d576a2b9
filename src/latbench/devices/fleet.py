"""Measure on several devices at once: one worker per device, one model at a time per device.

``latbench collect --device pi4,phone1,local`` uses this::

    fleet = Fleet({"pi4": {...table...}, "phone1": {...}, "local": {"transport": "local"}})
    results = fleet.run(
        {"pi4": archs, "phone1": archs, "local": archs},   # each device's own work queue
        prepare=lambda device, arch: (export_for(device, arch), {"runtime": ...}),
        on_result=lambda device, item, m: store.add(device, item, m),
        on_progress=lambda p: bar.update(...),
    )

Design (why the worker boundary looks like this):

* A :class:`DeviceWorker` owns one device. It is built from the device's *name and bench.toml
  table* (plain data), takes plain :class:`FleetTask` objects and returns plain
  :class:`~latbench.profilers.record.Measurement` records; nothing else crosses the boundary.
  Today each worker is a thread in this process (the devices' own work happens on the devices or
  in the local device's worker process, so threads do not contend for the GIL); the same
  ``DeviceWorker.run_task`` can later run on another host, with ``FleetTask.to_dict()`` and
  ``Measurement.to_dict()`` as the wire format.
* Failure isolation: anything a device does wrong becomes a failed record for that item; a
  device that cannot be opened fails only its own items. A failure of kind ``"device"`` (the
  device's setup: authentication, an agent that does not start, a runtime missing on the board;
  also a device the factory cannot build and a ``ConfigError`` or ``UnknownNameError`` out of
  ``measure``, which every item would meet alike) stops that device: its remaining items are
  failed at once with the reason (kind ``"device"``), the other devices go on. A failure of kind
  ``"transport"`` (see :mod:`latbench.devices.remote`) is retried ``retries`` times, after the
  device reconnects, so a dropped link loses nothing; after ``max_consecutive_failures``
  transport failures in a row the device's remaining items are failed at once with the reason,
  instead of hammering a dead board.
* ``on_result`` and ``on_progress`` are called under one lock, so the caller may write to one
  store and draw one progress display without locking of its own.
* :meth:`Fleet.stop` (or Ctrl-C in :meth:`Fleet.run`) lets every worker finish the model it is
  measuring, then returns; unstarted items are listed in :attr:`FleetResult.pending`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from latbench.config import Config
from latbench.devices.base import Device, ModelRef
from latbench.devices.remote import RETRYABLE_FAILURES, failure_kind
from latbench.errors import ConfigError, DeviceError, LatbenchError, UnknownNameError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement

__all__ = ["DeviceWorker", "Fleet", "FleetProgress", "FleetResult", "FleetTask"]

log = logging.getLogger(__name__)

#: ``prepare(device_name, item) -> model`` or ``(model, measure_kwargs)``
Prepare = Callable[[str, Any], Any]
OnResult = Callable[[str, Any, Measurement], None]


@dataclass(frozen=True)
class FleetTask:
    """One model to measure on one device: the unit that crosses the worker boundary."""

    index: int  # position in the device's queue
    item: Any  # the caller's item (architecture string, path, ...), passed back untouched
    model: ModelRef
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # Device.measure keyword arguments

    def to_dict(self) -> dict[str, Any]:
        kw = dict(self.kwargs)
        if isinstance(kw.get("settings"), HarnessSettings):
            kw["settings"] = kw["settings"].to_dict()
        return {"index": self.index, "item": self.item, "model": str(self.model), "kwargs": kw}


@dataclass
class FleetProgress:
    """Counts per device, for one progress display (``done`` includes ``failed``)."""

    total: dict[str, int]
    done: dict[str, int]
    failed: dict[str, int]
    last: tuple[str, Any, Measurement] | None = None

    @property
    def all_done(self) -> int:
        return sum(self.done.values())

    @property
    def all_total(self) -> int:
        return sum(self.total.values())

    def line(self) -> str:
        """``pi4 3/10 (1 failed) | phone1 5/10`` -- one line for all devices."""
        parts = []
        for name in self.total:
            bad = f" ({self.failed[name]} failed)" if self.failed[name] else ""
            parts.append(f"{name} {self.done[name]}/{self.total[name]}{bad}")
        return " | ".join(parts)


@dataclass
class FleetResult:
    """Every device's records in queue order, plus what was not run (after a stop)."""

    results: dict[str, list[tuple[Any, Measurement]]]
    pending: dict[str, list[Any]]
    errors: dict[str, str]  # device -> why it could not be opened or gave up

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and all(m.ok for rows in self.results.values() for _, m in rows)
            and not any(self.pending.values())
        )


class DeviceWorker:
    """Owns one device and measures tasks on it one at a time (the remote-able boundary).

    ``factory`` builds the device from ``(name, table)``; by default
    :func:`latbench.devices.get_device`. The device is opened on the first task, so a device that
    cannot be reached fails its tasks, not the fleet.
    """

    def __init__(
        self,
        name: str,
        table: Mapping[str, Any],
        *,
        factory: Callable[[str, Mapping[str, Any]], Device] | None = None,
        retries: int = 1,
        retry_delay_s: float = 0.5,
    ) -> None:
        self.name = name
        self.table = dict(table)
        self.factory = factory or _default_factory
        self.retries = max(0, int(retries))
        self.retry_delay_s = retry_delay_s
        self.device: Device | None = None
        self.consecutive_transport_failures = 0
        #: why the device cannot measure at all (a ``"device"`` failure); its queue then stops
        self.fault: str | None = None

    def _open(self) -> Device:
        if self.device is None:
            self.device = self.factory(self.name, self.table)
        return self.device

    def run_task(self, task: FleetTask) -> Measurement:
        """Measure ``task`` (with transport retries); never raises for a device problem."""
        attempt = 0
        while True:
            try:
                device = self._open()
            except Exception as exc:  # noqa: BLE001 - a device that cannot be built fails alone
                return self._failed(task, f"cannot open the device: {_why(exc)}", "device")
            try:
                m = device.measure(task.model, **dict(task.kwargs))
            except (DeviceError, ConfigError, UnknownNameError) as exc:
                # the device or its table, not the model (auth, setup, a missing
                # benchmark_binary, a runtime it does not run): every item would fail alike
                return self._failed(task, _why(exc), "device")
            except LatbenchError as exc:
                return self._failed(task, _why(exc), "model")
            kind = failure_kind(m)
            if kind in RETRYABLE_FAILURES:
                self.consecutive_transport_failures += 1
                if attempt < self.retries:
                    attempt += 1
                    log.info("%s: retrying %r after: %s", self.name, task.item, m.error)
                    time.sleep(self.retry_delay_s)
                    continue
            else:
                self.consecutive_transport_failures = 0
            if attempt:
                m = m.with_(harness={**m.harness, "attempts": attempt + 1})
            return m

    def _failed(self, task: FleetTask, error: str, kind: str) -> Measurement:
        kw = task.kwargs
        settings = kw.get("settings")
        return Measurement.failed(
            f"{self.name}: {error}",
            device=self.name,
            model_path=str(task.model),
            runtime=str(kw.get("runtime") or ""),
            threads=kw.get("threads"),
            harness={
                "settings": settings.to_dict() if isinstance(settings, HarnessSettings) else {},
                "failure": kind,
            },
        )

    def close(self) -> None:
        if self.device is not None:
            try:
                self.device.close()
            except LatbenchError as exc:
                log.warning("%s: close failed: %s", self.name, exc)
            self.device = None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _default_factory(name: str, table: Mapping[str, Any]) -> Device:
    from latbench.devices import get_device

    return get_device(name, Config(devices={name: dict(table)}))


class Fleet:
    """Run per-device work queues concurrently (see the module docstring).

    ``devices`` maps a device name to its bench.toml table (``Config.device(name)``), or is a
    :class:`~latbench.config.Config` plus ``names``. ``measure_kwargs`` are passed to every
    ``Device.measure`` call (``runtime``, ``threads``, ``settings``, ...); a ``prepare`` callback
    may add per-item ones.
    """

    def __init__(
        self,
        devices: Mapping[str, Mapping[str, Any]] | Config,
        names: Iterable[str] | None = None,
        *,
        measure_kwargs: Mapping[str, Any] | None = None,
        retries: int = 1,
        retry_delay_s: float = 0.5,
        max_consecutive_failures: int = 5,
        factory: Callable[[str, Mapping[str, Any]], Device] | None = None,
    ) -> None:
        if isinstance(devices, Config):
            cfg = devices
            wanted = list(names) if names is not None else ["local", *sorted(cfg.devices)]
            tables = {n: cfg.device(n) for n in wanted}
        else:
            tables = {n: dict(t) for n, t in devices.items()}
            if names is not None:
                tables = {n: tables[n] for n in names}
        self.tables = tables
        self.measure_kwargs = dict(measure_kwargs or {})
        self.max_consecutive_failures = max(1, int(max_consecutive_failures))
        self.workers = {
            n: DeviceWorker(n, t, factory=factory, retries=retries, retry_delay_s=retry_delay_s)
            for n, t in tables.items()
        }
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Ask every worker to stop after the model it is measuring."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _task(self, name: str, index: int, item: Any, prepare: Prepare | None) -> FleetTask:
        kwargs = dict(self.measure_kwargs)
        model: Any = item
        if prepare is not None:
            prepared = prepare(name, item)
            if isinstance(prepared, tuple) and len(prepared) == 2:
                model, extra = prepared
                kwargs.update(extra or {})
            else:
                model = prepared
        return FleetTask(index=index, item=item, model=model, kwargs=kwargs)

    def run(
        self,
        work: Mapping[str, Iterable[Any]],
        *,
        prepare: Prepare | None = None,
        on_result: OnResult | None = None,
        on_progress: Callable[[FleetProgress], None] | None = None,
    ) -> FleetResult:
        """Measure each device's items on that device, all devices at once; see the module doc.

        ``prepare(device, item)`` turns an item into a model (or ``(model, kwargs)``) inside the
        device's worker, so exporting overlaps with other devices' measurements; an exception
        there fails that item only.
        """
        unknown = set(work) - set(self.workers)
        if unknown:
            raise LatbenchError(
                f"work for unknown device(s) {sorted(unknown)}; "
                f"the fleet has {sorted(self.workers)}"
            )
        queues: dict[str, queue.SimpleQueue[tuple[int, Any]]] = {}
        items_of: dict[str, list[Any]] = {}
        for name, items in work.items():
            lst = list(items)
            items_of[name] = lst
            q: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
            for i, it in enumerate(lst):
                q.put((i, it))
            queues[name] = q
        progress = FleetProgress(
            total={n: len(v) for n, v in items_of.items()},
            done=dict.fromkeys(items_of, 0),
            failed=dict.fromkeys(items_of, 0),
        )
        slots: dict[str, list[tuple[Any, Measurement] | None]] = {
            n: [None] * len(v) for n, v in items_of.items()
        }
        errors: dict[str, str] = {}

        def deliver(name: str, index: int, item: Any, m: Measurement) -> None:
            with self._lock:
                slots[name][index] = (item, m)
                progress.done[name] += 1
                if not m.ok:
                    progress.failed[name] += 1
                progress.last = (name, item, m)
                if on_result is not None:
                    on_result(name, item, m)
                if on_progress is not None:
                    on_progress(progress)

        def loop(name: str) -> None:
            worker = self.workers[name]
            q = queues[name]
            try:
                while not self._stop.is_set():
                    try:
                        index, item = q.get_nowait()
                    except queue.Empty:
                        return
                    if worker.fault is not None:
                        task = FleetTask(index, item, str(item), self.measure_kwargs)
                        reason = f"not measured: {worker.fault}"
                        deliver(name, index, item, worker._failed(task, reason, "device"))
                        continue
                    if worker.consecutive_transport_failures >= self.max_consecutive_failures:
                        reason = (
                            f"gave up after {worker.consecutive_transport_failures} transport "
                            "failures in a row"
                        )
                        errors[name] = reason
                        task = FleetTask(index, item, str(item), self.measure_kwargs)
                        deliver(name, index, item, worker._failed(task, reason, "transport"))
                        continue
                    try:
                        task = self._task(name, index, item, prepare)
                    except Exception as exc:  # noqa: BLE001 - a bad item must not stop the device
                        task = FleetTask(index, item, str(item), self.measure_kwargs)
                        m = worker._failed(task, f"preparing the model failed: {exc!r}", "model")
                    else:
                        m = worker.run_task(task)
                        if failure_kind(m) == "device":  # every other item would fail alike
                            worker.fault = str(m.error or "the device failed")
                            errors[name] = worker.fault
                    deliver(name, index, item, m)
            except Exception as exc:
                log.exception("%s: worker failed", name)
                errors[name] = f"worker failed: {exc!r}"
            finally:
                worker.close()

        threads = [
            threading.Thread(target=loop, args=(n,), name=f"latbench-fleet-{n}", daemon=True)
            for n in work
        ]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            self.stop()
            for t in threads:
                t.join()
            raise
        results = {n: [s for s in rows if s is not None] for n, rows in slots.items()}
        pending = {
            n: [items_of[n][i] for i, s in enumerate(rows) if s is None]
            for n, rows in slots.items()
        }
        return FleetResult(results=results, pending=pending, errors=errors)

    def close(self) -> None:
        for w in self.workers.values():
            w.close()
