"""The cuda device. This machine has no GPU: the GPU tests skip with the reason, and the
no-GPU path (the error users see) is tested for real."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from devices_servers import tiny_onnx
from latbench.config import Config
from latbench.devices import get_device
from latbench.devices.cuda import CudaDevice, cuda_unavailable_reason, nvml_snapshot
from latbench.errors import DeviceError
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
