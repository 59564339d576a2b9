"""ONNX emission (valid, deterministic, named I/O) and ONNX import (round trip, errors)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from emit_helpers import assert_close, run_onnx, run_torch
from latbench.errors import ArchError, ModelError, UnsupportedOperatorError
from latbench.spaces import FBNetSpace, NB201Space, get_space, make_input
from latbench.spaces.emit_onnx import to_onnx
from latbench.spaces.emit_torch import to_torch
from latbench.spaces.onnx_import import from_onnx

NB201 = NB201Space()
FBNET = FBNetSpace()


@pytest.mark.parametrize("arch", NB201.sample(3, seed=5))
def test_nb201_model_is_valid(arch: str) -> None:
    g = NB201.build(arch)
    model = to_onnx(g, seed=1)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 32]
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.opset_import[0].version == 17
    props = {p.key: p.value for p in model.metadata_props}
    assert props["latbench.arch"] == arch and props["latbench.seed"] == "1"


def test_fbnet_model_is_valid_with_grouped_convs() -> None:
    g = FBNET.build("-".join(["1"] * 22), resolution=64)
    model = to_onnx(g, seed=0, opset=14)
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "Reshape", "Transpose", "Gemm"} <= ops
    assert any(a.name == "group" and a.i == 2 for n in model.graph.node for a in n.attribute)


def test_emission_is_deterministic_and_seeded() -> None:
    g = NB201.build(NB201.from_index(42))
    a = to_onnx(g, seed=3).SerializeToString()
    assert a == to_onnx(g, seed=3).SerializeToString()
    assert a != to_onnx(g, seed=4).SerializeToString()


def test_old_opset_is_refused() -> None:
    with pytest.raises(ArchError, match="opset 12"):
        to_onnx(NB201.build(NB201.from_index(0)), opset=12)


@pytest.mark.parametrize(
    ("space", "arch", "res"),
    [
        ("nb201", NB201.from_index(0), None),
        ("nb201", NB201.from_ops([0, 0, 0, 0, 0, 3]), None),  # disconnected: zeros
        ("fbnet", "1-5-8-0-2-3-4-6-7-1-5-8-0-2-3-4-6-7-1-5-8-0", 64),
    ],
)
def test_import_round_trip_is_exact(space: str, arch: str, res: int | None, tmp_path: Path) -> None:
    g = get_space(space).build(arch, resolution=res)
    path = tmp_path / "m.onnx"
    path.write_bytes(to_onnx(g, seed=0).SerializeToString())
    back = from_onnx(path)
    assert back.macs() == g.macs()
    assert back.params() == g.params()
    assert back.op_counts() == g.op_counts()
    assert back.graph_id() == g.graph_id()  # names, shapes and attributes all survive
    assert back.meta["source"] == "onnx" and back.meta["model"] == "m.onnx"


def test_import_with_batch_override() -> None:
    g = NB201.build(NB201.from_index(3))
    back = from_onnx(to_onnx(g), batch=8)
    assert back.inputs[0].shape == (8, 3, 32, 32)
    assert back[back.outputs[0]].shape == (8, 10)


def test_import_of_torch_exported_model_runs_everywhere(tmp_path: Path) -> None:
    """A model from torch.onnx.export (BN folded into conv biases, ReLUs deduplicated)."""
    g = NB201.build(NB201.from_index(7))
    module = to_torch(g, seed=0)
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated upstream
        torch.onnx.export(
            module, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17
        )
    imported = from_onnx(path)
    assert imported.op_counts()["conv"] == g.op_counts()["conv"]
    assert imported.op_counts().get("batchnorm", 0) < g.op_counts()["batchnorm"]
    assert imported[imported.outputs[0]].shape == (1, 10)
    # the imported structure emits and runs like any space architecture
    (x,) = make_input(imported, 0).values()
    assert_close(run_onnx(imported, x, 2), run_torch(imported, x, 2))


def _model(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], out_shape: list[int | str]
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def test_import_hand_written_model_with_every_mapping() -> None:
    nodes = [
        helper.make_node(
            "Conv", ["x", "w1", "b1"], ["c1"], name="c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["r6"], name="r6"),
        helper.make_node(
            "Conv",
            ["r6", "wd"],
            ["dw"],
            name="dw",
            group=4,
            kernel_shape=[3, 3],
            auto_pad="SAME_UPPER",
        ),
        helper.make_node("HardSwish", ["dw"], ["hs"], name="hs"),
        helper.make_node("Sigmoid", ["hs"], ["sg"], name="sg"),
        helper.make_node("Mul", ["hs", "sg"], ["m"], name="m"),
        helper.make_node("Sum", ["m", "hs", "dw"], ["s"], name="s"),
        helper.make_node(
            "MaxPool",
            ["s"],
            ["mp"],
            name="mp",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Concat", ["mp", "mp"], ["cat"], name="cat", axis=1),
        helper.make_node("Dropout", ["cat"], ["dr"], name="dr"),
        helper.make_node("ReduceMean", ["dr", "axes"], ["gap"], name="gap", keepdims=1),
        helper.make_node("Reshape", ["gap", "shape"], ["flat"], name="flat"),
        helper.make_node("MatMul", ["flat", "wm"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "bm"], ["lin"], name="lin"),
        helper.make_node("Identity", ["lin"], ["id"], name="id"),
        helper.make_node("Softmax", ["id"], ["y"], name="y", axis=-1),
    ]
    inits = [
        _w("w1", 4, 4, 3, 3),
        _w("b1", 4),
        _w("wd", 4, 1, 3, 3),
        _w("wm", 8, 5),
        _w("bm", 5),
        numpy_helper.from_array(np.array(0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6, np.float32), "hi"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([0, -1], np.int64), "shape"),
    ]
    g = from_onnx(_model(nodes, inits, ["N", 5]))
    ops = [n.op for n in g.nodes]
    assert ops == [
        "input",
        "conv",
        "relu6",
        "conv",
        "hardswish",
        "sigmoid",
        "mul",
        "add",
        "maxpool",
        "concat",
        "global_avgpool",
        "flatten",
        "linear",
        "softmax",
    ]
    assert g["c1"].attrs["bias"] is True and g["dw"].attrs["groups"] == 4
    assert g["lin"].attrs["bias"] is True and g["lin"].shape == (1, 5)
    assert g["mp"].shape == (1, 4, 3, 3)
    # and it emits and runs on onnxruntime like the torch reference
    x = make_input(g, 0)["x"]
    assert_close(run_onnx(g, x, 0), run_torch(g, x, 0))


@pytest.mark.parametrize(
    ("node", "inits", "match"),
    [
        (helper.make_node("LeakyRelu", ["x"], ["y"], name="act1"), [], "'act1' \\(LeakyRelu\\)"),
        (
            helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip"),
            [
                numpy_helper.from_array(np.array(-1, np.float32), "lo"),
                numpy_helper.from_array(np.array(1, np.float32), "hi"),
            ],
            "Clip\\(-1.0, 1.0\\)",
        ),
        (
            helper.make_node(
                "Conv", ["x", "w"], ["y"], name="asym", kernel_shape=[3, 3], pads=[0, 0, 1, 1]
            ),
            [_w("w", 4, 4, 3, 3)],
            "symmetric",
        ),
        (
            helper.make_node(
                "Conv",
                ["x", "w"],
                ["y"],
                name="dil",
                kernel_shape=[3, 3],
                pads=[2, 2, 2, 2],
                dilations=[2, 2],
            ),
            [_w("w", 4, 4, 3, 3)],
            "dilations",
        ),
        (
            helper.make_node("Mul", ["x", "k"], ["y"], name="scale"),
            [numpy_helper.from_array(np.array(2, np.float32), "k")],
            "constant other than 0",
        ),
    ],
)
def test_unsupported_operators_are_named(
    node: onnx.NodeProto, inits: list[onnx.TensorProto], match: str
) -> None:
    with pytest.raises(UnsupportedOperatorError, match=match):
        from_onnx(_model([node], inits, ["N", 4, 6, 6]))


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        from_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    with pytest.raises(ModelError, match=r"junk\.onnx"):
        from_onnx(junk)
