"""Bad and unusual input to the ONNX importer, the graph / kernel encodings and the kernel
predictor: each case names the bad value and what was expected, or gives the right result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from latbench.errors import ConfigError, ModelError, PredictorError
from latbench.predictors import create, load, save
from latbench.predictors import encodings as enc
from latbench.predictors.kernel import KernelPredictor, kernels_from_profile
from latbench.spaces import Graph
from latbench.spaces.graph import GraphBuilder
from latbench.spaces.onnx_import import from_onnx


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    inits: dict[str, tuple[int, ...]] | None = None,
) -> onnx.ModelProto:
    tensors = [
        numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in (inits or {}).items()
    ]
    graph = helper.make_graph(nodes, "g", inputs, outputs, tensors)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _vi(name: str, shape: Any = (1, 3, 8, 8), elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _conv_bn_relu() -> onnx.ModelProto:
    bn = {f"bn.{k}": (8,) for k in ("s", "b", "m", "v")}
    return _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node(
                "BatchNormalization", ["c", "bn.s", "bn.b", "bn.m", "bn.v"], ["n"], name="bn"
            ),
            helper.make_node("Relu", ["n"], ["r"], name="relu"),
            helper.make_node("Conv", ["r", "dw"], ["d"], name="dw", group=8, pads=[1, 1, 1, 1]),
            helper.make_node("Conv", ["d", "gw"], ["y"], name="grouped", group=2),
        ],
        [_vi("x")],
        [_vi("y", None)],
        {"w": (8, 3, 3, 3), "dw": (8, 1, 3, 3), "gw": (6, 4, 1, 1), **bn},
    )


def _graph(width: int, depth: int, hw: int = 8) -> Graph:
    b = GraphBuilder()
    y = b.input((1, 3, hw, hw), name="x")
    for i in range(depth):
        y = b.conv(y, width, 3, padding=1, name=f"c{i}")
        y = b.batchnorm(y, name=f"bn{i}")
        y = b.act("relu", y, name=f"r{i}")
    y = b.flatten(b.global_avgpool(y, name="gap"), name="fl")
    return b.build([b.linear(y, 10, name="fc")])


# ---- ONNX import ----------------------------------------------------------------------------
def test_conv_bias_of_the_wrong_length_is_refused() -> None:
    # shape inference ignores Conv's bias; onnxruntime refuses such a model at run time
    m = _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="c")],
        [_vi("x")],
        [_vi("y", None)],
        {"w": (4, 3, 3, 3), "b": (7,)},
    )
    with pytest.raises(ModelError, match=r"node 'c' \(Conv\): bias B shape \[7\]; expected \[4\]"):
        from_onnx(m)


def test_a_secondary_or_constant_graph_output_is_named() -> None:
    m = _model(
        [helper.make_node("Dropout", ["x"], ["y", "mask"], name="drop")],
        [_vi("x")],
        [_vi("y", None), _vi("mask", None, TensorProto.BOOL)],
    )
    with pytest.raises(
        ModelError, match=r"'mask' is output 1 of node 'drop' \(Dropout\); expected"
    ):
        from_onnx(m)
    m = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        [_vi("x")],
        [_vi("y", None), _vi("w", (4,))],
        {"w": (4,)},
    )
    with pytest.raises(ModelError, match="'w' is a constant; expected a feature map"):
        from_onnx(m)


def test_a_model_of_no_nodes_imports_from_bytes_and_files_too(tmp_path: Path) -> None:
    m = _model([], [_vi("x")], [_vi("x")])
    path = tmp_path / "identity.onnx"
    onnx.save(m, path)
    for src in (m, m.SerializeToString(), path):
        g = from_onnx(src)
        assert [n.op for n in g.nodes] == ["input"] and g.outputs == ["x"]
    with pytest.raises(
        ModelError, match=r"not an ONNX model \(no graph\); expected a \.onnx model"
    ):
        from_onnx(b"")


def test_grouped_and_depthwise_flops_match_a_hand_count() -> None:
    g = from_onnx(_conv_bn_relu())
    _, feats = enc.graph_encoding(g)
    names = [n.name for n in g.nodes]
    k0 = len(enc.GRAPH_OPS) + enc.GRAPH_NUMERIC.index("log_flops")
    # depthwise 3x3 on 8 channels of 8x8: 8*8*8 outputs x 9 MACs; grouped 1x1, 2 groups of
    # 4 -> 3 channels: 6*8*8 outputs x 4 MACs
    for node, macs in (("dw", 8 * 8 * 8 * 9), ("grouped", 6 * 8 * 8 * 4)):
        assert feats[names.index(node), k0] == pytest.approx(np.log10(2 * macs + 1), rel=1e-6)
    ks = {k["type"]: k for k in enc.kernel_features(g)}
    assert set(ks) == {"conv-bn-relu", "dwconv", "conv"}
    fused = ks["conv-bn-relu"]
    assert fused["nodes"] == ["conv", "bn", "relu"]
    # conv 8*8*8 x 27 MACs, then batchnorm and relu one operation per element each
    assert fused["flops"] == 2 * (8 * 64 * 27 + 8 * 64 + 8 * 64)
    assert fused["params"] == 8 * 27 + 2 * 8


# ---- kernels from per-operator profiles -----------------------------------------------------
def test_profile_of_another_model_is_refused_naming_rows_and_nodes() -> None:
    g = _graph(8, 1)
    with pytest.raises(PredictorError, match=r"rows 'Conv_0', 'Gemm_1'; expected names .* 'c0'"):
        kernels_from_profile(
            g, [{"name": "Conv_0", "time_ms": 1.0}, {"name": "Gemm_1", "time_ms": 1}]
        )
    assert kernels_from_profile(g, []) == []  # nothing profiled: nothing to match


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_profile_times_are_refused(bad: float) -> None:
    rows = [{"name": "fc", "time_ms": 0.2}, {"name": "c0", "time_ms": bad}]
    with pytest.raises(PredictorError, match=r"per_op\[1\] \(operator 'c0'\) has time_ms = "):
        kernels_from_profile(_graph(8, 1), rows)


def test_zero_time_kernels_are_left_out() -> None:
    rows = [{"name": "fc", "time_ms": 0.2}, {"name": "c0", "time_ms": 0.0}]
    assert [k["type"] for k, _ in kernels_from_profile(_graph(8, 1), rows)] == ["fc"]


def test_profile_row_that_is_not_a_mapping_is_named() -> None:
    with pytest.raises(PredictorError, match=r"per_op\[0\] = 'c0'; expected a mapping"):
        kernels_from_profile(_graph(8, 1), ["c0"])  # type: ignore[list-item]


# ---- the kernel predictor ------------------------------------------------------------------
def _kernel_rows() -> tuple[list[dict[str, Any]], list[float]]:
    ks = enc.kernel_features(_graph(8, 2)) + enc.kernel_features(_graph(16, 1))
    return ks, [0.1 + k["flops"] / 1e5 for k in ks]


@pytest.mark.parametrize(
    ("field", "value"), [("hw", "big"), ("flops", float("nan")), ("cin", -5.0), ("stride", None)]
)
def test_kernel_fields_must_be_finite_non_negative_numbers(field: str, value: Any) -> None:
    ks, y = _kernel_rows()
    bad = [dict(k) for k in ks]
    bad[1][field] = value
    with pytest.raises(PredictorError, match=rf"kernels\[1\]\['{field}'\] = .*expected a finite"):
        KernelPredictor(n_estimators=2).fit_kernels(bad, y, space="graph")
    p = KernelPredictor(n_estimators=2).fit_kernels(ks, y, space="graph")
    with pytest.raises(PredictorError, match=rf"kernels\[1\]\['{field}'\]"):
        p.predict_kernels(bad)


def test_fit_kernels_reports_bad_settings_and_spaces() -> None:
    ks, y = _kernel_rows()
    with pytest.raises(PredictorError, match=r"kernel: The 'n_estimators' parameter .* Got 0"):
        KernelPredictor(n_estimators=0).fit_kernels(ks, y, space="graph")
    with pytest.raises(PredictorError, match=r"space='grpah'; expected 'graph'"):
        KernelPredictor(n_estimators=2).fit_kernels(ks, y, space="grpah")


def test_unseen_kernel_type_is_predicted_by_the_all_kernel_forest() -> None:
    ks, y = _kernel_rows()
    p = KernelPredictor(n_estimators=5).fit_kernels(ks, y, space="graph")
    b = GraphBuilder()
    x = b.input((1, 8, 8, 8), name="x")
    g = b.build([b.conv(x, 8, 3, padding=1, groups=8, name="dw")])
    (dw,) = enc.kernel_features(g)
    assert dw["type"] == "dwconv" and dw["type"] not in p.forests_
    t = p.predict_kernels([dw])
    assert t.shape == (1,) and t[0] > 0  # not 0 ms


@pytest.mark.parametrize(
    ("name", "params"),
    [("kernel", {"n_estimators": 5}), ("gcn", {"epochs": 3, "hidden": 8, "layers": 1})],
)
def test_save_load_of_predictors_fitted_on_imported_graphs(
    name: str, params: dict[str, Any], tmp_path: Path
) -> None:
    graphs = [from_onnx(_conv_bn_relu()), _graph(8, 1), _graph(16, 3), _graph(4, 2, hw=16)]
    p = create(name, **params).fit(graphs, [1.0, 2.0, 3.0, 1.5], space="graph")
    save(p, tmp_path / "p.lbp")
    q = load(tmp_path / "p.lbp")
    assert q.get_params() == p.get_params()
    np.testing.assert_allclose(q.predict(graphs), p.predict(graphs), rtol=1e-6)


@pytest.mark.parametrize("batch", [0, -3, 2.5, True, "4"])
def test_a_bad_batch_is_named(batch: Any) -> None:
    with pytest.raises(ConfigError, match=rf"batch={batch!r}; expected an integer >= 1"):
        from_onnx(_conv_bn_relu(), batch=batch)
    assert from_onnx(_conv_bn_relu(), batch=np.int64(4)).nodes[0].shape == (4, 3, 8, 8)
