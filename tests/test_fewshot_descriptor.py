"""Descriptor-conditioned adaptation (HELP-style reference architectures), on real data.

The reference tables hold every NAS-Bench-201 architecture for HELP's devices, so the
descriptor of a reference device (its latencies on the fixed reference architectures) is read
from the table; the live test measures a real descriptor of this machine with onnxruntime.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latbench.cli import main
from latbench.commands.adapt import descriptor_reference
from latbench.datasets import load_reference
from latbench.devices.descriptor import Descriptor, default_path, reference_archs
from latbench.errors import ArchError, ConfigError
from latbench.predictors import create, load, save
from latbench.predictors.adapt import AdaptedPredictor, adapt
from latbench.predictors.fewshot import AUTO_METHODS, fit_method
from latbench.predictors.metrics import spearman

SOURCES = ["help/1080ti_1", "help/silver_4114", "help/samsung_a50", "help/pixel3"]
TARGET = "help/samsung_s7"


@pytest.fixture(scope="module")
def lat() -> pd.DataFrame:
    df = load_reference("nb201")
    df = df[df["device"].isin([*SOURCES, TARGET])]
    return df.pivot_table(index="arch", columns="device", values="latency_ms")


@pytest.fixture(scope="module")
def base(lat: pd.DataFrame):
    sub = lat.iloc[::4]
    long = sub.reset_index().melt(
        id_vars=["arch"], value_vars=SOURCES, var_name="device", value_name="ms"
    )
    return create("meta").fit(
        long["arch"].tolist(), long["ms"].to_numpy(), space="nb201", devices=list(long["device"])
    )


def test_descriptor_conditions_the_adaptation(lat: pd.DataFrame, base) -> None:
    refs = reference_archs("nb201", 10)
    descriptor = {a: float(lat.loc[a, TARGET]) for a in refs}
    rng = np.random.default_rng(3)
    pool = [a for a in lat.index[1::4] if a not in descriptor]
    query = list(rng.choice(pool, size=400, replace=False))
    yq = lat.loc[query, TARGET].to_numpy()
    scores: dict[bool, list[float]] = {True: [], False: []}
    for seed in range(3):
        pick = list(np.random.default_rng(seed).choice(pool, size=3, replace=False))
        y = lat.loc[pick, TARGET].to_numpy()
        for use in (True, False):
            p = adapt(base, pick, y, descriptor=descriptor if use else None)
            assert p.n_descriptor_ == (10 if use else 0)
            assert p.n_samples_ == (13 if use else 3)
            scores[use].append(spearman(yq, p.predict(query)))
    # 3 samples + the 10-architecture descriptor rank the unseen device better than 3 alone
    assert np.mean(scores[True]) > np.mean(scores[False])
    assert min(scores[True]) > min(scores[False]) and np.mean(scores[True]) > 0.85
    assert p.summary()["descriptor_archs"] == 0


def test_descriptor_of_another_space_is_refused(lat: pd.DataFrame, base) -> None:
    pick = list(lat.index[:5])
    with pytest.raises(ArchError):
        adapt(base, pick, lat.loc[pick, TARGET].to_numpy(), descriptor={"0-0-0-0": 1.0})


def test_auto_ranks_a_copy_of_one_source_perfectly() -> None:
    """A target that is one source exactly: ``soft`` (the default choice) becomes that proxy.

    Without cost features ``auto`` cross-validates soft/combo/meta; with them it mixes
    ``bayes`` and ``soft``, and both put (nearly) all their weight on the copied source.
    """
    rng = np.random.default_rng(0)
    k, d = 12, 5
    p_log = rng.normal(size=(k, d))
    pop = rng.normal(size=(200, d))
    t_log = 2.0 * p_log[:, 2] + 0.5
    fit, scores = fit_method("auto", p_log, t_log, pop, np.zeros((k, 0)))
    assert set(scores) == set(AUTO_METHODS) - {"bayes"} and "proxy" not in AUTO_METHODS
    assert fit.method == "soft" and int(np.argmax(np.abs(fit.weights))) == 2
    assert spearman(t_log, fit.predict_log(p_log)) == pytest.approx(1.0)
    cost = rng.normal(size=(k, 3))
    mixed, scores = fit_method("auto", p_log, t_log, pop, np.zeros((k, 0)), cost=cost)
    assert mixed.method == "bayes+soft" and scores == {}
    assert int(np.argmax(np.abs(mixed.weights))) == 2
    assert mixed.info is not None and mixed.info["residual_mass"] < 0.5
    assert spearman(t_log, mixed.predict_log(p_log, g=cost)) > 0.99


def test_cli_adapt_uses_the_stored_descriptor(tmp_path: Path, base, capsys) -> None:
    """End to end on this machine: describe (real onnxruntime), then adapt --device local."""
    cfg = tmp_path / "bench.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "latbench.db"}"\n')
    describe = ["--config", str(cfg), "devices", "describe", "local", "--space", "nb201"]
    rc = main([*describe, "--refs", "3", "--no-kernels", "--min-runs", "3", "--max-time", "0.1"])
    assert rc == 0, capsys.readouterr().err
    stored = Descriptor.load(default_path(tmp_path / "latbench.db", "local"))
    assert len(stored.reference_ms) == 3
    save(base, tmp_path / "base.lbp")
    out = tmp_path / "local.lbp"
    args = ["--config", str(cfg), "adapt", str(tmp_path / "base.lbp"), "--device", "local"]
    args += ["--budget", "3", "--min-runs", "3", "--min-time", "0.02", "--max-time", "0.1"]
    assert main([*args, "-o", str(out)]) == 0, capsys.readouterr().err
    assert "conditioning on the descriptor of local: 3 reference" in capsys.readouterr().out
    adapted = load(out)
    assert isinstance(adapted, AdaptedPredictor) and adapted.n_descriptor_ == 3
    ns = argparse.Namespace(config=str(cfg), device="local", descriptor=None, no_descriptor=True)
    assert descriptor_reference(ns, "nb201") is None
    ns.no_descriptor = False
    assert descriptor_reference(ns, "nb201") == stored.reference_ms
    assert descriptor_reference(ns, "fbnet") is None  # a stored descriptor of another space
    bad = tmp_path / "fb.json"
    Descriptor(device="x", space="fbnet", reference_ms={"a": 1.0}).save(bad)
    ns.descriptor = str(bad)
    with pytest.raises(ConfigError, match="expected reference archs of 'nb201'"):
        descriptor_reference(ns, "nb201")
