"""The architecture graph: structure checks, cost model, identity, JSON round trip, weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latbench.errors import ArchError
from latbench.spaces import (
    Graph,
    GraphBuilder,
    NB201Space,
    Node,
    get_space,
    init_params,
    make_input,
)


def small_graph() -> Graph:
    b = GraphBuilder(meta={"name": "small"})
    x = b.input((1, 3, 8, 8))
    c = b.conv(x, 4, 3, name="conv")  # 4*8*8 outputs x 3*3*3
    y = b.relu(b.batchnorm(c, name="bn"), name="relu")
    p = b.pool("avgpool", y, 2, 2, name="pool")  # (1, 4, 4, 4)
    f = b.flatten(b.global_avgpool(p, name="gap"), name="flat")
    return b.build([b.linear(f, 5, name="fc")])


def test_cost_model_by_hand() -> None:
    g = small_graph()
    assert g.node_macs("conv") == 4 * 8 * 8 * 3 * 3 * 3
    assert g.node_params("conv") == 4 * 3 * 3 * 3  # no bias
    assert g.node_params("bn") == 2 * 4
    assert g.node_macs("pool") == 4 * 4 * 4 * 2 * 2
    assert g.node_macs("gap") == 4 * 4 * 4
    assert g.node_macs("fc") == 4 * 5 and g.node_params("fc") == 4 * 5 + 5
    assert g.node_macs("flat") == 0
    assert g.macs() == sum(g.node_macs(n) for n in g.nodes)
    assert g.flops() == 2 * g.macs()
    assert g.params() == 108 + 8 + 25
    elems = 3 * 64 + 3 * 4 * 64 + 4 * 16 + 4 + 4 + 5
    assert g.activation_bytes() == 4 * elems


def test_peak_activation_counts_live_tensors() -> None:
    g = small_graph()
    # conv output and bn output (4*64 each) are alive together at the bn; the input (3*64)
    # dies after the conv
    assert g.peak_activation_bytes() == 4 * (4 * 64 + 4 * 64)
    b = GraphBuilder()
    x = b.input((1, 1, 4, 4))
    y1 = b.relu(x, name="a")
    y2 = b.relu(x, name="b")
    g2 = b.build([b.add([y1, y2], name="sum")])
    assert g2.peak_activation_bytes() == 4 * 16 * 3  # (x, a, b) at b, then (a, b, sum)


def test_json_round_trip_and_stable_id() -> None:
    g = small_graph()
    text = g.to_json()
    g2 = Graph.from_json(text)
    assert g2.graph_id() == g.graph_id()
    assert g2.to_json() == text
    assert [n.to_dict() for n in g2.nodes] == [n.to_dict() for n in g.nodes]
    assert g2.meta == {"name": "small"}
    # the id ignores meta but changes with any attribute
    assert Graph(g.nodes, g.outputs, {"other": 1}).graph_id() == g.graph_id()
    nodes = [
        Node(n.name, n.op, n.inputs, n.shape, {**n.attrs, "kernel": 3}) if n.name == "pool" else n
        for n in g.nodes
    ]
    assert Graph(nodes, g.outputs).graph_id() != g.graph_id()


def test_graph_id_is_pinned() -> None:
    """The id is a stable function of the computation: pinned so a change is noticed."""
    g = get_space("nb201").build(NB201Space().from_index(0))
    assert g.graph_id() == Graph.from_json(g.to_json()).graph_id()
    assert len(g.graph_id()) == 16
    assert g.graph_id() == get_space("nb201").build(NB201Space().from_index(0)).graph_id()
    assert g.graph_id() != get_space("nb201").build(NB201Space().from_index(1)).graph_id()


def test_format_errors() -> None:
    with pytest.raises(ArchError, match="not a latbench graph"):
        Graph.from_json("{nope")
    doc = json.loads(small_graph().to_json())
    doc["format_version"] = 99
    with pytest.raises(ArchError, match="version 99"):
        Graph.from_dict(doc)


def test_structure_errors() -> None:
    inp = Node("x", "input", (), (1, 3, 4, 4))
    with pytest.raises(ArchError, match="unknown op 'gelu'"):
        Graph([inp, Node("y", "gelu", ("x",), (1, 3, 4, 4))], ["y"])
    with pytest.raises(ArchError, match="not defined before"):
        Graph([inp, Node("y", "relu", ("z",), (1, 3, 4, 4))], ["y"])
    with pytest.raises(ArchError, match="duplicate"):
        Graph([inp, inp], ["x"])
    with pytest.raises(ArchError, match="not a node"):
        Graph([inp], ["y"])
    b = GraphBuilder()
    x = b.input((1, 6, 4, 4))
    with pytest.raises(ArchError, match="groups=4"):
        b.conv(x, 8, 3, groups=4)
    with pytest.raises(ArchError, match="different shapes"):
        b.add([x, b.conv(x, 3, 1)])
    with pytest.raises(ArchError, match="unknown activation"):
        b.act("gelu", x)


def test_pruning_drops_dead_nodes() -> None:
    b = GraphBuilder()
    x = b.input((1, 3, 4, 4))
    b.conv(x, 8, 3, name="dead")
    y = b.relu(x, name="live")
    assert [n.name for n in b.build([y]).nodes] == ["input", "live"]
    assert len(b.build([y], prune=False).nodes) == 3


def test_summary_fields() -> None:
    s = small_graph().summary()
    for key in ("graph_id", "macs", "flops", "params", "activation_bytes", "peak_activation_bytes"):
        assert key in s
    assert s["input_shape"] == [1, 3, 8, 8] and s["output_shape"] == [[1, 5]]
    assert s["ops"]["conv"] == 1 and s["name"] == "small"


def test_init_params_deterministic_and_per_node() -> None:
    g = small_graph()
    p1, p2, p3 = init_params(g, 0), init_params(g, 0), init_params(g, 1)
    assert set(p1) == {"conv", "bn", "fc"}
    for node, arrays in p1.items():
        for key, arr in arrays.items():
            assert arr.dtype == np.float32
            np.testing.assert_array_equal(arr, p2[node][key])
            assert not np.array_equal(arr, p3[node][key])
    assert p1["conv"]["weight"].shape == (4, 3, 3, 3)
    assert p1["fc"]["weight"].shape == (5, 4) and p1["fc"]["bias"].shape == (5,)
    assert np.all(p1["bn"]["var"] > 0)
    # a node's weights do not depend on the rest of the graph
    b = GraphBuilder()
    x = b.input((1, 3, 8, 8))
    g2 = b.build([b.conv(b.relu(x, name="pre"), 4, 3, name="conv")])
    np.testing.assert_array_equal(init_params(g2, 0)["conv"]["weight"], p1["conv"]["weight"])
    # He scaling: variance 2 / fan_in
    big = GraphBuilder()
    xb = big.input((1, 64, 4, 4))
    w = init_params(big.build([big.conv(xb, 64, 3, name="c")]), 0)["c"]["weight"]
    assert abs(float(w.var()) * 64 * 9 / 2 - 1) < 0.05


def test_make_input() -> None:
    g = small_graph()
    x = make_input(g, 3)
    assert list(x) == ["input"] and x["input"].shape == (1, 3, 8, 8)
    assert x["input"].dtype == np.float32
    np.testing.assert_array_equal(x["input"], make_input(g, 3)["input"])
