"""TFLite emission: structure of the flatbuffer, folding/fusion, and exact padding semantics."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from emit_helpers import assert_close, run_onnx, run_tflite, run_torch
from latbench.spaces import FBNetSpace, Graph, GraphBuilder, NB201Space, make_input
from latbench.spaces.emit_tflite import to_tflite

NB201 = NB201Space()
FBNET = FBNetSpace()
OPNAME = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
ALLOWED = {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "ADD",
    "MUL",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "MEAN",
    "FULLY_CONNECTED",
    "RESHAPE",
    "TRANSPOSE",
    "CONCATENATION",
    "RELU",
    "RELU6",
    "LOGISTIC",
    "HARD_SWISH",
    "SOFTMAX",
    "PAD",
    "PADV2",
}


def _ops(model: bytes) -> list[str]:
    m = schema.Model.GetRootAs(model, 0)
    sg = m.Subgraphs(0)
    codes = [m.OperatorCodes(i).BuiltinCode() for i in range(m.OperatorCodesLength())]
    return [OPNAME[codes[sg.Operators(i).OpcodeIndex()]] for i in range(sg.OperatorsLength())]


def test_structure_of_an_nb201_model() -> None:
    g = NB201.build(NB201.from_index(1))
    data = to_tflite(g, seed=0)
    assert schema.Model.ModelBufferHasIdentifier(data, 0)
    m = schema.Model.GetRootAs(data, 0)
    assert m.SubgraphsLength() == 1 and m.Version() == 3
    sg = m.Subgraphs(0)
    inp = sg.Tensors(sg.Inputs(0))
    out = sg.Tensors(sg.Outputs(0))
    assert inp.Name() == b"input" and list(inp.ShapeAsNumpy()) == [1, 32, 32, 3]  # NHWC
    assert out.Name() == b"output" and list(out.ShapeAsNumpy()) == [1, 10]
    ops = _ops(data)
    assert set(ops) <= ALLOWED
    # every BN but the last follows a conv with no other consumer and is folded into it; the
    # last one follows an add and becomes MUL + ADD; its ReLU is fused into that ADD
    assert ops.count("CONV_2D") == g.op_counts()["conv"]
    assert ops.count("MUL") == 1
    # the avg pools (stride 1, pad 1) map to SAME without PAD
    assert ops.count("AVERAGE_POOL_2D") == g.op_counts()["avgpool"]
    # stride-2 3x3 convs on even maps need an explicit PAD (SAME would pad 0 before, 1 after)
    assert ops.count("PAD") == 2
    assert ops.count("MEAN") == 1 and ops.count("FULLY_CONNECTED") == 1


def test_grouped_and_depthwise_convs() -> None:
    g = FBNET.build("-".join(["1"] * 22), resolution=64)
    ops = _ops(to_tflite(g))
    assert set(ops) <= ALLOWED
    assert ops.count("DEPTHWISE_CONV_2D") == 22
    assert ops.count("CONV_2D") == g.op_counts()["conv"] - 22  # grouped 1x1 convs stay CONV_2D
    assert ops.count("TRANSPOSE") == 22  # one per channel shuffle
    # BN + ReLU fused: standalone RELU only where a ReLU follows something unfusable
    assert "RELU" not in ops


def test_emission_is_deterministic() -> None:
    g = NB201.build(NB201.from_index(9))
    assert to_tflite(g, seed=2) == to_tflite(g, seed=2)
    assert to_tflite(g, seed=2) != to_tflite(g, seed=3)


def _agree(g: Graph, seed: int = 0) -> None:
    x = make_input(g, seed)[g.inputs[0].name]
    ref = run_torch(g, x, seed)
    assert_close(run_tflite(g, x, seed), ref, label="litert")
    assert_close(run_onnx(g, x, seed), ref, label="onnxruntime")


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize(
    ("op", "kernel", "stride", "pad", "include"),
    [
        ("avgpool", 3, 1, 1, False),  # SAME
        ("avgpool", 3, 2, 1, False),  # PAD + VALID + count rescale on even sizes
        ("avgpool", 3, 2, 1, True),  # PAD + VALID
        ("avgpool", 2, 2, 0, False),  # VALID
        ("maxpool", 3, 2, 1, False),  # SAME on odd, PADV2(-inf) + VALID on even
        ("maxpool", 5, 1, 2, False),
    ],
)
def test_pool_padding_semantics(
    op: str, kernel: int, stride: int, pad: int, include: bool, size: int
) -> None:
    b = GraphBuilder()
    x = b.input((2, 3, size, size))
    y = b.pool(op, x, kernel, stride, pad, count_include_pad=include)
    _agree(b.build([y]))


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "groups"),
    [(8, 3, 2, 1), (9, 3, 2, 1), (8, 5, 2, 6), (8, 1, 2, 2), (7, 3, 1, 3)],
)
def test_conv_padding_and_groups(size: int, kernel: int, stride: int, groups: int) -> None:
    b = GraphBuilder()
    x = b.input((1, 6, size, size))
    y = b.conv(x, 6, kernel, stride=stride, groups=groups, bias=True)
    _agree(b.build([y]))


def test_every_vocabulary_op_agrees() -> None:
    b = GraphBuilder()
    x = b.input((1, 4, 6, 6))
    c = b.conv(x, 8, 3, name="c")
    bn = b.batchnorm(c, name="bn")  # conv has two consumers: BN stays as MUL + ADD
    side = b.act("sigmoid", c, name="side")
    r6 = b.act("relu6", b.add([bn, side]))
    hs = b.act("hardswish", r6)
    m = b.mul(hs, side)
    z = b.zeros(m)
    sh = b.channel_shuffle(b.add([m, z, hs]), 2)
    cat = b.concat([sh, x])
    f = b.flatten(cat)  # 6x6 map: transposed to NCHW before the reshape
    out = b.softmax(b.linear(f, 7))
    g = b.build([out])
    assert set(g.op_counts()) >= {
        "batchnorm",
        "relu6",
        "hardswish",
        "sigmoid",
        "mul",
        "zeros",
        "channel_shuffle",
        "concat",
        "flatten",
        "linear",
        "softmax",
    }
    ops = _ops(to_tflite(g))
    assert {"MUL", "ADD", "HARD_SWISH", "LOGISTIC", "CONCATENATION", "SOFTMAX"} <= set(ops)
    assert "RELU6" not in ops  # fused into the ADD before it
    _agree(g, seed=4)


def test_4d_output_comes_back_nchw() -> None:
    b = GraphBuilder()
    x = b.input((1, 3, 5, 5))
    g = b.build([b.relu(b.conv(x, 4, 3))])
    _agree(g)
    assert _ops(to_tflite(g))[-1] == "TRANSPOSE"


def test_input_must_be_nchw() -> None:
    b = GraphBuilder()
    x = b.input((1, 16))
    g = b.build([b.linear(x, 4)])
    from latbench.errors import ArchError

    with pytest.raises(ArchError, match="NCHW"):
        to_tflite(g)


def test_weights_are_aligned() -> None:
    data = to_tflite(NB201.build(NB201.from_index(5)))
    m = schema.Model.GetRootAs(data, 0)
    base = np.frombuffer(data, np.uint8).ctypes.data
    for i in range(1, m.BuffersLength()):
        buf = m.Buffers(i)
        if buf.DataLength():
            assert (buf.DataAsNumpy().ctypes.data - base) % 16 == 0
