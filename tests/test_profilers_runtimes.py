"""Runtimes on real models: onnxruntime, LiteRT, torch; inputs, settings, per-op, counters."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from latbench.errors import ModelError, RuntimeNotInstalledError, UnknownNameError
from latbench.profilers import counters as ctr
from latbench.profilers.runtimes import RUNTIMES, get_runtime, make_inputs, parse_ort_profile
from latbench.spaces import NB201Space
from latbench.spaces.emit_tflite import to_tflite
from latbench.spaces.emit_torch import torch_factory
from measure_models import conv_net, tiny_net

NB = NB201Space()
ARCH = NB.from_index(7)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    tfl = d / "nb.tflite"
    tfl.write_bytes(to_tflite(NB.build(ARCH), seed=0))
    return {
        "onnxruntime": conv_net(d / "conv.onnx", channels=8, size=16),
        "tiny": tiny_net(d / "tiny.onnx"),
        "dyn": tiny_net(d / "dyn.onnx", dynamic_batch=True),
        "litert": tfl,
    }


def test_registry_lists_the_three_runtimes() -> None:
    assert RUNTIMES.names() == ["litert", "onnxruntime", "torch"]
    with pytest.raises(UnknownNameError, match="expected one of: litert, onnxruntime, torch"):
        get_runtime("tensorrt")


@pytest.mark.parametrize("name", ["onnxruntime", "litert", "torch"])
def test_each_runtime_loads_runs_and_reports_version_and_settings(
    name: str, files: dict[str, Path]
) -> None:
    model: object = files.get(name) or torch_factory(NB.build(ARCH), seed=0)
    sess = get_runtime(name).load(model, threads=1, seed=3)
    sess.run()
    assert sess.version
    assert sess.settings
    assert next(iter(sess.input_shapes.values()))[0] == 1
    sess.close()


def test_inputs_are_seeded() -> None:
    a = make_inputs({"x": ([2, 3], "float32")}, seed=1)["x"]
    b = make_inputs({"x": ([2, 3], "float32")}, seed=1)["x"]
    c = make_inputs({"x": ([2, 3], "float32")}, seed=2)["x"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_onnxruntime_settings_are_the_effective_ones(files: dict[str, Path]) -> None:
    sess = get_runtime("onnxruntime").load(
        files["onnxruntime"], threads=2, options={"opt_level": "basic"}
    )
    assert sess.settings["intra_op_num_threads"] == 2
    assert sess.settings["opt_level"] == "basic"
    assert sess.settings["providers"] == ["CPUExecutionProvider"]


def test_dynamic_batch_is_filled_with_the_requested_batch(files: dict[str, Path]) -> None:
    sess = get_runtime("onnxruntime").load(files["dyn"], batch=8)
    assert sess.input_shapes == {"x": [8, 4]}


def test_a_static_model_rejects_another_batch_with_a_clear_message(
    files: dict[str, Path],
) -> None:
    with pytest.raises(ModelError, match=r"rejects the input shapes \{'x': \[3, 4\]\}"):
        get_runtime("onnxruntime").load(files["tiny"], batch=3)


def test_litert_xnnpack_off_and_a_rejected_batch(files: dict[str, Path]) -> None:
    sess = get_runtime("litert").load(files["litert"], options={"xnnpack": False})
    assert sess.settings["xnnpack"] is False
    assert sess.input_shapes == {"input": [1, 32, 32, 3]}
    # the emitted model reshapes to a fixed batch of 1: LiteRT refuses batch 2 at prepare time
    with pytest.raises(ModelError, match=r"rejects the input shapes \{'input': \[2, 32, 32, 3\]\}"):
        get_runtime("litert").load(files["litert"], batch=2)


@pytest.mark.parametrize(
    ("name", "content", "suffix", "match"),
    [
        ("onnxruntime", b"not a model", ".onnx", "not a valid ONNX model"),
        ("litert", b"garbage bytes here", ".tflite", "not a valid TFLite model"),
        ("torch", b"garbage", ".pt", "not a torch model"),
    ],
)
def test_corrupt_files_raise_model_error(
    tmp_path: Path, name: str, content: bytes, suffix: str, match: str
) -> None:
    p = tmp_path / f"bad{suffix}"
    p.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        get_runtime(name).load(p)


def test_missing_file_and_wrong_suffix(tmp_path: Path, files: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        get_runtime("onnxruntime").load(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match=r"expects \.tflite"):
        get_runtime("litert").load(files["tiny"])


def test_missing_runtime_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("ai_edge_litert"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(RuntimeNotInstalledError, match=r"pip install 'latbench\[litert\]'"):
        get_runtime("litert").package_version()


def test_torch_module_and_factory() -> None:
    graph = NB.build(ARCH)
    factory = torch_factory(graph, seed=0)
    assert isinstance(factory, functools.partial)
    sess = get_runtime("torch").load(factory(), threads=1, batch=2)
    assert sess.input_shapes == {"input": [2, 3, 32, 32]}
    plain = torch.nn.Linear(4, 2)
    with pytest.raises(ModelError, match="input shapes"):
        get_runtime("torch").load(plain)
    sess = get_runtime("torch").load(plain, options={"input_shapes": {"x": [1, 4]}})
    sess.run()


@pytest.mark.slow
def test_torch_exported_program_file(tmp_path: Path) -> None:
    plain = torch.nn.Linear(4, 2)
    exported = tmp_path / "lin.pt2"
    torch.export.save(torch.export.export(plain, (torch.zeros(3, 4),)), str(exported))
    sess = get_runtime("torch").load(exported)
    assert sess.settings["mode"] == "exported"
    assert sess.input_shapes == {"input": [3, 4]}  # read from the exported program


def test_onnxruntime_per_op_profile_is_a_table_of_shares(files: dict[str, Path]) -> None:
    rows = get_runtime("onnxruntime").load(files["onnxruntime"]).profile_ops(runs=5)
    ops = {r["op"] for r in rows}
    assert "Conv" in ops
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-6
    assert all(r["time_ms"] > 0 for r in rows)
    assert rows == sorted(rows, key=lambda r: -r["time_ms"])


def test_parse_ort_profile_aggregates_kernel_events() -> None:
    events = [
        {"cat": "Session", "name": "model_run", "dur": 100},
        {"cat": "Node", "name": "c0_kernel_time", "dur": 30, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "c0_kernel_time", "dur": 50, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "r0_kernel_time", "dur": 20, "args": {"op_name": "Relu"}},
        {"cat": "Node", "name": "r0_fence_before", "dur": 5, "args": {"op_name": "Relu"}},
    ]
    rows = parse_ort_profile(events, runs=2)
    assert rows[0]["op"] == "Conv" and rows[0]["name"] == "c0"
    assert rows[0]["time_ms"] == pytest.approx(0.04) and rows[0]["share"] == pytest.approx(0.8)
    assert rows[1]["op"] == "Relu" and rows[1]["share"] == pytest.approx(0.2)


def test_torch_per_op_and_litert_per_op_unavailable(files: dict[str, Path]) -> None:
    rows = get_runtime("torch").load(torch_factory(NB.build(ARCH))).profile_ops(runs=2)
    assert any("conv" in r["op"] for r in rows)
    with pytest.raises(NotImplementedError, match="no operator profiler"):
        get_runtime("litert").load(files["litert"]).profile_ops()


def test_counters_software_always_hardware_unavailable_with_reason(
    files: dict[str, Path],
) -> None:
    sess = get_runtime("onnxruntime").load(files["onnxruntime"])
    res = ctr.count_inferences(sess.run, 20)
    for name in ("task_clock_ms", "context_switches", "page_faults", "cpu_migrations"):
        assert res[name]["value"] is not None and res[name]["value"] >= 0, name
    assert res["task_clock_ms"]["value"] > 0
    for name in ("instructions", "cycles"):
        entry = res[name]
        if entry["value"] is None:  # this VM has no PMU: must say why, never 0
            assert "not supported" in entry["unavailable"]
        else:
            assert entry["value"] > 0
    assert ctr.peak_rss_bytes()["value"] > 0
