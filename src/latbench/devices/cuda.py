"""``cuda``: an NVIDIA GPU, through torch (CUDA) or ONNX Runtime's CUDA execution provider.

bench.toml::

    [devices.gpu0]
    transport = "cuda"
    index = 0                  # CUDA device ordinal
    runtime = "torch"          # default runtime: "torch" or "onnxruntime"
    dtype = "float16"          # torch: float32 (default), float16 or bfloat16

Timing. GPU work is asynchronous, so a host clock around a launch measures nothing. The harness
(:func:`latbench.profilers.harness.run_harness`) runs with a clock that first calls
``torch.cuda.synchronize()`` (as ``torch.utils.benchmark`` does for CUDA), so each timed sample
covers ``loops`` complete inferences, launch overhead included. With torch, a second pass then
times single inferences with CUDA events (``torch.cuda.Event(enable_timing=True)``; device-side
time, no host overhead) and keeps every value in ``harness["cuda_event_ms"]``. With ONNX
Runtime, inputs and outputs are bound on the GPU with I/O binding, so no host copy lands inside
a sample; it runs on a CUDA stream of its own, which events recorded on torch's stream would not
time, so its ``cuda_event_ms`` is empty. Floating inputs and weights take the ``dtype`` option
(torch: float32, float16, bfloat16; the table's ``dtype`` is the default, an option given to
``measure`` goes over it); integer inputs (``input_dtypes``) keep their type. The onnxruntime
options are the CPU runtime's (``opt_level``); an ONNX model's tensors carry their own types, so
a table ``dtype`` other than float32 is refused for a measurement on onnxruntime.

Descriptor and counters come from NVML (``nvidia-ml-py``, module ``pynvml``): name, UUID,
driver, memory, SM/memory clocks (current and max), power draw and limit, temperature,
utilisation, performance state, clock event (throttle) reasons; read before and after timing
(``env`` / ``env_after``). The GPU is found in NVML by the UUID torch reports, since NVML's
device numbers are not CUDA's (``CUDA_VISIBLE_DEVICES``, ``CUDA_DEVICE_ORDER``).

Without a GPU (or with a CPU-only torch build) constructing the device raises a
:class:`~latbench.errors.DeviceError` that says so and what to install.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import numbers
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from latbench.devices._config import number
from latbench.devices.base import DEVICES, Device, ModelRef
from latbench.errors import ConfigError, DeviceError, LatbenchError, ModelError
from latbench.profilers.harness import HarnessSettings, run_harness
from latbench.profilers.record import Measurement
from latbench.profilers.runtimes import make_inputs
from latbench.profilers.task import model_label, model_sha256

__all__ = ["CudaDevice", "cuda_unavailable_reason", "nvml_snapshot"]

log = logging.getLogger(__name__)


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here (None when it can)."""
    try:
        import torch
    except ImportError as exc:
        return f"torch is not installed ({exc})"
    if torch.version.cuda is None:
        return (
            f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build of torch "
            "on a machine with an NVIDIA GPU"
        )
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU: "
            "torch.cuda.is_available() is False (no NVIDIA GPU, or no driver)"
        )
    return None


def _nvml_handle(pynvml: Any, index: int, uuid: str | None) -> Any:
    """The NVML handle of the GPU: by its UUID when known, else by ``index``.

    NVML numbers the GPUs of the machine in PCI order; CUDA numbers those it may use
    (``CUDA_VISIBLE_DEVICES``) fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so CUDA
    device 0 is not NVML's 0 in general. torch gives the UUID bare, NVML prefixes ``GPU-``
    (``MIG-`` for a MIG instance).
    """
    if uuid is None:
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    names = [uuid] if uuid.startswith(("GPU-", "MIG-")) else [f"GPU-{uuid}", f"MIG-{uuid}"]
    for name in names[:-1]:
        with contextlib.suppress(pynvml.NVMLError):
            return pynvml.nvmlDeviceGetHandleByUUID(name)
    return pynvml.nvmlDeviceGetHandleByUUID(names[-1])


def nvml_snapshot(index: int = 0, uuid: str | None = None) -> dict[str, Any]:
    """NVML readings of CUDA device ``index``; ``{"unavailable": reason}`` when NVML cannot be
    used.

    ``uuid`` (``torch.cuda.get_device_properties(index).uuid``) finds the GPU in NVML whatever
    ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` say; without it ``index`` is taken as
    NVML's own index. Each reading is best-effort: a query the GPU does not support is left out.
    """
    try:
        import pynvml
    except ImportError as exc:
        return {"unavailable": f"nvidia-ml-py is not installed ({exc}): pip install latbench[gpu]"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"unavailable": f"NVML cannot start: {exc}"}
    out: dict[str, Any] = {}
    # the name of NVML 12.2 on; the older one is deprecated and goes with CUDA 14
    reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
    try:
        h = _nvml_handle(pynvml, index, uuid)
        queries: dict[str, Callable[[], Any]] = {
            "gpu_name": lambda: _text(pynvml.nvmlDeviceGetName(h)),
            "gpu_uuid": lambda: _text(pynvml.nvmlDeviceGetUUID(h)),
            "driver_version": lambda: _text(pynvml.nvmlSystemGetDriverVersion()),
            "gpu_memory_total_bytes": lambda: int(pynvml.nvmlDeviceGetMemoryInfo(h).total),
            "gpu_memory_used_bytes": lambda: int(pynvml.nvmlDeviceGetMemoryInfo(h).used),
            "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
            "sm_clock_max_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM),
            "mem_clock_max_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM),
            "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
            "power_limit_w": lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
            "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(
                h, pynvml.NVML_TEMPERATURE_GPU
            ),
            "utilization_gpu_pct": lambda: pynvml.nvmlDeviceGetUtilizationRates(h).gpu,
            "utilization_memory_pct": lambda: pynvml.nvmlDeviceGetUtilizationRates(h).memory,
            "pstate": lambda: pynvml.nvmlDeviceGetPerformanceState(h),
        }
        if reasons is not None:
            queries["throttle_reasons"] = lambda: reasons(h)
        for key, query in queries.items():
            try:
                out[key] = query()
            except pynvml.NVMLError as exc:
                log.debug("NVML %s: %s", key, exc)
    except pynvml.NVMLError as exc:
        which = f"CUDA device {index}" + (f" (UUID {uuid})" if uuid else "")
        out["unavailable"] = f"NVML cannot read {which}: {exc}"
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: NVML readings reported as counters of a measurement (name -> unit)
COUNTER_UNITS = {
    "power_w": "W",
    "temperature_c": "C",
    "sm_clock_mhz": "MHz",
    "mem_clock_mhz": "MHz",
    "utilization_gpu_pct": "%",
    "utilization_memory_pct": "%",
    "gpu_memory_used_bytes": "bytes",
}


#: the floating types a torch measurement may cast the module and its floating inputs to
_TORCH_DTYPES = ("float32", "float16", "bfloat16")


@DEVICES.register("cuda")
class CudaDevice(Device):
    """One NVIDIA GPU (see the module docstring)."""

    kind = "cuda"
    config_keys = frozenset({"index", "runtime", "dtype"})

    @property
    def table_runtime(self) -> str | None:
        """The runtime the device table's ``runtime`` names (None: not set)."""
        return self.default_runtime if "runtime" in self.config else None

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        where = f"device {name!r}"
        # the table first: a typo is said as such, on machines with a GPU or without
        self.index = number(self.config, "index", 0, where=where, integer=True, minimum=0)
        runtime = self.config.get("runtime", "torch")
        if runtime not in ("torch", "onnxruntime"):
            raise ConfigError(
                f"{where} (cuda): runtime = {runtime!r}; expected 'torch' or 'onnxruntime'"
            )
        self.default_runtime = str(runtime)
        dtype = self.config.get("dtype", "float32")
        if dtype not in _TORCH_DTYPES:
            raise ConfigError(
                f"{where} (cuda): dtype = {dtype!r}; expected one of {', '.join(_TORCH_DTYPES)}"
            )
        self.dtype = str(dtype)
        if self.dtype != "float32" and self.default_runtime == "onnxruntime":
            raise ConfigError(
                f"{where} (cuda): dtype = {dtype!r} with runtime = 'onnxruntime'; expected "
                "runtime = 'torch' (an ONNX model's tensors carry their own types) or no dtype"
            )
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise DeviceError(f"device {name!r} (cuda): no CUDA GPU is available: {reason}")
        import torch

        count = torch.cuda.device_count()
        if not 0 <= self.index < count:
            raise ConfigError(
                f"device {name!r} (cuda): index = {self.index}; expected 0 to {count - 1}: "
                f"this machine has {count} CUDA device(s) visible "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
            )
        self._torch = torch
        self._dev = torch.device("cuda", self.index)
        # NVML's own numbering is not CUDA's: the UUID names the same GPU to both
        uuid = getattr(torch.cuda.get_device_properties(self.index), "uuid", None)
        self._uuid: str | None = str(uuid) if uuid is not None and str(uuid) else None
        self._describe: dict[str, Any] | None = None
        self._fingerprint: str | None = None

    # ---- descriptor -----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        if self._describe is None:
            torch = self._torch
            props = torch.cuda.get_device_properties(self.index)
            desc: dict[str, Any] = {
                "kind": self.kind,
                "name": self.name,
                "index": self.index,
                "gpu_name": props.name,
                "gpu_uuid": self._uuid,
                "compute_capability": f"{props.major}.{props.minor}",
                "multiprocessors": props.multi_processor_count,
                "total_memory_bytes": int(props.total_memory),
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
            }
            try:
                import onnxruntime as ort

                desc["onnxruntime"] = ort.__version__
                desc["onnxruntime_providers"] = ort.get_available_providers()
            except ImportError:
                desc["onnxruntime"] = "unavailable"
            desc["nvml"] = nvml_snapshot(self.index, self._uuid)
            self._describe = desc
        return dict(self._describe)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = super().fingerprint()
        return self._fingerprint

    # ---- measurement ----------------------------------------------------------------------
    def _sync_clock(self) -> Callable[[], float]:
        sync = self._torch.cuda.synchronize
        dev = self._dev

        def clock() -> float:
            sync(dev)
            return time.perf_counter()

        return clock

    def _torch_session(
        self, model: ModelRef, batch: int | None, options: Mapping[str, Any], seed: int
    ) -> tuple[Callable[[], Any], dict[str, list[int]], dict[str, Any]]:
        from latbench.profilers.runtimes import get_runtime

        torch = self._torch
        dtype_name = options.get("dtype", getattr(self, "dtype", "float32"))
        if dtype_name not in _TORCH_DTYPES:
            raise ConfigError(f"dtype = {dtype_name!r}; expected one of {', '.join(_TORCH_DTYPES)}")
        dtype = getattr(torch, str(dtype_name))
        # The CPU runtime resolves modules, factories, files and input shapes; then move to GPU.
        # ``dtype`` is this adapter's option (the CPU runtime refuses it: it runs float32)
        cpu_options = {k: v for k, v in options.items() if k != "dtype"}
        cpu = get_runtime("torch").load(
            model, threads=None, batch=batch, options=cpu_options, seed=seed
        )
        module = cpu._module  # type: ignore[attr-defined]
        shapes = dict(cpu.input_shapes)
        module = module.to(self._dev, dtype=dtype).eval()
        # the CPU runtime's seeded inputs, of the model's own dtypes (``input_dtypes``, a .pt2
        # program's): token ids stay integers, only floating inputs take ``dtype``
        inputs = tuple(
            t.to(self._dev, dtype=dtype) if t.is_floating_point() else t.to(self._dev)
            for t in cpu._inputs  # type: ignore[attr-defined]
        )
        mode = torch.inference_mode()

        def run() -> Any:
            with mode:
                return module(*inputs)

        settings = {"execution": "torch.cuda", "dtype": dtype_name, "mode": cpu.settings["mode"]}
        return run, shapes, settings

    def _ort_session(
        self, model: ModelRef, batch: int | None, options: Mapping[str, Any], seed: int
    ) -> tuple[Callable[[], Any], dict[str, list[int]], dict[str, Any]]:
        import onnxruntime as ort

        from latbench.profilers.runtimes import _ORT_LEVELS, _shape_with_batch

        table_dtype = getattr(self, "dtype", "float32")
        if table_dtype != "float32":
            raise ConfigError(
                f"device {self.name!r} (cuda): dtype = {table_dtype!r} applies to the torch "
                "runtime; an ONNX model's tensors carry their own types (expected --runtime "
                "torch, or no dtype in the device's table)"
            )
        # the options of the CPU runtime that apply here; another one would do nothing, yet be
        # recorded as if it had
        unknown = [k for k in options if k != "opt_level"]
        if unknown:
            raise ConfigError(
                f"runtime 'onnxruntime' on {self.name!r} (cuda) has no option {unknown[0]!r}; "
                "expected opt_level"
            )
        level = str(options.get("opt_level", "all"))
        if level not in _ORT_LEVELS:
            raise ConfigError(
                f"onnxruntime opt_level {level!r}; expected one of {', '.join(_ORT_LEVELS)}"
            )
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError(
                f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (providers: "
                f"{ort.get_available_providers()}); install onnxruntime-gpu"
            )
        if not isinstance(model, str | os.PathLike) or not os.path.isfile(model):
            raise ModelError(f"onnxruntime on {self.name!r} needs an .onnx file; got {model!r}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel(_ORT_LEVELS[level])
        sess = ort.InferenceSession(
            str(model),
            opts,
            providers=[
                ("CUDAExecutionProvider", {"device_id": self.index}),
                "CPUExecutionProvider",
            ],
        )
        if sess.get_providers()[0] != "CUDAExecutionProvider":
            raise DeviceError(f"onnxruntime did not put {model} on the GPU: {sess.get_providers()}")
        specs = {
            i.name: (
                _shape_with_batch(i.name, list(i.shape), batch),
                str(i.type).removeprefix("tensor(").removesuffix(")"),
            )
            for i in sess.get_inputs()
        }
        feeds = make_inputs(specs, seed)
        binding = sess.io_binding()
        for name, arr in feeds.items():
            binding.bind_ortvalue_input(
                name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", self.index)
            )
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cuda", self.index)

        def run() -> Any:
            sess.run_with_iobinding(binding)

        settings = {
            "execution_provider": "CUDAExecutionProvider",
            "providers": sess.get_providers(),
            "io_binding": True,
            "opt_level": level,
        }
        return run, {k: v[0] for k, v in specs.items()}, settings

    def _event_times_ms(self, run: Callable[[], Any], n: int) -> list[float]:
        """Device-side time of ``n`` single inferences, from CUDA event pairs."""
        torch = self._torch
        pairs = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(n)
        ]
        stream = torch.cuda.current_stream(self._dev)
        for start, end in pairs:
            start.record(stream)
            run()
            end.record(stream)
        torch.cuda.synchronize(self._dev)
        return [float(s.elapsed_time(e)) for s, e in pairs]

    def measure(
        self,
        model: ModelRef,
        *,
        runtime: str | None = None,
        threads: int | None = None,
        batch: int | None = None,
        settings: HarnessSettings | None = None,
        per_op: bool = False,
        counters: bool = False,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Measurement:
        rt = runtime or self.default_runtime
        if rt not in ("torch", "onnxruntime"):
            raise ConfigError(
                f"device {self.name!r} (cuda): runtime = {rt!r}; expected torch or onnxruntime"
            )
        for what, value in (("threads", threads), ("batch", batch)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1
            ):
                raise ConfigError(
                    f"device {self.name!r} (cuda): {what} = {value!r}; expected an integer >= 1"
                )
        if not isinstance(options, Mapping | None):
            raise ConfigError(f"options = {options!r}; expected a mapping of runtime options")
        if rt == "onnxruntime":
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise DeviceError(
                    f"device {self.name!r} (cuda): runtime 'onnxruntime' is not installed "
                    f"({exc}); install onnxruntime-gpu"
                ) from None
        s = settings or HarnessSettings.from_mapping(self.config)
        opts = dict(options or {})
        t0 = time.perf_counter()
        started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        fp = self.fingerprint()
        try:
            if rt == "torch":
                run, shapes, rt_settings = self._torch_session(model, batch, opts, seed)
                version = self._torch.__version__
            else:
                run, shapes, rt_settings = self._ort_session(model, batch, opts, seed)
                version = ort.__version__
            run()
            self._torch.cuda.synchronize(self._dev)
            env = {"gpu_index": self.index, **nvml_snapshot(self.index, self._uuid)}
            self._torch.cuda.reset_peak_memory_stats(self._dev)
            result = run_harness(run, s, clock=self._sync_clock())
            after = nvml_snapshot(self.index, self._uuid)
            n_events = max(10, min(200, len(result.samples_ms)))
            events = self._event_times_ms(run, n_events) if rt == "torch" else []
        except (ModelError, ConfigError, DeviceError):
            # a bad model or setting, or a GPU runtime that is not there (no
            # CUDAExecutionProvider): raised, not one failed row per model of a collection
            raise
        except (RuntimeError, LatbenchError, ValueError) as exc:  # CUDA errors are RuntimeError
            return Measurement.failed(
                f"{self.name}: {type(exc).__name__}: {str(exc).strip()[:400]}",
                runtime=rt,
                device=self.name,
                device_fingerprint=fp,
                model_path=model_label(model),
                batch=batch or 1,
                harness={"settings": s.to_dict(), "failure": "model"},
            )
        counter_values: dict[str, dict[str, Any]] = {
            key: {"value": after[key], "unit": unit}
            for key, unit in COUNTER_UNITS.items()
            if key in after
        }
        if rt == "torch":  # onnxruntime allocates through its own arena: torch would say 0
            counter_values["torch_peak_allocated_bytes"] = {
                "value": int(self._torch.cuda.max_memory_allocated(self._dev)),
                "unit": "bytes",
            }
        if events:
            ordered = sorted(events)
            counter_values["cuda_event_median_ms"] = {
                "value": ordered[len(ordered) // 2],
                "unit": "ms",
            }
        if "unavailable" in after:
            counter_values["nvml"] = {"value": None, "unavailable": after["unavailable"]}
        if per_op:
            rt_settings["per_op_unavailable"] = "per-operator GPU profiles are not implemented"
        first = next(iter(shapes.values()), [1])
        return Measurement(
            status="ok",
            samples_ms=result.samples_ms,
            loops=result.loops,
            warmup_runs=len(result.warmup_ms),
            warmup_ms=result.warmup_ms,
            runtime=rt,
            runtime_version=version,
            runtime_settings=rt_settings,
            device=self.name,
            device_fingerprint=fp,
            model_path=model_label(model),
            model_sha256=model_sha256(model),
            batch=int(first[0]) if first else 1,
            threads=threads,
            input_shapes=shapes,
            counters=counter_values,  # NVML readings are cheap: always kept
            env=env,
            env_after=after,
            started_at=started,
            wall_s=time.perf_counter() - t0,
            latbench_version=_version(),
            harness={
                "settings": s.to_dict(),
                "stop_reason": result.stop_reason,
                "timer_resolution_s": result.timer_resolution_s,
                "elapsed_s": result.elapsed_s,
                "clock": "torch.cuda.synchronize + perf_counter",
                "cuda_event_ms": events,
                "seed": seed,
            },
        )


def _version() -> str:
    import latbench

    return str(latbench.__version__)
