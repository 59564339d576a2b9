"""The report at its edges: names matplotlib would read as formulas, rows without a usable
latency, shares in percent, input files that are no table or no JSON, failures without raw
samples, and a write that fails midway (the last report is kept)."""

from __future__ import annotations

import html
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import report_helpers as H
from latbench.errors import ConfigError, DatasetError, SearchError
from latbench.report import (
    build_report,
    distributions_section,
    load_predictions,
    load_search,
    pareto_section,
    predictions_section,
    render_report,
    stability_section,
)


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The rows of the real store (12 onnxruntime measurements and one failed row)."""
    return H.store_frame(H.real_store(tmp_path_factory))


def test_a_dollar_sign_in_a_name_is_drawn_as_written(frame: pd.DataFrame) -> None:
    """Matplotlib reads ``$...$`` as mathtext: ``$$`` failed the whole page (ValueError)."""
    device = "$$ gpu"
    rows = frame.assign(device=device)
    page, sections = render_report(
        measurements=rows,
        predictions=pd.DataFrame(
            {"latency_ms": [1.0, 2.0, 3.0], "predicted_ms": [1.1, 2.1, 2.9], "predictor": device}
        ),
        search={
            "objective": {"name": device},
            "history": [{"arch": "a", "latency_ms": 1.0, "accuracy": 0.5}],
        },
    )
    by_id = {s.id: s for s in sections}
    for sid in ("distributions", "predictions", "pareto", "stability"):
        assert by_id[sid].skipped is None and by_id[sid].plots == 1, (sid, by_id[sid].skipped)
    assert by_id["distributions"].summary["groups"] == [f"{device} · onnxruntime"]
    assert html.escape(device) in page


def test_ok_rows_without_a_usable_latency_are_counted_not_hidden(frame: pd.DataFrame) -> None:
    """Rows marked ok whose latency is NaN, infinite, zero or negative were dropped silently."""
    rows = frame.copy()
    ok = rows.index[rows["status"] == "ok"]
    rows.loc[ok[:4], "latency_ms"] = [np.nan, np.inf, 0.0, -1.0]
    section = distributions_section(rows)
    assert section.summary["invalid"] == 4 and section.summary["failed"] == 1
    assert section.summary["rows"][0]["archs"] == len(ok) - 4
    assert "4 measurement(s) marked ok left out" in section.body
    # none usable at all: the reason says so, not "all failed"
    rows.loc[ok, "latency_ms"] = np.nan
    skipped = distributions_section(rows)
    assert skipped.skipped is not None
    assert f"none of the {len(rows)} measurement(s) is usable (1 failed" in skipped.skipped


def test_prediction_rows_left_out_are_counted() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    p = np.array([1.0, np.nan, 3.0, -4.0, 5.0, np.inf])
    section = predictions_section(pd.DataFrame({"latency_ms": y, "predicted_ms": p}))
    assert section.summary["left_out"] == 3
    assert section.summary["metrics"][0]["archs"] == 3
    assert "3 row(s) left out" in section.body


def test_shares_within_a_tolerance_are_in_percent() -> None:
    """The ±5/±10 % shares sat as fractions (0.6) next to MAPE in percent: 0.6 read as 0.6 %."""
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    p = y * np.array([1.0, 1.08, 0.93, 1.5, 0.7])  # within 10 %: 3 of 5; within 5 %: 1 of 5
    (row,) = predictions_section(pd.DataFrame({"y_true": y, "y_pred": p})).summary["metrics"]
    assert row["within ±10 % (%)"] == pytest.approx(60.0)
    assert row["within ±5 % (%)"] == pytest.approx(20.0)
    assert not any("acc" in k and "%" not in k for k in row)


def test_failures_without_a_samples_column_still_show_their_reason() -> None:
    """A table without ``samples_ms`` lost its failures: the section said "no raw samples"."""
    rows = pd.DataFrame(
        {
            "space": "nb201",
            "arch": ["a", "b"],
            "device": "pixel",
            "latency_ms": [np.nan, np.nan],
            "status": "failed",
            "error": ["<b>out of memory</b>", "<b>out of memory</b>"],
        }
    )
    section = stability_section(rows)
    assert section.skipped is None
    (row,) = section.summary["rows"]
    assert row["failed"] == 2 and row["most common failure"] == "<b>out of memory</b>"
    assert "&lt;b&gt;out of memory&lt;/b&gt;" in section.body and "<b>out" not in section.body


def test_a_json_prediction_list_of_non_records_is_a_clear_error(tmp_path: Path) -> None:
    """``[1, 2]`` was a TypeError traceback from pandas."""
    path = tmp_path / "p.json"
    path.write_text("[1, 2]")
    with pytest.raises(DatasetError, match=r"record 0 is 1; expected an object"):
        load_predictions(path)


def test_a_search_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """A binary file was a UnicodeDecodeError traceback."""
    path = tmp_path / "s.json"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SearchError, match=r"s\.json: not a readable JSON file"):
        load_search(path)


def test_a_directory_as_the_report_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        build_report(tmp_path)


def test_a_failed_write_keeps_the_previous_report(tmp_path: Path) -> None:
    """A write cut short (file size limit: the same path as a full disk) left half a page in
    place of the last report."""
    out = tmp_path / "report.html"
    out.write_text("previous report")
    search = json.dumps({"history": [{"arch": "a", "latency_ms": 1.0, "accuracy": 0.5}]})
    (tmp_path / "s.json").write_text(search)

    def limit() -> None:  # 4 KiB; the page with one plot is ~30 KiB. EFBIG instead of SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

    argv = ["report", "--search", str(tmp_path / "s.json"), "-o", str(out)]
    code = f"from latbench.cli import main; raise SystemExit(main({argv!r}))"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert r.returncode == 1, r.stderr
    assert "cannot write the report" in r.stderr and "report.html" in r.stderr
    assert "Traceback" not in r.stderr
    assert out.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "s.json"]


def test_pareto_axis_names_with_a_dollar_sign() -> None:
    section = pareto_section(
        {
            "pareto_x": "latency_ms[$$]",
            "history": [
                {"arch": "a", "latency_ms[$$]": 1.0, "accuracy": 0.5},
                {"arch": "b", "latency_ms[$$]": 2.0, "accuracy": 0.7},
            ],
        }
    )
    assert section.skipped is None and section.summary["front"] == 2


def test_another_devices_predictor_is_named_so_in_the_page(
    frame: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A predictor of help/gold_6240 scored on this machine's measurements: the log says so,
    and so do the legend and the table of the page, where the reader looks."""
    from latbench import predictors
    from latbench.report import predictions_from_predictor

    ref = H.reference()
    cpu = ref[ref["device"] == "help/gold_6240"].sample(300, random_state=1)
    p = predictors.create("ridge").fit(
        list(cpu["arch"]), cpu["latency_ms"].to_numpy(), space="nb201", devices=list(cpu["device"])
    )
    path = tmp_path / "gold.lbp"
    predictors.save(p, path)
    pred = predictions_from_predictor(path, frame)
    assert pred is not None
    assert set(pred["predictor"]) == {"ridge (gold.lbp, fitted on help/gold_6240)"}
    assert "was fitted on help/gold_6240; scoring it on the measurements of local" in caplog.text
    section = predictions_section(pred)
    assert "fitted on help/gold_6240" in section.body
    # a predictor of the measured device keeps its short name
    own = predictors.create("ridge").fit(
        list(cpu["arch"]), cpu["latency_ms"].to_numpy(), space="nb201", devices=["local"] * 300
    )
    predictors.save(own, tmp_path / "own.lbp")
    mine = predictions_from_predictor(tmp_path / "own.lbp", frame)
    assert mine is not None and set(mine["predictor"]) == {"ridge (own.lbp)"}


def test_a_searchs_predictor_records_read_as_text() -> None:
    from latbench.report.sections import _predictor_text

    record = {
        "label": "cpu",
        "path": "/tmp/x/cpu.lbp",
        "abs_path": "/tmp/x/cpu.lbp",
        "sha256": "ab" * 32,
        "model": "ridge",
        "devices": ["help/silver_4114"],
    }
    assert _predictor_text(record) == "cpu (cpu.lbp: ridge of help/silver_4114)"
    many = {"label": "base", "model": "meta", "devices": [f"d{i}" for i in range(5)]}
    assert _predictor_text(many) == "base (meta of d0, d1, d2 and 2 more)"
    assert _predictor_text({"label": "bare"}) == "bare"
    assert _predictor_text("old.lbp") == "old.lbp"  # a plain name, as written
    page = pareto_section({**H.SEARCH_RESULT, "predictors": [record]}).body
    assert "predictors: cpu (cpu.lbp: ridge of help/silver_4114)" in page
    assert "sha256" not in page and "abs_path" not in page
