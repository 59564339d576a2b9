"""``local``: this machine's CPU, measured in a pinned, restartable worker process.

The transport is a :class:`~latbench.profilers.worker.Worker` (one child process reused across
models); the "parser" is trivial, as the worker returns the
:class:`~latbench.profilers.record.Measurement` itself. A model that crashes or hangs the worker
comes back as a failed record and the next model gets a fresh worker.

bench.toml keys (``[devices.NAME]`` with ``transport = "local"``, all optional): ``cpus``
(``"1"``, ``"0-3"``, ``"0,2"`` or a list of integers; default: the last ``threads`` CPUs this
process may use), ``timeout_s``, ``memory_limit_mb``, ``reference_cache`` (the JSON file of
reference calibrations; default ``$LATBENCH_CACHE_DIR`` or ``~/.cache/latbench``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from latbench.devices._config import format_cpu_list, number, parse_cpu_list
from latbench.devices.base import DEVICES, Device, ModelRef
from latbench.errors import ConfigError, MeasurementError, ModelError
from latbench.profilers.env import collect_env, hardware_identity
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement
from latbench.profilers.reference import (
    REFERENCE_NAME,
    calibration_path,
    load_calibration,
    reference_model,
    store_calibration,
)
from latbench.profilers.runtimes import (
    RUNTIMES,
    check_batch,
    check_seed,
    check_threads,
    get_runtime,
    missing_model_message,
)
from latbench.profilers.task import (
    CONFIRM_TOLERANCE,
    EXTRA_ROUNDS_FACTOR,
    MeasureSpec,
    model_label,
    probe_model,
    run_interleaved,
    run_measurement,
)
from latbench.profilers.worker import Worker, WorkerCrashed, WorkerTimeout, default_cpus

__all__ = ["LocalDevice", "parse_cpus"]

log = logging.getLogger(__name__)

#: Rounds of ``measure_many(..., interleave=True)``.
DEFAULT_ROUNDS = 10


def parse_cpus(value: Any, *, where: str = "local device", key: str = "cpus") -> list[int] | None:
    """``"0-3"``, ``"1,3"``, ``3`` or ``[1, 3]`` -> sorted CPU list; None/"" -> None.

    The parser of every transport (:func:`latbench.devices._config.parse_cpu_list`): a
    non-integer id (``[0, "a"]``, ``[1.7]``), a negative one or a reversed range (``"1-0"``) is
    a :class:`~latbench.errors.ConfigError` naming ``where`` and ``key``, never truncated.
    """
    return parse_cpu_list(value, where=where, key=key)


@DEVICES.register("local")
class LocalDevice(Device):
    """This machine's CPU, through a worker process pinned to chosen CPUs."""

    kind = "local"
    config_keys = frozenset({"memory_limit_mb", "reference_cache"})

    def __init__(self, name: str = "local", config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.cpus = parse_cpus(self.config.get("cpus"), where=f"device {name!r}")
        allowed = set(os.sched_getaffinity(0))
        if self.cpus and not set(self.cpus) <= allowed:
            missing = format_cpu_list(set(self.cpus) - allowed)
            raise ConfigError(
                f"device {name!r}: cpus = {self.config.get('cpus')!r} names CPU {missing}, which "
                f"this process may not use; expected ids within {format_cpu_list(allowed)}"
            )
        limit_mb = number(  # 0 or absent: no cap
            self.config, "memory_limit_mb", None, where=f"device {name!r}", integer=True, minimum=0
        )
        self.memory_limit_bytes = limit_mb * 2**20 if limit_mb else None
        self._workers: dict[tuple[int, ...], Worker] = {}
        self._describe: dict[str, Any] | None = None
        self._fingerprint: str | None = None
        self._ref_dir: tempfile.TemporaryDirectory[str] | None = None

    # ---- transport -----------------------------------------------------------------------
    def _worker(self, threads: int | None) -> Worker:
        cpus = tuple(self._worker_cpus(threads))
        w = self._workers.get(cpus)
        if w is None:
            w = self._workers[cpus] = Worker(list(cpus), self.memory_limit_bytes)
        return w

    def _spec(self, model: ModelRef, **kw: Any) -> MeasureSpec:
        runtime = str(kw.get("runtime") or "onnxruntime")
        rt = RUNTIMES.get(runtime)  # UnknownNameError lists the runtimes
        rt.package_version()  # RuntimeNotInstalledError names the extra
        if isinstance(model, str | os.PathLike) and not os.path.isfile(model):
            raise ModelError(missing_model_message(model))
        threads = check_threads(kw.get("threads", 1))  # before int(), which takes 2.5 and "7"
        batch = check_batch(kw.get("batch"))
        return MeasureSpec(
            model=model,
            runtime=runtime,
            threads=threads,
            batch=batch,
            settings=kw.get("settings") or HarnessSettings.from_mapping(self.config),
            per_op=bool(kw.get("per_op", False)),
            counters=bool(kw.get("counters", False)),
            options=dict(kw.get("options") or {}),
            seed=check_seed(kw.get("seed", 0)),
            device=self.name,
            device_fingerprint=self.fingerprint(),
        )

    def _worker_cpus(self, threads: int | None) -> list[int]:
        return list(self.cpus or default_cpus(threads))

    def _failed(self, spec: MeasureSpec, error: str) -> Measurement:
        # the environment is read here, in the parent: name the CPUs the worker was pinned to
        return Measurement.failed(
            error,
            runtime=spec.runtime,
            device=spec.device,
            device_fingerprint=spec.device_fingerprint,
            model_path=model_label(spec.model),
            threads=spec.threads,
            batch=spec.batch or 1,
            env=collect_env({"pinned_cpus": self._worker_cpus(spec.threads)}),
            harness={"settings": spec.settings.to_dict()},
        )

    def _failed_model(self, model: ModelRef, kwargs: Mapping[str, Any], error: str) -> Measurement:
        """The failed record of a model that could not even be specified (a missing file)."""
        settings = kwargs.get("settings") or HarnessSettings.from_mapping(self.config)
        threads = kwargs.get("threads", 1)
        return Measurement.failed(
            error,
            runtime=str(kwargs.get("runtime") or "onnxruntime"),
            device=self.name,
            device_fingerprint=self.fingerprint(),
            model_path=model_label(model),
            threads=threads,
            batch=kwargs.get("batch") or 1,
            env=collect_env({"pinned_cpus": self._worker_cpus(threads)}),
            harness={"settings": settings.to_dict()},
        )

    def _measure_or_fail(self, model: ModelRef, kwargs: Mapping[str, Any]) -> Measurement:
        """:meth:`measure`, a bad model (ModelError) coming back as a failed record."""
        try:
            return self.measure(model, **kwargs)
        except ModelError as exc:
            return self._failed_model(model, kwargs, str(exc))

    def measure(
        self,
        model: ModelRef,
        *,
        runtime: str = "onnxruntime",
        threads: int | None = 1,
        batch: int | None = None,
        settings: HarnessSettings | None = None,
        per_op: bool = False,
        counters: bool = False,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Measurement:
        spec = self._spec(
            model,
            runtime=runtime,
            threads=threads,
            batch=batch,
            settings=settings,
            per_op=per_op,
            counters=counters,
            options=options,
            seed=seed,
        )
        worker = self._worker(threads)
        timeout = self._timeout(spec.settings)
        try:
            result: Measurement = worker.call(run_measurement, spec, timeout_s=timeout)
        except (WorkerCrashed, WorkerTimeout) as exc:
            return self._failed(spec, str(exc))
        return result

    def measure_many(self, models: Sequence[ModelRef], **kwargs: Any) -> list[Measurement]:
        """Measure ``models``; with ``interleave=N`` (rounds) they share one interleaved window.

        Keyword arguments besides those of :meth:`measure`:

        * ``interleave`` (int, default 0): rounds ``A B C ... A B C``; 0 measures one by one;
          ``True`` means ``DEFAULT_ROUNDS`` (10): more, shorter rounds spread every model's
          samples over the whole run, so each model's minimum sees the same quiet moments
          (10 rounds halved the spread of 5 at the same total time, docs/measurement.md).
        * ``reference`` (bool, default True when interleaving): time latbench's reference model
          before every ``reference_every`` (default 4) targets and at the end, and record each
          target's target/reference ratio and ``normalized_ms`` (ratio x the reference's
          calibrated latency on this machine, from the calibration cache; the first run on a
          machine calibrates it). About 1/``reference_every`` more time.
        * ``recalibrate`` (bool): replace the cached calibration by this run's estimate.
        * ``confirm_tolerance`` (float, default 0.01) and ``extra_rounds`` (int, default twice
          the rounds): confirmation rounds for the targets whose two fastest rounds differ by
          more than the tolerance (``run_interleaved``); 0 disables them.
        * ``statistic``: what the records' ``latency_ms`` is. Default for interleaved runs:
          ``"min"``, the fastest inference of all rounds: the most repeatable statistic across
          invocations in every quiet-to-moderately-loaded run of
          ``benchmarks/bench_measure_repeat.py`` (0.7-1.5 % spread against 5-19 % for the
          median and the CPU-time median, whose level follows the host's moment-to-moment
          contention; see docs/measurement.md); otherwise the settings' statistic.
          ``median_ms`` is the median and ``normalized_ms`` the reference-scaled value regardless.

        A bad model (a missing or corrupt file, a shape it rejects: ModelError) comes back as a
        failed record in its place and the others are measured (interleaved without it).
        Interleaving needs every model loaded at once in one worker; when the worker crashes or
        times out the whole batch is retried one model at a time, so a bad model fails alone.
        """
        interleave = kwargs.pop("interleave", 0)
        rounds = DEFAULT_ROUNDS if interleave is True else int(interleave or 0)
        use_reference = bool(kwargs.pop("reference", True))
        every = int(kwargs.pop("reference_every", 4))
        recalibrate = bool(kwargs.pop("recalibrate", False))
        confirm = float(kwargs.pop("confirm_tolerance", CONFIRM_TOLERANCE))
        extra_rounds = kwargs.pop("extra_rounds", None)
        statistic = kwargs.pop("statistic", None)
        if statistic is None and rounds > 0 and len(models) >= 2:
            statistic = "min"
        self._set_statistic(kwargs, statistic)
        if rounds <= 0 or len(models) < 2:
            return [self._measure_or_fail(m, kwargs) for m in models]
        results: list[Measurement | None] = [None] * len(models)
        specs: dict[int, MeasureSpec] = {}
        for i, m in enumerate(models):
            try:
                specs[i] = self._spec(m, **kwargs)
            except ModelError as exc:  # a missing file: fails alone
                results[i] = self._failed_model(m, kwargs, str(exc))
        worker = self._worker(kwargs.get("threads", 1))

        def interleaved() -> Any:
            return self._interleaved(
                worker,
                list(specs.values()),
                rounds,
                use_reference,
                every,
                confirm,
                extra_rounds,
                recalibrate,
            )

        if len(specs) >= 2:
            try:
                out = interleaved()
            except ModelError:
                # a model the runtime refuses: find it (load only), interleave the others
                for i, spec in list(specs.items()):
                    try:
                        worker.call(probe_model, spec, timeout_s=self._timeout(spec.settings))
                    except (ModelError, WorkerCrashed, WorkerTimeout) as exc:
                        results[i] = self._failed(spec, str(exc))
                        del specs[i]
                out = None
                if len(specs) >= 2:
                    try:
                        out = interleaved()
                    except (ModelError, MeasurementError):
                        out = None
            except (WorkerCrashed, WorkerTimeout, MeasurementError):
                out = None
            if out is not None:
                for i, m in zip(specs, out, strict=True):
                    results[i] = m
        for i in range(len(models)):
            if results[i] is None:
                results[i] = self._measure_or_fail(models[i], kwargs)
        return [m for m in results if m is not None]

    def _interleaved(
        self,
        worker: Worker,
        specs: list[MeasureSpec],
        rounds: int,
        use_reference: bool,
        every: int,
        confirm: float,
        extra_rounds: Any,
        recalibrate: bool,
    ) -> list[Measurement]:
        ref_spec = self._reference_spec(specs[0]) if use_reference else None
        n = len(specs) + (len(specs) // max(1, every) + 2 if ref_spec is not None else 0)
        timeout = self._timeout(specs[0].settings) * n
        out: list[Measurement] = worker.call(
            run_interleaved,
            specs,
            rounds,
            ref_spec,
            every,
            confirm,
            extra_rounds,
            timeout_s=timeout * (1 + EXTRA_ROUNDS_FACTOR),
        )
        if ref_spec is not None:
            out = self._calibrate(out, specs[0], recalibrate)
        return out

    # ---- reference re-measurement -----------------------------------------------------------
    def _reference_spec(self, like: MeasureSpec) -> MeasureSpec:
        """The reference model on onnxruntime, with the targets' threads and harness budget."""
        if self._ref_dir is None:
            self._ref_dir = tempfile.TemporaryDirectory(prefix="latbench-ref-")
        path = os.path.join(self._ref_dir.name, f"{REFERENCE_NAME}.onnx")
        if not os.path.isfile(path):
            reference_model(path)
        return MeasureSpec(
            model=path,
            runtime="onnxruntime",
            threads=like.threads,
            settings=like.settings,
            seed=0,
            device=self.name,
            device_fingerprint=like.device_fingerprint,
        )

    def calibration_key(self, spec: MeasureSpec, reference_sha256: str) -> str:
        """What a calibrated reference latency is valid for: hardware, runtime, threads, CPUs."""
        cpus = ",".join(str(c) for c in (self.cpus or default_cpus(spec.threads)))
        version = get_runtime("onnxruntime").package_version()
        return (
            f"{self.fingerprint()}|onnxruntime {version}|threads={spec.threads}|cpus={cpus}|"
            f"{reference_sha256[:16]}"
        )

    def _calibrate(
        self, out: list[Measurement], like: MeasureSpec, recalibrate: bool
    ) -> list[Measurement]:
        """Put the cached calibrated reference latency into every record (calibrating once)."""
        first = next((m for m in out if m.reference), None)
        if first is None:
            return out
        path = calibration_path(self.config.get("reference_cache"))
        key = self.calibration_key(like, str(first.reference.get("sha256", "")))
        entry = None if recalibrate else load_calibration(path, key)
        if entry is None:
            entry = store_calibration(
                path,
                key,
                float(first.reference["calibrated_ms"]),
                loadavg=first.env.get("loadavg"),
                source="median over the reference windows of their minimum",
            )
            how = f"calibrated by this run at {entry['at']}, stored in {path}"
        else:
            how = f"cached calibration of {entry.get('at', '?')} from {path}"
        return [
            m.with_(
                reference={
                    **m.reference,
                    "run_ms": m.reference.get("calibrated_ms"),
                    "calibrated_ms": float(entry["calibrated_ms"]),
                    "calibration": how,
                    "calibration_key": key,
                }
            )
            if m.reference
            else m
            for m in out
        ]

    def _timeout(self, settings: HarnessSettings) -> float:
        # the settings already hold the device table's timeout_s under the command line's
        return settings.timeout_s

    # ---- descriptor ----------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Hash of the hardware identity (CPU model, cores, machine, memory), cheap to compute."""
        if self._fingerprint is None:
            ident = {"kind": self.kind, **hardware_identity()}
            blob = json.dumps(ident, sort_keys=True, default=str).encode()
            self._fingerprint = hashlib.sha256(blob).hexdigest()[:16]
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        if self._describe is None:
            env = collect_env()
            runtimes: dict[str, str] = {}
            for name in RUNTIMES.names():
                try:
                    runtimes[name] = get_runtime(name).package_version()
                except Exception as exc:  # noqa: BLE001 - a missing runtime is a fact to show
                    runtimes[name] = f"unavailable: {exc}"
            env.pop("pid", None)
            self._describe = {"kind": self.kind, "name": self.name, **env, "runtimes": runtimes}
            self._describe["pin_cpus"] = self.cpus or "auto (last `threads` CPUs)"
        return dict(self._describe)

    def close(self) -> None:
        for w in self._workers.values():
            w.close()
        self._workers.clear()
        if self._ref_dir is not None:
            self._ref_dir.cleanup()
            self._ref_dir = None
