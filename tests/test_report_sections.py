"""The HTML report: sections on real measurements, skipped sections, inputs, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import report_helpers as H
from latbench.cli import main
from latbench.errors import DatasetError, SearchError
from latbench.report import (
    build_report,
    load_predictions,
    load_search,
    pareto_points,
    predictions_section,
    render_report,
)
from latbench.report.sections import pareto_mask


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    return H.full_report(tmp_path_factory)


def test_full_report_has_every_section_with_a_plot(report: tuple[Path, list[Any]]) -> None:
    path, sections = report
    page = path.read_text(encoding="utf-8")
    by_id = {s.id: s for s in sections}
    assert list(by_id) == ["distributions", "predictions", "monotonicity", "pareto", "stability"]
    assert all(s.skipped is None and s.plots == 1 for s in sections), [
        (s.id, s.skipped) for s in sections
    ]
    assert page.count('<img class="plot"') == 5
    for png in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        assert png.startswith("iVBORw0KGgo")  # the PNG signature, base64
    # self-contained: no URL the browser would fetch
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page
    # this machine among the 36 reference devices, over the architectures it measured
    mono = by_id["monotonicity"].summary
    # the column of this machine is named as its distribution group is
    local = "local · onnxruntime"
    assert mono["local"] == [local] == by_id["distributions"].summary["groups"]
    ref = H.reference()
    counts = ref[ref["arch"].isin(H.pick_archs())].groupby("device").size()
    expected = {local, *counts.index[counts >= 10].astype(str)}
    assert set(mono["devices"]) == expected and len(expected) > 20
    assert mono["archs"] == H.N_ARCHS
    assert "Left out" in page  # the sparse reference devices, named
    assert "Closest reference devices to this machine" in page
    # the failed row shows up with its reason
    assert by_id["distributions"].summary["failed"] == 1
    stab = by_id["stability"].summary["rows"][0]
    assert stab["measurements"] == H.N_ARCHS and stab["failed"] == 1
    assert "worker crashed" in stab["most common failure"]
    # a real ridge predictor, evaluated on the real measurements
    metrics = by_id["predictions"].summary["metrics"]
    assert len(metrics) == 1 and metrics[0]["archs"] == H.N_ARCHS
    assert -1.0 <= metrics[0]["Spearman"] <= 1.0
    pareto = by_id["pareto"].summary
    assert (pareto["front"], pareto["points"], pareto["budgets_ms"]) == (4, 6, [1.5])


def test_empty_report_skips_every_section_visibly(tmp_path: Path) -> None:
    out = build_report(tmp_path / "empty.html")
    page = out.read_text(encoding="utf-8")
    assert page.count('class="skipped"') == 5
    assert page.count("Skipped: ") == 5
    assert "latbench collect" in page and "--predictor" in page and "latbench search" in page


def test_skipped_section_when_input_is_malformed() -> None:
    bad = pd.DataFrame({"arch": ["a"], "seconds": [1.0]})
    page, sections = render_report(predictions=bad)
    pred = next(s for s in sections if s.id == "predictions")
    assert pred.skipped is not None and "expected a measured column" in pred.skipped
    assert "Skipped: error:" in page


def test_prediction_columns_aliases_and_metrics() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    section = predictions_section(pd.DataFrame({"y_true": y, "y_pred": y * 1.03}))
    (row,) = section.summary["metrics"]
    assert row["archs"] == 5
    assert row["MAPE %"] == pytest.approx(3.0)
    assert row["within ±10 % (%)"] == 100.0 and row["within ±5 % (%)"] == 100.0
    assert row["Spearman"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("objective", "values", "front"),
    [
        ("accuracy", [0.80, 0.78, 0.86, 0.85, 0.91, 0.60], {"a", "c", "e", "f"}),
        ("error", [0.20, 0.22, 0.14, 0.15, 0.09, 0.40], {"a", "c", "e", "f"}),
    ],
)
def test_pareto_front(objective: str, values: list[float], front: set[str]) -> None:
    lat = [1.0, 1.2, 2.0, 3.0, 4.0, 0.5]
    search = {
        "evaluated": [
            {"arch": a, "latency_ms": t, objective: v}
            for a, t, v in zip("abcdef", lat, values, strict=True)
        ]
    }
    df, lat_key, obj_key, maximize = pareto_points(search)
    assert (lat_key, obj_key, maximize) == ("latency_ms", objective, objective != "error")
    assert set(df.loc[df["on_front"], "arch"]) == front


def test_pareto_mask_ties_keep_the_best() -> None:
    mask = pareto_mask(np.array([1.0, 1.0, 2.0]), np.array([0.5, 0.7, 0.7]), maximize=True)
    assert mask.tolist() == [False, True, False]
    # exact ties (the same latency and objective) are all on the front, as latbench search says
    lat, obj = np.array([1.0, 1.0, 2.0, 2.0, 3.0]), np.array([0.7, 0.7, 0.9, 0.9, 0.8])
    assert pareto_mask(lat, obj, maximize=True).tolist() == [True, True, True, True, False]
    from latbench.nas.pareto import pareto_front

    rng = np.random.default_rng(0)
    for _ in range(50):  # the same front as the search's own, ties included
        lat, obj = rng.integers(0, 5, 12).astype(float), rng.integers(0, 5, 12).astype(float)
        assert set(np.flatnonzero(pareto_mask(lat, obj, True))) == set(pareto_front(lat, obj))


def test_search_without_objective_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"evaluated": [{"arch": "a", "latency_ms": 1.0}]}))
    with pytest.raises(SearchError, match="objective"):
        pareto_points(load_search(p))
    with pytest.raises(SearchError, match="does not exist"):
        load_search(tmp_path / "missing.json")


def test_load_predictions_formats(tmp_path: Path) -> None:
    df = pd.DataFrame({"arch": ["a", "b"], "latency_ms": [1.0, 2.0], "predicted_ms": [1.1, 1.9]})
    df.to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "p.json").write_text(json.dumps({"rows": df.to_dict(orient="records")}))
    for name in ("p.csv", "p.json"):
        got = load_predictions(tmp_path / name)
        assert got["predicted_ms"].tolist() == [1.1, 1.9]
    (tmp_path / "p.txt").write_text("1 2\n")
    with pytest.raises(DatasetError, match="unknown format"):
        load_predictions(tmp_path / "p.txt")


def test_cli_report(
    report: tuple[Path, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = report[0].parent / "latbench.db"
    out = tmp_path / "r.html"
    rc = main(["report", "--db", str(db), "-o", str(out), "--reference", "none"])
    assert rc == 0
    assert f"wrote {out}" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert "Latency distributions" in page and page.count('<img class="plot"') == 2
    assert "fewer than two devices" in page  # no reference table: the heat map says why
    rc = main(["report", "--db", str(tmp_path / "nope.db"), "-o", str(out)])
    assert rc == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("p.json", "{bad", "p.json: cannot read as a json table: Expecting property name"),
        ("p.parquet", "not parquet at all", "p.parquet: cannot read as a parquet table"),
        ("p.csv", 'a,b\n1,2,3,4\n"x', "p.csv: cannot read as a csv table: Error tokenizing"),
        ("p.csv", "", "p.csv: the file is empty; expected a table with a header"),
        ("p.csv", "a,b\n", "no row with a positive measured and predicted latency (0 row(s)"),
        ("p.csv", "a,b\n1,2\n", "p.csv: prediction table has columns ['a', 'b']; expected"),
    ],
)
def test_report_refuses_a_prediction_file_it_cannot_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, expected: str
) -> None:
    """A file named on the command line that shows nothing is an error, before the page is
    written: not a section telling its user to pass the option they passed."""
    (tmp_path / name).write_text(content)
    out = tmp_path / "r.html"
    assert main(["report", "-o", str(out), "--predictions", str(tmp_path / name)]) == 1
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_report_refuses_a_search_or_predictor_with_nothing_to_show(
    report: tuple[Path, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    for content in ("{}", '{"x": 1}'):
        (tmp_path / "s.json").write_text(content)
        assert main(["report", "-o", str(out), "--search", str(tmp_path / "s.json")]) == 1
        assert "s.json: search result has no candidates with a latency" in (capsys.readouterr().err)
    fb = tmp_path / "fb.lbp"
    fit = ["predictor", "fit", "--reference", "fbnet", "--device", "pixel3", "--model", "ridge"]
    assert main([*fit, "--train-size", "50", "-o", str(fb)]) == 0
    assert main(["report", "-o", str(out), "--predictor", str(fb)]) == 1
    assert "has nothing to evaluate: no store with measurements (pass --db)" in (
        capsys.readouterr().err
    )
    db = report[0].parent / "latbench.db"
    assert main(["report", "--db", str(db), "-o", str(out), "--predictor", str(fb)]) == 1
    err = capsys.readouterr().err
    assert (
        "it predicts space 'fbnet'; the store's successful measurements are of space(s): nb201"
        in err
    )
    # a --local-device the store never measured would leave the heat map without this machine
    assert main(["report", "--db", str(db), "-o", str(out), "--local-device", "phone9"]) == 2
    assert "--local-device 'phone9': not a device the store measured; expected one of:" in (
        capsys.readouterr().err
    )
    assert not out.exists()
