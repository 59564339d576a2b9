"""Registry-wide contract tests of latbench's predictors on real reference latencies."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latbench.datasets import load_reference
from latbench.errors import ArchError, NotFittedError, PredictorError
from latbench.predictors import PREDICTORS, _trees, clone, create, load, save
from latbench.predictors.base import Predictor

# small settings keep the suite fast; the accuracy benchmark uses the defaults
SMALL: dict[str, dict[str, Any]] = {
    "flops": {},
    "ridge": {},
    "gbm": {"n_estimators": 40},
    "rf": {"n_estimators": 20},
    "kernel": {},
    "gcn": {"epochs": 4, "hidden": 16, "layers": 2},
    "ensemble": {"members": [["ridge", {"features": "rich"}], ["gbm", {"n_estimators": 20}]]},
    "default": {
        "members": [["ridge", {"features": "rich", "alpha": 0.01}], ["gbm", {"n_estimators": 20}]],
        "cv": 2,
    },
}
NAMES = sorted(SMALL)
DEVICE = "help/pixel3"


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    df = load_reference("nb201")
    sub = df[df.device == DEVICE].sort_values("nb201_index").iloc[::50]  # 313 real rows
    archs = sub.arch.tolist()
    y = sub.latency_ms.to_numpy()
    return {"train": (archs[:200], y[:200]), "test": (archs[200:], y[200:]), "df": df}


@pytest.fixture(scope="module")
def fitted(data: dict[str, Any]) -> dict[str, Predictor]:
    archs, y = data["train"]
    n = {"kernel": 40}  # builds a graph per architecture
    return {
        name: create(name, **SMALL[name]).fit(archs[: n.get(name)], y[: n.get(name)], space="nb201")
        for name in NAMES
    }


def test_registry_lists_the_models() -> None:
    assert set(NAMES) <= set(PREDICTORS.names())


@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_rank(name: str, fitted: dict[str, Predictor], data: dict[str, Any]) -> None:
    p = fitted[name]
    archs, y = data["test"]
    pred = p.predict(archs)
    assert pred.shape == (len(archs),)
    assert np.isfinite(pred).all() and (pred > 0).all()
    assert p.space_ == "nb201" and p.devices_ == ["default"]
    floor = 0.3 if name in ("gcn", "kernel", "flops") else 0.8
    assert p.score(archs, y) > floor


@pytest.mark.parametrize("name", NAMES)
def test_params_and_clone(name: str, fitted: dict[str, Predictor]) -> None:
    p = fitted[name]
    c = clone(p)
    assert type(c) is type(p) and c.get_params() == p.get_params()
    assert not c.is_fitted()
    with pytest.raises(NotFittedError, match="not fitted"):
        c.predict(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    with pytest.raises(PredictorError, match="unknown parameter 'bogus'"):
        c.set_params(bogus=1)
    key = sorted(c.get_params())[0]
    assert c.set_params(**{key: c.get_params()[key]}) is c


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(
    name: str, fitted: dict[str, Predictor], data: dict[str, Any], tmp_path: Path
) -> None:
    p = fitted[name]
    path = tmp_path / f"{name}.lbp"
    save(p, path)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert all(n.endswith(".npy") for n in zf.namelist() if n != "manifest.json")
    assert manifest["predictor"] == name and manifest["space"] == "nb201"
    assert {"latbench", "numpy", "scikit-learn", "torch"} <= set(manifest["libraries"])
    q = load(path)
    archs, _ = data["test"]
    np.testing.assert_allclose(q.predict(archs), p.predict(archs), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name: str, fitted: dict[str, Predictor]) -> None:
    p = fitted[name]
    with pytest.raises(ArchError, match="nb201"):
        p.predict(["0-1-2-3-4-5-6-7-8-0-1-2-3-4-5-6-7-8-0-1-2-3"])  # an FBNet architecture
    with pytest.raises(PredictorError, match="expected a sequence"):
        p.predict("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_unknown_device_and_unfitted_errors(data: dict[str, Any]) -> None:
    archs, y = data["train"]
    p = create("ridge").fit(archs, y, space="nb201", devices=[DEVICE] * len(archs))
    assert p.devices_ == [DEVICE]
    with pytest.raises(PredictorError, match="'pixel9' was not in the training data"):
        p.predict(archs[:3], device="pixel9")
    with pytest.raises(PredictorError, match="single-device predictor got rows of 2 devices"):
        create("ridge").fit(archs, y, space="nb201", devices=["a", "b"] * (len(archs) // 2))
    with pytest.raises(PredictorError, match=r"latency_ms\[0\] = nan"):
        create("ridge").fit(archs, np.r_[np.nan, y[1:]], space="nb201")
    with pytest.raises(NotFittedError):
        create("gcn").device_embedding("x")


def test_feature_shape_error(fitted: dict[str, Predictor]) -> None:
    p = fitted["ridge"]
    with pytest.raises(PredictorError, match=r"expected \(n, 30\)"):
        p.predict_features(np.zeros((4, 7)))  # type: ignore[attr-defined]


def test_gcn_multi_device(data: dict[str, Any]) -> None:
    df = data["df"]
    sub = df[df.device.isin([DEVICE, "help/1080ti_1"]) & (df.nb201_index < 150)]
    p = create("gcn", epochs=4, hidden=16, layers=2).fit(
        sub.arch.tolist(), sub.latency_ms.to_numpy(), space="nb201", devices=sub.device.tolist()
    )
    assert p.devices_ == ["help/1080ti_1", DEVICE]
    archs = sub.arch.unique().tolist()[:20]
    a, b = p.predict(archs, device=DEVICE), p.predict(archs, device="help/1080ti_1")
    assert a.shape == b.shape == (20,) and not np.allclose(a, b)
    with pytest.raises(PredictorError, match="pass device="):
        p.predict(archs)
    with pytest.raises(PredictorError, match="'help/titanx_1' was not in the training data"):
        p.predict(archs, device="help/titanx_1")
    emb = p.device_embedding(DEVICE)
    np.testing.assert_allclose(p.predict_for_descriptor(archs, emb), a, rtol=0.5)
    with pytest.raises(PredictorError, match="descriptor of size 3"):
        p.predict_for_descriptor(archs, np.zeros(3))


def test_gcn_shows_a_progress_bar_on_a_terminal_for_a_long_fit(
    data: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from latbench.predictors import gcn

    archs, y = data["train"]
    small = {"epochs": 2, "hidden": 8, "layers": 1, "batch_size": 50}
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    create("gcn", **small).fit(archs, y, space="nb201")  # 8 steps: short, no bar
    assert "gcn: training" not in capsys.readouterr().err
    monkeypatch.setattr(gcn, "PROGRESS_MIN_STEPS", 8)
    create("gcn", **small).fit(archs, y, space="nb201")
    err = capsys.readouterr().err
    assert "gcn: training on 200 rows" in err and "/8 [" in err and "step" in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # a pipe or a log: nothing
    create("gcn", **small).fit(archs, y, space="nb201")
    assert "gcn: training" not in capsys.readouterr().err


def test_ensemble_uncertainty(fitted: dict[str, Predictor], data: dict[str, Any]) -> None:
    mean, std = fitted["ensemble"].predict_with_uncertainty(data["test"][0])
    assert std is not None and (std >= 0).all() and std.shape == mean.shape
    assert fitted["ridge"].predict_with_uncertainty(data["test"][0])[1] is None
    w = fitted["default"].weights_  # type: ignore[attr-defined]
    assert w.shape == (2,) and abs(w.sum() - 1) < 1e-9 and (w >= 0).all()


def test_tree_arrays_match_sklearn(data: dict[str, Any]) -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    from latbench.predictors.encodings import rich_features

    archs, y = data["train"]
    x = rich_features("nb201", archs)
    m = GradientBoostingRegressor(n_estimators=30, random_state=0).fit(x, y)
    forest = _trees.pack([e.tree_ for e in m.estimators_[:, 0]])
    ours = float(m.init_.constant_.reshape(-1)[0]) + 0.1 * _trees.leaf_values(forest, x).sum(1)
    np.testing.assert_allclose(ours, m.predict(x), rtol=1e-10)


def _rewrite_manifest(src: Path, dst: Path, **changes: Any) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            blob = zin.read(item)
            if item == "manifest.json":
                m = json.loads(blob)
                for k, v in changes.items():
                    if k == "libraries":
                        m["libraries"].update(v)
                    else:
                        m[k] = v
                blob = json.dumps(m).encode()
            zout.writestr(item, blob)


def test_incompatible_files(fitted: dict[str, Predictor], tmp_path: Path) -> None:
    good = tmp_path / "gcn.lbp"
    save(fitted["gcn"], good)
    old_torch = tmp_path / "old_torch.lbp"
    _rewrite_manifest(good, old_torch, libraries={"torch": "1.13.1"})
    with pytest.raises(PredictorError, match=r"torch 1\.13\.1; this environment has torch 2\."):
        load(old_torch)
    future = tmp_path / "future.lbp"
    _rewrite_manifest(good, future, format_version=99)
    with pytest.raises(PredictorError, match="format 99 is not supported"):
        load(future)
    newer = tmp_path / "newer.lbp"
    _rewrite_manifest(good, newer, libraries={"latbench": "9.0.0"})
    with pytest.raises(PredictorError, match=r"latbench 9\.0\.0, newer than"):
        load(newer)
    (tmp_path / "junk.lbp").write_text("not a zip")
    with pytest.raises(PredictorError, match="not a latbench predictor file"):
        load(tmp_path / "junk.lbp")
    # scikit-learn is not needed to read trees back: any version string loads
    ridge = tmp_path / "ridge.lbp"
    save(fitted["gbm"], ridge)
    other = tmp_path / "gbm_other_sklearn.lbp"
    _rewrite_manifest(ridge, other, libraries={"scikit-learn": "0.24.2"})
    assert load(other).predict(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]).shape == (1,)


def test_unknown_model_name() -> None:
    from latbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="expected one of"):
        create("xgboost")
    with pytest.raises(PredictorError, match="bad parameter"):
        create("ridge", depth=3)


def test_numpy_tree_walk_matches_sklearn_trees(data: dict[str, Any]) -> None:
    from latbench.predictors.encodings import rich_features

    p = create("gbm", n_estimators=25).fit(*data["train"], space="nb201")
    x = rich_features("nb201", data["test"][0])
    fast = _trees.leaf_values(p.forest_, x)  # type: ignore[attr-defined]
    slow = _trees._leaf_values_numpy(p.forest_, x, chunk=64)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("name", ["flops", "ridge", "gbm", "rf", "kernel", "gcn", "default"])
def test_too_few_architectures_is_a_clear_error(name: str) -> None:
    """One latency ranks nothing; the stacked ensembles need 3 (every fold trains on 2)."""
    from latbench.spaces import get_space

    archs = get_space("nb201").sample(3, seed=0)
    need = PREDICTORS.get(name).min_fit_rows
    assert need == (3 if name == "default" else 2)
    for n in range(need):
        with pytest.raises(PredictorError, match=f"{name}: cannot fit on {n} architecture"):
            create(name).fit(archs[:n], np.arange(1.0, n + 1), space="nb201")
    p = create(name).fit(archs[:need], np.arange(1.0, need + 1), space="nb201")
    assert np.isfinite(p.predict(archs)).all()


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"epochs": 0}, "epochs=0; expected an integer >= 1"),
        ({"hidden": 2.5}, "hidden=2.5; expected an integer >= 1"),
        ({"lr": 0}, "lr=0; expected a number > 0"),
        ({"weight_decay": -1}, "weight_decay=-1; expected a number >= 0"),
        ({"rank_weight": float("nan")}, "rank_weight=nan"),
        ({"threads": -2}, "threads=-2"),
    ],
)
def test_gcn_settings_no_network_trains_with_are_refused(
    params: dict[str, Any], needle: str
) -> None:
    from latbench.spaces import get_space

    archs = get_space("nb201").sample(4, seed=0)
    with pytest.raises(PredictorError, match="gcn: ") as info:
        create("gcn", **params).fit(archs, np.arange(1.0, 5.0), space="nb201")
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("gbm", {"n_estimators": 0}, "gbm: The 'n_estimators' parameter"),
        ("gbm", {"learning_rate": -1}, "gbm: The 'learning_rate' parameter"),
        ("rf", {"n_estimators": -5}, "rf: The 'n_estimators' parameter"),
        ("ridge", {"alpha": -1}, "ridge: The 'alpha' parameter"),
        ("ensemble", {"members": [["gbm", {"n_estimators": 0}]]}, "gbm: The 'n_estimators'"),
    ],
)
def test_scikit_learn_settings_out_of_range_are_a_predictor_error(
    name: str, params: dict[str, Any], needle: str
) -> None:
    """scikit-learn checks its settings when fitting; latbench says which model's setting."""
    from latbench.spaces import get_space

    archs = get_space("nb201").sample(6, seed=0)
    with pytest.raises(PredictorError) as info:
        create(name, **params).fit(archs, np.arange(1.0, 7.0), space="nb201")
    assert needle in str(info.value) and "range" in str(info.value)
