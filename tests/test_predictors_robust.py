"""What the Python API of predictors, metrics and search does with input a researcher gets
wrong: exclusions that name nothing, NaN scores, tied top-k, edited predictor files, budgets of
the wrong type. Every case is a clear latbench error or a documented, order-free result."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import monotonicity_table_fixture
from latbench.datasets import load_reference
from latbench.errors import ConfigError, PredictorError
from latbench.nas import latency_constraint, make_objective, run_search
from latbench.nas.objectives import error_margin
from latbench.predictors import create, load, save
from latbench.predictors import metrics as M
from latbench.predictors import monotonicity as mono
from latbench.predictors.adapt import choose_samples
from latbench.spaces import get_space
from lbp_helpers import rewrite_lbp

table = monotonicity_table_fixture()


@pytest.fixture(scope="module")
def pixel3() -> tuple[list[str], np.ndarray]:
    df = load_reference("nb201")
    df = df[(df["nb201_index"] < 300) & (df["device"] == "help/pixel3")]
    df = df.sort_values("nb201_index")
    return df["arch"].tolist(), df["latency_ms"].to_numpy()


@pytest.fixture(scope="module")
def ridge(pixel3: tuple[list[str], np.ndarray]) -> Any:
    a, y = pixel3
    return create("ridge").fit(a[:200], y[:200], space="nb201")


@pytest.fixture(scope="module")
def meta_base(table: pd.DataFrame) -> Any:
    long = table.iloc[:400].stack().dropna().rename("ms").reset_index()
    long.columns = ["arch", "device", "ms"]
    return create("meta").fit(
        long["arch"].tolist(), long["ms"].to_numpy(), space="nb201", devices=list(long["device"])
    )


# ---- exclusions name devices as everywhere else ---------------------------------------------


def test_best_proxies_exclude_takes_short_names_and_globs(table: pd.DataFrame) -> None:
    target = "help/pixel3"
    archs = list(table.index[:10])
    ms = table.loc[archs, target].to_numpy()
    assert mono.best_proxies(table, archs, ms).best == target  # the target ranks itself first
    for spelling in (["pixel3"], ["help/pix*"], "pixel3"):
        report = mono.best_proxies(table, archs, ms, exclude=spelling)
        assert target not in [r[0] for r in report.ranking]
    with pytest.raises(PredictorError, match="'zzz' matches nothing"):
        mono.best_proxies(table, archs, ms, exclude=["zzz"])


def test_proxy_prior_exclude_short_name_keeps_the_target_out(table: pd.DataFrame) -> None:
    base = mono.fit_proxy_predictor(table, "nb201", "help/silver_4210r")
    prior = mono.proxy_prior(base, table, "help/silver_4210r", exclude=["pixel3"])
    assert prior is not None
    assert "help/pixel3" not in prior.hypothesis_names
    with pytest.raises(PredictorError, match="exclude"):
        mono.proxy_prior(base, table, "help/silver_4210r", exclude=["nope"])


def test_best_proxies_checks_its_samples(table: pd.DataFrame) -> None:
    archs = list(table.index[:10])
    with pytest.raises(PredictorError, match="10 architectures but 5 latencies"):
        mono.best_proxies(table, archs, np.ones(5))
    bad = np.ones(10)
    bad[3] = np.nan
    with pytest.raises(PredictorError, match=r"latency_ms\[3\] = nan"):
        mono.best_proxies(table, archs, bad)
    bad[3] = -1.0
    with pytest.raises(PredictorError, match="expected finite positive"):
        mono.best_proxies(table, archs, bad)
    with pytest.raises(PredictorError, match="'fast'; expected a number"):
        mono.best_proxies(table, archs, ["fast"] + [1.0] * 9)


def test_adapt_sources_and_exclude_spellings(table: pd.DataFrame, meta_base: Any) -> None:
    archs = list(table.index[500:510])
    ms = table.loc[archs, "help/pixel3"].to_numpy()
    with pytest.raises(PredictorError, match=r"sources=\[\] names no device"):
        meta_base.adapt(archs, ms, sources=[])
    # one name as a string is that name, not its letters
    adapted = meta_base.adapt(archs, ms, exclude="help/pixel3", method="meta")
    assert "help/pixel3" not in adapted.sources_
    twice = meta_base.adapt(
        archs, ms, sources=["help/1080ti_1", "help/1080ti_1", "help/gold_6240"], method="meta"
    )
    assert twice.sources_.count("help/1080ti_1") == 1


# ---- metrics ----------------------------------------------------------------------------------


def test_topk_overlap_does_not_depend_on_row_order_under_ties() -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(1, 6, 300).astype(float)  # whole-millisecond device: many ties
    p = t + rng.normal(0, 0.8, 300)
    first = M.topk_overlap(t, p, 50)
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(300)
        assert M.topk_overlap(t[perm], p[perm], 50) == pytest.approx(first)
    # measured ties: any of the tied is among the fastest
    assert M.topk_overlap([1, 1, 1, 1], [4, 3, 2, 1], 2) == 1.0
    # predicted ties share the places: the expected overlap of a random tie break
    assert M.topk_overlap([1, 2, 3, 4], [1, 1, 1, 1], 2) == 0.5
    # without ties: the plain set overlap
    assert M.topk_overlap([1, 2, 3, 4], [4, 3, 2, 1], 2) == 0.0
    assert M.topk_overlap([1, 2, 3, 4], [1, 2, 4, 3], 3) == pytest.approx(2 / 3)


def test_metrics_refuse_nan_and_bad_settings() -> None:
    for fn in (M.rmse, M.mape, M.spearman, M.kendall, M.acc_within, M.topk_overlap):
        with pytest.raises(PredictorError, match=r"measured\[1\] = nan"):
            fn([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
        with pytest.raises(PredictorError, match=r"predicted\[2\] = inf"):
            fn([1.0, 2.0, 3.0], [1.0, 2.0, np.inf])
    with pytest.raises(PredictorError, match="expected numbers"):
        M.rmse(["a", "b"], [1.0, 2.0])
    with pytest.raises(PredictorError, match="pct = -5"):
        M.acc_within([1.0], [1.0], -5)
    with pytest.raises(PredictorError, match=r"k = 1.5; expected an integer"):
        M.topk_overlap([1.0, 2.0], [1.0, 2.0], 1.5)  # type: ignore[arg-type]


def test_score_with_nan_latency_is_an_error(
    ridge: Any, pixel3: tuple[list[str], np.ndarray]
) -> None:
    a, y = pixel3
    y = y[200:210].copy()
    y[0] = np.nan
    with pytest.raises(PredictorError, match="nan"):
        ridge.score(a[200:210], y)


# ---- predictors -------------------------------------------------------------------------------


def test_predict_features_is_clamped_like_predict(ridge: Any) -> None:
    out = ridge.predict_features(np.full((1, ridge.n_features_in_), -50.0))
    assert out[0] >= ridge.floor_ms_ > 0
    with pytest.raises(PredictorError, match="NaN or inf"):
        ridge.predict_features(np.full((1, ridge.n_features_in_), np.nan))


def test_settings_of_the_wrong_type(pixel3: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    a, y = pixel3
    for alpha in ("cv", None, "x"):
        with pytest.raises(PredictorError, match="meta: alpha"):
            create("meta", alpha=alpha).fit(a[:50], y[:50], space="nb201")
    for cv in (0, 1, -1, "x"):
        with pytest.raises(PredictorError, match="ensemble: cv="):
            create("ensemble", members=(("ridge", {}), ("flops", {})), cv=cv).fit(
                a[:50], y[:50], space="nb201"
            )
    # numpy scalars are numbers: accepted, and saved as the JSON numbers they stand for
    create("ridge", alpha=np.float32(2.0)).fit(a[:50], y[:50], space="nb201")
    gbm = create("gbm", n_estimators=np.int64(20)).fit(a[:80], y[:80], space="nb201")
    save(gbm, tmp_path / "g.lbp")
    back = load(tmp_path / "g.lbp")
    assert back.get_params()["n_estimators"] == 20
    np.testing.assert_array_equal(back.predict(a[80:90]), gbm.predict(a[80:90]))
    with pytest.raises(PredictorError, match=r"latency_ms\[1\] = 'fast'; expected a number"):
        create("ridge").fit(a[:3], [1.0, "fast", 2.0], space="nb201")


def test_loaded_ensemble_params_equal_the_saved_ones(
    pixel3: tuple[list[str], np.ndarray], tmp_path: Path
) -> None:
    a, y = pixel3
    ens = create("ensemble", members=(("ridge", {}), ("gbm", {"n_estimators": 20}))).fit(
        a[:100], y[:100], space="nb201"
    )
    save(ens, tmp_path / "e.lbp")
    assert load(tmp_path / "e.lbp").get_params() == ens.get_params()


# ---- predictor files that were edited or damaged ----------------------------------------------


def _edited(src: Path, dst: Path, edit: Any, drop: tuple[str, ...] = ()) -> Path:
    rewrite_lbp(src, dst, edit, drop)
    return dst


def test_edited_or_damaged_files_are_refused_by_name(ridge: Any, tmp_path: Path) -> None:
    good = tmp_path / "good.lbp"
    save(ridge, good)

    def without(key: str) -> Any:
        return lambda m: m.pop(key)

    def setting(key: str, value: Any) -> Any:
        return lambda m: m.__setitem__(key, value)

    def lib(value: str) -> Any:
        return lambda m: m["libraries"].__setitem__("latbench", value)

    cases = {
        "space": (without("space"), "'space' = None"),
        "devices": (setting("devices", "abc"), "'devices' = 'abc'"),
        "state": (setting("state", {}), "is missing"),
        "arrays": (setting("arrays", []), "is missing"),
        "floor": (setting("floor_ms", "x"), "'floor_ms' = 'x'"),
        "format": (setting("format_version", True), "format True is not supported"),
        "version": (lib("abc"), "libraries.latbench = 'abc'"),
    }
    for name, (edit, message) in cases.items():
        path = _edited(good, tmp_path / f"{name}.lbp", edit)
        with pytest.raises(PredictorError, match=message):
            load(path)
    # an array of the wrong shape: refused at load, not at the user's first predict
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(tmp_path / "shape.lbp", "w") as zout:
        for item in zin.namelist():
            blob = zin.read(item)
            if item == "arrays/coef.npy":
                import io

                buf = io.BytesIO()
                np.save(buf, np.ones(3))
                blob = buf.getvalue()
            zout.writestr(item, blob)
    with pytest.raises(PredictorError, match=r"shape.lbp: the loaded predictor does not work"):
        load(tmp_path / "shape.lbp")
    # a damaged member (bad CRC): a corrupted copy or download
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("manifest.json")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 5
    raw[at] ^= 0xFF
    (tmp_path / "crc.lbp").write_bytes(bytes(raw))
    with pytest.raises(PredictorError, match=r"crc.lbp: (the file is damaged|corrupt)"):
        load(tmp_path / "crc.lbp")
    (tmp_path / "dir.lbp").mkdir()
    with pytest.raises(PredictorError, match="is a directory"):
        load(tmp_path / "dir.lbp")
    assert load(good).predict([get_space("nb201").from_index(7)])[0] > 0


def test_meta_file_with_devices_cut_is_refused(meta_base: Any, tmp_path: Path) -> None:
    save(meta_base, tmp_path / "m.lbp")
    edited = _edited(
        tmp_path / "m.lbp",
        tmp_path / "cut.lbp",
        lambda m: m.__setitem__("devices", m["devices"][:2]),
    )
    with pytest.raises(PredictorError, match=r"inconsistent meta state.*'coef' of shape"):
        load(edited)


# ---- search and sample choice -----------------------------------------------------------------


def test_reinforce_stays_within_its_evaluations(ridge: Any) -> None:
    sp = get_space("nb201")
    obj = make_objective("params", sp)
    con = [latency_constraint(ridge, 1e6, sp)]
    for n, params in ((1, None), (3, {"batch": 2}), (7, {"batch": 4})):
        r = run_search(sp, obj, con, "reinforce", evaluations=n, strategy_params=params)
        assert r.evaluations == n


def test_a_budget_covering_the_space_evaluates_all_of_it(ridge: Any) -> None:
    sp = get_space("nb201")
    r = run_search(
        sp,
        make_objective("params", sp),
        [latency_constraint(ridge, 1e6, sp)],
        "evolution",
        evaluations=sp.size() + 10,
    )
    assert r.evaluations == sp.size()
    assert r.strategy == "exhaustive"


def test_budgets_and_counts_of_the_wrong_type(ridge: Any, meta_base: Any) -> None:
    sp = get_space("nb201")
    with pytest.raises(ConfigError, match="budget_ms 'x'; expected a positive number"):
        latency_constraint(ridge, "x", sp)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="budget_ms None"):
        latency_constraint(ridge, None, sp)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sigmas -1"):
        latency_constraint(ridge, 5.0, sp, sigmas=-1)
    con = [latency_constraint(ridge, 5.0, sp)]
    for n in (2.5, "10"):
        with pytest.raises(ConfigError, match=r"evaluations = .*expected an integer >= 1"):
            run_search(sp, make_objective("params", sp), con, "random", evaluations=n)  # type: ignore[arg-type]
    for budget in ("5", None, 2.5):
        with pytest.raises(PredictorError, match=r"budget = .*expected an integer"):
            choose_samples(meta_base, budget)  # type: ignore[arg-type]
    for pool in (0, -1):
        with pytest.raises(PredictorError, match="pool = "):
            choose_samples(meta_base, 5, pool=pool)


def test_error_margin_of_an_adapted_predictor(table: pd.DataFrame, meta_base: Any) -> None:
    archs = list(table.index[600:620])
    ms = table.loc[archs, "help/pixel3"].to_numpy()
    adapted = meta_base.adapt(archs[:10], ms[:10], method="meta")
    margin = error_margin(adapted, archs, ms, folds=4)
    assert 0.0 <= margin < 1.0
    with pytest.raises(ConfigError, match="knows 5 devices"):
        error_margin(meta_base, archs, ms, folds=4)


def test_a_graph_predictors_coverage_is_saved_and_checked_on_load(tmp_path: Path) -> None:
    """The coverage of a predictor fitted on graphs travels in its manifest; a file without it
    (written before it was stored) loads and simply has nothing to warn about; a coverage of
    the wrong shape is a corrupt manifest, named."""
    from latbench import predictors
    from latbench.datasets.reference import load_reference
    from latbench.spaces import get_space
    from lbp_helpers import rewrite_lbp

    nb = get_space("nb201")
    d = load_reference("nb201")
    d = d[d.device == "help/pixel3"].iloc[:60]
    graphs = [nb.build(a) for a in d.arch]
    p = predictors.create("flops").fit(graphs, d.latency_ms.to_numpy(), space="graph")
    assert p.graph_coverage_["max"]["hw"] == 32.0 and "conv-bn-relu" in p.graph_coverage_["types"]
    path = tmp_path / "g.lbp"
    predictors.save(p, path)
    back = predictors.load(path)
    assert back.graph_coverage_ == p.graph_coverage_
    wide = get_space("nb201").build(d.arch.iloc[0], resolution=64)
    assert back.coverage_note(wide) == "hw up to 64 (trained up to 32)"
    assert back.coverage_note(graphs[0]) == ""
    old = tmp_path / "old.lbp"
    rewrite_lbp(path, old, lambda m: m.pop("graph_coverage"))
    assert predictors.load(old).coverage_note(wide) == ""
    bad = tmp_path / "bad.lbp"
    rewrite_lbp(path, bad, lambda m: m.update(graph_coverage={"types": "conv", "max": {}}))
    with pytest.raises(PredictorError, match=r"bad.lbp: corrupt manifest.json: 'graph_coverage'"):
        predictors.load(bad)
