"""The ``embed`` prior stored with a multi-device base: learned at fit, saved, used by default."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import EMBED_SOURCES, long_fixture, meta_base, prior_base, table_fixture
from latbench.cli import main
from latbench.errors import PredictorError
from latbench.predictors import load, save
from latbench.predictors.adapt import adapt, learn_embed_prior, stored_prior
from latbench.predictors.persist import BASE_FORMAT_VERSION, FORMAT_VERSION

SOURCES = EMBED_SOURCES
TARGET = "oneproxy/eagle_tpu"


table = table_fixture(2000)
long = long_fixture(SOURCES)


@pytest.fixture(scope="module")
def base(long: pd.DataFrame):
    return prior_base(long)


def _samples(table: pd.DataFrame, seed: int = 0) -> tuple[list[str], np.ndarray]:
    col = table[["nb201_index", "arch", TARGET]].dropna()
    col = col[col["nb201_index"] < 900]
    pick = np.random.default_rng(seed).choice(len(col), size=10, replace=False)
    return list(col["arch"].iloc[pick]), col[TARGET].to_numpy()[pick]


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        out: dict = json.loads(zf.read("manifest.json"))
    return out


def test_fit_base_stores_the_prior_and_adapt_uses_it(table, long, base, tmp_path: Path) -> None:
    prior = stored_prior(base)
    assert prior is not None and list(prior.sources) == sorted(SOURCES)
    # the same prior as learning it explicitly from the rows the base was fitted on
    again = learn_embed_prior(base, long["arch"].tolist(), long["ms"].to_numpy(), long["device"])
    np.testing.assert_allclose(prior.coef, again.coef)
    archs, lat = _samples(table)
    default = base.adapt(archs, lat)
    assert default.method_ == "embed+bayes+soft"
    assert default.summary()["embed_prior"] == "stored"
    explicit = adapt(base, archs, lat, embed_prior=again, use_stored_prior=False)
    assert explicit.summary()["embed_prior"] == "given"
    query = list(table["arch"].iloc[900:1100])
    np.testing.assert_allclose(default.predict(query), explicit.predict(query))
    plain = adapt(base, archs, lat, use_stored_prior=False)
    assert plain.method_ == "bayes+soft" and plain.summary()["embed_prior"] is None
    assert adapt(base, archs, lat, method="embed").method_ == "embed"

    # saved as format 2, and the loaded base adapts exactly as the fitted one
    save(base, tmp_path / "base.lbp")
    man = _manifest(tmp_path / "base.lbp")
    assert man["format_version"] == FORMAT_VERSION == 2
    assert man["embed_prior"]["sources"] == sorted(SOURCES)
    loaded = load(tmp_path / "base.lbp")
    kept = stored_prior(loaded)
    assert kept is not None
    for name in ("pop_mean", "basis", "count_mean", "coef", "cov"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(prior, name))
    np.testing.assert_allclose(loaded.adapt(archs, lat).predict(query), default.predict(query))
    # an adapted predictor (which embeds its base) round-trips too
    save(default, tmp_path / "adapted.lbp")
    np.testing.assert_allclose(
        load(tmp_path / "adapted.lbp").predict(query), default.predict(query)
    )


def test_excluding_a_source_adapts_without_the_stored_prior(table, base, caplog) -> None:
    archs, lat = _samples(table, seed=1)
    p = adapt(base, archs, lat, exclude=[SOURCES[0]])
    assert p.method_ == "bayes+soft" and p.summary()["embed_prior"] is None
    assert "stored embed prior was learned for sources" in caplog.text
    with pytest.raises(PredictorError, match="embed_prior"):
        adapt(base, archs, lat, method="embed", exclude=[SOURCES[0]])


def test_old_file_without_a_prior_still_adapts(table, long, base, tmp_path: Path) -> None:
    """A base written without a prior (format 1, as every file before it existed) loads and adapts
    as before: ``auto`` without ``embed``, and ``embed`` asks for a prior."""
    old = meta_base(long)
    assert stored_prior(old) is None
    save(old, tmp_path / "old.lbp")
    man = _manifest(tmp_path / "old.lbp")
    assert man["format_version"] == BASE_FORMAT_VERSION == 1 and "embed_prior" not in man
    assert not any(k.startswith("embed_prior.") for k in man["arrays"])
    loaded = load(tmp_path / "old.lbp")
    archs, lat = _samples(table)
    p = loaded.adapt(archs, lat)
    q = adapt(base, archs, lat, use_stored_prior=False)
    assert p.method_ == q.method_ == "bayes+soft"
    query = list(table["arch"].iloc[900:1100])
    np.testing.assert_allclose(p.predict(query), q.predict(query))
    with pytest.raises(PredictorError, match="embed_prior"):
        loaded.adapt(archs, lat, method="embed")


def test_corrupt_stored_prior_is_a_clear_error(base, tmp_path: Path) -> None:
    save(base, tmp_path / "base.lbp")
    with zipfile.ZipFile(tmp_path / "base.lbp") as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    man = json.loads(files["manifest.json"])
    man["embed_prior"]["version"] = 99
    files["manifest.json"] = json.dumps(man).encode()
    with zipfile.ZipFile(tmp_path / "bad.lbp", "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    with pytest.raises(PredictorError, match=r"stored embed prior unreadable.*layout 99"):
        load(tmp_path / "bad.lbp")


def test_refitting_drops_the_stale_prior(long, base) -> None:
    import copy

    b = copy.deepcopy(base)
    assert stored_prior(b) is not None
    b.fit(long["arch"].tolist(), long["ms"].to_numpy(), space="nb201", devices=long["device"])
    assert stored_prior(b) is None


def test_cli_fit_stores_the_prior_and_adapt_uses_it(
    table, long, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "sources.csv"
    pd.DataFrame(
        {"space": "nb201", "arch": long["arch"], "device": long["device"], "latency_ms": long["ms"]}
    ).to_csv(data, index=False)
    fit = ["predictor", "fit", "--data", str(data), "--devices", "all", "--model", "meta"]
    t0 = time.perf_counter()
    assert main([*fit, "-o", str(tmp_path / "base.lbp")]) == 0
    with_prior_s = time.perf_counter() - t0
    assert "embed prior for adaptation in" in capsys.readouterr().out
    assert main([*fit, "--no-embed-prior", "-o", str(tmp_path / "plain.lbp")]) == 0
    assert "embed prior" not in capsys.readouterr().out
    # the prior adds a few tens of kB and well under a minute to the base
    size = (tmp_path / "base.lbp").stat().st_size
    assert size - (tmp_path / "plain.lbp").stat().st_size < 100_000
    assert with_prior_s < 60.0

    archs, lat = _samples(table)
    samples = tmp_path / "tpu.csv"
    rows = [f"nb201,{a},{v:.6g}" for a, v in zip(archs, lat, strict=True)]
    samples.write_text("space,arch,latency_ms\n" + "\n".join(rows) + "\n")
    out = tmp_path / "tpu.lbp"
    argv = ["adapt", str(tmp_path / "base.lbp"), "--samples", str(samples), "-o", str(out)]
    assert main(argv) == 0
    assert "embed prior: stored" in capsys.readouterr().out
    assert load(out).method_ == "embed+bayes+soft"
    assert main([*argv, "--method", "embed"]) == 0 and load(out).method_ == "embed"
    assert main([*argv, "--no-embed-prior"]) == 0
    assert load(out).method_ == "bayes+soft"
    capsys.readouterr()
    assert main([*argv, "--no-embed-prior", "--method", "embed"]) != 0
    assert "--method embed needs --embed-data" in capsys.readouterr().err
    # --embed-data still works, and wins over the stored prior
    assert main([*argv, "--embed-data", "reference", "--json"]) == 0
    assert '"embed_prior": "given"' in capsys.readouterr().out
    # the base without a prior adapts as before
    plain = ["adapt", str(tmp_path / "plain.lbp"), "--samples", str(samples), "-o", str(out)]
    assert main(plain) == 0
    assert load(out).method_ == "bayes+soft"
