"""Choosing what to measure on a new device: the Bayesian design of ``choose_samples``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import EMBED_SOURCES, long_fixture, meta_base, prior_base, table_fixture
from latbench.cli import main
from latbench.errors import ArchError, PredictorError
from latbench.predictors import load, save
from latbench.predictors.adapt import (
    DESIGN_NOISE,
    DESIGN_TAU,
    choose_samples,
    source_log_predictions,
    stored_prior,
)
from latbench.predictors.fewshot_embed import embed_features
from latbench.spaces import get_space

table = table_fixture(2000)
long = long_fixture(EMBED_SOURCES)


@pytest.fixture(scope="module")
def base(long: pd.DataFrame):
    return prior_base(long)


def _posterior_logdet(base, archs: list[str], population: list[str]) -> float:
    """log det of the prior's covariance of theta after measuring ``archs`` (the D-criterion),
    written out here from the prior's own arrays, independently of the picking code."""
    prior = stored_prior(base)
    assert prior is not None

    def z(a: list[str]) -> np.ndarray:
        p = source_log_predictions(base, a, list(prior.sources))
        return prior.embed(p, embed_features("nb201", a))[:, 1:]

    centre = z(population).mean(axis=0)
    x = z(archs) - centre
    s0 = DESIGN_TAU * prior.cov[1:, 1:] + np.cov(prior.coef[:, 1:].T)
    precision = np.linalg.inv(s0) + x.T @ x / DESIGN_NOISE
    sign, logdet = np.linalg.slogdet(np.linalg.inv(precision))
    assert sign > 0
    return float(logdet)


def _score(base, archs: list[str]) -> np.ndarray:
    """The base's predicted latency as choose_samples ranks the candidates (mean z-score)."""
    p = source_log_predictions(base, archs, base.devices_)
    return ((p - p.mean(axis=0)) / p.std(axis=0)).mean(axis=1)


def test_the_design_leaves_less_uncertainty_than_spread_or_random_picks(base) -> None:
    cands = get_space("nb201").sample(400, seed=3)
    design = choose_samples(base, 10, candidates=cands)
    spread = choose_samples(base, 10, candidates=cands, strategy="spread")
    assert len(design) == len(set(design)) == 10 and set(design) <= set(cands)
    assert set(design) != set(spread)
    d = _posterior_logdet(base, design, cands)
    assert d < _posterior_logdet(base, spread, cands)
    rng = np.random.default_rng(0)
    randoms = [
        _posterior_logdet(base, list(rng.choice(cands, 10, replace=False)), cands) for _ in range(5)
    ]
    assert d < min(randoms)
    # inside the central 80 % of the predicted latency: the extremes are left out
    s = dict(zip(cands, _score(base, cands), strict=True))
    lo, hi = np.quantile(list(s.values()), [0.1, 0.9])
    assert all(lo <= s[a] <= hi for a in design)
    # the spread keeps both extremes
    assert min(s[a] for a in spread) == min(s.values())
    assert max(s[a] for a in spread) == max(s.values())
    # fixed before anything is measured: the same call picks the same architectures
    assert choose_samples(base, 10, candidates=cands) == design


def test_architectures_already_measured_count_as_picked(base) -> None:
    cands = get_space("nb201").sample(300, seed=4)
    first = choose_samples(base, 6, candidates=cands)
    # measured (e.g. a descriptor's reference architectures) are never picked again; having
    # measured the design's own first three, it goes on exactly as it would have
    rest = choose_samples(base, 3, candidates=cands, measured=first[:3])
    assert rest == first[3:6]
    # other measured architectures move the design away from what they already tell
    known = [a for a in cands if a not in first][:4]
    moved = choose_samples(base, 6, candidates=cands, measured=known)
    assert not set(moved) & set(known) and moved != first
    with_them = _posterior_logdet(base, [*known, *moved], cands)
    assert with_them < _posterior_logdet(base, [*known, *first], cands)


def test_candidates_are_checked_and_too_few_is_an_error(base) -> None:
    cands = get_space("nb201").sample(5, seed=5)
    assert sorted(choose_samples(base, 5, candidates=cands + cands[:2])) == sorted(cands)
    with pytest.raises(PredictorError, match=r"4 candidate architecture\(s\) not yet measured"):
        choose_samples(base, 5, candidates=cands, measured=cands[:1])
    with pytest.raises(ArchError):
        choose_samples(base, 3, candidates=[*cands, "|conv_9x9~0|+|"])
    with pytest.raises(PredictorError, match="strategy = 'best'; expected 'design' or 'spread'"):
        choose_samples(base, 3, strategy="best")
    with pytest.raises(PredictorError, match="budget = 2"):
        choose_samples(base, 2)


def test_a_base_without_a_prior_designs_from_its_own_predictions(table, long) -> None:
    plain = meta_base(long)
    assert stored_prior(plain) is None
    cands = get_space("nb201").sample(300, seed=6)
    got = choose_samples(plain, 8, candidates=cands)
    spread = choose_samples(plain, 8, candidates=cands, strategy="spread")
    assert len(set(got)) == 8 and set(got) <= set(cands) and got != spread
    s = dict(zip(cands, _score(plain, cands), strict=True))
    lo, hi = np.quantile(list(s.values()), [0.1, 0.9])
    assert all(lo <= s[a] <= hi for a in got)
    # ... and it picks much as the prior learned from the measurements does
    with_prior = choose_samples(prior_base(long), 8, candidates=cands)
    assert len(set(got) & set(with_prior)) >= 5 > len(set(got) & set(spread))
    # one device: nothing to disagree on, so the picks are spread
    one = meta_base(long[long["device"] == EMBED_SOURCES[0]])
    assert choose_samples(one, 6, candidates=cands) == choose_samples(
        one, 6, candidates=cands, strategy="spread"
    )


def test_cli_adapt_live_chooses_among_the_candidates_file(tmp_path: Path, base, capsys) -> None:
    """--candidates FILE: the live run measures only architectures of the file (real
    onnxruntime on this CPU); a bad line is reported with the file and line."""
    save(base, tmp_path / "base.lbp")
    cands = get_space("nb201").sample(8, seed=7)
    path = tmp_path / "buildable.txt"
    path.write_text("# what this board can run\n" + "\n".join(cands) + "\n")
    out = tmp_path / "board.lbp"
    args = ["adapt", str(tmp_path / "base.lbp"), "--device", "local", "--budget", "3"]
    args += ["--min-runs", "3", "--min-time", "0.05", "--max-time", "0.3"]
    args += ["--db", str(tmp_path / "store.db"), "--candidates", str(path)]
    rc = main([*args, "-o", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    measured = [ln for ln in captured.out.splitlines() if ln.startswith("  [")]
    assert len(measured) == 3
    assert all(any(a in ln for a in cands) for ln in measured)
    samples = pd.read_csv(tmp_path / "board.samples.csv")
    assert set(samples["arch"]) <= set(cands) and len(samples) == 3
    assert load(out).n_samples_ == 3

    path.write_text(cands[0] + "\n|nor_conv_3x3~0|+|\n")
    assert main([*args, "-o", str(tmp_path / "x.lbp")]) == 2
    assert f"{path} line 2" in capsys.readouterr().err
