"""The outlier screen of ``auto``: samples far off the best proxy's robust line are left out."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import HELP_SOURCES, draw_samples, long_sources, meta_base, table_fixture
from latbench.cli import main
from latbench.predictors import load, save
from latbench.predictors.adapt import adapt
from latbench.predictors.fewshot import (
    SCREEN_GROSS_FACTOR,
    SCREEN_GROSS_MIN_SAMPLES,
    SCREEN_MIN_SAMPLES,
    fit_method,
    screen_samples,
)
from latbench.predictors.metrics import spearman
from lbp_helpers import rewrite_lbp

TARGET = "help/titanx_1"

table = table_fixture(2000)


@pytest.fixture(scope="module")
def base(table: pd.DataFrame):
    return meta_base(long_sources(table, HELP_SOURCES))


def _line(k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """K samples whose target is a noisy line of source 0 (sources 1, 2 are unrelated)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(k, 3))
    t = 0.3 + 0.8 * p[:, 0] + rng.normal(scale=0.02, size=k)
    return p, t


def test_a_wild_sample_is_left_out() -> None:
    p, t = _line(20)
    t[7] += 1.0  # a measurement 2.7x too slow
    keep = screen_samples(p, t)
    assert not keep[7] and keep.sum() == 19


def test_clean_samples_are_all_kept() -> None:
    for seed in range(5):
        p, t = _line(20, seed)
        assert screen_samples(p, t).all()


def test_too_few_samples_are_never_screened() -> None:
    p, t = _line(SCREEN_GROSS_MIN_SAMPLES - 1)
    t[3] += 3.0  # 20x too slow: still kept below the gross rule's minimum
    assert screen_samples(p, t).all()
    p, t = _line(SCREEN_MIN_SAMPLES - 1)
    t[3] += 1.0  # 2.7x: far in robust units, but under the gross factor of 3
    assert screen_samples(p, t).all()
    p, t = _line(SCREEN_MIN_SAMPLES)
    t[3] += 1.0
    assert not screen_samples(p, t)[3]


def test_from_ten_samples_gross_outliers_are_left_out() -> None:
    # the NB201 Pixel 3 case: a cell whose input never reaches the output measures at a few
    # microseconds, 30x below the line the other samples are on
    p, t = _line(SCREEN_GROSS_MIN_SAMPLES)
    t[4] -= np.log(30.0)
    keep = screen_samples(p, t)
    assert not keep[4] and keep.sum() == SCREEN_GROSS_MIN_SAMPLES - 1
    # the threshold is a ratio to the line, not a multiple of the residuals' spread
    p, t = _line(12)
    t[4] += np.log(SCREEN_GROSS_FACTOR) * 0.9
    assert screen_samples(p, t).all()
    t[4] += np.log(SCREEN_GROSS_FACTOR) * 0.2
    assert not screen_samples(p, t)[4]
    # at most a fifth (2 of 10), the wildest first
    p, t = _line(10)
    t[[1, 5, 8]] -= np.log([5.0, 40.0, 10.0])
    assert list(np.flatnonzero(~screen_samples(p, t))) == [5, 8]


def test_at_most_a_fifth_is_left_out() -> None:
    p, t = _line(20)
    t[:8] += np.linspace(1.0, 2.0, 8)  # 8 wild samples: only the 4 wildest go
    keep = screen_samples(p, t)
    assert (~keep).sum() == 4 and not keep[4:8].any()


def test_flat_or_empty_sources_keep_everything() -> None:
    p, t = _line(20)
    t[2] += 1.0
    assert screen_samples(np.zeros((20, 2)), t).all()
    assert screen_samples(p[:, :0], t).all()


def test_fit_method_auto_reports_the_left_out_samples() -> None:
    p, t = _line(20)
    t[5] -= 1.0
    pop = np.random.default_rng(1).normal(size=(50, 3))
    fit, _ = fit_method("auto", p, t, pop, np.zeros((20, 0)))
    assert fit.dropped == (5,)
    # the fit follows the 19 others: the wild sample is predicted on the line, not at its value
    assert abs(fit.predict_log(p[5:6])[0] - (0.3 + 0.8 * p[5, 0])) < 0.1
    kept, _ = fit_method("auto", p, t, pop, np.zeros((20, 0)), screen=False)
    assert kept.dropped == ()
    # a named method always fits every sample
    soft, _ = fit_method("soft", p, t, pop, np.zeros((20, 0)))
    assert soft.dropped == ()


def test_adapt_leaves_out_a_corrupted_measurement(table, base, tmp_path: Path) -> None:
    """Real reference latencies, one of 20 measured 3x too slow (a hiccup on the device)."""
    q = table.iloc[900:1900]
    qa, qy = list(q["arch"]), q[TARGET].to_numpy()
    archs, lat = draw_samples(table, TARGET, 20, 0)
    clean = spearman(qy, adapt(base, archs, lat, device="x").predict(qa))
    lat[4] *= 3.0
    screened = adapt(base, archs, lat, device="x")
    assert archs[4] in screened.outliers_
    assert screened.outliers_[archs[4]] == pytest.approx(lat[4])
    assert len(screened.outliers_) <= 4
    kept = adapt(base, archs, lat, device="x", screen_outliers=False)
    assert kept.outliers_ == {}
    rho_s = spearman(qy, screened.predict(qa))
    rho_k = spearman(qy, kept.predict(qa))
    assert rho_s >= clean - 0.005
    assert rho_s > rho_k
    assert screened.summary()["outliers"] == screened.outliers_
    path = tmp_path / "x.lbp"
    save(screened, path)
    assert load(path).outliers_ == screened.outliers_


def test_cli_lists_the_outliers_and_keeps_them_on_request(
    table, base, tmp_path: Path, capsys
) -> None:
    archs, lat = draw_samples(table, TARGET, 20, 0)
    lat[4] *= 3.0
    samples = tmp_path / "s.csv"
    with samples.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["space", "arch", "latency_ms"])
        w.writerows(["nb201", a, f"{v:.6g}"] for a, v in zip(archs, lat, strict=True))
    save(base, tmp_path / "base.lbp")
    out = tmp_path / "a.lbp"
    argv = ["adapt", str(tmp_path / "base.lbp"), "--samples", str(samples), "-o", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "as measurement outliers" in text and archs[4] in text
    assert main([*argv, "--keep-outliers"]) == 0
    assert "as measurement outliers" not in capsys.readouterr().out
    assert load(out).outliers_ == {}


def test_a_file_written_before_the_screen_loads_with_no_outliers(
    table, base, tmp_path: Path
) -> None:
    archs, lat = draw_samples(table, TARGET, 20, 0)
    lat[4] *= 3.0
    adapted = adapt(base, archs, lat, device="x")
    save(adapted, tmp_path / "new.lbp")

    def no_outliers(m: dict) -> None:
        del m["state"]["outliers"]

    rewrite_lbp(tmp_path / "new.lbp", tmp_path / "old.lbp", no_outliers)
    loaded = load(tmp_path / "old.lbp")
    assert loaded.outliers_ == {}
    np.testing.assert_allclose(loaded.predict(archs), adapted.predict(archs))
