"""Robustness of spaces, graph builder, emitters and ONNX importer: the audit's 13 findings.

Every test builds its ONNX models in memory (``onnx.helper``) or with ``torch.onnx.export`` and
runs them on the real runtimes (onnxruntime, LiteRT, torch); each takes well under a second,
except the ones that export a torch program or start a subprocess (a few seconds).
"""

from __future__ import annotations

import errno
import io
import os
import resource
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from emit_helpers import assert_close, onnx_model, run_onnx, run_tflite, run_torch
from latbench.cli import main
from latbench.errors import ArchError, ConfigError, ModelError
from latbench.spaces import (
    FBNetSpace,
    GraphBuilder,
    NB201Space,
    export,
    make_input,
)
from latbench.spaces.emit_onnx import to_onnx
from latbench.spaces.emit_torch import to_torch
from latbench.spaces.onnx_import import from_onnx

NB201 = NB201Space()
FBNET = FBNetSpace()
ARCH = NB201.from_ops([3, 3, 4, 1, 3, 1])


# ---- helpers ------------------------------------------------------------------------------------
def _vi(
    name: str, shape: list[int | str] | None, dtype: int = TensorProto.FLOAT
) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
    inits: list[onnx.TensorProto] | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    return onnx_model(
        nodes,
        inputs if inputs is not None else [_vi("x", [1, 3, 8, 8])],
        outputs if outputs is not None else [_vi("y", None)],
        inits,
        opset,
    )


def _w(name: str, *shape: int, seed: int = 0) -> onnx.TensorProto:
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _ints(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return [np.asarray(v) for v in sess.run(None, feeds)]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _torch_onnx(module: nn.Module, x: torch.Tensor) -> onnx.ModelProto:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated upstream
        torch.onnx.export(module.eval(), (x,), f, opset_version=17, dynamo=False)
    return onnx.load_from_string(f.getvalue())


# ---- 1. export writes atomically ---------------------------------------------------------------
def test_failed_export_leaves_no_partial_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    """A write that fails midway (file size limit) leaves the previous file as it was."""
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous model")

    def limit() -> None:  # 100 KiB; the NB201 model is ~6 MB. SIGXFSZ ignored: EFBIG instead
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, resource.RLIM_INFINITY))

    argv = ["export", "nb201", ARCH, "-o", str(out)]
    code = f"from latbench.cli import main; raise SystemExit(main({argv!r}))"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert r.returncode == 1, r.stderr
    assert "File too large" in r.stderr and "m.onnx" in r.stderr and "Traceback" not in r.stderr
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary file left


def test_failed_torch_export_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = GraphBuilder()
    g = b.build([b.relu(b.conv(b.input((1, 3, 4, 4)), 2, 3))])

    def broken_save(program: object, f: io.BufferedWriter) -> None:
        f.write(b"half a program")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.export, "save", broken_save)
    with pytest.raises(OSError, match=r"No space left.*m\.pt2"):
        export(g, "torch", tmp_path / "m.pt2")
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_an_existing_file_and_refuses_a_directory(tmp_path: Path) -> None:
    b = GraphBuilder()
    g = b.build([b.relu(b.input((1, 3, 4, 4)))])
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    export(g, "onnx", out)
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    (tmp_path / "d.onnx").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        export(g, "onnx", tmp_path / "d.onnx")


# ---- 2. external data ------------------------------------------------------------------------
def _ext_model() -> onnx.ModelProto:
    """Conv -> Reshape by a constant shape -> Gemm: one constant whose value is needed."""
    return _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Reshape", ["c", "shape"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1),
        ],
        inits=[_w("w", 4, 3, 3, 3), _ints("shape", [1, -1]), _w("fw", 5, 256)],
    )


def test_external_data_model_imports_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _ext_model()
    (tmp_path / "ext").mkdir()
    path = tmp_path / "ext" / "m.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.data",
        size_threshold=0,
    )
    assert all(
        t.data_location == TensorProto.EXTERNAL
        for t in onnx.load(str(path), load_external_data=False).graph.initializer
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    g = from_onnx(path)
    assert g.graph_id() == from_onnx(_ext_model()).graph_id()  # (save_model converted it)
    assert g.op_counts() == {"conv": 1, "flatten": 1, "input": 1, "linear": 1}
    # relative paths too, and through the CLI
    assert from_onnx(Path("..") / "ext" / "m.onnx").graph_id() == g.graph_id()


def test_external_data_missing_is_a_model_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save_model(
        _ext_model(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.data",
        size_threshold=0,
    )
    (tmp_path / "m.data").unlink()
    with pytest.raises(ModelError, match=r"m\.onnx.*'shape'.*'flat'.*'m\.data'.*expected it in"):
        from_onnx(path)


def test_external_weights_are_never_read(tmp_path: Path) -> None:
    """Weights need only their shapes: a model whose data file is gone still imports."""
    model = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        inits=[_w("w", 4, 3, 3, 3)],
    )
    path = tmp_path / "m.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    (tmp_path / "w.bin").unlink()
    assert from_onnx(path).params() == 4 * 3 * 3 * 3


# ---- 3. Constant attributes ------------------------------------------------------------------
def test_constant_of_every_value_attribute() -> None:
    nodes = [
        helper.make_node("Constant", [], ["lo"], name="lo", value_float=0.0),
        helper.make_node("Constant", [], ["hi"], name="hi", value_float=6.0),
        helper.make_node("Clip", ["x", "lo", "hi"], ["r6"], name="r6"),
        helper.make_node("Constant", [], ["z"], name="z", value_floats=[0.0]),
        helper.make_node("Mul", ["r6", "z"], ["zero"], name="zero"),
        helper.make_node("Add", ["r6", "zero"], ["s"], name="s"),
        helper.make_node("Constant", [], ["shp"], name="shp", value_ints=[1, -1]),
        helper.make_node("Reshape", ["s", "shp"], ["y"], name="flat"),
        helper.make_node("Constant", [], ["unused"], name="unused", value_int=3),
    ]
    model = _model(nodes, outputs=[_vi("y", [1, 192])])
    onnx.checker.check_model(model, full_check=True)
    g = from_onnx(model)
    assert [n.op for n in g.nodes] == ["input", "relu6", "zeros", "add", "flatten"]
    x = make_input(g, 0)["x"]
    (ref,) = _ort(model, {"x": x})
    assert_close(run_onnx(g, x, 0), ref)


def test_string_constant_is_refused_naming_the_node() -> None:
    nodes = [
        helper.make_node("Constant", [], ["s"], name="label", value_string="hello"),
        helper.make_node("Relu", ["x"], ["y"], name="r"),
    ]
    with pytest.raises(ModelError, match=r"'label' \(Constant\).*value_string"):
        from_onnx(_model(nodes))


# ---- 4. Gemm on a non-2-D input --------------------------------------------------------------
def test_gemm_on_a_4d_input_is_refused_naming_the_node() -> None:
    model = _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Gemm", ["c", "fw"], ["y"], name="g", transB=1),
        ],
        inits=[_w("w", 4, 3, 3, 3), _w("fw", 5, 4)],
    )
    with pytest.raises(
        ModelError, match=r"'g' \(Gemm\): input shape \[1, 4, 8, 8\]; expected \(N, features\)"
    ):
        from_onnx(model)
    b = GraphBuilder()
    with pytest.raises(ArchError, match=r"linear 'fc'.*\[1, 3, 8, 8\]; expected \(N, features\)"):
        b.linear(b.input((1, 3, 8, 8)), 5, name="fc")


# ---- 5. BatchNorm on 2-D tensors --------------------------------------------------------------
def test_batchnorm_after_linear_agrees_on_torch_onnxruntime_and_litert() -> None:
    b = GraphBuilder()
    x = b.input((3, 4, 5, 5))
    f = b.flatten(b.global_avgpool(b.conv(x, 6, 3)))
    y = b.relu(b.batchnorm(b.linear(f, 7), name="bn1d"))
    g = b.build([y])
    assert g["bn1d"].shape == (3, 7)
    assert isinstance(to_torch(g).layers["bn1d"], nn.BatchNorm1d)
    inp = make_input(g, 1)["input"]
    ref = run_onnx(g, inp, 2)
    assert_close(run_torch(g, inp, 2), ref, label="torch")
    assert_close(run_tflite(g, inp, 2), ref, label="litert")


def test_torch_batchnorm1d_model_imports_and_exports_to_torch(tmp_path: Path) -> None:
    """torch.onnx writes BatchNorm1d with Identity(running stats): both must import."""

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 6)
            self.bn = nn.BatchNorm1d(6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.fc(torch.flatten(self.conv(x).mean((2, 3), keepdim=True), 1)))

    model = _torch_onnx(Head(), torch.zeros(2, 3, 8, 8))
    assert "Identity" in [n.op_type for n in model.graph.node]
    g = from_onnx(model)
    assert g.op_counts()["batchnorm"] == 1 and g[g.outputs[0]].shape == (2, 6)
    path = export(g, "torch", tmp_path / "m.pt2")
    program = torch.export.load(str(path))
    x = make_input(g, 0)[g.inputs[0].name]
    with torch.no_grad():
        y = program.module()(torch.from_numpy(x)).numpy()
    assert_close(y, run_onnx(g, x, 0))


# ---- 6. invalid structures never reach a model file -------------------------------------------
def test_concat_of_mismatched_maps_is_refused() -> None:
    model = _model(
        [helper.make_node("Concat", ["x", "x2"], ["y"], name="cat", axis=1)],
        inputs=[_vi("x", [1, 3, 8, 8]), _vi("x2", [1, 3, 4, 4])],
    )
    with pytest.raises(ModelError, match=r"'cat' \(Concat\).*\[1, 3, 8, 8\], \[1, 3, 4, 4\]"):
        from_onnx(model)
    b = GraphBuilder()
    x, x2 = b.input((1, 3, 8, 8)), b.input((2, 3, 8, 8), name="x2")
    with pytest.raises(ArchError, match=r"concat 'c'.*\[1, 3, 8, 8\], \[2, 3, 8, 8\]"):
        b.concat([x, x2], name="c")
    b.concat([x, b.conv(x, 5, 3)])  # only the channels may differ


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_padding_larger_than_half_the_kernel_is_refused(op: str) -> None:
    model = _model(
        [helper.make_node(op, ["x"], ["y"], name="mp", kernel_shape=[2, 2], pads=[3] * 4)]
    )
    with pytest.raises(ModelError, match=r"'mp' .*padding 3 with kernel 2; expected padding <= "):
        from_onnx(model)


def test_builder_pool_padding_rule_matches_the_runtimes() -> None:
    """padding <= kernel // 2 is what torch computes; onnxruntime needs padding < kernel."""
    b = GraphBuilder()
    x = b.input((1, 3, 7, 7))
    with pytest.raises(ArchError, match="padding 2 with kernel 3"):
        b.pool("maxpool", x, 3, 1, 2)
    with pytest.raises(ArchError, match="padding 2 with kernel 3"):
        b.pool("avgpool", x, 3, 1, 2)
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        torch.nn.functional.max_pool2d(torch.zeros(1, 3, 7, 7), 3, 1, 2)
    g = b.build([b.pool("maxpool", x, 2, 1, 1, name="ok")])  # the largest valid padding runs
    inp = make_input(g, 0)["input"]
    assert_close(run_onnx(g, inp, 0), run_torch(g, inp, 0))
    assert_close(run_tflite(g, inp, 0), run_torch(g, inp, 0))


def test_builder_refuses_windows_larger_than_the_input() -> None:
    b = GraphBuilder()
    x = b.input((1, 3, 2, 2))
    with pytest.raises(ArchError, match=r"conv 'big'.*kernel 5.*2x2 input"):
        b.conv(x, 4, 5, padding=0, name="big")
    with pytest.raises(ArchError, match=r"maxpool.*kernel 3.*2x2 input"):
        b.pool("maxpool", x, 3, 1, 0)
    with pytest.raises(ArchError, match=r"global_avgpool.*expected NCHW"):
        b.global_avgpool(b.flatten(x))


def test_inconsistent_model_fails_strict_shape_inference() -> None:
    """What the importer itself does not look at (declared output types) ONNX checks."""
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        outputs=[_vi("y", [1, 3, 8, 8], TensorProto.INT64)],
    )
    with pytest.raises(ModelError, match=r"shape inference failed.*node name: r"):
        from_onnx(model)


# ---- 7. an output that is also the input -----------------------------------------------------
@pytest.mark.parametrize("outputs", [("x", "r"), ("x", "x"), ("r", "r"), ("r", "x")])
def test_outputs_that_are_inputs_or_repeated_give_a_valid_model(outputs: tuple[str, str]) -> None:
    b = GraphBuilder()
    x = b.input((1, 3, 4, 4))
    r = b.relu(x, name="r")
    g = b.build([{"x": x, "r": r}[o] for o in outputs], prune=False)
    model = to_onnx(g)
    onnx.checker.check_model(model, full_check=True)
    inp = make_input(g, 0)["input"]
    got = _ort(model, {"input": inp})
    want = {"x": inp, "r": np.maximum(inp, 0)}
    for o, y in zip(outputs, got, strict=True):
        np.testing.assert_array_equal(y, want[o])
    assert from_onnx(model).graph_id() == g.graph_id()


def test_imported_passthrough_model_exports_a_valid_model(tmp_path: Path) -> None:
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        outputs=[_vi("x", [1, 3, 8, 8]), _vi("y", [1, 3, 8, 8])],
    )
    path = export(from_onnx(model), "onnx", tmp_path / "p.onnx")
    written = onnx.load(str(path))
    onnx.checker.check_model(written, full_check=True)
    inp = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    same, relu = _ort(written, {"input": inp})
    np.testing.assert_array_equal(same, inp)
    np.testing.assert_array_equal(relu, np.maximum(inp, 0))


# ---- 8. Identity / Dropout of a constant -----------------------------------------------------
@pytest.mark.parametrize("op", ["Identity", "Dropout"])
def test_identity_of_a_constant_passes_it_through(op: str) -> None:
    model = _model(
        [
            helper.make_node(op, ["w"], ["w_id"], name="idw"),
            helper.make_node("Conv", ["x", "w_id"], ["y"], name="conv", pads=[1, 1, 1, 1]),
        ],
        outputs=[_vi("y", [1, 4, 8, 8])],
        inits=[_w("w", 4, 3, 3, 3)],
    )
    onnx.checker.check_model(model, full_check=True)
    g = from_onnx(model)
    assert g["conv"].attrs["out_channels"] == 4 and g.params() == 4 * 3 * 3 * 3


# ---- 9. --batch and torch's folded x.view(x.size(0), -1) -------------------------------------
def test_batch_override_of_a_torch_view_flatten(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    class View(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).view(x.size(0), -1))

    model = _torch_onnx(View(), torch.zeros(1, 3, 8, 8))
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consts = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in model.graph.node
        if n.op_type == "Constant"
    }
    target = {**inits, **consts}[reshape.input[1]]
    assert target.tolist() == [1, -1]  # torch folded x.size(0) to the file's batch
    g = from_onnx(model, batch=4)
    assert g.inputs[0].shape == (4, 3, 8, 8) and g[g.outputs[0]].shape == (4, 3)
    assert g.op_counts()["flatten"] == 1
    path = tmp_path / "view.onnx"
    onnx.save(model, str(path))
    rc, out, err = _cli(capsys, "arch", "show", "--onnx", str(path), "--batch", "4")
    assert rc == 0, err
    assert "4x3x8x8" in out and "4x3" in out


def test_batch_override_flatten_is_numerically_a_flatten() -> None:
    model = _model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="flat")],
        inputs=[_vi("x", [2, 3, 4, 4])],
        inits=[_ints("shape", [2, -1])],
    )
    g = from_onnx(model, batch=5)
    assert g[g.outputs[0]].shape == (5, 48)
    x = make_input(g, 0)["x"]
    np.testing.assert_array_equal(run_onnx(g, x, 0), x.reshape(5, -1))
    np.testing.assert_array_equal(run_tflite(g, x, 0), x.reshape(5, -1))
    # a constant leading dim that is not the model's batch is still refused, clearly
    other = _model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")],
        inputs=[_vi("x", [2, 3, 4, 4])],
        inits=[_ints("shape", [6, -1])],
    )
    with pytest.raises(ModelError, match=r"'r' \(Reshape\): Reshape \[2, 3, 4, 4\] -> \[6, -1\]"):
        from_onnx(other)


# ---- 10. ReduceMean without keepdims ---------------------------------------------------------
@pytest.mark.parametrize("opset", [17, 18])
def test_reduce_mean_without_keepdims_is_global_pool_and_flatten(opset: int) -> None:
    if opset >= 18:  # axes became an input
        node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean", keepdims=0)
        inits = [_ints("axes", [2, 3])]
    else:
        node = helper.make_node("ReduceMean", ["x"], ["y"], name="mean", axes=[2, 3], keepdims=0)
        inits = []
    model = _model([node], inputs=[_vi("x", [2, 5, 7, 7])], inits=inits, opset=opset)
    g = from_onnx(model)
    assert [n.op for n in g.nodes] == ["input", "global_avgpool", "flatten"]
    assert g["mean"].shape == (2, 5)
    x = make_input(g, 0)["x"]
    (ref,) = _ort(model, {"x": x})
    for label, y in (
        ("onnx", run_onnx(g, x, 0)),
        ("torch", run_torch(g, x, 0)),
        ("litert", run_tflite(g, x, 0)),
    ):
        assert_close(y, ref, rtol=1e-5, label=label)


def test_torchvision_style_mean_head_imports() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).mean([2, 3]))

    g = from_onnx(_torch_onnx(Net(), torch.zeros(1, 3, 8, 8)))
    assert g[g.outputs[0]].shape == (1, 4)
    assert {"global_avgpool", "flatten", "linear"} <= set(g.op_counts())


def test_reduce_mean_over_other_axes_is_refused_plainly() -> None:
    node = helper.make_node("ReduceMean", ["x"], ["y"], name="m", axes=[1], keepdims=1)
    with pytest.raises(
        ModelError, match=r"'m' \(ReduceMean\): ReduceMean over axes \[1\].*expected axes \[2, 3\]"
    ):
        from_onnx(_model([node]))


# ---- 11. builder errors name the ONNX node ---------------------------------------------------
def test_broadcasting_add_names_the_node() -> None:
    model = _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("GlobalAveragePool", ["c"], ["p"], name="gap"),
            helper.make_node("Add", ["c", "p"], ["y"], name="add_se"),
        ],
        inits=[_w("w", 4, 3, 3, 3)],
    )
    with pytest.raises(
        ModelError, match=r"ONNX node 'add_se' \(Add\):.*broadcasting add is not supported"
    ):
        from_onnx(model)


def test_conv_groups_error_names_the_node() -> None:
    model = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="gconv", pads=[1, 1, 1, 1], group=3)],
        inits=[_w("w", 4, 1, 3, 3)],
    )
    with pytest.raises(
        ModelError, match=r"ONNX node 'gconv' \(Conv\):.*groups=3 must divide in=3 and out=4"
    ):
        from_onnx(model)


# ---- 12. what the importer cannot represent --------------------------------------------------
def test_non_float_input_is_refused() -> None:
    model = _model(
        [
            helper.make_node(
                "MaxPool", ["img"], ["y"], name="mp", kernel_shape=[2, 2], strides=[2, 2]
            )
        ],
        inputs=[_vi("img", [1, 3, 8, 8], TensorProto.UINT8)],
        outputs=[_vi("y", None, TensorProto.UINT8)],
    )
    with pytest.raises(ModelError, match=r"input 'img' is UINT8; expected a FLOAT \(float32\)"):
        from_onnx(model)


def test_conv_weight_that_does_not_fit_the_input_is_refused() -> None:
    model = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        inits=[_w("w", 4, 1, 3, 3)],
    )
    with pytest.raises(
        ModelError, match=r"'conv' \(Conv\): weight shape \[4, 1, 3, 3\] with group=1.*has 3"
    ):
        from_onnx(model)


def test_gemm_bias_that_does_not_fit_is_refused() -> None:
    model = _model(
        [
            helper.make_node("Flatten", ["x"], ["f"], name="fl"),
            helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="g", transB=1),
        ],
        inits=[_w("fw", 5, 192), _w("fb", 7)],
    )
    with pytest.raises(ModelError, match=r"'g' \(Gemm\): bias C shape \[7\]; expected \[5\]"):
        from_onnx(model)


def test_linear_weight_that_does_not_fit_the_input_is_refused() -> None:
    model = _model(
        [
            helper.make_node("Flatten", ["x"], ["f"], name="fl"),
            helper.make_node("MatMul", ["f", "fw"], ["y"], name="mm"),
        ],
        inits=[_w("fw", 100, 5)],
    )
    with pytest.raises(
        ModelError, match=r"'mm' \(MatMul\): weight \[100, 5\] takes 100 .* has 192"
    ):
        from_onnx(model)


def test_zero_size_dim_is_not_called_dynamic() -> None:
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="r")], inputs=[_vi("x", [1, 3, 0, 8])]
    )
    with pytest.raises(ModelError, match="zero-size") as info:
        from_onnx(model)
    assert "dynamic" not in str(info.value)
    dyn = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="r")], inputs=[_vi("x", [1, 3, "H", 8])]
    )
    with pytest.raises(ModelError, match=r"dynamic dims \[1, 3, 'H', 8\]"):
        from_onnx(dyn)


def test_onnx_directory_is_called_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = tmp_path / "model.onnx"
    d.mkdir()
    with pytest.raises(ModelError, match="is a directory"):
        from_onnx(d)
    rc, _, err = _cli(capsys, "arch", "show", "--onnx", str(d))
    assert (
        rc == 1 and "is a directory; expected a .onnx file" in err and "does not exist" not in err
    )


# ---- 13. arch strings: ASCII digits, canonical forms -----------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~\u0662|",  # Arabic-Indic two
        "|nor_conv_3x3~00|+|none~0|none~1|+|none~0|none~1|none~2|",  # leading zero
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2\n|",  # newline in the token
        "|nor_conv_3x3~\uff10|+|none~0|none~1|+|none~0|none~1|none~2|",  # fullwidth zero
    ],
)
def test_nb201_refuses_non_canonical_tokens(bad: str) -> None:
    with pytest.raises(ArchError, match="bad token"):
        NB201.ops(bad)


@pytest.mark.parametrize("first", ["\u0661", "01", "00", "\u0663", "\uff11", "9", ""])
def test_fbnet_refuses_non_ascii_or_padded_indices(first: str) -> None:
    with pytest.raises(ArchError, match="bad token"):
        FBNET.ops("-".join([first] + ["1"] * 21))


def test_canonical_strings_still_parse() -> None:
    assert NB201.ops(NB201.from_ops([3, 0, 4, 1, 2, 3])) == (3, 0, 4, 1, 2, 3)
    assert FBNET.ops("-".join(["8"] + ["0"] * 21))[0] == 8
    assert FBNET.ops("-".join(["skip"] * 22)) == (8,) * 22
