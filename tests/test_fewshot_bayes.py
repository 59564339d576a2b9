"""``bayes`` few-shot adaptation (proxies + op-cost residual) on the real reference latencies."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import HELP_SOURCES, long_sources, meta_base, table_fixture
from latbench.errors import ArchError, PredictorError
from latbench.predictors import create, fewshot, load, save
from latbench.predictors.adapt import AdaptedPredictor, adapt
from latbench.predictors.fewshot_bayes import cost_features, fit_bayes_arrays
from latbench.predictors.metrics import spearman

SOURCES = HELP_SOURCES


table = table_fixture(3000)


@pytest.fixture(scope="module")
def base(table: pd.DataFrame):
    return meta_base(long_sources(table, SOURCES))


def _split(table: pd.DataFrame, device: str):
    """HELP's protocol on one device: shots from indices < 900, query 900-2999 (measured)."""
    col = table[["nb201_index", "arch", device]].dropna()
    pool = col[col["nb201_index"] < 900]
    query = col[col["nb201_index"] >= 900]
    return pool, query


@pytest.mark.parametrize(
    ("target", "margin"),
    [("oneproxy/eagle_tpu", 0.15), ("nnmeter/cortexA76cpu_tflite21", 0.04)],
)
def test_auto_beats_proxy_selection_on_a_held_out_accelerator(
    table: pd.DataFrame, base, target: str, margin: float
) -> None:
    """An Edge TPU / phone CPU no base device ranks well: the op-cost residual re-ranks."""
    pool, query = _split(table, target)
    qa, qy = list(query["arch"]), query[target].to_numpy()
    scores: dict[str, list[float]] = {"proxy": [], "auto": []}
    for seed in range(4):
        pick = np.random.default_rng(seed).choice(len(pool), size=10, replace=False)
        archs, lat = list(pool["arch"].iloc[pick]), pool[target].to_numpy()[pick]
        for m in scores:
            t0 = time.perf_counter()
            p = adapt(base, archs, lat, method=m)
            assert time.perf_counter() - t0 < 10.0
            scores[m].append(spearman(qy, p.predict(qa)))
        assert p.method_ == "bayes+soft" and p.summary()["op_cost_residual"]
    assert np.mean(scores["auto"]) > np.mean(scores["proxy"]) + margin
    assert min(scores["auto"]) > min(scores["proxy"])


def test_auto_keeps_a_good_proxy(table: pd.DataFrame, base) -> None:
    """Where one base device ranks the target (two GPUs), auto stays as good as the proxy."""
    target = "help/titanx_1"
    pool, query = _split(table, target)
    qa, qy = list(query["arch"]), query[target].to_numpy()
    for seed in range(2):
        pick = np.random.default_rng(seed).choice(len(pool), size=10, replace=False)
        archs, lat = list(pool["arch"].iloc[pick]), pool[target].to_numpy()[pick]
        proxy = spearman(qy, adapt(base, archs, lat, method="proxy").predict(qa))
        auto = spearman(qy, adapt(base, archs, lat).predict(qa))
        assert auto > 0.97 and auto >= proxy - 0.005


def test_bayes_round_trips_and_old_files_load(tmp_path: Path, table: pd.DataFrame, base) -> None:
    pool, query = _split(table, "oneproxy/eagle_jetson")
    archs, lat = list(pool["arch"].iloc[:12]), pool["oneproxy/eagle_jetson"].to_numpy()[:12]
    p = adapt(base, archs, lat, method="bayes", device="jetson")
    assert p.cost_.shape == (7,) and p.fit_seconds_ < 10.0
    save(p, tmp_path / "j.lbp")
    q = load(tmp_path / "j.lbp")
    assert isinstance(q, AdaptedPredictor) and q.method_ == "bayes"
    qa = list(query["arch"].iloc[:40])
    np.testing.assert_allclose(q.predict(qa), p.predict(qa), rtol=1e-10)
    # an adapted predictor saved before the op-cost residual existed has no cost arrays
    old = adapt(base, archs, lat, method="soft")
    meta, arrays = old._get_state()
    for key in ("cost", "cost_mean", "cost_scale"):
        arrays.pop(key)
    meta.pop("fit_seconds")
    restored = AdaptedPredictor()
    restored.space_, restored.devices_ = old.space_, old.devices_
    restored._set_state(meta, arrays)
    np.testing.assert_allclose(restored.predict(qa), old.predict(qa), rtol=1e-10)


def test_cost_features_follow_pruning() -> None:
    archs = [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        # node 1 is computed but feeds nothing: its conv is pruned; output = skip of the input
        "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
        # node 2 is not reached from the input: its outgoing pool computes nothing
        "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|",
    ]
    g = cost_features("nb201", archs)
    assert g is not None and g.shape == (4, 7)
    # columns: skip, conv1x1, conv3x3, avgpool, node1 used, node2 used, disconnected
    np.testing.assert_array_equal(g[0], [0, 0, 6, 0, 1, 1, 0])
    np.testing.assert_array_equal(g[1], [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(g[2], [1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(g[3][:4], [0, 1, 0, 0])
    assert cost_features("fbnet", ["0-" * 21 + "0"]) is None


def test_fit_bayes_arrays_finds_a_pure_op_cost_device() -> None:
    """A target that is an exact sum of op costs, sources that are noise: no-source models win."""
    rng = np.random.default_rng(0)
    k = 15
    g = rng.integers(0, 4, size=(k, 4)).astype(float)
    g -= g.mean(axis=0)
    t = 1.0 + g @ np.array([0.05, 0.2, 0.5, 0.1])
    pz = rng.normal(size=(k, 6))
    a, w, beta, info = fit_bayes_arrays(pz, g, t)
    assert beta is not None and info["no_source_mass"] > 0.5
    pred = a + pz @ w + g @ beta
    assert spearman(t, pred) > 0.98
    with pytest.raises(PredictorError, match="expected at least 3"):
        fit_bayes_arrays(pz[:2], g[:2], t[:2])
    with pytest.raises(PredictorError, match="all latencies are equal"):
        fit_bayes_arrays(pz, g, np.ones(k))


def test_bayes_without_a_positive_source_falls_back_to_soft(caplog) -> None:
    rng = np.random.default_rng(1)
    p = rng.normal(size=(8, 2))
    t = -p[:, 0] - p[:, 1]  # every source ranks the other way
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.fewshot"):
        fit = fewshot.fit_bayes(p, t, rng.normal(size=(100, 2)), None)
    assert fit.method == "bayes" and fit.info == {"fallback": "soft"}
    assert "falling back to soft" in caplog.text
    # three phone latencies in whole ms can be equal: the arrays API falls back too
    # (adapt() refuses them earlier, see test_bad_input_gives_clear_errors)
    flat = fewshot.fit_bayes(p[:3], np.full(3, np.log(30.0)), p, rng.normal(size=(3, 7)))
    assert flat.info == {"fallback": "soft"} and np.all(np.isfinite(flat.predict_log(p)))


def test_bad_input_gives_clear_errors(table: pd.DataFrame, base, caplog) -> None:
    pool, _ = _split(table, "oneproxy/eagle_tpu")
    archs, lat = list(pool["arch"].iloc[:6]), pool["oneproxy/eagle_tpu"].to_numpy()[:6]
    with pytest.raises(PredictorError, match="at least 3"):
        adapt(base, archs[:2], lat[:2], method="bayes")
    with pytest.raises(PredictorError, match=r"latency_ms\[2\] = -1\.0"):
        adapt(base, archs, np.where(np.arange(6) == 2, -1.0, lat))
    with pytest.raises(PredictorError, match="all 6 latencies equal"):
        adapt(base, archs, np.full(6, 30.0))
    with pytest.raises(ArchError):
        adapt(base, ["0-1-2-3-4-5-6-7-8-0-1-2-3-4-5-6-7-8-0-1-2-3"] * 3, [1.0, 2.0, 3.0])
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.adapt"):
        p = adapt(base, [*archs, archs[0], archs[1]], [*lat, lat[0], lat[1] * 1.2])
    assert p.n_samples_ == 6 and "more than once" in caplog.text


def test_single_device_base_can_re_rank(table: pd.DataFrame, caplog) -> None:
    """Base on one device: auto = bayes+soft, whose op-cost residual can change the ranking."""
    one = create("meta").fit(list(table["arch"]), table["help/1080ti_1"].to_numpy(), space="nb201")
    target = "oneproxy/eagle_tpu"
    pool, query = _split(table, target)
    archs, lat = list(pool["arch"].iloc[:10]), pool[target].to_numpy()[:10]
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.adapt"):
        p = adapt(one, archs, lat)
    assert "knows one device" in caplog.text and p.method_ == "bayes+soft"
    qa, qy = list(query["arch"]), query[target].to_numpy()
    single = one.predict(qa)
    assert spearman(single, p.predict(qa)) < 0.99  # re-ranked
    assert spearman(qy, p.predict(qa)) > spearman(qy, single)


def test_auto_cross_validation_respects_its_time_budget(monkeypatch, caplog) -> None:
    """Spaces without cost features cross-validate; past the budget the rest is skipped."""
    rng = np.random.default_rng(2)
    k, d = 12, 4
    p = rng.normal(size=(k, d))
    t = p[:, 1] + 0.1 * rng.normal(size=k)
    feats = rng.normal(size=(k, 5))
    monkeypatch.setattr(fewshot, "CV_BUDGET_S", 0.0)
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.fewshot"):
        fit, scores = fewshot.fit_method("auto", p, t, rng.normal(size=(50, d)), feats)
    assert list(scores) == ["soft"] and fit.method == "soft"
    assert "budget" in caplog.text
