"""The cuda device. This machine has no GPU: the GPU tests skip with the reason, and the
no-GPU path (the error users see) is tested for real. The checks and set-up that run before a
GPU is touched are tested on a CPU stand-in of the device, and the NVML lookup on a stand-in of
pynvml; each such test says so."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from devices_servers import tiny_onnx
from latbench.config import Config
from latbench.devices import get_device
from latbench.devices.base import Device
from latbench.devices.cuda import CudaDevice, cuda_unavailable_reason, nvml_snapshot
from latbench.errors import ConfigError, DeviceError
from latbench.profilers.harness import HarnessSettings

REASON = cuda_unavailable_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"no CUDA GPU: {REASON}")
FAST = HarnessSettings(warmup_runs=3, warmup_time_s=0.0, min_runs=10, min_time_s=0.1)


def test_without_a_gpu_the_error_says_why() -> None:
    if REASON is None:
        pytest.skip("a CUDA GPU is present; the no-GPU message cannot be produced here")
    with pytest.raises(DeviceError, match="no CUDA GPU is available") as info:
        get_device("gpu0", Config(devices={"gpu0": {"transport": "cuda"}}))
    assert torch.__version__ in str(info.value)
    assert "CPU-only build" in str(info.value) or "is_available() is False" in str(info.value)


def test_nvml_snapshot_reports_unavailability_instead_of_zeros() -> None:
    snap = nvml_snapshot(0)
    if REASON is not None:
        assert set(snap) == {"unavailable"} and snap["unavailable"]
    else:
        assert snap["gpu_name"] and snap["gpu_memory_total_bytes"] > 0


@pytest.mark.gpu
@needs_gpu
def test_torch_module_on_the_gpu() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU())
    with CudaDevice("gpu0", {"transport": "cuda"}) as dev:
        m = dev.measure(net, settings=FAST, options={"input_shapes": {"x": [1, 3, 32, 32]}})
        desc = dev.describe()
    assert m.ok and m.runtime == "torch" and m.runs >= 10
    assert len(m.harness["cuda_event_ms"]) >= 10 and m.counters["cuda_event_median_ms"]["value"] > 0
    assert desc["gpu_name"] and desc["total_memory_bytes"] > 0


@pytest.mark.gpu
@needs_gpu
def test_onnxruntime_cuda_provider(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider")
    model = tiny_onnx(tmp_path / "m.onnx")
    with CudaDevice("gpu0", {"transport": "cuda"}) as dev:
        m = dev.measure(model, runtime="onnxruntime", settings=FAST)
    assert m.ok and m.runtime_settings["io_binding"] is True


# ---- paths this machine (no GPU) can only reach with a stand-in -------------------------------
def _cpu_stand_in() -> CudaDevice:
    """A CudaDevice whose "GPU" is this CPU: ``__init__`` (which needs CUDA) is skipped and
    ``_dev`` is ``torch.device("cpu")``. A stand-in, since no GPU is here; the code under test
    (argument checks, session set-up) runs unchanged, with real torch and onnxruntime."""
    dev = CudaDevice.__new__(CudaDevice)
    Device.__init__(dev, "gpu0", {"transport": "cuda"})
    dev.index, dev.default_runtime, dev.dtype = 0, "torch", "float32"
    dev._torch, dev._dev, dev._uuid = torch, torch.device("cpu"), None
    dev._describe, dev._fingerprint = None, "0" * 16
    return dev


class _FakeNvml(types.ModuleType):
    """A stand-in for ``pynvml`` (no NVIDIA driver here): two GPUs in NVML's own PCI order,
    ``GPU-aaaa`` at 31 C and ``GPU-bbbb`` at 77 C, and a MIG instance ``MIG-cccc``. It has only
    the new name of the clock-reasons query, as NVML bindings will once the old one is gone."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 2, 0

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        super().__init__("pynvml")
        self.GPUS = {"GPU-aaaa": 31, "GPU-bbbb": 77, "MIG-cccc": 55}

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return list(self.GPUS)[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        if uuid not in self.GPUS:
            raise self.NVMLError("Not Found")
        return uuid

    def nvmlDeviceGetUUID(self, h: str) -> bytes:
        return h.encode()

    def nvmlDeviceGetTemperature(self, h: str, sensor: int) -> int:
        return self.GPUS[h]

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: str) -> int:
        return 0x20

    def __getattr__(self, name: str) -> Any:  # every other query: "Not Supported"
        if not name.startswith("nvml"):
            raise AttributeError(name)

        def unsupported(*args: Any) -> Any:
            raise self.NVMLError("Not Supported")

        return unsupported


def test_nvml_reads_the_gpu_of_the_cuda_uuid_not_nvmls_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NVML's index 0 is not CUDA's 0 under CUDA_VISIBLE_DEVICES or the default fastest-first
    order: the readings (clocks, temperature) were those of another GPU. NVML is a stand-in
    (:class:`_FakeNvml`): this machine has no driver."""
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml())
    snap = nvml_snapshot(0, uuid="bbbb")  # CUDA device 0 is NVML's second GPU, say
    assert snap["gpu_uuid"] == "GPU-bbbb" and snap["temperature_c"] == 77
    assert snap["throttle_reasons"] == 0x20  # read under its current name
    assert "sm_clock_mhz" not in snap  # not supported: left out, not a zero
    assert nvml_snapshot(0, uuid="cccc")["gpu_uuid"] == "MIG-cccc"
    gone = nvml_snapshot(0, uuid="dddd")
    assert "temperature_c" not in gone  # never the readings of NVML's GPU 0 instead
    assert "CUDA device 0 (UUID dddd)" in gone["unavailable"]


def test_torch_inputs_keep_their_own_dtypes() -> None:
    """Every input was made float32 then cast to ``dtype``: token ids became floats and an
    embedding failed. On the CPU stand-in (:func:`_cpu_stand_in`)."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.lin = torch.nn.Embedding(16, 4), torch.nn.Linear(4, 4)

        def forward(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.emb(ids).sum() + self.lin(x).sum()

    options = {
        "input_shapes": {"ids": [1, 8], "x": [1, 4]},
        "input_dtypes": {"ids": "int64"},
        "dtype": "bfloat16",
    }
    run, shapes, settings = _cpu_stand_in()._torch_session(Net(), None, options, 0)
    assert run().dtype == torch.bfloat16
    assert shapes == {"ids": [1, 8], "x": [1, 4]} and settings["dtype"] == "bfloat16"


def test_onnxruntime_options_are_checked_not_ignored(tmp_path: Path) -> None:
    """An option the GPU session does not apply was dropped silently. With real onnxruntime,
    on the CPU stand-in (:func:`_cpu_stand_in`): the checks come before the GPU is needed."""
    model = tiny_onnx(tmp_path / "m.onnx")
    dev = _cpu_stand_in()
    with pytest.raises(ConfigError, match="has no option 'graph_level'; expected opt_level"):
        dev._ort_session(model, None, {"graph_level": 1}, 0)
    with pytest.raises(ConfigError, match="opt_level 'fastest'; expected one of"):
        dev._ort_session(model, None, {"opt_level": "fastest"}, 0)


def test_a_missing_cuda_provider_and_bad_arguments_are_raised(tmp_path: Path) -> None:
    """onnxruntime without a CUDAExecutionProvider came back as a failed measurement of the
    model (one failed row per model of a collection), and threads = 0 was taken. With real
    onnxruntime (this CPU build has no CUDA provider) on the CPU stand-in."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDAExecutionProvider")
    model = tiny_onnx(tmp_path / "m.onnx")
    dev = _cpu_stand_in()
    with pytest.raises(DeviceError, match=r"has no CUDAExecutionProvider.*onnxruntime-gpu"):
        dev.measure(model, runtime="onnxruntime", settings=FAST)
    with pytest.raises(ConfigError, match=r"threads = 0; expected an integer >= 1"):
        dev.measure(model, runtime="onnxruntime", threads=0, settings=FAST)
    with pytest.raises(ConfigError, match=r"batch = 'x'; expected an integer >= 1"):
        dev.measure(model, batch="x", settings=FAST)  # type: ignore[arg-type]


def test_the_tables_dtype_is_checked_before_the_gpu_and_is_the_default(tmp_path: Path) -> None:
    """``dtype`` could only be given in Python (``options``), never in bench.toml, where a
    fleet's GPUs are set up. The table is checked before the GPU, so these run here; the
    session with the table's dtype runs on the CPU stand-in (:func:`_cpu_stand_in`)."""
    with pytest.raises(ConfigError, match=r"dtype = 'float8'; expected one of float32, float16"):
        CudaDevice("gpu0", {"transport": "cuda", "dtype": "float8"})
    with pytest.raises(ConfigError, match=r"dtype = 'float16' with runtime = 'onnxruntime'"):
        CudaDevice("gpu0", {"transport": "cuda", "dtype": "float16", "runtime": "onnxruntime"})
    if REASON is not None:  # a valid table gets as far as the missing GPU
        with pytest.raises(DeviceError, match="no CUDA GPU is available"):
            CudaDevice("gpu0", {"transport": "cuda", "dtype": "float16"})
    dev = _cpu_stand_in()
    dev.dtype = "bfloat16"
    lin = torch.nn.Linear(4, 2)
    run, _, settings = dev._torch_session(lin, None, {"input_shapes": {"x": [1, 4]}}, 0)
    assert run().dtype == torch.bfloat16 and settings["dtype"] == "bfloat16"
    run, _, settings = dev._torch_session(
        torch.nn.Linear(4, 2), None, {"input_shapes": {"x": [1, 4]}, "dtype": "float32"}, 0
    )
    assert run().dtype == torch.float32 and settings["dtype"] == "float32"  # options go over it
    with pytest.raises(ConfigError, match=r"dtype = 'bfloat16' applies to the torch runtime"):
        dev._ort_session(tiny_onnx(tmp_path / "m.onnx"), None, {}, 0)
