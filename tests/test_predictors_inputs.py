"""Bad input to the predictors and the ``latbench predictor`` commands: each case is a latbench
error naming the bad value and what was expected (an exit code through the CLI's one error
handler), never a raw exception, a hang, a crash, or a score of the wrong device."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from latbench.cli import main
from latbench.datasets import load_reference
from latbench.errors import PredictorError
from latbench.predictors import create, load, save
from latbench.spaces import get_space


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """120 architectures of help/pixel3, long format."""
    df = load_reference("nb201")
    df = df[(df.device == "help/pixel3") & (df.nb201_index % 100 == 0)].iloc[:120]
    return df[["space", "arch", "device", "latency_ms"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def data(rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The rows as CSV files: as measured, with one bad latency, and of another device."""
    d = tmp_path_factory.mktemp("inputs")
    out = {"good": d / "good.csv", "other": d / "other.csv"}
    rows.to_csv(out["good"], index=False)
    rows.assign(device="help/samsung_s7").to_csv(out["other"], index=False)
    for name, value in (("nan", np.nan), ("neg", -1.0), ("zero", 0.0)):
        bad = rows.copy()
        bad.loc[7, "latency_ms"] = value
        out[name] = d / f"{name}.csv"
        bad.to_csv(out[name], index=False)
    return out


@pytest.fixture(scope="module")
def ridge_file(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "ridge.lbp"
    fit = ["predictor", "fit", "--data", str(data["good"]), "--device", "help/pixel3"]
    assert main([*fit, "--model", "ridge", "-o", str(path)]) == 0
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().err


# ---- the command line ---------------------------------------------------------------------------


def test_fit_train_size_larger_than_the_data_is_refused(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit = ["predictor", "fit", "--data", str(data["good"]), "--device", "help/pixel3"]
    out = tmp_path / "p.lbp"
    rc, err = _cli(capsys, *fit, "--model", "ridge", "--train-size", "500", "-o", str(out))
    assert rc == 2
    assert "--train-size 500: the data holds 120 architectures of help/pixel3" in err
    assert "expected 1 to 120" in err and not out.exists()
    # every architecture is still a valid size: all of them
    assert _cli(capsys, *fit, "--model", "ridge", "--train-size", "120", "-o", str(out))[0] == 0


@pytest.mark.parametrize(("case", "shown"), [("nan", "nan"), ("neg", "-1.0"), ("zero", "0.0")])
def test_bad_latencies_are_named_by_architecture_before_any_fit(
    case: str,
    shown: str,
    rows: pd.DataFrame,
    data: dict[str, Path],
    ridge_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = str(data[case])
    want = f"{bad}: latency_ms = {shown} for {rows.arch[7]} on help/pixel3; expected finite "
    commands = [
        ["fit", "--data", bad, "--device", "pixel3", "--model", "ridge", "-o", str(tmp_path / "p")],
        ["compare", "--data", bad, "--device", "pixel3", "--models", "ridge", "--seeds", "1",
         "--train-size", "60"],
        ["evaluate", str(ridge_file), "--data", bad],
    ]  # fmt: skip
    for argv in commands:
        rc, err = _cli(capsys, "predictor", *argv)
        assert rc == 1, argv
        assert want in err, (argv, err)


def test_evaluate_refuses_the_measurements_of_another_device(
    data: dict[str, Path], ridge_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in ([], ["--device", "help/samsung_s7"]):
        rc, err = _cli(
            capsys, "predictor", "evaluate", str(ridge_file), "--data", str(data["other"]), *extra
        )
        assert rc == 1
        assert "holds measurements of help/samsung_s7" in err
        assert "was fitted on help/pixel3" in err
    rc, _ = _cli(capsys, "predictor", "evaluate", str(ridge_file), "--data", str(data["good"]))
    assert rc == 0


def test_a_short_device_name_is_matched_by_a_one_device_predictor_too(
    rows: pd.DataFrame,
    ridge_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``pixel3`` is help/pixel3 for a predictor of one device as for one of several."""
    short = tmp_path / "short.csv"
    rows.assign(device="pixel3").to_csv(short, index=False)
    rc, err = _cli(capsys, "predictor", "evaluate", str(ridge_file), "--data", str(short))
    assert rc == 0, err


def test_a_predictor_of_graphs_predicts_a_space_through_its_graphs(
    rows: pd.DataFrame, data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sp = get_space("nb201")
    graphs = [sp.build(a) for a in rows.arch[:40]]
    p = create("flops").fit(graphs, rows.latency_ms[:40], space="graph")
    save(p, tmp_path / "g.lbp")
    out = tmp_path / "out.csv"
    rc, err = _cli(capsys, "predictor", "predict", str(tmp_path / "g.lbp"), "--sample", "3",
                   "-o", str(out))  # fmt: skip
    assert rc == 2 and "predicts graphs" in err and "--space fbnet or nb201" in err
    rc, err = _cli(capsys, "predictor", "predict", str(tmp_path / "g.lbp"), "--space", "nb201",
                   "--sample", "3", "-o", str(out))  # fmt: skip
    assert rc == 0, err
    res = pd.read_csv(out)
    assert list(res.columns) == ["space", "arch", "predicted_latency_ms"]
    np.testing.assert_allclose(res.predicted_latency_ms, p.predict([sp.build(a) for a in res.arch]))
    rc, err = _cli(capsys, "predictor", "evaluate", str(tmp_path / "g.lbp"), "--data",
                   str(data["good"]))  # fmt: skip
    assert rc == 0, err


# ---- the Python API -----------------------------------------------------------------------------


def test_settings_and_inputs_of_the_wrong_type(rows: pd.DataFrame) -> None:
    a, y = rows.arch.tolist(), rows.latency_ms.to_numpy()
    cases: list[tuple[Any, str]] = [
        (lambda: create("gbm", n_estimators="a").fit(a, y, space="nb201"),
         "gbm: n_estimators='a'; expected an integer"),
        (lambda: create("gbm", learning_rate=None).fit(a, y, space="nb201"),
         "gbm: learning_rate=None; expected a number"),
        (lambda: create("rf", min_samples_leaf=[1]).fit(a, y, space="nb201"),
         r"rf: min_samples_leaf=\[1\]; expected an integer"),
        (lambda: create("ensemble", members=5).fit(a, y, space="nb201"),
         "ensemble: members=5; expected a sequence of"),
        (lambda: create("ensemble", members=[("ridge", 3)]).fit(a, y, space="nb201"),
         r"ensemble member 0 is \('ridge', 3\); expected \(name, params dict\)"),
        (lambda: create("ridge").fit(a, y, space="nb201", devices="help/pixel3"),
         "devices = 'help/pixel3'; expected one device name per row"),
        (lambda: create("ridge").fit(a, y, space="nb201").predict(None),
         "archs = None; expected a sequence of architectures"),
        (lambda: create("ridge").fit(a, y, space="nb201").score(a[:2], ["fast", 1.0]),
         r"latency_ms\[0\] = 'fast'; expected a number of milliseconds"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(PredictorError, match=message):
            call()
    # None and scikit-learn's names are settings a forest takes
    rf = create("rf", n_estimators=3, max_features=None, max_depth=None).fit(a, y, space="nb201")
    assert create("rf", n_estimators=3, max_features="sqrt").fit(a, y, space="nb201").is_fitted()
    assert rf.predict(a[:2]).shape == (2,)


def _with_array(src: Path, dst: Path, key: str, edit: Any) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            blob = zin.read(item)
            if item == f"arrays/{key}.npy":
                buf = io.BytesIO()
                np.save(buf, edit(np.load(io.BytesIO(blob))))
                blob = buf.getvalue()
            zout.writestr(item, blob)
    return dst


def test_tree_arrays_that_are_no_trees_are_refused_at_load(
    rows: pd.DataFrame, tmp_path: Path
) -> None:
    """The trees are walked by compiled code: an index out of range would read outside the
    arrays (or crash) and a child pointing up the tree would loop for ever."""
    a, y = rows.arch.tolist(), rows.latency_ms.to_numpy()
    good = tmp_path / "gbm.lbp"
    save(create("gbm", n_estimators=5).fit(a, y, space="nb201"), good)
    edits = {
        "child out of range": ("forest_left", lambda v: np.where(v > 0, v + 10**6, v)),
        "child loops to the root": ("forest_left", lambda v: np.where(v > 0, 0, v)),
        "feature out of range": ("forest_feature", lambda v: np.where(v >= 0, v + 10**6, v)),
        "roots out of order": ("forest_roots", lambda v: v[::-1]),
        "nodes cut": ("forest_value", lambda v: v[:-1]),
        "threshold nan": ("forest_threshold", lambda v: np.full_like(v, np.nan)),
        "float children": ("forest_right", lambda v: v.astype(np.float64)),
    }
    for i, (what, (key, edit)) in enumerate(edits.items()):
        path = _with_array(good, tmp_path / f"e{i}.lbp", key, edit)
        with pytest.raises(PredictorError, match=rf"e{i}\.lbp: inconsistent gbm state"):
            load(path)
        assert what
    assert load(good).predict(a[:3]).shape == (3,)


def test_a_zip_header_of_an_unknown_method_is_a_damaged_file(
    rows: pd.DataFrame, tmp_path: Path
) -> None:
    good = tmp_path / "ridge.lbp"
    save(create("ridge").fit(rows.arch.tolist(), rows.latency_ms, space="nb201"), good)
    raw = bytearray(good.read_bytes())
    # the central directory record of the manifest: its compression method (offset 10) set
    # to 99, which zipfile does not know (a flipped byte reads so)
    at = raw.index(b"PK\x01\x02")
    while raw[at + 46 : at + 46 + len(b"manifest.json")] != b"manifest.json":
        at = raw.index(b"PK\x01\x02", at + 4)
    raw[at + 10] = 99
    (tmp_path / "method.lbp").write_bytes(bytes(raw))
    with pytest.raises(PredictorError, match=r"method\.lbp: the file is damaged"):
        load(tmp_path / "method.lbp")


def test_gcn_settings_edited_to_another_size_are_refused_not_allocated(
    rows: pd.DataFrame, tmp_path: Path
) -> None:
    """The network is built from the settings before the weights are loaded into it: a file
    edited to ``hidden=10**9`` or ``layers=10**6`` must not allocate that network."""
    from lbp_helpers import rewrite_lbp

    good = tmp_path / "gcn.lbp"
    gcn = create("gcn", epochs=1, hidden=8).fit(rows.arch[:40], rows.latency_ms[:40], space="nb201")
    save(gcn, good)
    edits: dict[str, tuple[Any, str]] = {
        "hidden": (10**9, "hidden = 1000000000, but the stored weights are of a network with "
                   "hidden = 8"),
        "layers": (10**6, "layers = 1000000, but the stored weights"),
        "device_dim": (-1, "device_dim=-1; expected an integer >= 1"),
    }  # fmt: skip
    for key, (value, message) in edits.items():
        path = tmp_path / f"{key}.lbp"
        rewrite_lbp(good, path, lambda m, k=key, v=value: m["params"].__setitem__(k, v))
        with pytest.raises(
            PredictorError, match=rf"{key}\.lbp: inconsistent gcn state: .*{message}"
        ):
            load(path)
    path = tmp_path / "width.lbp"
    rewrite_lbp(good, path, lambda m: m["state"].__setitem__("n_features_in", -1))
    with pytest.raises(PredictorError, match="n_features_in = -1, but the stored weights"):
        load(path)
    np.testing.assert_allclose(load(good).predict(rows.arch[:3]), gcn.predict(rows.arch[:3]))
