"""Latency monotonicity and proxy adaptation on the real bundled reference latencies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latbench.cli import main
from latbench.datasets import load_reference
from latbench.errors import PredictorError
from latbench.predictors import monotonicity as mono

DEVICES = ["help/1080ti_1", "help/titanx_1", "help/gold_6240", "help/silver_4210r", "help/pixel3"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    df = load_reference("nb201")
    df = df[(df["nb201_index"] < 1500) & df["device"].isin(DEVICES)]
    return mono.wide_table(df)


def test_rank_correlations_are_symmetric_and_meaningful(table) -> None:
    sp, kd = mono.rank_correlations(table)
    assert list(sp.columns) == sorted(DEVICES)
    np.testing.assert_allclose(sp.to_numpy(), sp.to_numpy().T)
    np.testing.assert_allclose(np.diag(kd.to_numpy()), 1.0)
    # two GPUs of one generation rank alike; a GPU and a phone much less
    assert sp.loc["help/1080ti_1", "help/titanx_1"] > 0.95
    assert sp.loc["help/1080ti_1", "help/pixel3"] < sp.loc["help/1080ti_1", "help/titanx_1"]
    assert (kd.to_numpy() <= sp.to_numpy() + 1e-9).all()  # Kendall is the stricter measure


def test_cluster_order_groups_similar_devices(table) -> None:
    order = mono.cluster_order(mono.rank_correlations(table)[0])
    assert sorted(order) == sorted(DEVICES)
    i, j = order.index("help/1080ti_1"), order.index("help/titanx_1")
    assert abs(i - j) == 1


def test_best_proxies_and_verdict(table) -> None:
    col = table["help/titanx_1"].dropna()
    archs, lat = list(col.index[:10]), col.to_numpy()[:10]
    rep = mono.best_proxies(table, archs, lat, target="help/titanx_1", threshold=0.9)
    assert rep.best == "help/1080ti_1"
    assert rep.one_proxy_enough and "one proxy is enough" in rep.verdict()
    strict = mono.best_proxies(table, archs, lat, target="help/titanx_1", threshold=1.01)
    assert "adaptation needed" in strict.verdict()
    with pytest.raises(PredictorError, match="at least 3 shared"):
        mono.best_proxies(table, ["x", "y", "z"], [1.0, 2.0, 3.0])


def test_proxy_adaptation_reports_before_and_after(table) -> None:
    rep = mono.proxy_adaptation(table, "nb201", "help/silver_4210r", "help/gold_6240", k=20)
    assert rep.n_eval == table["help/gold_6240"].notna().sum() - 20
    assert 0.5 < rep.spearman_before < 1.0 and 0.5 < rep.spearman_after < 1.0
    assert rep.method == "meta"


def test_plot_heatmap_writes_a_png(tmp_path: Path, table) -> None:
    out = tmp_path / "h.png"
    order = mono.plot_heatmap(mono.rank_correlations(table)[0], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(order) == len(DEVICES)


def test_select_devices_globs_and_errors() -> None:
    known = ["help/a_1", "help/b_1", "oneproxy/c"]
    assert mono.select_devices(known, ["help/*"]) == ["help/a_1", "help/b_1"]
    assert mono.select_devices(known, ["c"]) == ["oneproxy/c"]
    with pytest.raises(PredictorError, match="matches nothing"):
        mono.select_devices(known, ["zzz"])


def test_cli_monotonicity_fbnet(tmp_path: Path, capsys) -> None:
    plot = tmp_path / "fb.png"
    rc = main(
        [
            "monotonicity",
            "--reference",
            "fbnet",
            "--devices",
            "1080ti_1",
            "titanx_1",
            "pixel3",
            "gold_6240",
            "--target",
            "titanx_1",
            "--k",
            "10",
            "--plot",
            str(plot),
            "--json",
        ]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["space"] == "fbnet" and len(doc["devices"]) == 4
    assert doc["proxies"][0]["device"] != "help/titanx_1"
    assert set(doc["proxy_adaptation"]) >= {"spearman_before", "spearman_after"}
    assert plot.is_file()
    assert main(["monotonicity", "--reference", "fbnet", "--devices", "nope"]) != 0
