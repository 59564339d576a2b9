"""Device descriptors: a device summarised by how fast it runs a fixed set of workloads.

Two styles, both measured through the device's own :meth:`Device.measure`:

* **MAPLE style** (Abbasi et al., 2022): a fixed set of micro-kernels -- standard and
  depthwise convolutions, pooling and matrix multiplications at several sizes -- whose
  latencies (and, where the device exposes a PMU, their hardware counters) describe the
  hardware: compute-bound kernels measure throughput, small ones launch overhead, depthwise and
  pooling ones memory bandwidth.
* **HELP style** (Lee et al., 2021): the latencies of a fixed set of *reference architectures*
  of a search space. They double as few-shot samples: ``latbench adapt --samples`` accepts the
  CSV that :func:`Descriptor.reference_samples_csv` writes.

Both lists are fixed (same shapes, same architectures, same seeds) so that descriptors of
different devices are comparable entry by entry. A descriptor is a JSON document stored next to
the measurement store (``<store dir>/descriptors/<device>.json``).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from latbench._atomic import write_text_atomic
from latbench.errors import ConfigError, DatasetError, MeasurementError
from latbench.profilers.harness import HarnessSettings

log = logging.getLogger(__name__)

DESCRIPTOR_VERSION = 1

#: harness settings that do not change a descriptor's numbers (the per-model timeout; the
#: statistic of ``latency_ms``, while a descriptor keeps each item's median): a partial run
#: measured with other values of these is resumed all the same
SETTINGS_NOT_COMPARED = frozenset({"timeout_s", "statistic"})

#: ``describe(threads=DEVICE_THREADS)``: the thread count the device's ``measure`` defaults to
DEVICE_THREADS: Literal["device"] = "device"


@dataclass(frozen=True)
class MicroKernel:
    """One micro-kernel: an operator at a fixed input shape (NCHW; matmul: M x K @ K x N)."""

    name: str
    op: str  # conv, dwconv, maxpool, avgpool, matmul
    shape: tuple[int, ...]  # conv/pool: (C_in, H, W); matmul: (M, K, N)
    out_channels: int = 0
    kernel: int = 1
    stride: int = 1


#: the fixed micro-kernel set (small enough to run in seconds on a phone)
MICRO_KERNELS: tuple[MicroKernel, ...] = (
    MicroKernel("conv3x3_c16_32", "conv", (16, 32, 32), 16, 3),
    MicroKernel("conv3x3_c64_16", "conv", (64, 16, 16), 64, 3),
    MicroKernel("conv3x3_c128_8_s2", "conv", (128, 16, 16), 128, 3, 2),
    MicroKernel("conv1x1_c64_32", "conv", (64, 32, 32), 64, 1),
    MicroKernel("conv1x1_c256_8", "conv", (256, 8, 8), 256, 1),
    MicroKernel("conv5x5_c32_16", "conv", (32, 16, 16), 32, 5),
    MicroKernel("dwconv3x3_c64_32", "dwconv", (64, 32, 32), 64, 3),
    MicroKernel("dwconv5x5_c128_16", "dwconv", (128, 16, 16), 128, 5),
    MicroKernel("maxpool3x3_c64_32", "maxpool", (64, 32, 32), 64, 3),
    MicroKernel("avgpool3x3_c64_32", "avgpool", (64, 32, 32), 64, 3),
    MicroKernel("matmul_64", "matmul", (64, 64, 64)),
    MicroKernel("matmul_256", "matmul", (256, 256, 256)),
    MicroKernel("matmul_1x1024x1000", "matmul", (1, 1024, 1000)),
)


def kernel_onnx(k: MicroKernel, path: str | os.PathLike[str], seed: int = 0) -> str:
    """Write micro-kernel ``k`` as a one-operator ONNX model with deterministic weights."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = []
    if k.op == "matmul":
        m, kk, n = k.shape
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, kk])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        w = rng.standard_normal((kk, n)).astype(np.float32) * 0.05
        inits.append(numpy_helper.from_array(w, "w"))
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
    else:
        c, h, wd = k.shape
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, wd])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        pad = [k.kernel // 2] * 4
        if k.op in ("conv", "dwconv"):
            group = c if k.op == "dwconv" else 1
            w = rng.standard_normal((k.out_channels, c // group, k.kernel, k.kernel))
            inits.append(numpy_helper.from_array((w * 0.05).astype(np.float32), "w"))
            node = helper.make_node(
                "Conv",
                ["x", "w"],
                ["y"],
                kernel_shape=[k.kernel, k.kernel],
                strides=[k.stride, k.stride],
                pads=pad,
                group=group,
            )
        else:
            op = "MaxPool" if k.op == "maxpool" else "AveragePool"
            node = helper.make_node(
                op,
                ["x"],
                ["y"],
                kernel_shape=[k.kernel, k.kernel],
                strides=[k.stride, k.stride],
                pads=pad,
            )
    graph = helper.make_graph([node], k.name, [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, os.fspath(path))
    return os.fspath(path)


#: the model format each runtime measures (what kernels and reference archs are written as)
RUNTIME_FORMAT = {"onnxruntime": "onnx", "litert": "tflite", "torch": "torch"}


def device_runtime(device: Any) -> str:
    """The runtime a descriptor of ``device`` uses: the device's own (``default_runtime``: an
    adb phone runs LiteRT, an ssh board what its table names), else onnxruntime."""
    rt = getattr(device, "default_runtime", None)
    return str(rt) if isinstance(rt, str) and rt in RUNTIME_FORMAT else "onnxruntime"


def kernel_graph(k: MicroKernel) -> Any:
    """Micro-kernel ``k`` as an architecture graph (for the TFLite and torch emitters)."""
    from latbench.spaces.graph import GraphBuilder

    b = GraphBuilder(meta={"name": k.name})
    if k.op == "matmul":
        m, kk, n = k.shape
        x = b.flatten(b.input((m, kk, 1, 1)))  # the graph's inputs are NCHW: (M, K, 1, 1)
        y = b.linear(x, n, bias=False)
    else:
        c, h, wd = k.shape
        x = b.input((1, c, h, wd))
        if k.op in ("conv", "dwconv"):
            groups = c if k.op == "dwconv" else 1
            y = b.conv(x, k.out_channels, k.kernel, k.stride, k.kernel // 2, groups=groups)
        else:
            y = b.pool(k.op, x, k.kernel, k.stride, k.kernel // 2)
    return b.build([y])


def emit_kernel(k: MicroKernel, runtime: str, directory: str, seed: int = 0) -> Any:
    """Micro-kernel ``k`` as a model ``runtime`` measures (a file; torch: a module factory)."""
    fmt = RUNTIME_FORMAT.get(runtime)
    if fmt is None:
        raise MeasurementError(
            f"runtime {runtime!r} has no model format for descriptors; expected one of "
            + ", ".join(sorted(RUNTIME_FORMAT))
        )
    if fmt == "onnx":
        return kernel_onnx(k, os.path.join(directory, f"{k.name}.onnx"), seed=seed)
    return _emit_graph(kernel_graph(k), fmt, os.path.join(directory, k.name), seed)


def _emit_graph(graph: Any, fmt: str, stem: str, seed: int) -> Any:
    if fmt == "torch":
        from latbench.spaces.emit_torch import torch_factory

        return torch_factory(graph, seed)
    from latbench.spaces import export

    return str(export(graph, fmt, f"{stem}.{fmt}", seed=seed))


def reference_archs(space: str, n: int = 10, seed: int = 2021) -> list[str]:
    """``n`` fixed reference architectures of ``space``, spread over its MACs range.

    200 architectures are drawn with a fixed ``seed`` and those at evenly spaced quantiles of
    their MACs kept: the same list on every machine, covering small to large networks.
    """
    from latbench.spaces import get_space

    if n < 1:
        raise MeasurementError(f"reference architectures n = {n}; expected >= 1")
    sp = get_space(space)
    cand = sp.sample(min(200, sp.size()), seed=seed)
    macs = [sp.build(a).macs() for a in cand]
    order = sorted(range(len(cand)), key=lambda i: (macs[i], cand[i]))
    if n >= len(order):
        return [cand[i] for i in order]
    step = (len(order) - 1) / max(n - 1, 1)
    return [cand[order[round(j * step)]] for j in range(n)]


@dataclass
class Descriptor:
    """A device's descriptor: micro-kernel timings/counters and reference-arch latencies."""

    device: str
    fingerprint: str = ""
    version: int = DESCRIPTOR_VERSION
    runtime: str = "onnxruntime"
    kernels_ms: dict[str, float] = field(default_factory=dict)
    kernel_counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    space: str | None = None
    reference_ms: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    device_info: dict[str, Any] = field(default_factory=dict)
    # items not measured because the device's link or setup failed (not the item's fault): a
    # descriptor with any is incomplete, and a rerun resuming its partial file measures them
    unfinished: list[str] = field(default_factory=list)
    # the timing-harness settings every item was measured with (HarnessSettings.to_dict();
    # empty in a descriptor of an older latbench) and the intra-op thread count (None: the
    # device's own choice)
    settings: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None

    def vector(self) -> list[float]:
        """The MAPLE vector: log-latency of each micro-kernel in :data:`MICRO_KERNELS` order."""
        import math

        return [
            math.log(self.kernels_ms[k.name]) if k.name in self.kernels_ms else float("nan")
            for k in MICRO_KERNELS
        ]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Descriptor:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"descriptor is not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise DatasetError(f"descriptor is a JSON {type(doc).__name__}; expected an object")
        v = doc.get("version")
        if not isinstance(v, int) or v > DESCRIPTOR_VERSION:
            raise DatasetError(
                f"descriptor version {v!r}; this latbench reads versions 1..{DESCRIPTOR_VERSION}"
            )
        settings, threads = doc.get("settings", {}), doc.get("threads")
        if not isinstance(settings, dict) or not (
            threads is None or (isinstance(threads, int) and not isinstance(threads, bool))
        ):
            raise DatasetError(
                f"descriptor settings = {settings!r}, threads = {threads!r}; expected an object "
                "of timing settings and an integer (or null)"
            )
        for key in ("kernels_ms", "reference_ms"):
            _check_latencies(key, doc.get(key, {}))
        for key, kind in _FIELD_TYPES.items():
            value = doc.get(key)
            if value is not None and not isinstance(value, kind):
                raise DatasetError(
                    f"descriptor {key} = {value!r}; expected a JSON "
                    f"{_JSON_NAMES.get(kind, kind.__name__)}"
                )
        known = set(cls.__dataclass_fields__)
        return cls(**{k: val for k, val in doc.items() if k in known})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the descriptor to ``path`` atomically (a killed run leaves the old file)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        return write_text_atomic(p, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Descriptor:
        p = Path(path)
        if not p.is_file():
            raise DatasetError(f"descriptor file {str(p)!r} does not exist")
        try:
            return cls.from_json(p.read_text())
        except DatasetError as exc:
            raise DatasetError(f"{p}: {exc}") from None

    def reference_samples_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the reference latencies as a ``space,arch,latency_ms`` CSV (adapt input)."""
        import csv

        if not self.space or not self.reference_ms:
            raise DatasetError(f"descriptor of {self.device} has no reference architectures")
        p = Path(path)
        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["space", "arch", "latency_ms"])
            for arch, ms in self.reference_ms.items():
                w.writerow([self.space, arch, f"{ms:.6g}"])
        return p


#: the JSON type of each descriptor field other than the latencies (checked on load, so that a
#: hand-edited or foreign file fails with its field named, not later in an adaptation)
_FIELD_TYPES: dict[str, type] = {
    "device": str,
    "fingerprint": str,
    "runtime": str,
    "space": str,
    "kernel_counters": dict,
    "failed": dict,
    "device_info": dict,
    "unfinished": list,
}
_JSON_NAMES: dict[type, str] = {str: "string", dict: "object", list: "array"}


def _check_latencies(key: str, value: Any) -> None:
    """``kernels_ms`` / ``reference_ms`` of a descriptor file: an object of finite positive
    milliseconds, else a :class:`DatasetError` naming the field and the entry."""
    import math

    if not isinstance(value, dict):
        raise DatasetError(
            f"descriptor {key} = {value!r}; expected an object of {{name: milliseconds}}"
        )
    for name, ms in value.items():
        ok = isinstance(ms, int | float) and not isinstance(ms, bool)
        if not (ok and math.isfinite(ms) and ms > 0):
            raise DatasetError(
                f"descriptor {key}[{name!r}] = {ms!r}; expected finite positive milliseconds"
            )


def default_path(store_path: str | os.PathLike[str], device: str) -> Path:
    """``<store dir>/descriptors/<device>.json``: where a device's descriptor is kept."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in device)
    return Path(store_path).resolve().parent / "descriptors" / f"{safe}.json"


def describe(
    device: Any,
    *,
    space: str | None = None,
    n_reference: int = 10,
    kernels: Sequence[MicroKernel] = MICRO_KERNELS,
    settings: HarnessSettings | None = None,
    runtime: str | None = None,
    threads: int | Literal["device"] | None = DEVICE_THREADS,
    counters: bool = True,
    seed: int = 0,
    progress: Callable[[str, float | None], None] | None = None,
    resume: Descriptor | None = None,
    checkpoint: Callable[[Descriptor], object] | None = None,
) -> Descriptor:
    """Measure ``device`` on the micro-kernels and (with ``space``) the reference archs.

    ``device`` is a :class:`latbench.devices.Device`; ``runtime`` defaults to the device's own
    (:func:`device_runtime`: LiteRT on an adb phone, whose kernels and architectures are then
    written as TFLite). ``settings`` (default: the device table's harness settings, as
    ``Device.measure`` uses them) and ``threads`` (default :data:`DEVICE_THREADS`: what the
    device's ``measure`` defaults to, 1 on local, ssh and adb devices) are recorded in the
    descriptor. A kernel or architecture whose measurement fails is recorded in
    ``failed`` with its error and the rest goes on. A failure of the device's link (kind
    ``"transport"``) is tried once more after the device reconnects; one that persists, or a
    fault of the device's setup (kind ``"device"``, which also stops the run), leaves the item
    in ``unfinished`` too. ``counters`` asks for hardware counters, kept where the device
    reports them. ``progress(item, ms)`` is called as each item completes (``ms`` None: it
    failed). ``checkpoint(descriptor)`` is called with the descriptor so far after each item,
    and ``resume`` (the partial descriptor an interrupted run checkpointed) supplies the items
    it already holds, so that only the rest is measured; its failed items are tried again. A
    partial descriptor of another device, fingerprint, runtime or space, or one that records no
    settings (:func:`resumable`), is ignored with a warning; one measured with other timing
    settings or another thread count (:func:`settings_conflict`) is refused with a
    :class:`~latbench.errors.ConfigError`, as continuing it would mix items measured both ways.
    """
    from latbench.devices.remote import RETRYABLE_FAILURES, failure_kind, measure_once_more

    runtime = runtime or device_runtime(device)
    fmt = RUNTIME_FORMAT.get(runtime)
    if fmt is None:
        raise MeasurementError(
            f"runtime {runtime!r} has no model format for descriptors; expected one of "
            + ", ".join(sorted(RUNTIME_FORMAT))
        )
    if space is not None:
        # the space and the reference count are checked before anything is measured: the
        # micro-kernels come first and take minutes on a phone
        from latbench.spaces import get_space

        get_space(space)
        if n_reference < 1:
            raise MeasurementError(f"reference architectures n = {n_reference}; expected >= 1")
    info: dict[str, Any] = {}
    try:
        info = dict(device.describe())
    except (OSError, MeasurementError) as exc:  # a descriptor without device info is still useful
        log.warning("describe() of %s failed: %s", getattr(device, "name", device), exc)
    settings = device_settings(device, settings)
    desc = identity(device, runtime, space, settings=settings, threads=threads)
    desc.device_info = info
    run_kwargs: dict[str, Any] = {} if threads == DEVICE_THREADS else {"threads": threads}
    why = resumable(resume, desc) if resume is not None else "no partial run"
    if resume is not None and why:
        log.warning("not resuming the descriptor of %s: %s; starting over", desc.device, why)
    if resume is not None and not why:
        conflict = settings_conflict(resume, desc)
        if conflict:
            raise ConfigError(
                f"the partial descriptor of {desc.device} was measured with {conflict}; "
                "expected the same settings (or no partial descriptor, to start over)"
            )
        wanted = {k.name for k in kernels}
        desc.kernels_ms = {k: v for k, v in resume.kernels_ms.items() if k in wanted}
        desc.kernel_counters = {
            k: v for k, v in resume.kernel_counters.items() if k in desc.kernels_ms
        }
        refs = set(reference_archs(space, n_reference)) if space else set()
        desc.reference_ms = {a: v for a, v in resume.reference_ms.items() if a in refs}

    def done(item: str, ms: float | None) -> None:
        if checkpoint:
            checkpoint(desc)
        if progress:
            progress(item, ms)

    stopped = ""  # the device's setup failed: the rest is not tried

    def measure(item: str, model: Any, **kwargs: Any) -> Any:
        """Measure one item, once more after a dropped link; None when it failed."""
        nonlocal stopped
        if stopped:
            desc.failed[item] = f"not measured: {stopped}"
            desc.unfinished.append(item)
            done(item, None)
            return None
        m = measure_once_more(
            device, model, item, runtime=runtime, settings=settings, **run_kwargs, **kwargs
        )
        if m.ok:
            desc.failed.pop(item, None)
            return m
        desc.failed[item] = str(m.error)
        kind = failure_kind(m)
        if kind in RETRYABLE_FAILURES or kind == "device":
            desc.unfinished.append(item)
            if kind == "device":
                stopped = str(m.error)
        done(item, None)
        return None

    with tempfile.TemporaryDirectory(prefix="latbench-describe-") as tmp:
        for k in kernels:
            if k.name in desc.kernels_ms:
                continue
            m = measure(k.name, emit_kernel(k, runtime, tmp, seed=seed), counters=counters)
            if m is None:
                continue
            desc.kernels_ms[k.name] = float(m.median_ms)
            got = {name: c for name, c in (m.counters or {}).items() if c.get("value") is not None}
            if got:
                desc.kernel_counters[k.name] = got
            done(k.name, float(m.median_ms))
        if space:
            from latbench.spaces import get_space

            sp = get_space(space)
            for i, arch in enumerate(reference_archs(space, n_reference)):
                if arch in desc.reference_ms:
                    continue
                ref = _emit_graph(sp.build(arch), fmt, os.path.join(tmp, f"ref{i}"), seed)
                m = measure(arch, ref)
                if m is None:
                    continue
                desc.reference_ms[arch] = float(m.median_ms)
                done(arch, float(m.median_ms))
    return desc


def device_threads(device: Any) -> int | None:
    """The thread count ``device.measure`` uses when given none (1 on local, ssh and adb
    devices; None, the device's own choice, on cuda or when its ``measure`` says nothing)."""
    try:
        param = inspect.signature(device.measure).parameters.get("threads")
    except (AttributeError, TypeError, ValueError):
        return None
    if param is None or param.default is inspect.Parameter.empty:
        return None
    default = param.default
    return int(default) if isinstance(default, int) and not isinstance(default, bool) else None


def device_settings(device: Any, settings: HarnessSettings | None = None) -> HarnessSettings:
    """``settings``, else the harness settings of ``device``'s bench.toml table (what
    ``Device.measure`` given no settings uses)."""
    if settings is not None:
        return settings
    try:
        return HarnessSettings.from_mapping(getattr(device, "config", None) or {})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"device {getattr(device, 'name', device)!r}: {exc}") from None


def identity(
    device: Any,
    runtime: str | None = None,
    space: str | None = None,
    *,
    settings: HarnessSettings | None = None,
    threads: int | Literal["device"] | None = DEVICE_THREADS,
) -> Descriptor:
    """An empty descriptor of ``device``: what a partial one must match to be resumed.

    ``runtime`` defaults to the device's own (:func:`device_runtime`), ``settings`` to the
    device table's (:func:`device_settings`), ``threads`` to the device's (:func:`device_threads`).
    """
    return Descriptor(
        device=str(getattr(device, "name", "device")),
        fingerprint=str(device.fingerprint()) if hasattr(device, "fingerprint") else "",
        runtime=runtime or device_runtime(device),
        space=space,
        settings=device_settings(device, settings).to_dict(),
        threads=device_threads(device) if threads == DEVICE_THREADS else threads,
    )


def resumable(partial: Descriptor, fresh: Descriptor) -> str:
    """Why ``partial`` cannot be continued as ``fresh`` (same device, fingerprint, runtime and
    space, and timing settings recorded), or ``""`` when it can -- provided the settings match
    (:func:`settings_conflict`)."""
    for what in ("device", "fingerprint", "runtime", "space"):
        old, new = getattr(partial, what), getattr(fresh, what)
        if old != new:
            return f"the partial run has {what} {old!r}; this run {new!r}"
    if not partial.settings:
        return "the partial run does not record its timing settings (an older latbench wrote it)"
    return ""


def settings_conflict(partial: Descriptor, fresh: Descriptor) -> str:
    """How the timing settings and thread count of ``partial`` differ from ``fresh``'s, as
    ``"max_time_s 0.1 (this run: 5.0), ..."``; ``""`` when they match. The settings of
    :data:`SETTINGS_NOT_COMPARED` do not count."""
    keys = (set(partial.settings) | set(fresh.settings)) - SETTINGS_NOT_COMPARED
    diffs = [
        f"{key} {partial.settings.get(key)!r} (this run: {fresh.settings.get(key)!r})"
        for key in sorted(keys)
        if partial.settings.get(key) != fresh.settings.get(key)
    ]
    if partial.threads != fresh.threads:
        diffs.append(f"threads {partial.threads!r} (this run: {fresh.threads!r})")
    return ", ".join(diffs)


def update_conflict(earlier: Descriptor, fresh: Descriptor) -> str:
    """Why the items of ``earlier`` (a complete descriptor already at the destination) cannot
    join a descriptor measured as ``fresh``, or ``""`` when they can: the same device,
    fingerprint and runtime, and the same timing settings and thread count
    (:func:`settings_conflict`). The space does not count: it concerns only the reference
    architectures, which :func:`carry_over` keeps with their own space."""
    for what in ("device", "fingerprint", "runtime"):
        old, new = getattr(earlier, what), getattr(fresh, what)
        if old != new:
            return f"{what} {old!r} (this run: {new!r})"
    if not earlier.settings:
        return "no recorded timing settings (an older latbench wrote it)"
    return settings_conflict(earlier, fresh)


def carry_over(new: Descriptor, earlier: Descriptor, *, kernels: bool, references: bool) -> str:
    """Copy into ``new`` the part of ``earlier`` that the run of ``new`` did not measure.

    A run with ``--no-kernels`` (``kernels`` False) measures no micro-kernels and one
    without ``--space`` (``references`` False) no reference architectures; storing only
    what it measured would throw away the other half of a descriptor measured before
    (``devices describe pi4`` for the kernels, then ``devices describe pi4 --space nb201
    --no-kernels`` for the references). The caller checks first that ``earlier`` was measured
    the same way (:func:`update_conflict`). Returns what was kept (``"13 micro-kernels"``,
    ``""`` for nothing); a part this run measured replaces the earlier one.
    """
    kept = []
    kernel_names = {k.name for k in MICRO_KERNELS} | set(earlier.kernels_ms)
    if not kernels and earlier.kernels_ms:
        new.kernels_ms = dict(earlier.kernels_ms)
        new.kernel_counters = dict(earlier.kernel_counters)
        new.failed.update({k: v for k, v in earlier.failed.items() if k in kernel_names})
        kept.append(f"{len(earlier.kernels_ms)} micro-kernels")
    if not references and earlier.space and earlier.reference_ms:
        new.space = earlier.space
        new.reference_ms = dict(earlier.reference_ms)
        new.failed.update({k: v for k, v in earlier.failed.items() if k not in kernel_names})
        kept.append(f"{len(earlier.reference_ms)} reference archs of {earlier.space}")
    return " and ".join(kept)
