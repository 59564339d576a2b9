"""Second audit of spaces, graph, emitters and ONNX importer: one test (or two) per finding.

The ONNX models are built in memory with ``onnx.helper``; where a model has no weights, the
imported graph emitted again computes exactly the original function, so onnxruntime on the
original and on the re-emitted model must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from emit_helpers import assert_close, onnx_model, run_onnx, run_tflite, run_torch
from latbench.cli import main
from latbench.errors import ArchError, ConfigError, ModelError, UnsupportedOperatorError
from latbench.spaces import FBNetSpace, Graph, GraphBuilder, NB201Space, export, make_input
from latbench.spaces.emit_onnx import to_onnx
from latbench.spaces.emit_torch import to_torch
from latbench.spaces.onnx_import import from_onnx

NB201 = NB201Space()
X = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)


def _vi(name: str, shape: list[int] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
    inits: list[onnx.TensorProto] | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    return onnx_model(
        nodes,
        inputs if inputs is not None else [_vi("x", [1, 3, 4, 4])],
        outputs if outputs is not None else [_vi("y", None)],
        inits,
        opset,
    )


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, feeds)[0])


def _same_function(model: onnx.ModelProto) -> Graph:
    """Import a weightless single-input model; its re-emission must compute the same output."""
    g = from_onnx(model)
    want = _ort(model, {model.graph.input[0].name: X})
    got = _ort(to_onnx(g), {"input": X})
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    return g


# ---- Softmax before opset 13 normalises over every axis from `axis` on ---------------------
def test_old_opset_softmax_on_a_feature_map_is_refused_not_imported_as_a_channel_softmax() -> None:
    m = _model([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)], opset=11)
    # what the file computes: a softmax over C, H and W together
    assert float(_ort(m, {"x": X}).sum()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(UnsupportedOperatorError, match=r"'sm' \(Softmax\).*opset 11.*C, H and W"):
        from_onnx(m)
    # on (N, F), and at opset 13 on NCHW, the graph's softmax is the file's
    flat = _model(
        [
            helper.make_node("Flatten", ["x"], ["f"], name="fl"),
            helper.make_node("Softmax", ["f"], ["y"], name="sm"),  # default axis 1 before 13
        ],
        opset=11,
    )
    assert _same_function(flat).op_counts()["softmax"] == 1
    new = _model([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)], opset=13)
    assert _same_function(new).op_counts()["softmax"] == 1


# ---- axes are normalised by the input's rank -----------------------------------------------
def test_negative_concat_and_flatten_axes_import() -> None:
    cat = _model(
        [
            helper.make_node("Flatten", ["x"], ["f"], name="fl", axis=-3),
            helper.make_node("Concat", ["f", "f"], ["y"], name="cat", axis=-1),
        ]
    )
    g = _same_function(cat)
    assert g[g.outputs[0]].shape == (1, 96)
    bad = _model([helper.make_node("Concat", ["x", "x"], ["y"], name="cat", axis=5)])
    with pytest.raises(ModelError, match=r"'cat' \(Concat\): axis=5 on a 4-D input"):
        from_onnx(bad)


# ---- Mul(scale, x): the broadcasting operand first -----------------------------------------
def test_mul_with_the_broadcasting_operand_first_imports() -> None:
    m = _model(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["s"], name="gap"),
            helper.make_node("Sigmoid", ["s"], ["g"], name="gate"),
            helper.make_node("Mul", ["g", "x"], ["y"], name="scale"),
        ]
    )
    g = _same_function(m)
    assert g["scale"].shape == (1, 3, 4, 4)


# ---- ONNX node names and graph input names live apart ----------------------------------------
def test_node_named_like_the_input_imports() -> None:
    m = _model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="x"),
            helper.make_node("Sigmoid", ["r"], ["y"], name="x_1"),
        ]
    )
    g = _same_function(m)
    assert len({n.name for n in g.nodes}) == 3 and g.inputs[0].name == "x"


# ---- nodes out of order, and cycles -------------------------------------------------------------
def test_nodes_out_of_topological_order_import_as_onnxruntime_runs_them() -> None:
    nodes = [
        helper.make_node("Sigmoid", ["a"], ["y"], name="second"),
        helper.make_node("Relu", ["x"], ["a"], name="first"),
    ]
    m = _model(nodes)
    before = m.SerializeToString()
    g = _same_function(m)
    assert [n.name for n in g.nodes] == ["x", "first", "second"]
    assert m.SerializeToString() == before  # the caller's model is left as it was


def test_a_cycle_is_refused_naming_the_nodes_on_it() -> None:
    m = _model(
        [
            helper.make_node("Add", ["x", "b"], ["a"], name="loop_add"),
            helper.make_node("Relu", ["a"], ["b"], name="loop_relu"),
            helper.make_node("Sigmoid", ["a"], ["y"], name="after"),
        ]
    )
    with pytest.raises(
        ModelError, match=r"cycle through node\(s\) 'loop_add', 'loop_relu';"
    ) as info:
        from_onnx(m)
    assert "after" not in str(info.value)


# ---- Clip bounds ---------------------------------------------------------------------------
def test_clip_bounds_of_shape_one_and_non_constant_bounds() -> None:
    lo = numpy_helper.from_array(np.array([0.0], np.float32), "lo")
    hi = numpy_helper.from_array(np.array([6.0], np.float32), "hi")
    m = _model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="c")], inits=[lo, hi])
    assert from_onnx(m).op_counts()["relu6"] == 1
    only_min = _model([helper.make_node("Clip", ["x", "lo"], ["y"], name="c")], inits=[lo])
    assert from_onnx(only_min).op_counts()["relu"] == 1
    dyn = _model([helper.make_node("Clip", ["x", "x"], ["y"], name="c")])
    with pytest.raises(UnsupportedOperatorError, match="min bound 'x' is not a constant"):
        from_onnx(dyn)


# ---- graphs without outputs ----------------------------------------------------------------
def test_a_model_or_graph_without_outputs_is_refused() -> None:
    m = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], outputs=[])
    with pytest.raises(ModelError, match="no graph output"):
        from_onnx(m)
    b = GraphBuilder()
    b.input((1, 3, 4, 4))
    with pytest.raises(ArchError, match="no output"):
        b.build([])


# ---- torch emitter: node names that are ModuleDict attributes --------------------------------
@pytest.mark.parametrize("name", ["keys", "training", "forward", "update"])
def test_torch_module_of_nodes_named_like_module_attributes(name: str) -> None:
    b = GraphBuilder()
    x = b.input((1, 3, 4, 4))
    y = b.batchnorm(b.conv(x, 4, 3, name=name), name="values")
    g = b.build([y])
    m = to_torch(g)
    assert len(list(m.parameters())) == 3
    assert_close(run_torch(g, X, 0), run_onnx(g, X, 0), label=name)


# ---- ONNX emitter: helper names that collide with the graph's -------------------------------
def _collisions() -> list[Graph]:
    graphs = []
    b = GraphBuilder()
    x = b.input((1, 3, 4, 4))
    r = b.relu(b.conv(x, 4, 3, name="a"), name="a.weight")  # the conv's weight initializer
    graphs.append(b.build([b.relu(r, name="b")]))
    b = GraphBuilder()
    x = b.input((1, 3, 4, 4))
    graphs.append(b.build([b.zeros(b.relu(x, name="const.zero"), name="z")]))
    b = GraphBuilder()
    x = b.input((1, 4, 4, 4))
    s = b.channel_shuffle(x, 2, name="s")
    graphs.append(b.build([b.relu(b.relu(s, name="s/reshape"), name="s/grouped")]))
    return graphs


@pytest.mark.parametrize("i", range(3))
def test_onnx_helper_names_never_collide_with_node_names(i: int) -> None:
    g = _collisions()[i]
    m = to_onnx(g)
    onnx.checker.check_model(m, full_check=True)
    x = make_input(g, 1)["input"]
    assert_close(run_onnx(g, x, 0), run_torch(g, x, 0), label=str(i))
    assert from_onnx(m).graph_id() == g.graph_id()


def test_onnx_opset_is_an_integer_the_installed_onnx_knows() -> None:
    g = NB201.build(NB201.from_index(3))
    newest = onnx.defs.onnx_opset_version()
    assert to_onnx(g, opset=newest).opset_import[0].version == newest
    for bad, why in ((newest + 1, "newer than"), (14.5, "expected an integer"), (True, "integer")):
        with pytest.raises(ArchError, match=why):
            to_onnx(g, opset=bad)  # type: ignore[arg-type]


# ---- choice indices and codes must be integers ------------------------------------------------
def test_non_integer_choices_and_codes_are_refused() -> None:
    with pytest.raises(ArchError, match=r"choice 1.9 at position 0; expected an integer 0..4"):
        NB201.from_ops([1.9, 2, 3, 4, 0, 1])  # type: ignore[list-item]
    with pytest.raises(ArchError, match="choice '1' at position 0"):
        NB201.from_ops(["1", 2, 3, 4, 0, 1])  # type: ignore[list-item]
    with pytest.raises(ArchError, match="choices None"):
        NB201.from_ops(None)  # type: ignore[arg-type]
    with pytest.raises(ArchError, match=r"code 2\.7;"):
        NB201.decode_int(2.7)  # type: ignore[arg-type]
    fb = FBNetSpace()
    with pytest.raises(ArchError, match="choice True"):
        fb.from_ops([True] * 22)
    # numpy integers are integers
    assert NB201.from_ops(np.array([1, 2, 3, 4, 0, 1])) == NB201.from_ops([1, 2, 3, 4, 0, 1])
    assert NB201.decode_int(np.int64(7)) == NB201.decode_int(7)


# ---- Graph JSON -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ("[]", "a JSON object; got list"),
        ("null", "a JSON object; got NoneType"),
        ('{"format_version": 1}', "missing field 'nodes'"),
        ('{"format_version": 1, "nodes": [{"name": "a"}], "outputs": ["a"]}', "missing field 'op'"),
        ('{"format_version": 1, "nodes": [], "outputs": []}', "no output"),
    ],
)
def test_malformed_graph_json_is_an_arch_error(doc: str, why: str) -> None:
    with pytest.raises(ArchError, match=why):
        Graph.from_json(doc)


def test_graph_json_round_trip_still_exact() -> None:
    g = NB201.build(NB201.from_index(9))
    again = Graph.from_json(g.to_json())
    assert again.to_json() == g.to_json() and json.loads(again.to_json())["outputs"]


# ---- cost model against an independent hand count ----------------------------------------------
def test_nb201_params_by_hand() -> None:
    """Stem, 15 cells, 2 reductions, last BN and classifier, counted from the paper's skeleton."""

    def conv_bn(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + 2 * cout

    def total(per_cell: dict[int, int]) -> int:
        n = conv_bn(3, 16, 3)
        for stage, c in enumerate((16, 32, 64)):
            if stage:
                cin = c // 2
                n += conv_bn(cin, c, 3) + conv_bn(c, c, 3) + cin * c  # a, b, 1x1 shortcut
            n += 5 * per_cell[c]
        return n + 2 * 64 + 64 * 10 + 10

    all_3x3 = NB201.build(NB201.from_ops([3] * 6))
    assert all_3x3.params() == total({c: 6 * conv_bn(c, c, 3) for c in (16, 32, 64)})
    assert all_3x3.params() == 1_531_546  # NAS-Bench-201's largest cell, 1.53 M
    mixed = NB201.build(NB201.from_ops([2, 4, 1, 3, 0, 2]))  # 1x1, pool, skip, 3x3, none, 1x1
    assert mixed.params() == total(
        {c: 2 * conv_bn(c, c, 1) + conv_bn(c, c, 3) for c in (16, 32, 64)}
    )
    assert NB201.build(NB201.from_ops([0] * 6)).params() == total(dict.fromkeys((16, 32, 64), 0))


@pytest.mark.parametrize("arch", [[8] * 22, [1] * 22, [0, 5, 8, 3] * 5 + [7, 2]])
def test_fbnet_params_match_torch_and_runtimes_agree_at_odd_resolutions(arch: list[int]) -> None:
    fb = FBNetSpace()
    g = fb.build(fb.from_ops(arch), batch=2, resolution=36)
    assert sum(p.numel() for p in to_torch(g).parameters()) == g.params()
    x = make_input(g, 1)["input"]
    ref = run_torch(g, x, 0)
    assert_close(run_onnx(g, x, 0), ref, label="onnx")
    assert_close(run_tflite(g, x, 0), ref, label="tflite")
    assert torch.from_numpy(ref).shape == (2, 1000)


# ---- CLI and export -----------------------------------------------------------------------------
def test_arch_show_refuses_space_colon_arch_followed_by_another_word(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arch = NB201.from_index(0)
    rc = main(["arch", "show", f"nb201:{arch}", "extra"])
    err = capsys.readouterr().err
    assert rc == 2 and "SPACE:ARCH, followed by 'extra'" in err and "unknown space" not in err


def test_export_into_a_path_under_a_file_names_it(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    g = NB201.build(NB201.from_index(0))
    with pytest.raises(ConfigError, match=r"'.*afile' is not a directory"):
        export(g, "onnx", afile / "m.onnx")
    with pytest.raises(ConfigError, match="does not exist"):
        export(g, "onnx", tmp_path / "missing" / "m.onnx")
    assert afile.read_text() == "x"


def test_arch_show_lists_every_input_of_a_two_input_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    m = _model(
        [helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=1)],
        inputs=[_vi("a", [1, 3, 4, 4]), _vi("b", [1, 2, 4, 4])],
    )
    path = tmp_path / "two.onnx"
    onnx.save(m, path)
    assert main(["arch", "show", "--onnx", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "input        1x3x4x4, 1x2x4x4" in lines
    assert "output       1x5x4x4" in lines
