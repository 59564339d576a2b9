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
import math
import os
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from latbench.profilers import counters as _counters
from latbench.profilers import stats as _stats
from latbench.profilers.env import collect_env, cpu_ticks, latbench_version, procs_running
from latbench.profilers.harness import HarnessResult, HarnessSettings, run_harness
from latbench.profilers.record import Measurement
from latbench.profilers.runtimes import Session, batch_of, get_runtime

__all__ = [
    "MeasureSpec",
    "model_label",
    "model_sha256",
    "probe_model",
    "reference_ratio",
    "run_interleaved",
    "run_measurement",
]

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


def probe_model(spec: MeasureSpec) -> None:
    """Load ``spec``'s model and close it (raises what loading raises); nothing is timed."""
    _load(spec).close()


def _record(
    spec: MeasureSpec,
    session: Session,
    result: HarnessResult,
    env: dict[str, Any],
    started: str,
    t0: float,
    sha: str,
    statistic: str | None = None,
) -> Measurement:
    settings = dict(session.settings)
    counters: dict[str, dict[str, Any]] = {}
    per_op: tuple[dict[str, Any], ...] = ()
    # the same shape as ``env``: the pinning (and an interleaved run's rounds) recorded again
    extra: dict[str, Any] = {"pinned_cpus": sorted(os.sched_getaffinity(0))}
    if "interleaved" in env:
        extra["interleaved"] = env["interleaved"]
    env_after = collect_env(extra)
    per_call_s = (sorted(result.samples_ms)[len(result.samples_ms) // 2] / 1e3) or 1e-3
    if spec.per_op:
        runs = _pass_runs(per_call_s, max(10, min(200, result.loops * 20)))
        try:
            per_op = tuple(session.profile_ops(runs=runs))
        except NotImplementedError as exc:
            settings["per_op_unavailable"] = str(exc)
    if spec.counters:
        n = _pass_runs(per_call_s, max(20, min(10_000, int(0.5 / per_call_s))))
        counters.update(_counters.count_inferences(session.run, n))
    counters["peak_rss_bytes"] = _counters.peak_rss_bytes()
    return Measurement(
        status="ok",
        samples_ms=result.samples_ms,
        cpu_samples_ms=result.cpu_samples_ms,
        statistic=statistic or _statistic(spec, {}),
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
        batch=batch_of(session.input_shapes),
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


#: the most time (seconds) the per-operator pass and the counter pass each spend after timing:
#: a model of seconds per inference still gets its profile and counters in the worker's
#: ``timeout_s`` instead of 20 inferences per pass, and a timeout losing the whole measurement
PASS_BUDGET_S = 2.0


def _pass_runs(per_call_s: float, wanted: int) -> int:
    """``wanted`` inferences for an after-timing pass, fewer (at least 1) when they would take
    longer than ``PASS_BUDGET_S``."""
    return max(1, min(wanted, int(PASS_BUDGET_S / per_call_s)))


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
        cpu_samples_ms=tuple(x for r in results for x in r.cpu_samples_ms),
    )


def budget_share(s: HarnessSettings, fraction: float) -> HarnessSettings:
    """``s`` with ``fraction`` of its timing budget (``min_runs`` rounded up, at least 1;
    ``min_time_s`` and ``max_time_s`` scaled); the warm-up is left as it is."""
    return replace(
        s,
        # rounded first: 1/rounds x rounds is not always exactly 1 in floating point
        min_runs=max(1, math.ceil(round(s.min_runs * fraction, 9))),
        min_time_s=s.min_time_s * fraction,
        max_time_s=s.max_time_s * fraction,
    )


def round_settings(s: HarnessSettings, r: int, rounds: int, loops: int | None) -> HarnessSettings:
    """One round's window: ``1/rounds`` of the budget, warm-up only in the first round."""
    return replace(
        budget_share(s, 1 / rounds),
        warmup_runs=s.warmup_runs if r == 0 else 1,
        warmup_time_s=s.warmup_time_s if r == 0 else 0.0,
        spread_threshold=0.0,
        loops=loops,
    )


#: A round of one target is discarded from the reference ratio when the reference windows
#: before and after it differ by more than this (a load change inside the window) or when the
#: hypervisor stole more than ``STEAL_DISCARD`` of the window.
SPIKE_TOLERANCE = 0.15
STEAL_DISCARD = 0.10


def reference_ratio(
    target_rounds: Sequence[Sequence[float]],
    ref_before: Sequence[Sequence[float]],
    ref_after: Sequence[Sequence[float]],
    steal: Sequence[float | None] = (),
    spike_tolerance: float = SPIKE_TOLERANCE,
    steal_discard: float = STEAL_DISCARD,
) -> dict[str, Any]:
    """The target/reference ratio of one target over interleaved rounds.

    Per round ``r``: ``t_r = min(target window)``, ``f_r = min(reference window before,
    reference window after)``, ``ratios[r] = t_r / f_r``. A round is discarded when the two
    reference windows' minima disagree by more than ``spike_tolerance`` (the machine's speed
    changed while the target ran, so the reference does not describe its window) or when the
    steal fraction of the window exceeds ``steal_discard``. The ratio is ``min(t_r) / min(f_r)``
    over the kept rounds (all rounds when none is kept): pooled minima, because on a shared
    machine the noise inside one short window is larger than the drift between windows (the
    per-round ratios are kept for inspection). Pure function: tests feed it numbers.
    """
    n = len(target_rounds)
    if not (len(ref_before) == len(ref_after) == n) or n == 0:
        raise ValueError(
            f"reference_ratio needs one reference window before and after each of the {n} "
            f"target rounds; got {len(ref_before)} and {len(ref_after)}"
        )
    t_low = [min(w) for w in target_rounds]
    f_low: list[float] = []
    ratios: list[float] = []
    discarded: list[int] = []
    for r in range(n):
        b, a = min(ref_before[r]), min(ref_after[r])
        f = min(a, b)
        f_low.append(f)
        ratios.append(t_low[r] / f if f > 0 else float("inf"))
        stolen = steal[r] if r < len(steal) else None
        if max(a, b) > (1 + spike_tolerance) * f or (stolen is not None and stolen > steal_discard):
            discarded.append(r)
    kept = [r for r in range(n) if r not in discarded] or list(range(n))
    ref_min = min(f_low[r] for r in kept)
    return {
        "target_low_ms": t_low,
        "reference_low_ms": f_low,
        "ratios": ratios,
        "discarded": discarded,
        "ratio": min(t_low[r] for r in kept) / ref_min if ref_min > 0 else float("inf"),
    }


def _round_state(ticks0: dict[str, Any], pinned: list[int]) -> dict[str, Any]:
    """The machine's state at the end of a round: load, runnable tasks, steal since ``ticks0``."""
    return {
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "procs_running": procs_running(),
        "steal_fraction": _steal(ticks0, cpu_ticks(pinned)),
    }


def _steal(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    return _stats.steal_fraction({"cpu_ticks": before}, {"cpu_ticks": after})


#: Confirmation rounds of interleaved runs: a target whose two fastest rounds differ by more
#: than ``CONFIRM_TOLERANCE`` gets extra rounds (no reference windows), up to
#: ``EXTRA_ROUNDS_FACTOR`` x the planned rounds more, until its minimum is confirmed.
CONFIRM_TOLERANCE = 0.01
EXTRA_ROUNDS_FACTOR = 2


def run_interleaved(
    specs: Sequence[MeasureSpec],
    rounds: int = 5,
    reference: MeasureSpec | None = None,
    reference_every: int = 4,
    confirm_tolerance: float = CONFIRM_TOLERANCE,
    extra_rounds: int | None = None,
) -> list[Measurement]:
    """Measure ``specs`` in ``rounds`` interleaved rounds (A B C A B C ..., or without a
    ``reference`` A B C C B A ...: every other round backwards).

    Each model is loaded and warmed up once; each round runs the harness for every model with
    ``1/rounds`` of its time budget (``min_runs``, ``min_time_s`` and ``max_time_s`` divided,
    no warm-up after the first round, loop count fixed after the first round); the samples of
    all rounds are concatenated and ``harness["round_sizes"]`` says where rounds start.
    ``harness["rounds"]`` keeps each round's load average, runnable tasks and steal fraction.

    With a ``reference`` spec, a reference window (same budget as a target's) runs before every
    group of ``reference_every`` targets and once at the end, so every target window is
    bracketed by two reference windows: ``R A B C D R E F G H R ... R``. Each target's record
    gets ``reference`` (see :func:`reference_ratio`) with the raw samples of its bracketing
    windows and ``calibrated_ms`` = the reference's estimate in this run (the device may
    replace it by a cached calibration). A model that fails to load raises (the caller decides).

    Confirmation rounds: after the planned rounds, every target whose minimum is not confirmed
    (:func:`latbench.profilers.stats.min_confirmed`: its two fastest rounds within
    ``confirm_tolerance``) is measured again, one round at a time, only the unconfirmed ones,
    until all are confirmed or ``extra_rounds`` (default ``EXTRA_ROUNDS_FACTOR x rounds``) extra
    rounds have run. On a quiet machine this costs nothing; under contention it spends the time
    where the floor has not been reached yet. Extra rounds have no reference windows (the
    reference ratio uses the planned rounds) and are marked ``"extra": True`` in
    ``harness["rounds"]``. ``confirm_tolerance=0`` disables them.
    """
    rounds = max(1, int(rounds))
    every = max(1, int(reference_every))
    started = _now()
    t0 = time.perf_counter()
    _counters.reset_peak_rss()
    sessions = [_load(s) for s in specs]
    shas = [model_sha256(s.model) for s in specs]
    ref_sess = _load(reference) if reference is not None else None
    pinned = sorted(os.sched_getaffinity(0))
    env = collect_env({"pinned_cpus": pinned, "interleaved": rounds})
    parts: list[list[HarnessResult]] = [[] for _ in specs]
    ref_windows: list[HarnessResult] = []
    window_steal: list[float | None] = []  # steal of each group of targets, in run order
    round_info: list[dict[str, Any]] = []
    groups = [range(i, min(i + every, len(specs))) for i in range(0, len(specs), every)]

    def ref_window() -> None:
        assert ref_sess is not None and reference is not None
        loops = ref_windows[0].loops if ref_windows else reference.settings.loops
        first = len(ref_windows) == 0
        settings = round_settings(reference.settings, 0 if first else 1, rounds, loops)
        ref_windows.append(run_harness(ref_sess.run, settings))

    try:
        for r in range(rounds):
            ticks0 = cpu_ticks(pinned)
            # without a reference, every other round runs backwards (A B C, C B A, ...): no
            # model always follows the same one or always runs first. (The 0.8 % bias a model
            # showed against a copy of itself here is the order of loading, not of running:
            # latbench measure A B loads them in both orders, BENCHMARKS.md.)
            forward = ref_sess is not None or r % 2 == 0
            order = (
                groups if forward else [range(g.stop - 1, g.start - 1, -1) for g in groups[::-1]]
            )
            for idx in order:
                if ref_sess is not None:
                    ref_window()
                g0 = cpu_ticks(pinned)
                for i in idx:
                    spec, sess = specs[i], sessions[i]
                    loops = parts[i][0].loops if parts[i] else spec.settings.loops
                    parts[i].append(
                        run_harness(sess.run, round_settings(spec.settings, r, rounds, loops))
                    )
                window_steal.append(_steal(g0, cpu_ticks(pinned)))
            if ref_sess is not None and r == rounds - 1:
                ref_window()
            round_info.append(_round_state(ticks0, pinned))
        limit = EXTRA_ROUNDS_FACTOR * rounds if extra_rounds is None else max(0, extra_rounds)
        for _ in range(limit):
            pending = [
                i
                for i, p in enumerate(parts)
                if not _stats.min_confirmed([min(x.samples_ms) for x in p], confirm_tolerance)
            ]
            if not pending:
                break
            ticks0 = cpu_ticks(pinned)
            for i in pending:
                parts[i].append(
                    run_harness(
                        sessions[i].run,
                        round_settings(specs[i].settings, 1, rounds, parts[i][0].loops),
                    )
                )
            round_info.append(
                {**_round_state(ticks0, pinned), "extra": True, "models": len(pending)}
            )
        out = []
        for i, (spec, sess, p, sha) in enumerate(zip(specs, sessions, parts, shas, strict=True)):
            ref: dict[str, Any] = {}
            if reference is not None and ref_windows:
                ref = _reference_part(
                    reference, i, every, len(groups), p[:rounds], ref_windows, window_steal
                )
            # the statistic is judged once, with the reference known (no false warning that
            # 'normalized' fell back to the median)
            chosen = _statistic(spec, ref)
            m = _record(spec, sess, _merge(p), env, started, t0, sha, statistic=chosen)
            harness = {**m.harness, "round_sizes": [len(x.samples_ms) for x in p]}
            harness["rounds"] = round_info
            out.append(m.with_(harness=harness, reference=ref, statistic=chosen))
        return out
    finally:
        for sess in sessions:
            sess.close()
        if ref_sess is not None:
            ref_sess.close()


def _reference_part(
    reference: MeasureSpec,
    i: int,
    every: int,
    n_groups: int,
    target: list[HarnessResult],
    windows: list[HarnessResult],
    window_steal: list[float | None],
) -> dict[str, Any]:
    """The ``reference`` dict of target ``i``: its bracketing windows and the ratio."""
    g = i // every
    before_idx = [r * n_groups + g for r in range(len(target))]
    before = [windows[k].samples_ms for k in before_idx]
    after = [windows[k + 1].samples_ms for k in before_idx]
    steal = [window_steal[k] for k in before_idx]
    res = reference_ratio([t.samples_ms for t in target], before, after, steal)
    own = sorted({k for k in before_idx} | {k + 1 for k in before_idx})
    all_low = [min(w.samples_ms) for w in windows]
    return {
        "model": model_label(reference.model),
        "sha256": model_sha256(reference.model),
        "samples_ms": [x for k in own for x in windows[k].samples_ms],
        "round_sizes": [len(windows[k].samples_ms) for k in own],
        "windows": own,
        "loops": windows[0].loops,
        **res,
        "calibrated_ms": _stats.median(all_low),
        "calibration": "this run (median over all reference windows of their minimum)",
    }


def _statistic(spec: MeasureSpec, ref: dict[str, Any]) -> str:
    """The record's statistic: the settings' choice, median when the record cannot give it."""
    chosen = spec.settings.statistic
    if chosen == "normalized" and not ref:
        log.warning("statistic 'normalized' needs a reference model; using the median")
        return "median"
    return chosen
