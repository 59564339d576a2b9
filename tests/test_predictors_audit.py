"""Bad input to the predictors API and the ``latbench predictor`` / ``monotonicity`` commands: a
latbench error that names the value and says what was expected, never a traceback, a numpy
warning or a file that cannot be read back; saved files are replaced atomically."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from latbench.cli import main
from latbench.datasets import load_reference
from latbench.errors import PredictorError
from latbench.predictors import clone, create, load, save
from latbench.predictors.adapt import adapt
from latbench.predictors.metrics import mape
from latbench.predictors.monotonicity import draw_target_samples

DEVICES = ["help/1080ti_1", "help/pixel3"]
TARGET = "help/samsung_a50"


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    df = load_reference("nb201")
    df = df[(df["nb201_index"] < 80) & df["device"].isin([*DEVICES, TARGET])]
    return df[["space", "arch", "device", "latency_ms"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def one_csv(long: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "pixel3.csv"
    long[long.device == "help/pixel3"].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def all_csv(long: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "all.csv"
    long.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def ridge(long: pd.DataFrame) -> Any:
    d = long[long.device == "help/pixel3"]
    return create("ridge").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201")


@pytest.fixture(scope="module")
def base(long: pd.DataFrame) -> Any:
    d = long[long.device.isin(DEVICES)]
    return create("meta").fit(
        d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201", devices=d.device.tolist()
    )


# ---- negative seeds ----------------------------------------------------------------------------
def test_fit_negative_seed_is_a_config_error(
    one_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.lbp"
    argv = ["predictor", "fit", "--data", str(one_csv), "--model", "ridge"]
    rc = main([*argv, "--train-size", "10", "--seed", "-1", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--seed -1" in err and "non-negative integer" in err
    assert "Traceback" not in err and not out.exists()


def test_monotonicity_negative_seed_is_a_config_error(
    all_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["monotonicity", "--data", str(all_csv), "--target", TARGET, "--k", "5"]
    rc = main([*argv, "--seed", "-3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--seed -3" in err and "non-negative integer" in err


def test_adapt_negative_seed_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.lbp"
    rc = main(["adapt", str(tmp_path / "no-base.lbp"), "--device", "local", "--seed", "-2",
               "-o", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--seed -2" in err and "non-negative integer" in err
    assert not out.exists()


def test_draw_target_samples_negative_seed(long: pd.DataFrame) -> None:
    table = long.pivot_table(index="arch", columns="device", values="latency_ms")
    with pytest.raises(PredictorError, match=r"seed = -1; expected a non-negative integer"):
        draw_target_samples(table, TARGET, 5, seed=-1)


# ---- metrics -------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, -2.5])
def test_mape_of_a_non_positive_measurement(bad: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PredictorError, match=rf"measured\[1\] = {bad!r}.*> 0"):
            mape([1.0, bad, 3.0], [1.0, 1.0, 1.0])


# ---- save ----------------------------------------------------------------------------------------
def test_save_into_a_missing_directory(ridge: Any, tmp_path: Path) -> None:
    path = tmp_path / "nope" / "p.lbp"
    with pytest.raises(PredictorError, match=r"nope.*does not exist"):
        save(ridge, path)


def test_save_under_a_file(ridge: Any, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    path = tmp_path / "afile" / "p.lbp"
    with pytest.raises(PredictorError, match=r"afile.*is a file, not a directory"):
        save(ridge, path)
    with pytest.raises(PredictorError, match=r"afile.*is a file, not a directory"):
        save(ridge, tmp_path / "afile" / "deeper" / "p.lbp")


def test_save_to_a_directory(ridge: Any, tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match=r"is a directory; expected a file path"):
        save(ridge, tmp_path)


@pytest.mark.parametrize("path", [None, 3, ""])
def test_save_and_load_of_a_path_that_is_no_path(ridge: Any, path: Any) -> None:
    with pytest.raises(PredictorError, match="expected a"):
        save(ridge, path)
    if path != "":
        with pytest.raises(PredictorError, match=rf"predictor path {path!r}"):
            load(path)


def test_save_of_something_that_is_no_predictor(tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match=r"got a int; expected a fitted latbench Predictor"):
        save(3, tmp_path / "p.lbp")  # type: ignore[arg-type]


def test_interrupted_save_keeps_the_previous_file(
    ridge: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.lbp"
    save(ridge, path)
    good = path.read_bytes()

    def interrupted(self: Any, name: str, data: Any, *a: Any, **k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "writestr", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(ridge, path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.lbp"]  # no temporary left
    arch = ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    np.testing.assert_allclose(load(path).predict(arch), ridge.predict(arch))


def test_save_on_a_full_disk(ridge: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.lbp"
    save(ridge, path)
    good = path.read_bytes()

    def full(self: Any, name: str, data: Any, *a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full)
    with pytest.raises(PredictorError, match=r"cannot write predictor file .*p\.lbp.*No space"):
        save(ridge, path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["p.lbp"]


# ---- adapt and clone -------------------------------------------------------------------------
@pytest.mark.parametrize("device", [None, "", "  ", 3])
def test_adapt_device_must_be_a_name(base: Any, long: pd.DataFrame, device: Any) -> None:
    t = long[long.device == TARGET].iloc[:8]
    with pytest.raises(PredictorError, match=rf"device = {device!r}; expected a non-empty"):
        adapt(base, t.arch.tolist(), t.latency_ms.to_numpy(), device=device)


@pytest.mark.parametrize("thing", [3, "ridge", None])
def test_clone_of_something_that_is_no_predictor(thing: Any) -> None:
    with pytest.raises(PredictorError, match=rf"clone\({thing!r}\).*expected a latbench"):
        clone(thing)


# ---- the command line ----------------------------------------------------------------------------
def test_data_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predictor", "fit", "--data", str(tmp_path), "-o", str(tmp_path / "p.lbp")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "is a directory; expected a dataset file" in err and "does not exist" not in err


def test_predict_output_is_replaced_atomically(
    ridge: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "p.lbp"
    save(ridge, model)
    out = tmp_path / "out.csv"
    argv = ["predictor", "predict", str(model), "--sample", "5", "-o", str(out)]
    assert main(argv) == 0
    good = out.read_bytes()
    assert len(pd.read_csv(out)) == 5

    def broken(self: Any, path: Any, *a: Any, **k: Any) -> None:
        Path(path).write_text("space,arch,predicted_lat")  # a partial write, then the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    assert main(argv) == 1
    monkeypatch.undo()
    assert "No space left" in capsys.readouterr().err
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "p.lbp"]


def test_predict_output_gz_is_still_compressed(ridge: Any, tmp_path: Path) -> None:
    model = tmp_path / "p.lbp"
    save(ridge, model)
    out = tmp_path / "out.csv.gz"
    assert main(["predictor", "predict", str(model), "--sample", "4", "-o", str(out)]) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert len(pd.read_csv(out)) == 4


# ---- fit, predict and score input ------------------------------------------------------------
def test_fit_latency_none_is_named(long: pd.DataFrame) -> None:
    d = long[long.device == "help/pixel3"]
    with pytest.raises(PredictorError, match=r"latency_ms = None; expected one number"):
        create("ridge").fit(d.arch.tolist(), None, space="nb201")
    p = create("ridge").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201")
    with pytest.raises(PredictorError, match=r"latency_ms = None"):
        p.score(d.arch.tolist(), None)


def test_fit_latency_of_two_columns(long: pd.DataFrame) -> None:
    d = long[long.device == "help/pixel3"]
    y = d.latency_ms.to_numpy()
    with pytest.raises(PredictorError, match=r"shape \(80, 2\); expected one latency per arch"):
        create("ridge").fit(d.arch.tolist(), np.c_[y, y], space="nb201")
    # a single column is one latency per architecture
    create("ridge").fit(d.arch.tolist(), y.reshape(-1, 1), space="nb201")


def test_fit_boolean_latencies(long: pd.DataFrame) -> None:
    archs = long[long.device == "help/pixel3"].arch.tolist()
    with pytest.raises(PredictorError, match=r"holds booleans; expected numbers of milli"):
        create("ridge").fit(archs, [True] * len(archs), space="nb201")


@pytest.mark.parametrize("name", [None, "", " "])
def test_fit_device_names_must_be_names(long: pd.DataFrame, name: Any) -> None:
    d = long[long.device.isin(DEVICES)]
    devices = d.device.tolist()
    devices[3] = name
    with pytest.raises(PredictorError, match=rf"devices\[3\] = {name!r}; expected a non-empty"):
        create("meta").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201", devices=devices)


def test_predict_device_that_is_no_name(ridge: Any, long: pd.DataFrame) -> None:
    archs = long.arch.tolist()[:3]
    with pytest.raises(PredictorError, match=r"device = 3; expected a device name \(str\)"):
        ridge.predict(archs, device=3)
    assert ridge.predict(archs, device="any-name").shape == (3,)  # fitted without a name


def test_adapt_of_something_that_is_no_predictor(long: pd.DataFrame) -> None:
    t = long[long.device == TARGET].iloc[:8]
    with pytest.raises(PredictorError, match=r"base = 3: got a int; expected a fitted latbench"):
        adapt(3, t.arch.tolist(), t.latency_ms.to_numpy())  # type: ignore[arg-type]


# ---- latbench adapt ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adapt_files(
    base: Any, long: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("adapt")
    save(base, d / "base.lbp")
    long[long.device == TARGET].iloc[:8][["space", "arch", "latency_ms"]].to_csv(
        d / "s.csv", index=False
    )
    return d / "base.lbp", d / "s.csv"


@pytest.mark.parametrize("option", ["--samples", "--descriptor", "--embed-data"])
def test_adapt_input_that_is_a_directory(
    adapt_files: tuple[Path, Path],
    tmp_path: Path,
    option: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, samples = adapt_files
    argv = ["adapt", str(model), "-o", str(tmp_path / "a.lbp")]
    extra = [option, str(tmp_path)]
    if option != "--samples":
        extra += ["--samples", str(samples)]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}' is a directory; expected" in err and "does not exist" not in err


@pytest.mark.parametrize("name", ["", "  "])
def test_adapt_empty_name(
    adapt_files: tuple[Path, Path], tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model, samples = adapt_files
    out = tmp_path / "a.lbp"
    argv = ["adapt", str(model), "--samples", str(samples), "--name", name, "-o", str(out)]
    assert main(argv) == 2
    assert f"--name {name!r}; expected a non-empty device name" in capsys.readouterr().err
    assert not out.exists()


def _failing_to_csv(self: Any, path: Any, *a: Any, **k: Any) -> None:
    Path(path).write_text("partial")  # a partial write, then the failure
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("command", ["compare", "monotonicity"])
def test_csv_output_is_replaced_atomically(
    one_csv: Path,
    all_csv: Path,
    tmp_path: Path,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "rows.csv"
    out.write_text("a previous good table\n")
    if command == "compare":
        argv = ["predictor", "compare", "--data", str(one_csv), "--device", "help/pixel3"]
        argv += ["--models", "ridge", "--train-size", "20", "--seeds", "1", "--csv", str(out)]
    else:
        argv = ["monotonicity", "--data", str(all_csv), "--csv", str(out)]
    monkeypatch.setattr(pd.DataFrame, "to_csv", _failing_to_csv)
    assert main(argv) == 1
    monkeypatch.undo()
    assert "No space left" in capsys.readouterr().err
    assert out.read_text() == "a previous good table\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]
    assert main(argv) == 0
    assert len(pd.read_csv(out)) >= 1


# ---- latencies that numpy converts without a word ----------------------------------------------
def test_complex_masked_and_generator_latencies_are_refused_by_what_they_are() -> None:
    """A complex array kept its real part (a ComplexWarning only), a masked array's masked
    cells were read as whatever they hold, and a generator was named by its repr."""
    from latbench.predictors.base import latency_array

    with pytest.raises(PredictorError, match=r"holds complex numbers; expected real milli"):
        latency_array(np.array([1 + 1j, 2.0]))
    with pytest.raises(PredictorError, match=r"masked array with masked cell 1; expected a lat"):
        latency_array(np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]))
    with pytest.raises(PredictorError, match=r"latency_ms is a generator; expected a sequence"):
        latency_array(v for v in (1.0, 2.0))
    # an unmasked masked array and a plain list stay numbers
    assert latency_array(np.ma.masked_array([1.0, 2.0])).tolist() == [1.0, 2.0]
    assert latency_array([1, 2.5]).tolist() == [1.0, 2.5]
