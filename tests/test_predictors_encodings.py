"""Encodings, metrics, the kernel predictor and graph inputs (imported-model path)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from latbench.errors import PredictorError
from latbench.predictors import create, encodings, metrics
from latbench.predictors.kernel import KernelPredictor, kernels_from_profile
from latbench.spaces import get_space

NB201 = get_space("nb201")
FBNET = get_space("fbnet")
EDGE_CASES = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
    "|none~0|+|nor_conv_1x1~0|none~1|+|none~0|avg_pool_3x3~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
]


def test_graph_stats_match_built_graphs() -> None:
    archs = EDGE_CASES + NB201.sample(40, seed=1)
    got = encodings.graph_stats("nb201", archs)
    for a, row in zip(archs, got, strict=True):
        g = NB201.build(a)
        assert tuple(row) == (g.macs(), g.params(), g.activation_bytes()), a
    fb = FBNET.sample(8, seed=2)
    got = encodings.graph_stats("fbnet", fb)
    for a, row in zip(fb, got, strict=True):
        g = FBNET.build(a)
        assert tuple(row) == (g.macs(), g.params(), g.activation_bytes())


def test_onehot_and_rich() -> None:
    archs = NB201.sample(50, seed=0)
    oh = encodings.onehot("nb201", archs)
    assert oh.shape == (50, 30) and (oh.sum(axis=1) == 6).all()
    ops = encodings.op_matrix("nb201", archs)
    assert (oh.reshape(50, 6, 5).argmax(axis=2) == ops).all()
    rich = encodings.rich_features("nb201", archs)
    assert rich.shape[0] == 50 and rich.shape[1] > 30 and np.isfinite(rich).all()
    assert encodings.onehot("fbnet", FBNET.sample(3)).shape == (3, 22 * 9)
    # non-canonical FBNet input (block names) is canonicalised
    named = "-".join(["k3_e1"] * 22)
    assert encodings.canonical_archs("fbnet", [named]) == ["-".join(["0"] * 22)]


def test_graph_and_cell_encodings() -> None:
    g = NB201.build(EDGE_CASES[2])
    adj, feat = encodings.graph_encoding(g)
    assert adj.shape == (len(g), len(g)) and feat.shape == (len(g), encodings.GRAPH_FEATURES)
    assert adj.sum() == sum(len(n.inputs) for n in g.nodes)
    assert (feat[:, : len(encodings.GRAPH_OPS)].sum(axis=1) == 1).all()
    a, x = encodings.cell_encoding("nb201", EDGE_CASES)
    assert a.shape == (4, 8, 8) and x.shape == (4, 8, encodings.cell_feature_size("nb201"))
    assert a[0].sum() == 0  # an all-'none' cell has no live connection
    a, x = encodings.cell_encoding("fbnet", FBNET.sample(2))
    assert a.shape == (2, 24, 24) and x.shape[2] == encodings.cell_feature_size("fbnet")


def test_kernel_features_fuse_like_a_mobile_runtime() -> None:
    ks = encodings.kernel_features(FBNET.build("-".join(["3"] * 22)))
    types = {k["type"] for k in ks}
    assert {"conv-bn-relu", "dwconv-bn-relu", "conv-bn", "fc"} <= types
    g = FBNET.build("-".join(["3"] * 22))
    assert sum(k["flops"] for k in ks) == pytest.approx(
        sum(2 * g.node_macs(n) for n in g.nodes if n.op not in ("input", "flatten"))
    )
    assert all(set(encodings.KERNEL_NUMERIC) <= set(k) for k in ks)


def test_kernel_predictor_from_per_op_profiles() -> None:
    # per-operator rows named after graph nodes, as the ONNX emitter names them; times follow a
    # known cost law so the test is deterministic
    rows: list[tuple[dict[str, object], float]] = []
    graphs = [FBNET.build(a, resolution=96) for a in FBNET.sample(12, seed=3)]
    for g in graphs:
        per_op = [
            {"op": n.op, "name": n.name, "time_ms": 1e-3 + 2 * g.node_macs(n) / 1e9}
            for n in g.nodes
            if n.op not in ("input", "flatten")
        ]
        rows += kernels_from_profile(g, per_op)
    kernels = [k for k, _ in rows]
    y = np.array([t for _, t in rows])
    p = KernelPredictor(n_estimators=20).fit_kernels(kernels[:-60], y[:-60], space="graph")
    pred = p.predict_kernels(kernels[-60:])
    assert metrics.spearman(y[-60:], pred) > 0.9
    whole = p.predict(graphs[:2])
    assert whole.shape == (2,) and (whole > 0).all()
    # what a user gets wrong: a measurement taken without --per-op, rows without times,
    # kernels of their own making without the fields the forests read
    with pytest.raises(PredictorError, match="no per-operator profile; measure with per_op=True"):
        kernels_from_profile(graphs[0], None)  # type: ignore[arg-type]
    name = graphs[0].nodes[1].name
    with pytest.raises(PredictorError, match="expected a 'time_ms' number"):
        kernels_from_profile(graphs[0], [{"name": name, "ms": 1.0}])
    with pytest.raises(PredictorError, match=r"kernels\[0\] lacks hw, cin"):
        p.predict_kernels([{"type": "conv"}])
    with pytest.raises(PredictorError, match="got 3 kernels but 2 latencies"):
        KernelPredictor().fit_kernels(kernels[:3], y[:2], space="graph")


def test_graph_inputs_for_imported_models() -> None:
    graphs = [FBNET.build(a, resolution=64) for a in FBNET.sample(16, seed=4)]
    y = np.array([g.macs() / 1e6 + 1.0 for g in graphs])
    for name in ("flops", "kernel", "gcn"):
        kw = {"epochs": 3, "hidden": 8, "layers": 1} if name == "gcn" else {}
        p = create(name, **kw).fit(graphs[:12], y[:12], space="graph")
        assert p.predict(graphs[12:]).shape == (4,)
        with pytest.raises(PredictorError, match=r"expected latbench\.spaces\.Graph"):
            p.predict(["0-" * 21 + "0"])
    with pytest.raises(PredictorError, match="not graphs"):
        create("ridge").fit(graphs, y, space="graph")


def test_metrics_known_values() -> None:
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.04, 2.3, 2.9, 4.0])
    assert metrics.rmse(t, t) == 0.0
    assert metrics.mape(t, p) == pytest.approx((4 + 15 + 100 / 30 + 0) / 4)
    assert metrics.acc_within(t, p, 5) == 0.75 and metrics.acc_within(t, p, 10) == 0.75
    assert metrics.spearman(t, p) == 1.0 and metrics.kendall(t, p) == 1.0
    assert metrics.topk_overlap(t, p[::-1], 2) == 0.0
    assert metrics.spearman(t, np.ones(4)) == 0.0
    assert set(metrics.evaluate(t, p, k=2)) == {
        "rmse_ms",
        "mape_pct",
        "acc5",
        "acc10",
        "spearman",
        "kendall",
        "top2",
    }
    with pytest.raises(PredictorError, match="4 measured and 3 predicted"):
        metrics.rmse(t, p[:3])


def test_one_hot_of_the_whole_space_is_fast() -> None:
    archs = list(NB201.enumerate())
    random.Random(0).shuffle(archs)
    x = encodings.rich_features("nb201", archs)
    assert x.shape[0] == 15625


TWIN_A = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
TWIN_B = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_canonical_cells_merge_twins_and_prune_dead_edges() -> None:
    for prune in (False, True):
        a, b = encodings.canonical_cells("nb201", [TWIN_A, TWIN_B], prune=prune)
        assert a == b and a in (TWIN_A, TWIN_B)
    # node 2 is fed by nothing, so its skip to the output is dead: the whole cell is pruned
    dead = EDGE_CASES[1]
    assert encodings.canonical_cells("nb201", [dead]) == [EDGE_CASES[0]]
    twin = "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|none~2|"
    assert encodings.canonical_cells("nb201", [dead, twin], prune=False) == [twin, twin]
    # a conv on edge 0 that reaches the output only through a 'none' edge is dead
    cut = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert encodings.canonical_cells("nb201", [cut]) == [
        "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    ]
    every = list(NB201.enumerate())
    eff = encodings.canonical_cells("nb201", every)
    assert (
        len(set(eff)) == 8765
        and len(set(encodings.canonical_cells("nb201", every, prune=False))) == 14125
    )
    # canonical strings are valid architectures whose op matrix travels with them
    assert all(NB201.from_ops(NB201.ops(c)) == c for c in eff[:200])
    np.testing.assert_array_equal(
        encodings.op_matrix("nb201", eff), encodings.op_matrix("nb201", list(eff))
    )
    fb = FBNET.sample(3, seed=1)
    assert encodings.canonical_cells("fbnet", fb) == fb


def test_canonical_cells_group_equal_measurements_on_reference_data() -> None:
    from latbench.datasets import load_reference

    df = load_reference("nb201")

    def group_sd(device: str, prune: bool) -> tuple[float, float]:
        sub = df[df.device == device]
        key = encodings.canonical_cells("nb201", sub.arch.tolist(), prune=prune)
        ly = np.log(sub.latency_ms.to_numpy())
        g = pd.Series(ly).groupby(np.asarray(key))
        dev = ly - g.transform("mean").to_numpy()
        many = g.transform("count").to_numpy() > 1
        return float(np.sqrt(np.mean(dev[many] ** 2))), float(ly.std())

    # PyTorch on a GPU runs dead branches: twins agree to 0.1 %, the pruned cell does not
    # determine the latency
    within, spread = group_sd("help/1080ti_256", prune=False)
    assert within < 0.002 and spread > 0.15
    assert group_sd("help/1080ti_256", prune=True)[0] > 0.05
    # latbench's exporter prunes: cells with one effective form measure alike
    within, spread = group_sd("latbench/desktop_cpu_i7_7820x_fp32", prune=True)
    assert within < 0.04 and spread > 0.4
