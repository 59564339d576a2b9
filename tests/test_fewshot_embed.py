"""``embed`` few-shot adaptation (source-learned low-rank prior) on the real reference latencies."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import EMBED_SOURCES, long_fixture, meta_base, table_fixture
from latbench.errors import PredictorError
from latbench.predictors import load, save
from latbench.predictors.adapt import adapt, learn_embed_prior
from latbench.predictors.fewshot_embed import embed_features, fit_embed_arrays
from latbench.predictors.metrics import spearman

SOURCES = EMBED_SOURCES


table = table_fixture(2000)
long = long_fixture(SOURCES)


@pytest.fixture(scope="module")
def base(long: pd.DataFrame):
    return meta_base(long)


@pytest.fixture(scope="module")
def prior(base, long: pd.DataFrame):
    t0 = time.perf_counter()
    out = learn_embed_prior(base, long["arch"].tolist(), long["ms"].to_numpy(), long["device"])
    assert time.perf_counter() - t0 < 60.0
    return out


def test_embed_beats_proxy_selection_on_a_held_out_edge_tpu(table: pd.DataFrame, base, prior):
    """HELP's protocol on a device no source ranks (Edge TPU): shots < 900, query 900-1999."""
    target = "oneproxy/eagle_tpu"
    col = table[["nb201_index", "arch", target]].dropna()
    pool, query = col[col["nb201_index"] < 900], col[col["nb201_index"] >= 900]
    qa, qy = list(query["arch"]), query[target].to_numpy()
    scores: dict[str, list[float]] = {"proxy": [], "embed": [], "auto": []}
    for seed in range(4):
        pick = np.random.default_rng(seed).choice(len(pool), size=10, replace=False)
        archs, lat = list(pool["arch"].iloc[pick]), pool[target].to_numpy()[pick]
        for m in scores:
            t0 = time.perf_counter()
            p = adapt(base, archs, lat, method=m, embed_prior=prior)
            assert time.perf_counter() - t0 < 10.0
            scores[m].append(spearman(qy, p.predict(qa)))
        assert p.method_ == "embed+bayes+soft" and p.summary()["op_count_embedding"]
    assert np.mean(scores["embed"]) > np.mean(scores["proxy"]) + 0.05
    assert np.mean(scores["auto"]) > np.mean(scores["proxy"]) + 0.05
    assert min(scores["embed"]) > min(scores["proxy"])


def test_adapted_embed_round_trips(table: pd.DataFrame, base, prior, tmp_path: Path) -> None:
    col = table[["arch", "oneproxy/eagle_tpu"]].dropna().iloc[:10]
    p = adapt(base, list(col["arch"]), col.iloc[:, 1].to_numpy(), method="embed", embed_prior=prior)
    save(p, tmp_path / "a.lbp")
    q = load(tmp_path / "a.lbp")
    archs = list(table["arch"].iloc[:50])
    np.testing.assert_allclose(q.predict(archs), p.predict(archs))
    assert q.counts_.size == embed_features("nb201", archs[:1]).shape[1]


def test_embed_bad_input(table: pd.DataFrame, base, prior, long: pd.DataFrame) -> None:
    col = table[["arch", "oneproxy/eagle_tpu"]].dropna().iloc[:10]
    archs, lat = list(col["arch"]), col.iloc[:, 1].to_numpy()
    with pytest.raises(PredictorError, match="embed_prior"):
        adapt(base, archs, lat, method="embed")
    with pytest.raises(PredictorError, match="sources"):
        adapt(base, archs, lat, method="embed", embed_prior=prior, exclude=[SOURCES[0]])
    with pytest.raises(PredictorError, match="no measurements of source"):
        learn_embed_prior(base, long["arch"].iloc[:50].tolist(), long["ms"].iloc[:50], ["x"] * 50)
    with pytest.raises(PredictorError, match="one of each"):
        learn_embed_prior(base, archs, lat[:5], [SOURCES[0]] * 10)
    with pytest.raises(PredictorError, match="positive"):
        learn_embed_prior(base, archs, -lat, [SOURCES[0]] * 10)
    p = np.zeros((2, len(SOURCES)))
    with pytest.raises(PredictorError, match="expected at least 3"):
        fit_embed_arrays(prior, p, np.zeros((2, 11)), np.zeros(2))
    with pytest.raises(PredictorError, match="source columns"):
        fit_embed_arrays(prior, np.zeros((5, 2)), np.zeros((5, 11)), np.zeros(5))


def test_cli_adapt_with_embed_data(table: pd.DataFrame, base, tmp_path: Path, capsys) -> None:
    """``latbench adapt --embed-data reference`` learns the prior from the bundled table."""
    from latbench.cli import main

    save(base, tmp_path / "base.lbp")
    target = "oneproxy/eagle_tpu"
    col = table[["arch", target]].dropna().iloc[:10]
    samples = tmp_path / "tpu.csv"
    rows = [f"nb201,{a},{v:.6g}" for a, v in zip(col["arch"], col[target], strict=True)]
    samples.write_text("space,arch,latency_ms\n" + "\n".join(rows) + "\n")
    out = tmp_path / "tpu.lbp"
    argv = ["adapt", str(tmp_path / "base.lbp"), "--samples", str(samples), "-o", str(out)]
    assert main([*argv, "--embed-data", "reference", "--json"]) == 0
    assert '"op_count_embedding": true' in capsys.readouterr().out
    assert load(out).method_ == "embed+bayes+soft"
    assert main([*argv, "--method", "embed"]) != 0
    assert "--method embed needs --embed-data" in capsys.readouterr().err
    assert main([*argv, "--embed-data", str(tmp_path / "missing.csv")]) != 0
    assert "does not exist" in capsys.readouterr().err
