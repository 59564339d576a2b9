"""Latency monotonicity and proxy adaptation on the real bundled reference latencies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import MONOTONICITY_DEVICES, monotonicity_table_fixture
from latbench.cli import main
from latbench.datasets import load_reference
from latbench.errors import PredictorError
from latbench.predictors import monotonicity as mono

DEVICES = MONOTONICITY_DEVICES
table = monotonicity_table_fixture()


def test_rank_correlations_are_symmetric_and_meaningful(table) -> None:
    sp, kd = mono.rank_correlations(table)
    assert list(sp.columns) == sorted(DEVICES)
    np.testing.assert_allclose(sp.to_numpy(), sp.to_numpy().T)
    np.testing.assert_allclose(np.diag(kd.to_numpy()), 1.0)
    # two GPUs of one generation rank alike; a GPU and a phone much less
    assert sp.loc["help/1080ti_1", "help/titanx_1"] > 0.95
    assert sp.loc["help/1080ti_1", "help/pixel3"] < sp.loc["help/1080ti_1", "help/titanx_1"]
    assert (kd.to_numpy() <= sp.to_numpy() + 1e-9).all()  # Kendall is the stricter measure


def test_rank_correlations_match_the_per_pair_definition(table) -> None:
    # devices that measured different architectures: every pair on the rows both have
    part = table.copy()
    part.iloc[::3, 0] = np.nan
    part.iloc[1::4, 2] = np.nan
    sp, kd = mono.rank_correlations(part, with_kendall=False)
    assert kd is None
    for a in part.columns:
        for b in part.columns:
            m = part[a].notna() & part[b].notna()
            want = 1.0 if a == b else mono.spearman(part.loc[m, a], part.loc[m, b])
            assert sp.loc[a, b] == pytest.approx(want, abs=1e-12)
    few = part.iloc[:12].copy()
    few.iloc[:5, 1] = np.nan  # 7 shared rows < MIN_SHARED
    assert np.isnan(mono.rank_correlations(few)[0].iloc[0, 1])


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


def test_a_device_that_measured_few_of_the_samples_ranks_last(table) -> None:
    col = table["help/titanx_1"].dropna()
    archs, lat = list(col.index[:10]), col.to_numpy()[:10]
    sparse = table.copy()
    # a device that measured 3 of the 10 samples, in exactly the target's order
    sparse["other/sparse"] = np.nan
    sparse.loc[archs[:3], "other/sparse"] = lat[:3]
    rep = mono.best_proxies(sparse, archs, lat, target="help/titanx_1")
    assert rep.shared["other/sparse"] == 3 and rep.shared["help/1080ti_1"] == 10
    assert dict((d, s) for d, s, _ in rep.ranking)["other/sparse"] == pytest.approx(1.0)
    assert rep.best == "help/1080ti_1" and rep.ranking[-1][0] == "other/sparse"


def test_proxy_adaptation_reports_before_and_after(table) -> None:
    rep, adapted = mono.proxy_adaptation(
        table, "nb201", "help/silver_4210r", "help/gold_6240", k=20
    )
    assert rep.n_eval == table["help/gold_6240"].notna().sum() - 20
    assert 0.5 < rep.spearman_before < 1.0 and 0.5 < rep.spearman_after < 1.0
    # the default learns from the table's other devices, the target's column left out
    assert rep.method == "embed+proxy" and rep.hypotheses == len(DEVICES) - 1
    assert rep.evaluated_on == "held-out" and "other target architectures" in rep.line()
    assert adapted.devices_ == ["help/gold_6240"]


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
    # a comma-separated list, as predictor fit --devices takes it; the bad name is the one named
    assert main(["monotonicity", "--reference", "fbnet", "--devices", "titanx_1,nope"]) != 0
    assert "device 'nope' matches nothing" in capsys.readouterr().err
    both = ["monotonicity", "--reference", "fbnet", "--devices", "titanx_1,pixel*", "--json"]
    assert main(both) == 0
    assert sorted(json.loads(capsys.readouterr().out)["devices"]) == [
        "help/pixel3",
        "help/titanx_1",
    ]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--threshold", "2"], "--threshold 2.0; expected a Spearman value in [-1, 1]"),
        (["--top", "0"], "--top 0; expected at least 1 proxy to list"),
        (["--k", "2"], "--k 2; expected at least 3 samples"),
    ],
)
def test_monotonicity_bad_options_are_named(
    capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    assert main(["monotonicity", "--reference", "fbnet", *extra]) == 2
    assert needle in capsys.readouterr().err


def test_samples_of_one_architecture_twice_are_merged_and_another_space_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a samples file measuring an architecture twice raised an IndexError."""
    df = load_reference("nb201")
    rows = df[df.device == "help/pixel3"].iloc[:8][["space", "arch", "latency_ms"]]
    twice = tmp_path / "twice.csv"
    pd.concat([rows, rows.iloc[:3]]).to_csv(twice, index=False)
    once = tmp_path / "once.csv"
    rows.to_csv(once, index=False)
    argv = ["monotonicity", "--reference", "nb201", "--devices", "help/*", "--json", "--samples"]
    assert main([*argv, str(twice)]) == 0
    doubled = json.loads(capsys.readouterr().out)
    assert main([*argv, str(once)]) == 0
    single = json.loads(capsys.readouterr().out)
    assert doubled["proxies"] == single["proxies"]  # the same 8 samples, exactly
    other = tmp_path / "fb.csv"
    rows.assign(space="fbnet").to_csv(other, index=False)
    assert main([*argv, str(other)]) == 1
    assert "space 'fbnet'; expected 'nb201', the space of the latency table" in (
        capsys.readouterr().err
    )


def test_a_heatmap_write_that_fails_keeps_the_earlier_image(
    tmp_path: Path, table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image is written beside the path and renamed over it: a write that stops halfway
    (here matplotlib's writer raising after a few bytes, as a full disk or an interrupt would)
    leaves the earlier image whole and no stray file."""
    from matplotlib.figure import Figure

    out = tmp_path / "h.png"
    mono.plot_heatmap(mono.rank_correlations(table)[0], out)
    before = out.read_bytes()

    def half_write(self: Figure, fname: object, **kw: object) -> None:
        with open(str(fname), "wb") as fh:
            fh.write(b"\x89PNG")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_write)
    with pytest.raises(KeyboardInterrupt):
        mono.plot_heatmap(mono.rank_correlations(table)[0], out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.png"]


SAMPLES = Path(__file__).parent / "data" / "local_cpu_samples.csv"


def test_adaptation_that_lowers_the_ranking_is_remarked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ten cells measured on this project's CPU (tests/data/README.md), several of them
    degenerate: learning from the table's devices ranks them worse than the proxy alone does,
    and the command says so and names the method that keeps the proxy's ranking."""
    out = tmp_path / "proxy.lbp"
    argv = ["monotonicity", "--reference", "nb201", "--samples", str(SAMPLES)]
    assert main([*argv, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    line = next(ln for ln in printed.splitlines() if ln.startswith("proxy adaptation of"))
    before, after = (float(v) for v in line.split("Spearman ")[1].split(",")[0].split(" -> "))
    assert after < before
    assert (
        f"note: embed+proxy ranked the target worse than the proxy's predictor alone "
        f"(Spearman {before:.3f} -> {after:.3f}, by leave-one-out on the 10 samples, a noisy "
        "score with so few); --adapt-method proxy keeps" in printed
    )
    assert out.exists()
    assert main([*argv, "--adapt-method", "proxy", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["proxy_adaptation"]
    assert report["spearman_after"] == pytest.approx(report["spearman_before"])
    assert "note" not in report


def test_lowered_note_only_when_the_adaptation_ranks_worse() -> None:
    from latbench.commands.monotonicity import _lowered_note

    def report(before: float, after: float, method: str = "meta") -> mono.AdaptationReport:
        return mono.AdaptationReport("p", "t", 10, 10, before, after, 0.0, 0.0, method)

    assert _lowered_note(report(0.80, 0.90)) is None
    assert _lowered_note(report(0.80, 0.80)) is None
    assert _lowered_note(report(0.80, 0.70, "proxy")) is None
    note = _lowered_note(report(0.80, 0.70))
    assert note is not None and "meta ranked the target worse" in note
    assert "0.800 -> 0.700, on the target's other architectures)" in note
