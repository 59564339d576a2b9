"""Collection: measure many architectures on one or more devices into a store, resumably.

Algorithm (:func:`collect`)::

    for each device:
        todo = [a for a in archs if (collection, device, space, runtime, batch, threads, a)
                                    is not in the store]          # resume: skip what is stored
        queue = todo with the drift reference model before every drift_every-th architecture
    latbench.devices.fleet.Fleet runs every device's queue at once (one worker thread per
        device, one model at a time per device, a dropped link retried after a reconnect);
        prepare = emit the architecture for the runtime (in the device's worker thread)
    writer (the calling thread): each result is one durable transaction (the store's add),
        carrying the device's latest drift ratio; one progress bar shows rate, ETA, and every
        device's count; Ctrl-C / a stop request -> every device finishes its current model

Crash safety comes from the store: a row is committed before the next architecture starts, and
a rerun skips every stored key, so a collection killed at any instant (SIGKILL included) and run
again ends with exactly one row per (architecture, device), none lost and none twice.

Failures: an architecture whose emission or measurement fails (the runtime crashed or hung the
worker, an operator is unsupported), or whose record the store cannot hold (a device adapter's
metadata that is not JSON), is stored with ``status = "failed"`` and its error, and the run
goes on; a rerun does not retry it unless ``retry_failed`` is set (an ``ok`` result then
replaces the failed row). A failure of the link to the device (kind ``"transport"``, after the
fleet's reconnect and retry, or once the fleet gave up on the device) is not the
architecture's: it is counted as failed and reported, but not stored, so the same command run
again once the device is back measures those architectures. So is a fault of the device's setup
(kind ``"device"``: the board's agent does not start, its runtime package is missing there, its
remote directory is unusable, SSH authentication fails, its ``cpus`` do not exist): that device
stops at once ("N not measured: device X: <reason>"), the others go on, the command exits
non-zero, and the rerun measures those architectures once the device is fixed. Errors of the
command itself (unknown runtime, missing runtime package on this machine, bad settings) stop the
run at once. Each device is measured with its own runtime where its table names one (an ssh or
cuda table's ``runtime``; an adb phone runs LiteRT), so ``--device pi4,phone1,local`` emits
TFLite for the board and phone and ONNX for this CPU. A result another collection of the same
store wrote first is not counted as this run's. After a stop
request, failed results are not stored: the interrupt may have killed the worker, and a rerun
measures those architectures.

The device is anything with ``name``, ``measure(model, **kwargs) -> Measurement`` and
``fingerprint()`` (a :class:`latbench.devices.Device`), so tests inject their own. The devices
are lent to the fleet (the caller opens and closes them); the fleet's per-device failure
isolation applies: an exception of one device fails that device's architecture, not the run.
"""

from __future__ import annotations

import logging
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, cast

from latbench._progress import Progress
from latbench.datasets import schema as S
from latbench.datasets.store import Store
from latbench.devices.base import Device
from latbench.devices.remote import DEVICE_FAILURES, failure_kind
from latbench.errors import (
    ArchError,
    ConfigError,
    DeviceError,
    LatbenchError,
    RuntimeNotInstalledError,
    UnknownNameError,
)
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement
from latbench.spaces import SearchSpace

log = logging.getLogger(__name__)

RUNTIME_FORMAT = {"onnxruntime": "onnx", "litert": "tflite", "torch": "torch"}
# Errors that would fail every architecture the same way: stop instead of recording them.
FATAL_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    UnknownNameError,
    RuntimeNotInstalledError,
)


class MeasureTarget(Protocol):
    """What :func:`collect` needs of a device (``latbench.devices.Device`` fits)."""

    name: str

    @property
    def measure(self) -> Callable[..., Measurement]:
        """``measure(model, runtime=..., threads=..., batch=..., settings=..., seed=...)``."""

    def fingerprint(self) -> str: ...


Emitter = Callable[[str, Path], Any]  # (arch, directory) -> model reference


@dataclass(frozen=True)
class CollectSettings:
    """What to measure and how; everything that identifies the rows is part of their key."""

    collection: str = "default"
    runtime: str = "onnxruntime"
    threads: int = 1
    batch: int = 1
    resolution: int | None = None
    seed: int = 0  # seed of the emitted weights and the inputs
    harness: HarnessSettings = field(default_factory=HarnessSettings)
    # devices whose bench.toml table sets harness keys of its own: their settings (over harness)
    device_harness: Mapping[str, HarnessSettings] = field(default_factory=dict)
    # each device's runtime where it differs from ``runtime``; None: :func:`collect` takes it
    # from every device's table (``table_runtime``: an ssh/cuda table's ``runtime``, adb's
    # litert), a mapping (``{}`` too) is used as given
    device_runtime: Mapping[str, str] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # runtime options
    drift_every: int = 50  # re-measure the reference model every N archs; 0 disables
    drift_threshold: float = 0.10  # warn when |ratio - 1| exceeds this
    drift_arch: str | None = None  # default: :func:`default_drift_arch`
    retry_failed: bool = False

    def __post_init__(self) -> None:
        if not self.collection:
            raise ConfigError("collection name is empty; expected a name such as 'nb201-local'")
        if self.threads < 1:
            raise ConfigError(f"threads = {self.threads}; expected an integer >= 1")
        if self.batch < 1:
            raise ConfigError(f"batch = {self.batch}; expected an integer >= 1")
        if self.drift_every < 0:
            raise ConfigError(f"drift_every = {self.drift_every}; expected >= 0 (0 disables)")
        if self.drift_threshold <= 0:
            raise ConfigError(f"drift_threshold = {self.drift_threshold}; expected > 0")

    def params(self) -> dict[str, Any]:
        d = asdict(self)
        d["harness"] = self.harness.to_dict()
        d["options"] = dict(self.options)
        d.pop("device_harness")
        if self.device_harness:  # absent when unused: earlier collections' params are unchanged
            d["device_harness"] = {n: s.to_dict() for n, s in sorted(self.device_harness.items())}
        d.pop("device_runtime")
        if self.device_runtime:  # likewise
            d["device_runtime"] = dict(sorted(self.device_runtime.items()))
        return d

    def runtime_of(self, device: str) -> str:
        """The runtime ``device`` is measured with."""
        return (self.device_runtime or {}).get(device, self.runtime)


@dataclass
class DeviceProgress:
    planned: int = 0
    already: int = 0
    ok: int = 0
    failed: int = 0
    drift_ratio: float | None = None
    unreachable: int = 0  # not measured: the device's link failed (not stored; a rerun retries)
    unreachable_reason: str = ""
    # of ``unreachable``: not measured because the device's setup failed (kind "device")
    device_fault: int = 0
    device_fault_reason: str = ""
    # results another run stored first (two collections of one store at once): not counted
    stored_elsewhere: int = 0


@dataclass
class CollectReport:
    """What a collection did; ``inference_s`` is the time inside the timed loops."""

    collection: str
    devices: dict[str, DeviceProgress] = field(default_factory=dict)
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    inference_s: float = 0.0  # sum over rows of (samples x loops): time inside timed loops
    warmup_s: float = 0.0  # untimed warm-up inferences
    drift_s: float = 0.0  # wall time of the drift reference measurements
    drift_inference_s: float = 0.0  # timed loops and warm-up of the drift reference
    dropped: int = 0  # failed results discarded after a stop request
    emit_s: float = 0.0  # emitting models (summed over devices)
    measure_s: float = 0.0  # wall time of the device.measure calls, drift included
    store_s: float = 0.0  # writing rows and drift records (durable transactions)

    @property
    def ok(self) -> int:
        return sum(d.ok for d in self.devices.values())

    @property
    def failed(self) -> int:
        return sum(d.failed for d in self.devices.values())

    @property
    def measured(self) -> int:
        return self.ok + self.failed

    @property
    def overhead_fraction(self) -> float:
        """Share of wall time outside the timed loops, warm-up and drift excluded."""
        if self.wall_s <= 0:
            return float("nan")
        return max(0.0, self.wall_s - self.inference_s - self.warmup_s - self.drift_s) / (
            self.wall_s
        )

    def summary(self) -> str:
        parts = [
            f"collection {self.collection!r}: {self.ok} ok, {self.failed} failed "
            f"in {self.wall_s:.1f} s"
        ]
        for name, d in self.devices.items():
            drift = f", drift {d.drift_ratio:.3f}" if d.drift_ratio is not None else ""
            parts.append(
                f"  {name}: {d.already} already stored, {d.ok} ok, {d.failed} failed "
                f"of {d.planned} to do{drift}"
            )
            if d.device_fault:
                parts.append(
                    f"  {name}: {d.device_fault} not measured: device {name}: "
                    f"{d.device_fault_reason}; not stored: fix the device and run the same "
                    "command again"
                )
            if d.unreachable > d.device_fault:
                parts.append(
                    f"  {name}: {d.unreachable - d.device_fault} not measured, the device could "
                    f"not be reached ({d.unreachable_reason}); not stored: run the same command "
                    "again once it is back"
                )
            if d.stored_elsewhere:
                parts.append(
                    f"  {name}: {d.stored_elsewhere} measured but already stored by another "
                    "run of this store meanwhile (not counted)"
                )
        if self.interrupted:
            parts.append("  interrupted: run the same command again to continue")
        return "\n".join(parts)


def default_drift_arch(space: SearchSpace) -> str:
    """The reference model of drift control: every position set to the middle choice.

    Deterministic for a space, mid-sized (NB201: all ``nor_conv_1x1``; FBNet: all ``k5_e1``),
    so it is cheap to re-measure yet long enough to time well.
    """
    mid = len(space.choices) // 2
    return space.from_ops([mid] * space.num_positions)


def emit_format(runtime: str) -> str:
    """The model format collection emits for ``runtime``; UnknownNameError when it has none."""
    fmt = RUNTIME_FORMAT.get(runtime)
    if fmt is None:
        raise UnknownNameError(
            f"runtime {runtime!r} cannot run emitted architectures; expected one of "
            + ", ".join(sorted(RUNTIME_FORMAT))
        )
    return fmt


def make_emitter(
    space: SearchSpace, runtime: str, *, batch: int, resolution: int | None, seed: int
) -> Emitter:
    """An emitter writing ``arch`` for ``runtime`` into a directory (torch: in-memory factory)."""
    fmt = emit_format(runtime)
    from latbench.spaces import export

    suffix = {"onnx": ".onnx", "tflite": ".tflite", "torch": ".pt2"}[fmt]

    def emit(arch: str, directory: Path) -> Any:
        graph = space.build(arch, batch=batch, resolution=resolution)
        if fmt == "torch":
            from latbench.spaces.emit_torch import torch_factory

            return torch_factory(graph, seed)
        path = directory / f"{space.arch_id(arch)}{suffix}"
        return export(graph, fmt, path, seed)

    return emit


@dataclass
class _Item:
    kind: str  # "row", "drift", "done", "fatal"
    device: str
    arch: str = ""
    measurement: Measurement | None = None
    error: BaseException | None = None
    drift_wall_s: float = 0.0
    progress: str = ""  # the fleet's one-line progress of every device
    emit_s: float = 0.0
    measure_s: float = 0.0


@dataclass(frozen=True)
class _Work:
    """One item of a device's fleet queue: an architecture, or the drift reference model."""

    kind: str  # "row" or "drift"
    arch: str


@dataclass(frozen=True)
class _EmitFailed:
    """What ``prepare`` hands the device when emission failed: measured as a failed record."""

    error: str


class _Lent:
    """A caller's device lent to the fleet: keeps the collector's failure rules, not closed.

    * an emission failure (:class:`_EmitFailed`) becomes a failed record with its error;
    * a fatal error (bad runtime, missing package: every architecture would fail the same way)
      is kept in ``fatal`` and stops the fleet;
    * a :class:`~latbench.errors.DeviceError` or an unexpected exception of the device is the
      device's fault (kind ``"device"``): the fleet stops that device and nothing is stored;
    * another latbench error (the model was rejected) becomes a failed record of kind
      ``"model"``, and the run goes on.

    The caller opened the device and closes it; the fleet's ``close`` is a no-op here.
    """

    def __init__(self, device: MeasureTarget, settings: CollectSettings, fatal: list[BaseException],
                 stop: Callable[[], None]) -> None:  # fmt: skip
        self.name = device.name
        self._device = device
        self._settings = settings
        self._fatal = fatal
        self._stop = stop

    def _failed(self, error: str, kind: str = "model") -> Measurement:
        s = self._settings
        m = Measurement.failed(
            error,
            runtime=s.runtime_of(self.name),
            batch=s.batch,
            threads=s.threads,
            started_at=S.utc_now(),
        )
        return m.with_(harness={**m.harness, "failure": kind})

    def measure(self, model: Any, **kwargs: Any) -> Measurement:
        if isinstance(model, _EmitFailed):
            return self._failed(model.error)
        own = self._settings.device_harness.get(self.name)
        if own is not None:
            kwargs = {**kwargs, "settings": own}
        try:
            return self._device.measure(model, **kwargs)
        except FATAL_ERRORS as exc:
            self._fatal.append(exc)
            self._stop()
            return self._failed(f"{type(exc).__name__}: {exc}", "fatal")
        except DeviceError as exc:
            log.debug("measuring on %s failed", self.name, exc_info=True)
            return self._failed(f"{exc}", "device")
        except LatbenchError as exc:
            log.debug("measuring on %s failed", self.name, exc_info=True)
            return self._failed(f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.debug("measuring on %s failed", self.name, exc_info=True)
            return self._failed(f"the device adapter failed: {type(exc).__name__}: {exc}", "device")

    def fingerprint(self) -> str:
        return self._device.fingerprint()

    def close(self) -> None:
        """The caller owns the device."""


def _queue_of(todo: Sequence[str], drift_arch: str | None, drift_every: int) -> list[_Work]:
    """A device's work: its architectures, the drift reference before every ``drift_every``."""
    work: list[_Work] = []
    for i, arch in enumerate(todo):
        if drift_arch is not None and i % drift_every == 0:
            work.append(_Work("drift", drift_arch))
        work.append(_Work("row", arch))
    return work


def _run_fleet(
    devices: Sequence[MeasureTarget],
    plans: Mapping[str, list[str]],
    settings: CollectSettings,
    emit: Mapping[str, Emitter],
    drift_arch: str | None,
    stop: threading.Event,
    out: queue.Queue[_Item],
    workdir: Path,
) -> Any:
    """Measure every device's plan through :class:`latbench.devices.fleet.Fleet`.

    Called in a background thread; results go to ``out`` (the store is written by the thread
    that opened it). Returns the fleet, so the caller can stop it.
    """
    from latbench.devices.fleet import Fleet

    kwargs: dict[str, Any] = {
        "runtime": settings.runtime,
        "threads": settings.threads,
        "batch": settings.batch,
        "settings": settings.harness,
        "seed": settings.seed,
    }
    if settings.options:
        kwargs["options"] = dict(settings.options)
    fatal: list[BaseException] = []
    by_name = {d.name: d for d in devices if plans[d.name]}
    fleet = Fleet(
        {name: {} for name in by_name},
        measure_kwargs=kwargs,
        retries=1,
        factory=lambda name, table: cast(
            Device, _Lent(by_name[name], settings, fatal, lambda: fleet.stop())
        ),
    )
    models: dict[str, Path] = {}  # device -> its model file being measured (one at a time)
    started: dict[str, float] = {}

    emitted: dict[str, float] = {}

    def prepare(device: str, work: _Work) -> Any:
        started[device] = time.perf_counter()
        if stop.is_set():
            fleet.stop()
        runtime = settings.runtime_of(device)
        extra = {"runtime": runtime} if runtime != settings.runtime else {}
        try:
            model = emit[device](work.arch, workdir / device)
        except FATAL_ERRORS:
            raise
        except Exception as exc:
            log.debug("emitting %s failed", work.arch, exc_info=True)
            return _EmitFailed(f"{type(exc).__name__}: {exc}"), extra
        finally:
            emitted[device] = time.perf_counter()
        if isinstance(model, Path):
            models[device] = model
        return model, extra

    def on_result(device: str, work: _Work, m: Measurement) -> None:
        model = models.pop(device, None)
        if model is not None:
            model.unlink(missing_ok=True)
        if m.harness.get("failure") == "fatal":
            return  # not an architecture's result: the run stops with the error
        now = time.perf_counter()
        t0, t1 = started.get(device, now), emitted.get(device, now)
        item = _Item(work.kind, device, work.arch, m, emit_s=t1 - t0, measure_s=now - t1)
        if work.kind == "drift":
            item.drift_wall_s = now - t0
        out.put(item)
        if stop.is_set():
            fleet.stop()

    def on_progress(p: Any) -> None:
        out.put(_Item("progress", "", progress=p.line()))

    for name in by_name:
        (workdir / name).mkdir()
    try:
        fleet.run(
            {n: _queue_of(plans[n], drift_arch, settings.drift_every) for n in by_name},
            prepare=prepare,
            on_result=on_result,
            on_progress=on_progress,
        )
        if fatal:
            out.put(_Item("fatal", "", error=fatal[0]))
    except BaseException as exc:  # noqa: BLE001 - handed to the writer thread, which re-raises
        out.put(_Item("fatal", "", error=exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        out.put(_Item("done", ""))
    return fleet


def _inference_s(m: Measurement) -> tuple[float, float]:
    """(seconds inside the timed loops, seconds of warm-up) of a record."""
    timed = sum(m.samples_ms) * max(1, int(m.loops)) / 1000.0
    warm = sum(m.warmup_ms) / 1000.0
    return timed, warm


def plan_todo(
    store: Store,
    space: SearchSpace,
    archs: Sequence[str],
    device: str,
    settings: CollectSettings,
) -> tuple[list[str], int]:
    """(architectures still to measure on ``device``, how many are already stored)."""
    done = store.done(
        collection=settings.collection,
        space=space.name,
        device=device,
        runtime=settings.runtime_of(device),
        batch=settings.batch,
        threads=settings.threads,
        include_failed=not settings.retry_failed,
    )
    todo = [a for a in archs if space.arch_id(a) not in done]
    return todo, len(archs) - len(todo)


def check_settings(space: SearchSpace, settings: CollectSettings) -> None:
    """Refuse, before a run starts or a store is made, what would fail every architecture one by
    one: a batch or resolution no network of ``space`` has, a runtime that cannot run emitted
    architectures, a drift architecture that is not one of ``space``."""
    emit_format(settings.runtime)
    for device, runtime in sorted((settings.device_runtime or {}).items()):
        try:
            emit_format(runtime)
        except UnknownNameError as exc:
            raise UnknownNameError(f"device {device!r}: {exc}") from None
    try:
        space.build(default_drift_arch(space), batch=settings.batch, resolution=settings.resolution)
    except ArchError as exc:
        raise ConfigError(f"cannot collect: {exc}") from None
    if settings.drift_every > 0 and settings.drift_arch is not None:
        try:
            space.canonical(settings.drift_arch)
        except ArchError as exc:
            raise ConfigError(f"drift architecture: {exc}") from None


def _canonical_archs(space: SearchSpace, archs: Sequence[str]) -> list[str]:
    """The canonical string of every architecture; ArchError naming a bad one's position."""
    out = []
    for i, arch in enumerate(archs):
        if not isinstance(arch, str):
            raise ArchError(
                f"architecture {i + 1} of {len(archs)} to collect is {arch!r}; expected an "
                f"architecture string of {space.name}"
            )
        try:
            out.append(space.canonical(arch))
        except ArchError as exc:
            raise ArchError(f"architecture {i + 1} of {len(archs)} to collect: {exc}") from None
    return out


def _first_repeat(archs: Sequence[str]) -> str | None:
    """The first architecture of ``archs`` that repeats an earlier one (None: all distinct)."""
    seen: set[str] = set()
    for arch in archs:
        if arch in seen:
            return arch
        seen.add(arch)
    return None


def collect(
    store: Store,
    space: SearchSpace,
    archs: Sequence[str],
    devices: Sequence[MeasureTarget],
    settings: CollectSettings | None = None,
    *,
    emit: Emitter | None = None,
    progress: bool = False,
    stop: threading.Event | None = None,
) -> CollectReport:
    """Measure ``archs`` on every device into ``store``; resumable, crash-safe (module doc).

    ``archs`` are architecture strings of ``space``; each is stored as its canonical string
    (``space.canonical``), so two spellings of one architecture are measured once, and one that
    is not of ``space`` raises :class:`~latbench.errors.ArchError` (naming it and its
    position) before anything is recorded. ``stop`` lets a caller request a clean stop (the
    CLI sets it on Ctrl-C); a ``KeyboardInterrupt`` in the calling thread does the same, and a
    second one aborts (the row being written then is rolled back, never half-written).
    """
    settings = settings or CollectSettings()
    if not devices:
        raise ConfigError("no device given; expected at least one (e.g. local)")
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise ConfigError(f"device list {names} names a device twice")
    given = _canonical_archs(space, archs)
    archs = list(dict.fromkeys(given))
    if len(archs) < len(given):
        first = _first_repeat(given)
        log.warning(
            "%d of the %d architectures to collect repeat an earlier one (first: %s); each "
            "distinct architecture is measured once (%d)",
            len(given) - len(archs),
            len(given),
            first,
            len(archs),
        )
    if settings.device_runtime is None:  # each device's table may name the runtime it has
        own = {d.name: getattr(d, "table_runtime", None) for d in devices}
        settings = replace(
            settings,
            device_runtime={
                n: str(rt) for n, rt in own.items() if rt and str(rt) != settings.runtime
            },
        )
    check_settings(space, settings)
    emitters: dict[str, Emitter] = {}
    by_runtime: dict[str, Emitter] = {}
    for dev in devices:
        rt = settings.runtime_of(dev.name)
        if emit is not None:
            emitters[dev.name] = emit
            continue
        if rt not in by_runtime:
            by_runtime[rt] = make_emitter(
                space, rt, batch=settings.batch, resolution=settings.resolution, seed=settings.seed
            )
        emitters[dev.name] = by_runtime[rt]
    drift_arch = None
    if settings.drift_every > 0:
        drift_arch = space.canonical(settings.drift_arch or default_drift_arch(space))
    stop = stop or threading.Event()
    report = CollectReport(collection=settings.collection)
    t_start = time.perf_counter()
    store.upsert_collection(settings.collection, {"space": space.name, **settings.params()})

    plans: dict[str, list[str]] = {}
    ratio: dict[str, float | None] = {}
    baseline: dict[str, float | None] = {}
    for dev in devices:
        todo, already = plan_todo(store, space, archs, dev.name, settings)
        plans[dev.name] = todo
        report.devices[dev.name] = DeviceProgress(planned=len(todo), already=already)
        baseline[dev.name] = store.drift_baseline(settings.collection, dev.name)
        ratio[dev.name] = store.last_drift_ratio(settings.collection, dev.name)
    total = sum(len(t) for t in plans.values())
    index_fn = getattr(space, "index", None)

    out: queue.Queue[_Item] = queue.Queue()
    # made (and removed) here, in the main thread: the runner is a daemon thread, whose own
    # cleanup never runs when a second Ctrl-C ends the process
    workdir = Path(tempfile.mkdtemp(prefix="latbench-collect-"))
    runner = threading.Thread(
        target=_run_fleet,
        args=(devices, plans, settings, emitters, drift_arch, stop, out, workdir),
        name="latbench-collect-fleet",
        daemon=True,
    )
    bar = Progress(progress, total, f"{space.name} {settings.collection}")
    fatal: BaseException | None = None
    line = ""
    running = total > 0
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        stop.set()
        report.interrupted = True
        bar.say("stopping after the current architecture (Ctrl-C again to abort)")

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        interrupted()

    # The first Ctrl-C must not raise wherever the loop happens to be (inside a store write,
    # or the devices' cleanup): a handler only sets ``stop``; the second one raises. Installed
    # only over Python's default handler in the main thread (not over SIG_IGN or a caller's),
    # and before the fleet starts measuring, so that no Ctrl-C falls between the two.
    previous_sigint = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        previous_sigint = signal.signal(signal.SIGINT, on_sigint)
    try:
        if running:
            runner.start()
        while running:
            try:
                item = out.get(timeout=0.25)
            except queue.Empty:
                continue
            except KeyboardInterrupt:  # no handler of ours (not the main thread)
                interrupted()
                continue
            if item.kind == "done":
                running = False
            elif item.kind == "progress":
                line = item.progress
            elif item.kind == "fatal":
                fatal = fatal or item.error
                stop.set()
            elif item.kind in ("drift", "row"):
                t0 = time.perf_counter()
                if item.kind == "drift":
                    _write_drift(store, settings, item, baseline, ratio, report, bar)
                else:
                    _write_row(store, space, settings, item, ratio, index_fn, report, stop.is_set())
                report.store_s += time.perf_counter() - t0
                report.emit_s += item.emit_s
                report.measure_s += item.measure_s
                if item.kind == "drift":
                    continue
                postfix: dict[str, Any] = {"ok": report.ok, "failed": report.failed}
                if len(devices) > 1 and line:
                    postfix["devices"] = line
                bar.update(postfix)
    finally:
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)
        stop.set()
        bar.close()
        report.wall_s = time.perf_counter() - t_start
        # done with it: the runner has finished, or the run is ending on an error or a
        # second Ctrl-C and the models being written there will not be measured
        shutil.rmtree(workdir, ignore_errors=True)
    if runner.is_alive():
        runner.join(timeout=5.0)
    report.interrupted = fatal is None and any(
        d.ok + d.failed + d.stored_elsewhere < d.planned for d in report.devices.values()
    )
    if fatal is not None:
        raise fatal
    for dev in devices:
        report.devices[dev.name].drift_ratio = ratio[dev.name]
    return report


def _write_drift(
    store: Store,
    settings: CollectSettings,
    item: _Item,
    baseline: dict[str, float | None],
    ratio: dict[str, float | None],
    report: CollectReport,
    bar: Progress,
) -> None:
    m = item.measurement
    assert m is not None
    report.drift_s += item.drift_wall_s
    report.drift_inference_s += sum(_inference_s(m)) if m.ok else 0.0
    latency = m.median_ms if m.ok else None
    if latency is not None and baseline[item.device] is None:
        baseline[item.device] = latency
    d = report.devices[item.device]
    r = store.add_drift(
        collection=settings.collection,
        device=item.device,
        arch=item.arch,
        latency_ms=latency,
        baseline_ms=baseline[item.device],
        after_rows=d.already + d.ok + d.failed,
    )
    if r is None:
        if not m.ok:
            log.warning("drift reference failed on %s: %s", item.device, m.error)
        return
    ratio[item.device] = r
    if abs(r - 1.0) > settings.drift_threshold:
        text = (
            f"warning: {item.device} drifted: the reference model now takes {r:.3f}x its first "
            f"latency ({latency:.3f} ms vs {baseline[item.device]:.3f} ms; threshold "
            f"{settings.drift_threshold:.0%}); check load, thermals and frequency scaling"
        )
        report.warnings.append(text)
        log.warning("%s", text)
        bar.write(text)


def _write_row(
    store: Store,
    space: SearchSpace,
    settings: CollectSettings,
    item: _Item,
    ratio: dict[str, float | None],
    index_fn: Callable[[str], int] | None,
    report: CollectReport,
    stopping: bool,
) -> None:
    m = item.measurement
    assert m is not None
    d = report.devices[item.device]
    if not m.ok and stopping:
        report.dropped += 1  # the interrupt may have killed the worker: measure again next run
        return
    kind = failure_kind(m)
    if not m.ok and kind in DEVICE_FAILURES:
        # the link to the device failed (after the fleet's reconnect and retry), or the device
        # cannot measure at all (its setup: kind "device"): a fault of the device, not of the
        # architecture. Stored as failed, it would be skipped by every rerun unless
        # --retry-failed; not stored, the rerun measures it once the device is fixed or back
        d.failed += 1
        d.unreachable += 1
        if kind == "device":
            d.device_fault += 1
            d.device_fault_reason = d.device_fault_reason or _reason(item.device, m.error)
        else:
            d.unreachable_reason = d.unreachable_reason or str(m.error or "")  # the first
        log.info("arch %s not measured on %s: %s", item.arch, item.device, m.error)
        return
    m = m.with_(
        runtime=m.runtime or settings.runtime_of(item.device),
        batch=m.batch or settings.batch,
        threads=settings.threads,
    )

    def row_of(m: Measurement) -> dict[str, Any]:
        row = S.row_from_measurement(
            m,
            collection=settings.collection,
            space=space.name,
            arch=item.arch,
            arch_id=space.arch_id(item.arch),
            arch_index=int(index_fn(item.arch)) if index_fn is not None else None,
            device=item.device,
            drift_ratio=ratio.get(item.device),
        )
        row["batch"] = settings.batch
        return row

    try:
        row = row_of(m)
    except (TypeError, ValueError, OverflowError) as exc:
        # a record the device adapter filled with what a row cannot hold (metadata that is not
        # JSON, such as keys of mixed types): this architecture fails with the reason, the
        # sweep goes on
        log.debug("record of %s on %s cannot be stored", item.arch, item.device, exc_info=True)
        m = Measurement.failed(
            f"the device's record cannot be stored: {type(exc).__name__}: {exc}",
            runtime=m.runtime,
            runtime_version=m.runtime_version,
            device_fingerprint=m.device_fingerprint,
            batch=m.batch,
            threads=m.threads,
            started_at=m.started_at,
        )
        row = row_of(m)
    if m.ok:
        timed, warm = _inference_s(m)
        report.inference_s += timed
        report.warmup_s += warm
    if not store.add(row):
        if not m.ok and settings.retry_failed:
            # a retried architecture that failed again: the stored failed row stays, and this
            # run's failure is counted as one (not as a row another run wrote)
            d.failed += 1
            log.info("arch %s failed again on %s: %s", item.arch, item.device, m.error)
            return
        # another run of the same store wrote this key first (or an ok row is already there):
        # count only what this run stored
        d.stored_elsewhere += 1
        log.info("arch %s on %s was already stored by another run", item.arch, item.device)
        return
    if m.ok:
        d.ok += 1
    else:
        d.failed += 1
        log.info("arch %s failed on %s: %s", item.arch, item.device, m.error)


def _reason(device: str, error: str | None) -> str:
    """A failure's error without the ``device:`` / ``device 'device':`` prefixes it gathered."""
    text = str(error or "the device failed")
    prefixes = (
        f"{device}: ",
        f"device {device!r}: ",
        f"{device} (ssh): ",
        f"{device} (adb): ",
        "not measured: ",
    )
    while True:
        for p in prefixes:
            if text.startswith(p):
                text = text[len(p) :]
                break
        else:
            return text
