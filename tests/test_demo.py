"""``latbench demo`` end to end on this machine's CPU, small: real measurements, real search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import latbench.datasets as lbd
from latbench.demo import MARGIN_QUANTILE, MAX_MARGIN, DemoOptions, run_demo
from latbench.errors import ConfigError
from latbench.predictors import load
from latbench.profilers.harness import HarnessSettings

QUICK = HarnessSettings(
    warmup_runs=2, warmup_time_s=0.02, min_runs=5, min_time_s=0.05, max_time_s=0.3
)


def test_demo_searches_under_a_margin_from_the_adapted_predictors_error(tmp_path: Path) -> None:
    o = DemoOptions(
        out_dir=tmp_path / "demo",
        sample=12,
        train=8,
        shots=5,
        evaluations=150,
        verify=2,
        progress=False,
        harness=QUICK,
    )
    s = run_demo(o, say=lambda _msg: None)
    assert s.measured == 12 and s.failed == 0
    assert s.base_devices == 36 and (o.out_dir / "report.html").is_file()
    # the margin is the predictor's own under-prediction tail on the 12 measured archs
    adapted = load(o.out_dir / "adapted.lbp")

    rows = lbd.open(o.out_dir / "latbench.db").to_pandas(collection="demo-nb201-local")
    rows = rows[rows["status"] == "ok"].drop_duplicates("arch")
    under = np.maximum(0.0, rows["latency_ms"] / adapted.predict(rows["arch"].tolist()) - 1.0)
    assert s.margin == min(MAX_MARGIN, float(np.quantile(under, MARGIN_QUANTILE)))
    # every pick was predicted inside the margin, and measured against the budget
    assert 1 <= len(s.verified) <= 2
    for v in s.verified:
        assert v["predicted_latency_ms"] <= (1 - s.margin) * s.budget_ms + 1e-9
        assert v["met_budget"] == (v["measured_latency_ms"] <= s.budget_ms)
    doc = json.loads((o.out_dir / "search.json").read_text())
    assert doc["demo_margin"] == s.margin and doc["demo_budget_ms"] == s.budget_ms
    assert "margin" in s.lines()[3]
    # a second run resumes: nothing is measured again, the same picks are reported
    again = run_demo(o, say=lambda _msg: None)
    assert again.verified == s.verified and again.steps_s["collect"] < s.steps_s["collect"]


def test_demo_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "taken"
    f.write_text("not a folder\n")
    with pytest.raises(ConfigError, match="is a file; expected a folder"):
        run_demo(DemoOptions(out_dir=f))
    assert f.read_text() == "not a folder\n"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--sample", "5"], "--sample 5; expected an integer in [8, 15625] (5 to fit"),
        (["--sample", "10", "--train", "8"], "--train 8; expected an integer in [5, 7]"),
        (["--shots", "1"], "--shots 1; expected an integer >= 3"),
        (["--evaluations", "0"], "--evaluations 0; expected an integer >= 1"),
        (["--verify", "-1"], "--verify -1; expected an integer >= 0"),
    ],
)
def test_options_a_later_step_would_fail_on_are_refused_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    """Before, --shots 1 measured for minutes and then failed in the adaptation step."""
    from latbench.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--quiet", *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()
