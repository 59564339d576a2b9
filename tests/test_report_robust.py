"""The report on what real stores and search results hold.

Configurations the store tells apart stay apart (thread counts, statistics, two runs of one
configuration); the stability verdict is the record's own; the statistic of ``latency_ms`` is
named as stored; a real ``latbench search -o`` file shows its budget, objective and strategy;
candidate values that are not finite numbers are left out with a note; table numbers never
turn into ``1e+03``.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import report_helpers as H
from latbench.cli import main
from latbench.errors import SearchError
from latbench.report import (
    distributions_section,
    load_search,
    monotonicity_section,
    pareto_points,
    pareto_section,
    predictions_from_predictor,
    predictions_section,
    render_report,
    stability_section,
)
from latbench.report.html import df_table, format_number
from latbench.report.sections import normalize_measurements, row_verdict


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return H.config_store(tmp_path_factory)


@pytest.fixture(scope="module")
def frame(config: tuple[Path, dict[str, Any]]) -> pd.DataFrame:
    return H.store_frame(config[0])


@pytest.fixture(scope="module")
def sections(frame: pd.DataFrame) -> dict[str, Any]:
    """Every section of the config store's report with the reference devices, by id."""
    return {s.id: s for s in render_report(measurements=frame, reference=H.reference())[1]}


def _by_group(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["device · configuration"]: r for r in rows}


# ---- groups: one per configuration ---------------------------------------------------------
def test_groups_keep_thread_counts_statistics_and_runs_apart(
    frame: pd.DataFrame, sections: dict[str, Any]
) -> None:
    by_id = sections
    expected = sorted(H.CONFIG_GROUPS.values())
    dist = by_id["distributions"].summary
    assert dist["groups"] == expected
    ok = frame[frame["status"] == "ok"]
    rows = _by_group(dist["rows"])
    for coll, label in H.CONFIG_GROUPS.items():
        lat = ok.loc[ok["collection"] == coll, "latency_ms"]
        assert len(lat) == (H.N_ARCHS if coll == "test" else H.CONFIG_N)
        # the numbers of one configuration, not of threads=1 and threads=2 taken together
        assert rows[label]["archs"] == len(lat)
        assert rows[label]["median ms"] == pytest.approx(float(np.median(lat)))
        assert rows[label]["min ms"] == pytest.approx(float(lat.min()))
        assert rows[label]["max ms"] == pytest.approx(float(lat.max()))
    stab = _by_group(by_id["stability"].summary["rows"])
    assert sorted(stab) == expected
    assert {g: r["measurements"] for g, r in stab.items()} == {
        label: H.N_ARCHS if coll == "test" else H.CONFIG_N
        for coll, label in H.CONFIG_GROUPS.items()
    }
    assert stab[H.CONFIG_GROUPS["test"]]["failed"] == 1
    # the heat map has one column per group, named as the distribution rows are
    mono = by_id["monotonicity"].summary
    assert mono["local"] == expected and set(expected) <= set(mono["devices"])


def test_predictor_is_evaluated_per_group(
    frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> None:
    predictor = H.fitted_predictor(tmp_path_factory.mktemp("pred") / "ridge.lbp", frame)
    table = predictions_from_predictor(predictor, frame)
    assert table is not None
    assert sorted(table["group"].unique()) == sorted(H.CONFIG_GROUPS.values())
    assert set(table["device"]) == {H.LOCAL}
    ok = frame[frame["status"] == "ok"]
    for coll, label in H.CONFIG_GROUPS.items():
        got = table[table["group"] == label].set_index("arch")["latency_ms"].sort_index()
        want = ok[ok["collection"] == coll].set_index("arch")["latency_ms"].sort_index()
        assert got.to_dict() == pytest.approx(want.to_dict())
    metrics = predictions_section(table).summary["metrics"]
    assert sorted(r["predictor"].split(" · ", 1)[1] for r in metrics) == sorted(
        H.CONFIG_GROUPS.values()
    )


def test_a_single_configuration_keeps_a_short_label(frame: pd.DataFrame) -> None:
    """Threads, batch, statistic and collection are named only where they vary."""
    test_rows = frame[frame["collection"] == "test"]
    assert distributions_section(test_rows).summary["groups"] == ["local · onnxruntime"]
    t1_t2 = frame[frame["collection"].isin(["test", "t2"])]
    assert distributions_section(t1_t2).summary["groups"] == [
        "local · onnxruntime · t1",
        "local · onnxruntime · t2",
    ]


# ---- the statistic of latency_ms --------------------------------------------------------------
def test_the_stored_statistic_is_named(frame: pd.DataFrame, sections: dict[str, Any]) -> None:
    mins = frame[frame["collection"] == "min"]
    # a collection with statistic = "min" stores the fastest sample, not the median
    assert (mins["latency_ms"] == mins["min_ms"]).all()
    assert all(
        lat < np.median(xs) for lat, xs in zip(mins["latency_ms"], mins["samples_ms"], strict=True)
    )
    section = distributions_section(mins)
    (row,) = section.summary["rows"]
    assert (row["device · configuration"], row["statistic"]) == ("local · onnxruntime", "min")
    assert "the min of the raw samples of its measurement" in section.body
    assert "median latency" not in section.body
    # two statistics in one store: two groups, and the note says each group has its own
    both = sections["distributions"]
    assert "the statistic of each group (median, min)" in both.body
    assert _by_group(both.summary["rows"])[H.CONFIG_GROUPS["min"]]["statistic"] == "min"
    mono = html.unescape(sections["monotonicity"].body)
    assert "This machine's columns use different statistics of each measurement's samples " in (
        mono
    )
    assert "(median, min); their names say which." in mono
    ref = H.reference()
    ref = ref[ref["arch"].isin(H.pick_archs())]  # the heat map of few archs draws from all
    mono = html.unescape(monotonicity_section(mins, ref, [H.LOCAL]).body)
    assert "This machine's latency is the min of each measurement's samples" in mono


def test_normalized_without_a_reference_is_a_median(tmp_path: Path) -> None:
    """A run asked for ``normalized`` without a reference model stores the median (and says
    ``normalized`` in its settings): the report names what was stored."""
    from latbench.datasets import open as open_store

    ((row, m),) = H.measure_rows(
        tmp_path,
        H.pick_archs()[:1],
        collection="norm",
        settings=H.harness_settings(statistic="normalized"),
    )
    assert m.statistic == "median"
    assert json.loads(row["harness"])["settings"]["statistic"] == "normalized"
    with open_store(tmp_path / "s.db") as store:
        store.add_many([row])
        rows = store.to_pandas()
    assert normalize_measurements(rows)["statistic"].tolist() == ["median"]


# ---- stability: the record's own verdict ---------------------------------------------------
def test_unstable_share_is_the_records_own_verdict(
    config: tuple[Path, dict[str, Any]], frame: pd.DataFrame, sections: dict[str, Any]
) -> None:
    _, records = config
    section = sections["stability"]
    verdicts = section.summary["verdicts"]
    few = frame[frame["collection"] == "few"]
    expected = []
    for idx, arch in zip(few.index, few["arch"], strict=True):
        m = records[("few", arch)]
        assert m.runs == 6  # the collection asked for 6; the report used to ask for 10
        # the store keeps the environment before and after the measurement (schema 2)
        own = m.verdict()
        assert (verdicts[idx]["stable"], verdicts[idx]["reasons"]) == (
            own["stable"],
            own["reasons"],
        )
        assert not any(r.startswith("too few runs") for r in verdicts[idx]["reasons"])
        expected.append(not own["stable"])
    row = _by_group(section.summary["rows"])[H.CONFIG_GROUPS["few"]]
    assert row["unstable %"] == pytest.approx(100.0 * float(np.mean(expected)))
    assert "fewer runs than its collection's <code>min_runs</code>" in section.body
    assert "fewer than 10 runs" not in section.body
    sampled = int((frame["status"] == "ok").sum())  # the failed row has no samples to judge
    assert section.summary["env_after"] == sampled and "are not made here" not in section.body


def test_rows_with_the_environment_after_get_the_full_verdict(
    config: tuple[Path, dict[str, Any]], frame: pd.DataFrame
) -> None:
    _, records = config
    few = frame[frame["collection"] == "few"].copy()
    recs = [records[("few", a)] for a in few["arch"]]
    few["env_after"] = [m.env_after for m in recs]
    section = stability_section(few)
    assert section.summary["env_after"] == len(recs)
    for idx, m in zip(few.index, recs, strict=True):
        assert section.summary["verdicts"][idx]["reasons"] == m.verdict()["reasons"]
    # the CPU slowed down during the measurement: the record says unstable, so does the report
    m = recs[0]
    slowed = m.with_(
        env={**m.env, "cpu_cur_freq_khz": {"0": 3_000_000}},
        env_after={**m.env_after, "cpu_cur_freq_khz": {"0": 2_000_000}},
    )
    assert any(r.startswith("CPU frequency changed") for r in slowed.verdict()["reasons"])
    one = few.iloc[:1].copy()
    one["env"] = [json.dumps(slowed.env, default=dict)]  # as the store keeps it
    one["env_after"] = [slowed.env_after]
    ((verdict),) = stability_section(one).summary["verdicts"].values()
    assert verdict["stable"] is False and verdict["reasons"] == slowed.verdict()["reasons"]
    assert "CPU frequency changed" in stability_section(one).body


def test_samples_that_are_not_finite_are_not_judged() -> None:
    v = row_verdict([1.0] * 11 + [math.nan])
    assert (v["stable"], v["judged"]) == (False, False)
    assert v["reasons"] == ["invalid sample: samples_ms[11] = nan"]
    assert row_verdict([1.0, -1.0, 1.0, 1.0])["reasons"] == ["invalid sample: samples_ms[1] = -1.0"]
    # a harness that is not JSON, or with an unreadable min_runs, is judged with the defaults
    # or not at all, never an exception
    assert row_verdict([1.0] * 12, harness="{not json")["stable"] is True
    bad = row_verdict([1.0] * 12, harness={"settings": {"min_runs": "many"}})
    assert bad["judged"] is False and bad["reasons"][0].startswith("cannot judge")


# ---- the Pareto front of a real `latbench search -o` ---------------------------------------
BUDGET_MS = 10.0


@pytest.fixture(scope="module")
def search_file(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("search")
    predictor = H.fitted_predictor(base / "ridge.lbp", frame)
    out = base / "sr.json"
    argv = ["search", "--space", "nb201", "--predictor", str(predictor)]
    argv += ["--budget-ms", str(BUDGET_MS), "--budget-margin", "10", "--evaluations", "150"]
    assert main([*argv, "-o", str(out), "--no-plot", "-q"]) == 0
    return out


def test_pareto_reads_latbench_search_output(search_file: Path) -> None:
    doc = load_search(search_file)
    # the format: budgets under constraints, objective and strategy as objects
    assert "budget_ms" not in doc and doc["constraints"][0]["budget_ms"] == BUDGET_MS
    assert doc["objective"]["name"] == "params" and doc["strategy"]["name"] == "evolution"
    section = pareto_section(doc)
    s = section.summary
    assert s["objective"] == "params" and s["budgets_ms"] == [BUDGET_MS]
    assert "strategy: evolution" in s["info"] and "space: nb201" in s["info"]
    name = doc["pareto_x"]
    assert f"constraint: {name} <= 9 ms (budget 10 ms less a margin)" in s["info"]
    assert f"params against {name}: candidates and Pareto front" in section.body
    assert "<th>params</th>" in section.body and "<th>objective</th>" not in section.body
    df, lat_key, obj_key, maximize = pareto_points(doc)
    assert (lat_key, obj_key, maximize) == (name, "objective", True)
    assert set(df.loc[df["on_front"], "arch"]) == {c["arch"] for c in doc["pareto"]}
    # without the history (--no-history) the front and the returned architectures remain
    short = {k: v for k, v in doc.items() if k != "history"}
    df2, *_ = pareto_points(short)
    assert set(df2["arch"]) == {c["arch"] for c in doc["pareto"] + doc["best"]}


def test_cli_report_of_a_search(search_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "-o", str(out), "--search", str(search_file)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "<li>strategy: evolution</li>" in page and "budget 10 ms less a margin" in page


@pytest.mark.parametrize("bad", ["true", "false", "NaN", "Infinity", "-Infinity", '"1.5"', "[]"])
@pytest.mark.parametrize("where", ["latency_ms", "accuracy"])
def test_pareto_leaves_out_values_that_are_not_finite_numbers(
    tmp_path: Path, bad: str, where: str
) -> None:
    third = {"latency_ms": "1.5", "accuracy": "0.7", where: bad}
    p = tmp_path / "s.json"
    p.write_text(
        '{"candidates": [{"arch": "a", "latency_ms": 1.0, "accuracy": 0.5}, '
        '{"arch": "b", "latency_ms": 2.0, "accuracy": 0.6}, '
        f'{{"arch": "c", "latency_ms": {third["latency_ms"]}, "accuracy": {third["accuracy"]}}}]}}'
    )
    search = load_search(p)
    df, *_ = pareto_points(search)
    assert sorted(df["arch"]) == ["a", "b"]
    assert set(df.loc[df["on_front"], "arch"]) == {"a", "b"}
    section = pareto_section(search)
    assert section.summary["left_out"] == {"missing": 0, "invalid": 1}
    assert "1 candidate(s) left out" in section.body and "not a finite number" in section.body


def test_pareto_with_no_usable_candidate_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "s.json"
    p.write_text(
        '{"candidates": [{"arch": "a", "latency_ms": 1.0, "accuracy": NaN},'
        ' {"arch": "b", "latency_ms": true, "accuracy": 0.5}, {"arch": "c", "latency_ms": 2}]}'
    )
    with pytest.raises(SearchError, match="no candidate with a finite number"):
        pareto_points(load_search(p))
    out = tmp_path / "r.html"
    assert main(["report", "-o", str(out), "--search", str(p)]) == 1
    err = capsys.readouterr().err
    assert "s.json: search result has no candidate with a finite number for both" in err
    assert not out.exists()


# ---- numbers in tables ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (999.7, 3, "1,000"),
        (9999.6, 4, "10,000"),
        (1234.5, 4, "1,234"),
        (12345.6, 4, "12,346"),
        (1234.5, 6, "1,234.5"),
        (-999.7, 3, "-1,000"),
        (999.4, 3, "999"),
        (99.96, 3, "100"),
        (0.75351, 4, "0.7535"),
        (1.5e-5, 3, "1.5e-05"),
        (0.0, 3, "0"),
        (math.nan, 3, "–"),
        (math.inf, 3, "–"),
    ],
)
def test_numbers_are_formatted_from_their_rounded_value(
    value: float, digits: int, text: str
) -> None:
    assert format_number(value, digits) == text


def test_table_cells_never_show_an_exponent_for_large_values() -> None:
    table = pd.DataFrame(
        {"RMSE ms": [999.7, 9999.6, 1234.5], "archs": [15625, 3, 1000], "ok": [True, False, True]}
    )
    page = df_table(table, digits=3)
    assert "e+" not in page
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    assert cells == ["1,000", "15,625", "True", "10,000", "3", "False", "1,234", "1,000", "True"]
