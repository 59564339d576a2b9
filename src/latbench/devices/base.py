"""The ``Device`` interface every adapter implements, and the device registry.

A device adapter is a transport (how models and commands reach the hardware) plus a parser (how
the hardware's output becomes numbers). Every adapter returns the same immutable
:class:`~latbench.profilers.record.Measurement`, so the rest of latbench never cares whether a
number came from this CPU, a Raspberry Pi over SSH, a phone over adb or a GPU.

Contract (kept stable for all adapters)::

    dev = get_device("pi4", config)          # DEVICES[config.device("pi4")["transport"]]
    with dev:                                 # close() on exit
        m = dev.measure(model, runtime="onnxruntime", threads=1, batch=1,
                        settings=HarnessSettings(...), per_op=False, counters=False)
        dev.describe()                        # {"cpu_model": ..., "governor": ..., ...}
        dev.fingerprint()                     # stable hash of the hardware identity

``model`` is a path to a model file (``.onnx``, ``.tflite``, ``.pt``/``.pt2``) or, for the torch
runtime, an in-memory ``torch.nn.Module`` or a zero-argument picklable factory returning one.
A measurement that fails on the device (crash, timeout, rejected input) is returned as a failed
record (``status == "failed"``, ``error`` says why) rather than raised, so sweeps go on; bad
arguments (unknown runtime, missing file) raise a :class:`~latbench.errors.LatbenchError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from latbench._registry import Registry
from latbench.devices._config import check_keys
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement

__all__ = ["DEVICES", "FINGERPRINT_KEYS", "VARIANT_KEYS", "Device", "ModelRef", "merge_rounds"]

#: A model file path, or (torch runtime only) an ``nn.Module`` or a zero-arg factory of one.
ModelRef = str | os.PathLike[str] | Any

#: Descriptor keys that identify the hardware (not its momentary state) for ``fingerprint()``.
FINGERPRINT_KEYS = (
    "kind",
    "cpu_model",
    "cpu_count",
    "machine",
    "cpu_max_freq_khz",
    "gpu_name",
    "soc",
    "serial",
    "board",
    "total_memory_bytes",
)

DEVICES: Registry[type[Device]] = Registry("devices")

#: ``measure_many`` options of the local adapter's interleaving in one worker (its reference
#: model and confirmation rounds), which the generic rounds of :meth:`Device.measure_many` take
#: and leave alone
LOCAL_INTERLEAVE_OPTIONS = (
    "reference",
    "reference_every",
    "recalibrate",
    "confirm_tolerance",
    "extra_rounds",
)

#: the :meth:`Device.measure` arguments that :meth:`Device.measure_variants` may vary
VARIANT_KEYS = ("model", "threads", "batch", "options", "runtime", "seed")


class Device(ABC):
    """One measurable piece of hardware, configured by a ``[devices.NAME]`` table of bench.toml.

    Subclasses set ``kind`` (the ``transport`` value they serve), register themselves with
    ``@DEVICES.register("kind")`` and implement :meth:`measure` and :meth:`describe`.
    """

    kind: ClassVar[str] = ""
    # the keys of its bench.toml table this adapter reads besides the common ones (transport,
    # cpus, timeout_s, harness settings); None (a plugin that says nothing) checks no keys
    config_keys: ClassVar[frozenset[str] | None] = None

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.config: dict[str, Any] = dict(config or {})
        if self.config_keys is not None:
            check_keys(self.config, self.config_keys, f"device {name!r}")

    # ---- the contract ------------------------------------------------------------------
    @abstractmethod
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
        """Measure one model; failures on the device come back as a failed record.

        ``batch=None`` keeps the model's own batch size; ``options`` are runtime-specific
        settings (for example ``{"opt_level": "all"}`` for onnxruntime, ``{"xnnpack": False}``
        for LiteRT); ``seed`` seeds the generated inputs.
        """

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The descriptor: CPU model, cores, frequencies, governor, memory, OS, runtimes, ..."""

    def measure_many(self, models: Sequence[ModelRef], **kwargs: Any) -> list[Measurement]:
        """Measure several models with the same settings.

        ``interleave=N`` (``True``: 10) measures them in N rounds ``A B, B A, ...``, each a whole
        :meth:`measure` call with ``1/N`` of the time budget (the model is loaded, and warmed
        up, anew in every round: an adapter that keeps models loaded overrides this, as the
        local one does). Each model's rounds are merged into one record whose
        ``harness["round_sizes"]`` says where each round's samples start, so that two models
        can be compared round by round under the same conditions. A model that fails in any
        round comes back as that round's failed record; the others go on.
        """
        interleave = kwargs.pop("interleave", 0)
        rounds = 10 if interleave is True else int(interleave or 0)
        for key in LOCAL_INTERLEAVE_OPTIONS:
            kwargs.pop(key, None)  # no meaning for rounds of whole measure() calls
        self._set_statistic(kwargs, kwargs.pop("statistic", None))
        if rounds <= 0 or len(models) < 2:
            return [self.measure(m, **kwargs) for m in models]
        return _interleave_calls(self, models, rounds, kwargs)

    def measure_variants(
        self,
        model: ModelRef,
        variants: Sequence[Mapping[str, Any]],
        *,
        rounds: int = 10,
        statistic: str | None = None,
        **kwargs: Any,
    ) -> list[Measurement]:
        """Measure one model under several settings, in ``rounds`` interleaved rounds.

        ``variants`` are the :meth:`measure` arguments that differ (:data:`VARIANT_KEYS`), for
        example ``[{"threads": 1}, {"threads": 2}, {"threads": 4}]``; ``kwargs`` are the ones
        they share. A variant's ``model`` replaces ``model`` (the same network emitted at
        another batch size, say). Every round is one whole :meth:`measure` call per variant
        with ``1/rounds`` of the time budget, every other round backwards (A B C, C B A, ...):
        variants with other thread counts run in workers pinned to other CPUs, and a runtime
        session is made for its thread count, so they cannot share one loaded session as
        :meth:`measure_many`'s models do. Each variant's rounds are merged into one record
        (``harness["round_sizes"]``), so that two variants are compared round by round under
        the same moments of the machine, as ``measure_many(interleave=N)`` compares two
        models. A variant that fails in a round comes back as that failed record; the others go
        on. ``statistic`` as in :meth:`measure_many`.
        """
        from latbench.errors import ConfigError

        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ConfigError(f"rounds = {rounds!r}; expected an integer >= 1")
        if isinstance(variants, Mapping) or not isinstance(variants, Sequence) or not variants:
            raise ConfigError(
                f"variants = {variants!r}; expected a non-empty list of mappings of "
                f"{', '.join(VARIANT_KEYS)}"
            )
        overrides: list[dict[str, Any]] = []
        for i, variant in enumerate(variants):
            if not isinstance(variant, Mapping):
                raise ConfigError(
                    f"variants[{i}] = {variant!r}; expected a mapping of {', '.join(VARIANT_KEYS)}"
                )
            unknown = [k for k in variant if k not in VARIANT_KEYS]
            if unknown:
                raise ConfigError(
                    f"variants[{i}] sets {', '.join(map(repr, unknown))}; expected only "
                    f"{', '.join(VARIANT_KEYS)} (the others are shared: pass them once)"
                )
            shared = [k for k in variant if k in kwargs]
            if shared:
                raise ConfigError(
                    f"variants[{i}] sets {', '.join(map(repr, shared))}, which is also given "
                    "for every variant; expected each argument either shared or per variant"
                )
            overrides.append(dict(variant))
        for key in LOCAL_INTERLEAVE_OPTIONS:
            kwargs.pop(key, None)
        self._set_statistic(kwargs, statistic)
        models = [o.pop("model", model) for o in overrides]
        return _interleave_calls(self, models, rounds, kwargs, overrides)

    def _set_statistic(self, kwargs: dict[str, Any], statistic: str | None) -> None:
        """Make ``kwargs["settings"]`` (or this device's configured ones) give ``statistic``
        as each record's ``latency_ms``; None leaves them as they are."""
        if statistic is None:
            return
        from dataclasses import replace

        from latbench.errors import ConfigError

        base = kwargs.get("settings") or HarnessSettings.from_mapping(self.config)
        try:
            kwargs["settings"] = replace(base, statistic=str(statistic))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def fingerprint(self) -> str:
        """A stable hash of the hardware identity (not of its momentary state).

        Built from the :data:`FINGERPRINT_KEYS` present in :meth:`describe`, so two runs on the
        same hardware give the same fingerprint while frequency or load readings may differ.
        """
        desc = self.describe()
        ident = {k: desc[k] for k in FINGERPRINT_KEYS if desc.get(k) is not None}
        ident.setdefault("kind", self.kind)
        blob = json.dumps(ident, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def close(self) -> None:  # noqa: B027 - optional hook, not every transport holds state
        """Release the transport (worker process, SSH connection, ...). Idempotent."""

    # ---- context manager ---------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _interleave_calls(
    device: Device,
    models: Sequence[ModelRef],
    rounds: int,
    kwargs: dict[str, Any],
    overrides: Sequence[Mapping[str, Any]] | None = None,
) -> list[Measurement]:
    """:meth:`Device.measure_many` in ``rounds`` rounds of whole ``measure`` calls
    (``overrides``: each model's own arguments, :meth:`Device.measure_variants`)."""
    from latbench.profilers.task import round_settings

    settings = kwargs.pop("settings", None) or HarnessSettings.from_mapping(device.config)
    parts: list[list[Measurement]] = [[] for _ in models]
    failed: dict[int, Measurement] = {}
    for r in range(rounds):
        # every other round backwards (A B, B A, ...), as the local adapter does: no model
        # always runs first
        order = range(len(models)) if r % 2 == 0 else range(len(models) - 1, -1, -1)
        for i in order:
            model = models[i]
            if i in failed:
                continue
            # every round loads the model again, so every round warms it up (r = 0); the loop
            # count of the first round is kept, so that every sample times the same work
            loops = parts[i][0].loops if parts[i] else settings.loops
            own = {**kwargs, **overrides[i]} if overrides else kwargs
            m = device.measure(model, settings=round_settings(settings, 0, rounds, loops), **own)
            if m.ok:
                parts[i].append(m)
            else:
                failed[i] = m
    out = []
    for i in range(len(models)):
        if i in failed:
            out.append(failed[i])
            continue
        merged = merge_rounds(parts[i])
        harness = {**merged.harness, "settings": settings.to_dict(), "interleaved": rounds}
        out.append(merged.with_(harness=harness))
    return out


def merge_rounds(parts: Sequence[Measurement]) -> Measurement:
    """One record of a model's rounds measured in several records (of one device, in order).

    A part without ``harness["round_sizes"]`` is one round; a part with them (an interleaved
    record) brings its rounds. The merged record keeps the first part's environment and
    settings, ``env_after`` of the last, every sample (CPU times only when every part has
    them), ``round_sizes`` and ``rounds`` of all parts, and the parts' total wall time.
    """
    if not parts:
        raise ValueError("merge_rounds of no records")
    sizes: list[int] = []
    info: list[Any] = []
    for m in parts:
        own = list(m.round_sizes) if m.harness.get("round_sizes") else [len(m.samples_ms)]
        sizes.extend(own)
        rounds = m.harness.get("rounds")
        if isinstance(rounds, list | tuple) and len(rounds) >= len(own):
            info.extend(rounds[: len(own)])
        else:
            info.extend({"started_at": m.started_at, "wall_s": m.wall_s} for _ in own)
    first = parts[0]
    return first.with_(
        samples_ms=tuple(x for m in parts for x in m.samples_ms),
        cpu_samples_ms=tuple(x for m in parts for x in m.cpu_samples_ms)
        if all(m.cpu_samples_ms for m in parts)
        else (),
        warmup_ms=tuple(x for m in parts for x in m.warmup_ms),
        warmup_runs=sum(m.warmup_runs for m in parts),
        env_after=parts[-1].env_after,
        wall_s=sum(m.wall_s for m in parts),
        harness={**first.harness, "round_sizes": sizes, "rounds": info},
    )
