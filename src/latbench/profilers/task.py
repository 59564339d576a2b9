"""One measurement, end to end, as it runs inside the worker process.

:func:`run_measurement` loads the model with its runtime, generates seeded inputs, runs the
timing harness, then (each in its own pass, after timing, so they never distort the timed
samples) the per-operator profile and the counters, and returns the immutable
:class:`~latbench.profilers.record.Measurement` with the environment before and after.

:func:`run_interleaved` measures several models in rounds (A B C A B C ...): each round gives
every model a slice of the time window, so slow changes of the machine's load spread evenly over
all models instead of penalising whichever was measured during a busy spell.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from latbench.profilers import counters as _counters
from latbench.profilers.env import collect_env, latbench_version
from latbench.profilers.harness import HarnessResult, HarnessSettings, run_harness
from latbench.profilers.record import Measurement
from latbench.profilers.runtimes import Session, get_runtime

__all__ = ["MeasureSpec", "model_label", "model_sha256", "run_interleaved", "run_measurement"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasureSpec:
    """Everything one measurement needs; picklable, so it crosses into the worker."""

    model: Any
    runtime: str = "onnxruntime"
    threads: int | None = 1
    batch: int | None = None
    settings: HarnessSettings = field(default_factory=HarnessSettings)
    per_op: bool = False
    counters: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "local"
    device_fingerprint: str = ""


def model_label(model: Any) -> str:
    """A human-readable name of a model reference (path, module class, factory)."""
    if isinstance(model, str | os.PathLike):
        return str(model)
    func = getattr(model, "func", None)
    if func is not None:
        return f"factory:{getattr(func, '__qualname__', type(func).__name__)}"
    return f"{type(model).__module__}.{type(model).__qualname__}"


def model_sha256(model: Any) -> str:
    """SHA-256 of a model file's bytes, of a factory's pickle, or of a module's weights."""
    h = hashlib.sha256()
    if isinstance(model, str | os.PathLike):
        with Path(model).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    state = getattr(model, "state_dict", None)
    if callable(state):
        h.update(type(model).__qualname__.encode())
        for name, tensor in state().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
    try:
        h.update(pickle.dumps(model))
    except (pickle.PicklingError, TypeError, AttributeError):
        return ""
    return h.hexdigest()


def _load(spec: MeasureSpec) -> Session:
    return get_runtime(spec.runtime).load(
        spec.model, threads=spec.threads, batch=spec.batch, options=spec.options, seed=spec.seed
    )


def _record(
    spec: MeasureSpec,
    session: Session,
    result: HarnessResult,
    env: dict[str, Any],
    started: str,
    t0: float,
    sha: str,
) -> Measurement:
    settings = dict(session.settings)
    counters: dict[str, dict[str, Any]] = {}
    per_op: tuple[dict[str, Any], ...] = ()
    env_after = collect_env()
    if spec.per_op:
        try:
            per_op = tuple(session.profile_ops(runs=max(10, min(200, result.loops * 20))))
        except NotImplementedError as exc:
            settings["per_op_unavailable"] = str(exc)
    if spec.counters:
        per_call_s = (sorted(result.samples_ms)[len(result.samples_ms) // 2] / 1e3) or 1e-3
        n = max(20, min(10_000, int(0.5 / per_call_s)))
        counters.update(_counters.count_inferences(session.run, n))
    counters["peak_rss_bytes"] = _counters.peak_rss_bytes()
    return Measurement(
        status="ok",
        samples_ms=result.samples_ms,
        loops=result.loops,
        warmup_runs=len(result.warmup_ms),
        warmup_ms=result.warmup_ms,
        runtime=spec.runtime,
        runtime_version=session.version,
        runtime_settings=settings,
        device=spec.device,
        device_fingerprint=spec.device_fingerprint,
        model_path=model_label(spec.model),
        model_sha256=sha,
        batch=next(iter(session.input_shapes.values()), [1])[0] if session.input_shapes else 1,
        threads=spec.threads,
        input_shapes=session.input_shapes,
        counters=counters,
        per_op=per_op,
        env=env,
        env_after=env_after,
        started_at=started,
        wall_s=time.perf_counter() - t0,
        latbench_version=latbench_version(),
        harness={
            "settings": spec.settings.to_dict(),
            "stop_reason": result.stop_reason,
            "timer_resolution_s": result.timer_resolution_s,
            "elapsed_s": result.elapsed_s,
            "seed": spec.seed,
            "options": dict(spec.options),
        },
    )


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def run_measurement(spec: MeasureSpec) -> Measurement:
    """Load, time, profile and count one model in this process (the worker calls this)."""
    t0 = time.perf_counter()
    started = _now()
    _counters.reset_peak_rss()
    sha = model_sha256(spec.model)
    session = _load(spec)
    try:
        env = collect_env({"pinned_cpus": sorted(os.sched_getaffinity(0))})
        result = run_harness(session.run, spec.settings)
        return _record(spec, session, result, env, started, t0, sha)
    finally:
        session.close()


def _merge(results: list[HarnessResult]) -> HarnessResult:
    samples = tuple(x for r in results for x in r.samples_ms)
    reasons = {r.stop_reason for r in results}
    return HarnessResult(
        samples_ms=samples,
        loops=results[0].loops,
        warmup_ms=results[0].warmup_ms,
        stop_reason="interleaved:" + ",".join(sorted(reasons)),
        timer_resolution_s=results[0].timer_resolution_s,
        elapsed_s=sum(r.elapsed_s for r in results),
    )


def run_interleaved(specs: Sequence[MeasureSpec], rounds: int = 5) -> list[Measurement]:
    """Measure ``specs`` in ``rounds`` interleaved rounds (A B C A B C ...).

    Each model is loaded and warmed up once; each round runs the harness for every model with
    ``1/rounds`` of its time budget (``min_runs``, ``min_time_s`` and ``max_time_s`` divided,
    no warm-up after the first round, loop count fixed after the first round); the samples of
    all rounds are concatenated. A model that fails to load raises (the caller decides).
    """
    rounds = max(1, int(rounds))
    started = _now()
    t0 = time.perf_counter()
    _counters.reset_peak_rss()
    sessions = [_load(s) for s in specs]
    shas = [model_sha256(s.model) for s in specs]
    env = collect_env({"pinned_cpus": sorted(os.sched_getaffinity(0)), "interleaved": rounds})
    parts: list[list[HarnessResult]] = [[] for _ in specs]
    try:
        for r in range(rounds):
            for i, (spec, sess) in enumerate(zip(specs, sessions, strict=True)):
                s = spec.settings
                loops = parts[i][0].loops if parts[i] else s.loops
                round_settings = replace(
                    s,
                    warmup_runs=s.warmup_runs if r == 0 else 1,
                    warmup_time_s=s.warmup_time_s if r == 0 else 0.0,
                    min_runs=max(1, -(-s.min_runs // rounds)),
                    min_time_s=s.min_time_s / rounds,
                    max_time_s=s.max_time_s / rounds,
                    spread_threshold=0.0,
                    loops=loops,
                )
                parts[i].append(run_harness(sess.run, round_settings))
        return [
            _record(spec, sess, _merge(p), env, started, t0, sha)
            for spec, sess, p, sha in zip(specs, sessions, parts, shas, strict=True)
        ]
    finally:
        for sess in sessions:
            sess.close()
