"""Proxy adaptation (``embed+proxy``) on the real bundled reference latencies.

The proxy's predictor is fitted on one device's column; the prior of its op-count residual is
learned from how the table's *other* devices depart from it, never from the target's column.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import MONOTONICITY_DEVICES, monotonicity_table_fixture
from latbench.cli import main
from latbench.errors import PredictorError
from latbench.predictors import fewshot, load, save
from latbench.predictors import monotonicity as mono
from latbench.predictors.adapt import adapt
from latbench.predictors.fewshot_embed import (
    EmbedPrior,
    fit_embed_prior,
    prior_from_state,
    prior_state,
)
from latbench.predictors.metrics import spearman

DEVICES = MONOTONICITY_DEVICES
table = monotonicity_table_fixture()


def _draw(table: pd.DataFrame, device: str, k: int, seed: int) -> tuple[list[str], np.ndarray]:
    col = table[device].dropna()
    pick = np.random.default_rng(seed).choice(len(col), size=k, replace=False)
    return [col.index[i] for i in pick], col.to_numpy()[pick]


def _long_csv(table: pd.DataFrame, path: Path) -> Path:
    """``table`` as the long CSV (space, arch, device, latency_ms) that ``--data`` reads."""
    long = table.stack().dropna().rename("latency_ms").reset_index()
    long.columns = ["arch", "device", "latency_ms"]
    long.insert(0, "space", "nb201")
    long.to_csv(path, index=False)
    return path


def test_adaptation_reranks_a_target_unlike_its_proxy(table) -> None:
    # a GPU's predictor adapted to a phone: the phone's op costs differ, and the desktop CPUs
    # of the table show such departures; three draws of 10 samples each
    gains = []
    for seed in range(3):
        rep, _ = mono.proxy_adaptation(
            table, "nb201", "help/1080ti_1", "help/pixel3", k=10, seed=seed
        )
        gains.append(rep.spearman_after - rep.spearman_before)
        assert rep.method == "embed+proxy"
    assert min(gains) > 0.1, gains  # 0.62 -> 0.78..0.89 on these draws


def test_adaptation_keeps_a_near_copy_proxy(table) -> None:
    # titanx_1 ranks 1080ti_1 at 0.984 already: the anchored prior leaves it there
    for seed in range(3):
        rep, _ = mono.proxy_adaptation(
            table, "nb201", "help/titanx_1", "help/1080ti_1", k=10, seed=seed
        )
        assert abs(rep.spearman_after - rep.spearman_before) < 0.003


def test_calibration_alone_keeps_the_proxy_ranking(table) -> None:
    rep, _ = mono.proxy_adaptation(
        table, "nb201", "help/1080ti_1", "help/pixel3", k=10, method="proxy"
    )
    assert rep.method == "proxy" and rep.hypotheses == 0
    assert rep.spearman_after == pytest.approx(rep.spearman_before, abs=1e-12)


def test_the_target_never_enters_the_prior(table) -> None:
    base = mono.fit_proxy_predictor(table, "nb201", "help/1080ti_1")
    prior = mono.proxy_prior(base, table, "help/1080ti_1", exclude=["help/pixel3"])
    assert prior is not None
    assert "help/pixel3" not in prior.hypothesis_names
    assert set(prior.hypothesis_names) == set(DEVICES) - {"help/pixel3"}
    assert prior.sources == ("help/1080ti_1",)
    # half the prior mass on the proxy itself, the rest shared
    mass = np.exp(prior.log_mass)
    assert mass.sum() == pytest.approx(1.0)
    assert mass[prior.hypothesis_names.index("help/1080ti_1")] == pytest.approx(mono.ANCHOR_MASS)


def test_a_table_of_two_devices_falls_back_to_the_calibration(table, caplog) -> None:
    two = table[["help/1080ti_1", "help/pixel3"]]
    with caplog.at_level(logging.WARNING):
        rep, _ = mono.proxy_adaptation(two, "nb201", "help/1080ti_1", "help/pixel3", k=10)
    assert rep.method == "proxy" and "calibrating the proxy alone" in caplog.text
    assert rep.spearman_after == pytest.approx(rep.spearman_before, abs=1e-12)


def test_unknown_method_and_device_are_named(table) -> None:
    archs, lat = _draw(table, "help/pixel3", 10, 0)
    with pytest.raises(PredictorError, match="'nope'; expected one of embed\\+proxy"):
        mono.adapt_proxy(table, "nb201", "help/1080ti_1", archs, lat, method="nope")
    with pytest.raises(PredictorError, match="'help/none' is not in the table"):
        mono.adapt_proxy(table, "nb201", "help/none", archs, lat)


def test_leave_one_out_report_for_a_new_device(table, tmp_path: Path) -> None:
    # pixel3 as a new device: not in the table the proxy and the prior come from
    others = table.drop(columns=["help/pixel3"])
    archs, lat = _draw(table, "help/pixel3", 12, 1)
    rep, adapted = mono.proxy_adaptation_cv(others, "nb201", "help/1080ti_1", archs, lat)
    assert rep.evaluated_on == "leave-one-out" and rep.k == rep.n_eval == 12
    assert rep.hypotheses == len(DEVICES) - 1
    assert rep.spearman_after > rep.spearman_before
    # the adapted predictor ranks the phone's other architectures better than the proxy
    col = table["help/pixel3"].dropna().drop(index=archs)
    ranked = spearman(col.to_numpy(), adapted.predict(list(col.index)))
    proxy_rank = spearman(col.to_numpy(), others["help/1080ti_1"].loc[col.index].to_numpy())
    assert ranked > proxy_rank + 0.05
    # saved and loaded, it predicts the same
    path = tmp_path / "pixel3.lbp"
    save(adapted, path)
    again = load(path)
    np.testing.assert_allclose(
        again.predict(list(col.index[:50])), adapted.predict(list(col.index[:50]))
    )
    # calibration alone: leave-one-out before and after are the same fits
    rep_p, _ = mono.proxy_adaptation_cv(
        others, "nb201", "help/1080ti_1", archs, lat, method="proxy"
    )
    assert rep_p.spearman_after == pytest.approx(rep_p.spearman_before, abs=1e-12)
    with pytest.raises(PredictorError, match="at least 4"):
        mono.proxy_adaptation_cv(others, "nb201", "help/1080ti_1", archs[:3], lat[:3])


def test_embed_proxy_needs_a_prior(table) -> None:
    base = mono.fit_proxy_predictor(table, "nb201", "help/1080ti_1")
    archs, lat = _draw(table, "help/pixel3", 10, 0)
    with pytest.raises(PredictorError, match="method 'embed\\+proxy' needs embed_prior="):
        adapt(base, archs, lat, method="embed+proxy")
    assert "embed+proxy" in fewshot.METHODS and "embed+proxy" in fewshot.EMBED_METHODS


def _prior(anchor: str | None = None, hypotheses=("a", "b", "c")) -> EmbedPrior:
    rng = np.random.default_rng(0)
    pop = rng.normal(size=(200, 1))
    counts = rng.integers(0, 4, size=(200, 2)).astype(float)
    x = np.hstack([np.ones((200, 1)), pop, counts])
    log_ms = np.stack([x @ rng.normal(size=4) for _ in hypotheses], axis=1)
    return fit_embed_prior(
        "nb201", ["a"], pop, counts, pop, counts, log_ms, hypotheses=hypotheses, anchor=anchor
    )


def test_prior_with_hypotheses_round_trips_and_plain_priors_stay_layout_1() -> None:
    prior = _prior(anchor="a")
    assert prior.coef.shape == (3, 4) and prior.hypothesis_names == ("a", "b", "c")
    np.testing.assert_allclose(np.exp(prior.log_mass), [0.5, 0.25, 0.25])
    meta, arrays = prior_state(prior)
    assert meta["version"] == 2 and meta["hypotheses"] == ["a", "b", "c"]
    again = prior_from_state(json.loads(json.dumps(meta)), arrays)
    np.testing.assert_allclose(again.coef, prior.coef)
    np.testing.assert_allclose(again.log_mass, prior.log_mass)
    assert again.hypothesis_names == prior.hypothesis_names
    # the prior a base stores (its sources, equal masses) keeps the layout older readers know
    rng = np.random.default_rng(1)
    pop = rng.normal(size=(100, 2))
    counts = rng.integers(0, 4, size=(100, 2)).astype(float)
    plain = fit_embed_prior("nb201", ["a", "b"], pop, counts, pop, counts, pop + 0.1)
    meta, arrays = prior_state(plain)
    assert meta["version"] == 1 and "hypotheses" not in meta and "log_mass" not in arrays
    assert prior_from_state(meta, arrays).hypothesis_names == ("a", "b")


def test_prior_rejects_bad_anchors_and_too_few_devices() -> None:
    with pytest.raises(PredictorError, match="anchor 'z' is not one of the devices"):
        _prior(anchor="z")
    with pytest.raises(PredictorError, match="got 1 device\\(s\\) to learn it from"):
        _prior(hypotheses=("a",))
    rng = np.random.default_rng(0)
    pop = rng.normal(size=(50, 1))
    counts = np.zeros((50, 2))
    with pytest.raises(PredictorError, match=r"anchor_mass = 1\.5"):
        fit_embed_prior(
            "nb201",
            ["a"],
            pop,
            counts,
            pop,
            counts,
            np.hstack([pop, pop]),
            hypotheses=["a", "b"],
            anchor="a",
            anchor_mass=1.5,
        )


def test_cli_samples_of_a_new_device_adapt_and_save(table, tmp_path: Path, capsys) -> None:
    data = _long_csv(table.drop(columns=["help/pixel3"]), tmp_path / "table.csv")
    archs, lat = _draw(table, "help/pixel3", 12, 1)
    samples = tmp_path / "phone.csv"
    pd.DataFrame({"space": "nb201", "arch": archs, "latency_ms": lat}).to_csv(samples, index=False)
    out = tmp_path / "phone.lbp"
    rc = main(
        ["monotonicity", "--data", str(data), "--samples", str(samples), "-o", str(out), "--json"]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    pa = doc["proxy_adaptation"]
    assert pa["evaluated_on"] == "leave-one-out" and pa["method"] == "embed+proxy"
    assert pa["spearman_after"] > pa["spearman_before"]
    assert doc["output"] == str(out) and load(out).devices_ == ["target"]
    # printed form
    assert main(["monotonicity", "--data", str(data), "--samples", str(samples)]) == 0
    text = capsys.readouterr().out
    assert "leave-one-out on the 12 samples" in text and "proxy adaptation of" in text
    # one target only, and -o needs one
    assert (
        main(
            ["monotonicity", "--data", str(data), "--samples", str(samples), "--target", "titanx_1"]
        )
        != 0
    )
    assert "--target and --samples both given" in capsys.readouterr().err
    assert main(["monotonicity", "--data", str(data), "-o", str(out)]) != 0
    assert "expected --target or --samples" in capsys.readouterr().err


def test_cli_adapt_method_choices_match_the_library() -> None:
    from latbench.cli import build_parser

    parser = build_parser("monotonicity")
    sub = next(a for a in parser._actions if a.dest == "command")
    mono_parser = sub.choices["monotonicity"]
    opt = next(a for a in mono_parser._actions if a.dest == "adapt_method")
    assert tuple(opt.choices) == mono.PROXY_METHODS


def test_cli_adapt_method_choices_are_the_library_methods() -> None:
    from latbench.cli import build_parser

    sub = next(a for a in build_parser("adapt")._actions if a.dest == "command")
    opt = next(a for a in sub.choices["adapt"]._actions if a.dest == "method")
    assert tuple(opt.choices) == ("auto", *fewshot.METHODS)


def test_embed_proxy_leaves_out_a_wild_sample(table) -> None:
    archs, lat = _draw(table, "help/1080ti_1", 20, 4)
    wild = lat.copy()
    wild[7] *= 3.0  # one mis-read measurement among 20
    a = mono.adapt_proxy(table, "nb201", "help/titanx_1", archs, wild, exclude=["help/1080ti_1"])
    assert archs[7] in a.outliers_ and len(a.outliers_) <= 4 and a.method_ == "embed+proxy"
    kept = mono.adapt_proxy(
        table,
        "nb201",
        "help/titanx_1",
        archs,
        wild,
        exclude=["help/1080ti_1"],
        screen_outliers=False,
    )
    assert kept.outliers_ == {}
    col = table["help/1080ti_1"].dropna().drop(index=archs)
    y, qa = col.to_numpy(), list(col.index)
    assert spearman(y, a.predict(qa)) > spearman(y, kept.predict(qa))


def test_methods_without_the_prior_report_no_hypotheses(table) -> None:
    rep, _ = mono.proxy_adaptation(
        table, "nb201", "help/1080ti_1", "help/pixel3", k=10, method="meta"
    )
    assert rep.method == "meta" and rep.hypotheses == 0
    rep, _ = mono.proxy_adaptation(
        table, "nb201", "help/1080ti_1", "help/pixel3", k=10, method="auto"
    )
    assert rep.hypotheses == len(DEVICES) - 1


def test_the_command_and_the_report_draw_the_same_samples(table, capsys) -> None:
    archs, lat = mono.draw_target_samples(table, "help/pixel3", 10, seed=3)
    assert archs == mono.draw_target_samples(table, "help/pixel3", 10, seed=3)[0]
    _, adapted = mono.proxy_adaptation(table, "nb201", "help/1080ti_1", "help/pixel3", k=10, seed=3)
    assert adapted.n_samples_ == 10
    # the adapted fit saw exactly these samples: its training ranking is theirs
    assert adapted.train_spearman_ == pytest.approx(
        spearman(np.log(lat), np.log(adapted.predict(archs))), abs=1e-9
    )
    with pytest.raises(PredictorError, match="measured 1500 architectures; expected at most"):
        mono.draw_target_samples(table, "help/pixel3", 2000)


def test_cli_keep_outliers_reaches_the_proxy_adaptation(table, tmp_path: Path, capsys) -> None:
    archs, lat = _draw(table, "help/1080ti_1", 20, 4)
    wild = lat.copy()
    wild[7] *= 3.0
    data = _long_csv(table.drop(columns=["help/1080ti_1"]), tmp_path / "table.csv")
    samples = tmp_path / "gpu.csv"
    pd.DataFrame({"space": "nb201", "arch": archs, "latency_ms": wild}).to_csv(samples, index=False)
    for flag, screened in (([], True), (["--keep-outliers"], False)):
        out = tmp_path / f"gpu{len(flag)}.lbp"
        cmd = ["monotonicity", "--data", str(data), "--samples", str(samples), "-o", str(out)]
        assert main([*cmd, *flag, "--json"]) == 0
        capsys.readouterr()
        assert (archs[7] in load(out).outliers_) is screened
