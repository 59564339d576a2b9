"""The ``latbench predictor`` commands, end to end on real reference rows."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latbench.cli import main
from latbench.datasets import load_reference
from latbench.predictors import create, load
from latbench.predictors.metrics import spearman


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = load_reference("nb201")
    sub = df[df.device.isin(["help/pixel3", "help/1080ti_1"]) & (df.nb201_index % 40 == 0)]
    path = tmp_path_factory.mktemp("data") / "lat.csv"
    sub[["space", "arch", "device", "latency_ms"]].to_csv(path, index=False)
    return path


def test_fit_predict_evaluate(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "p.lbp"
    assert (
        main(
            [
                "predictor",
                "fit",
                "--data",
                str(table),
                "--device",
                "help/pixel3",
                "--model",
                "ensemble",
                "--params",
                '{"members": [["ridge", {}], ["gbm", {"n_estimators": 20}]]}',
                "--train-size",
                "300",
                "-o",
                str(model),
            ]
        )
        == 0
    )
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(pd.read_csv(table).arch.unique()[:10]))
    out = tmp_path / "out.csv"
    assert main(["predictor", "predict", str(model), "--archs", str(archs), "-o", str(out)]) == 0
    res = pd.read_csv(out)
    assert list(res.columns) == ["space", "arch", "predicted_latency_ms", "uncertainty_ms"]
    assert len(res) == 10 and (res.predicted_latency_ms > 0).all()
    capsys.readouterr()
    assert (
        main(["predictor", "evaluate", str(model), "--data", str(table), "--device", "help/pixel3"])
        == 0
    )
    text = capsys.readouterr().out
    assert "spearman" in text and "acc10" in text


def test_predict_all_and_compare(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "r.lbp"
    assert (
        main(
            [
                "predictor",
                "fit",
                "--data",
                str(table),
                "--device",
                "help/1080ti_1",
                "--model",
                "ridge",
                "-o",
                str(model),
            ]
        )
        == 0
    )
    out = tmp_path / "all.csv"
    assert (
        main(["predictor", "predict", str(model), "--space", "nb201", "--all", "-o", str(out)]) == 0
    )
    res = pd.read_csv(out)
    assert len(res) == 15625 and list(res.columns) == ["space", "arch", "predicted_latency_ms"]
    plot = tmp_path / "scatter.png"
    capsys.readouterr()
    assert (
        main(
            [
                "predictor",
                "compare",
                "--data",
                str(table),
                "--device",
                "help/1080ti_1",
                "--models",
                "flops,ridge",
                "--train-size",
                "250",
                "--seeds",
                "2",
                "--plot",
                str(plot),
                "--csv",
                str(tmp_path / "seeds.csv"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "flops" in text and "ridge" in text and "spearman" in text
    assert "spearman_min" in text and "spearman_max" in text
    assert plot.stat().st_size > 1000
    rows = pd.read_csv(tmp_path / "seeds.csv")
    assert sorted(zip(rows.model, rows.seed, strict=True)) == [
        ("flops", 0),
        ("flops", 1),
        ("ridge", 0),
        ("ridge", 1),
    ]
    ridge = rows[rows.model == "ridge"].spearman
    assert f"{ridge.min():.4f}" in text and f"{ridge.max():.4f}" in text


def test_cli_errors(table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "predictor",
                "fit",
                "--data",
                str(table),
                "--model",
                "ridge",
                "-o",
                str(tmp_path / "x.lbp"),
            ]
        )
        == 2
    )
    assert "pass --device" in capsys.readouterr().err
    assert (
        main(
            [
                "predictor",
                "fit",
                "--data",
                str(table),
                "--device",
                "nope",
                "-o",
                str(tmp_path / "x.lbp"),
            ]
        )
        == 2
    )
    assert "'nope'" in capsys.readouterr().err or "nope" in capsys.readouterr().err
    assert (
        main(
            [
                "predictor",
                "predict",
                str(tmp_path / "missing.lbp"),
                "--space",
                "nb201",
                "--all",
                "-o",
                str(tmp_path / "o.csv"),
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err


def test_predict_refuses_to_enumerate_fbnet_and_samples_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df = load_reference("fbnet")
    sub = df[df.device == "help/pixel3"].head(300)
    data = tmp_path / "fb.csv"
    sub[["space", "arch", "device", "latency_ms"]].to_csv(data, index=False)
    model = tmp_path / "fb.lbp"
    fit = ["predictor", "fit", "--data", str(data), "--device", "help/pixel3"]
    assert main([*fit, "--model", "ridge", "-o", str(model)]) == 0
    out = tmp_path / "fb_pred.csv"
    # 9^22 architectures: a clear error naming the size, not minutes of filling the memory
    assert main(["predictor", "predict", str(model), "--all", "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "fbnet has 9.85e+20 architectures" in err and "--sample N" in err
    assert not out.exists()
    cmd = ["predictor", "predict", str(model), "--sample", "200", "--seed", "3", "-o", str(out)]
    assert main(cmd) == 0
    res = pd.read_csv(out)
    assert len(res) == 200 == res.arch.nunique() and (res.predicted_latency_ms > 0).all()
    assert main([*cmd[:-2], "-o", str(tmp_path / "again.csv")]) == 0
    assert pd.read_csv(tmp_path / "again.csv").arch.tolist() == res.arch.tolist()  # seeded
    assert main(["predictor", "predict", str(model), "--sample", "0", "-o", str(out)]) != 0
    assert "--sample 0; expected an integer >= 1" in capsys.readouterr().err


def test_predict_and_evaluate_name_the_bad_input(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "r.lbp"
    fit = ["predictor", "fit", "--data", str(table), "--device", "help/pixel3", "--model"]
    assert main([*fit, "ridge", "-o", str(model)]) == 0
    good = pd.read_csv(table).arch.iloc[0]
    predict = ["predictor", "predict", str(model)]
    # a bad architecture is reported with its file and line
    archs = tmp_path / "archs.csv"
    archs.write_text(f"arch\n{good}\n|bad~0|\n")
    capsys.readouterr()
    assert main([*predict, "--archs", str(archs), "-o", str(tmp_path / "o.csv")]) == 2
    assert f"{archs} line 3: nb201: '|bad~0|'" in capsys.readouterr().err
    archs.write_text(f"name\n{good}\n")
    assert main([*predict, "--archs", str(archs), "-o", str(tmp_path / "o.csv")]) == 2
    assert "columns ['name']; expected an 'arch' column" in capsys.readouterr().err
    # a row of another space, and a header naming the arch column (whatever the file is called)
    archs.write_text(f"space,arch\nnb201,{good}\nfbnet,{good}\n")
    assert main([*predict, "--archs", str(archs), "-o", str(tmp_path / "o.csv")]) == 2
    assert f"{archs} line 3: space 'fbnet'; expected 'nb201'" in capsys.readouterr().err
    listed = tmp_path / "archs.txt"
    listed.write_text(f"space,arch\nnb201,{good}\n")
    assert main([*predict, "--archs", str(listed), "-o", str(tmp_path / "o.csv")]) == 0
    assert pd.read_csv(tmp_path / "o.csv").arch.tolist() == [good]
    # a space the predictor was not fitted on
    assert main([*predict, "--space", "fbnet", "--sample", "3", "-o", str(tmp_path / "o.csv")]) == 2
    assert "--space fbnet, but" in capsys.readouterr().err
    # a predictions file is not measurements: evaluating a model on its own output is refused
    out = tmp_path / "pred.csv"
    assert main([*predict, "--space", "nb201", "--sample", "5", "-o", str(out)]) == 0
    assert main(["predictor", "evaluate", str(model), "--data", str(out)]) == 1
    assert "holds predictions" in capsys.readouterr().err
    # measurements of another space: said as such, not as a parse error of the first arch
    fb = tmp_path / "fb.csv"
    ref = load_reference("fbnet")
    ref[ref.device == "help/pixel3"].iloc[:5][["space", "arch", "device", "latency_ms"]].to_csv(
        fb, index=False
    )
    assert main(["predictor", "evaluate", str(model), "--data", str(fb)]) == 2
    assert f"{fb} holds architectures of space(s) fbnet; {model} predicts space 'nb201'" in (
        capsys.readouterr().err
    )


def test_compare_checks_the_split_and_shows_progress_on_a_terminal(
    table: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    compare = ["predictor", "compare", "--data", str(table), "--device", "help/pixel3"]
    # 391 rows of help/pixel3 in the table: 900 training architectures leave nothing to test
    assert main([*compare, "--models", "ridge"]) == 2
    err = capsys.readouterr().err
    assert "--train-size 900: the data holds 391 architectures of help/pixel3" in err
    assert "expected 2 to 389" in err
    # a terminal gets a progress bar (fits done, model and seed) on stderr; a pipe does not
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = [*compare, "--models", "ridge,flops", "--seeds", "2", "--train-size", "200"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "compare help/pixel3" in captured.err and "/4 " in captured.err
    assert "model=flops, seed=1" in captured.err
    assert "200 training architectures, 191 test, 2 seed(s)" in captured.out


def test_compare_in_a_log_prints_lines_and_shares_in_percent(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a terminal (stderr captured): plain progress lines, no carriage returns; the
    shares within +-5/+-10 % are percentages named so, in the table and the per-seed CSV, and
    the scatter plot is written (log-log, one panel per model)."""
    rows, plot = tmp_path / "rows.csv", tmp_path / "scatter.png"
    argv = [
        "predictor", "compare", "--data", str(table), "--device", "help/pixel3",
        "--models", "ridge,flops", "--seeds", "2", "--train-size", "200",
        "--csv", str(rows), "--plot", str(plot),
    ]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "\r" not in err
    lines = [x for x in err.splitlines() if x.startswith("compare help/pixel3: ")]
    assert lines[0].startswith("compare help/pixel3: 1/4 fit (25%)") and "ETA" in lines[0]
    assert lines[-1].startswith("compare help/pixel3: 4/4 fit (100%)")
    assert "acc10_pct" in out and "acc5_pct" in out
    df = pd.read_csv(rows)
    assert {"acc5_pct", "acc10_pct", "mape_pct"} <= set(df.columns) and "acc10" not in df
    assert ((df.acc10_pct >= df.acc5_pct) & (df.acc10_pct <= 100)).all()
    assert df.acc10_pct.max() > 1  # percent, not a fraction
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_names_what_it_scored_and_gives_shares_in_percent(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "r.lbp"
    fit = ["predictor", "fit", "--data", str(table), "--device", "help/pixel3", "--model", "ridge"]
    assert main([*fit, "--train-size", "200", "-o", str(model)]) == 0
    capsys.readouterr()
    argv = ["predictor", "evaluate", str(model), "--data", str(table), "--device", "help/pixel3"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{model} (ridge, help/pixel3) on {table}: 391 measured row(s) of help/pixel3"
    got = {k: float(v) for k, v in (line.split() for line in out[1:])}
    df = pd.read_csv(table)
    one = df[df.device == "help/pixel3"]
    pred = load(model).predict(one.arch.tolist())
    rel = np.abs(pred / one.latency_ms.to_numpy() - 1)
    assert got["acc10_pct"] == pytest.approx(100 * np.mean(rel <= 0.10), abs=1e-4)
    assert got["acc5_pct"] == pytest.approx(100 * np.mean(rel <= 0.05), abs=1e-4)


def _fit_multi(table: Path, tmp_path: Path, train_size: int) -> Path:
    """A multi-device ``meta`` fitted on ``train_size`` architectures of the table."""
    model = tmp_path / "m.lbp"
    fit = ["predictor", "fit", "--data", str(table), "--devices", "all", "--model", "meta"]
    assert main([*fit, "--train-size", str(train_size), "--no-embed-prior", "-o", str(model)]) == 0
    return model


def test_fit_train_size_counts_architectures_on_every_device(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--train-size N is N architectures with all their rows, the split compare uses."""
    model = _fit_multi(table, tmp_path, 100)
    # both devices measured every architecture of the table: 100 architectures, 200 rows
    assert "on 200 rows of 100 architectures" in capsys.readouterr().out
    assert load(model).devices_ == ["help/1080ti_1", "help/pixel3"]
    # on one device the architectures are compare's training split of the same seed
    df = pd.read_csv(table)
    one = df[df.device == "help/pixel3"]
    single = ["predictor", "fit", "--data", str(table), "--device", "help/pixel3"]
    assert (
        main([*single, "--model", "ridge", "--train-size", "50", "--seed", "3", "-o", str(model)])
        == 0
    )
    split = one.iloc[np.random.default_rng(3).permutation(len(one))[:50]]
    same = create("ridge").fit(split.arch.tolist(), split.latency_ms.to_numpy(), space="nb201")
    probe = one.arch.tolist()[:20]
    np.testing.assert_allclose(load(model).predict(probe), same.predict(probe), rtol=1e-6)
    assert main([*single, "--model", "ridge", "--train-size", "-1", "-o", str(model)]) == 2
    assert "--train-size -1; expected N >= 1 architectures (0: all)" in capsys.readouterr().err


def test_evaluate_a_multi_device_predictor_scores_each_device(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _fit_multi(table, tmp_path, 200)
    capsys.readouterr()
    assert main(["predictor", "evaluate", str(model), "--data", str(table)]) == 0
    out = capsys.readouterr().out.splitlines()
    df = pd.read_csv(table)
    rows = {ln.split()[0]: ln.split() for ln in out[1:3]}
    assert out[0].split()[:3] == ["device", "n", "rmse_ms"] and set(rows) == set(df.device)
    p = load(model)
    for dev, cells in rows.items():
        sub = df[df.device == dev]
        rho = spearman(sub.latency_ms.to_numpy(), p.predict(sub.arch.tolist(), device=dev))
        assert int(cells[1]) == len(sub) and float(cells[out[0].split().index("spearman")]) == (
            pytest.approx(rho, abs=1e-4)
        )
    assert out[3].startswith("mean over 2 devices: rmse_ms ")
    # data of devices the predictor does not know: said, with what it knows
    other = tmp_path / "other.csv"
    df.assign(device="help/" + df.device.str.split("/").str[1] + "_x").to_csv(other, index=False)
    assert main(["predictor", "evaluate", str(model), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert "meta knows devices help/1080ti_1, help/pixel3; the data holds" in err


def test_fit_and_evaluate_read_one_devices_samples_without_a_device_column(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The adapt --samples format (space,arch,latency_ms) is one device's: --device names it."""
    df = pd.read_csv(table)
    one = df[df.device == "help/pixel3"][["space", "arch", "latency_ms"]]
    train, held = tmp_path / "train.csv", tmp_path / "held.csv"
    one.iloc[:300].to_csv(train, index=False)
    one.iloc[300:].to_csv(held, index=False)
    model = tmp_path / "alone.lbp"
    fit = ["predictor", "fit", "--data", str(train), "--model", "ridge", "-o", str(model)]
    assert main(fit) == 1
    assert "needs the device named (--device NAME" in capsys.readouterr().err
    assert main([*fit, "--device", "my_phone"]) == 0
    assert load(model).devices_ == ["my_phone"]
    capsys.readouterr()
    assert (
        main(["predictor", "evaluate", str(model), "--data", str(held), "--device", "my_phone"])
        == 0
    )
    rho = float(
        next(
            ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("spearman")
        ).split()[1]
    )
    p = create("ridge").fit(one.arch.tolist()[:300], one.latency_ms.to_numpy()[:300], space="nb201")
    assert rho == pytest.approx(
        spearman(one.latency_ms.to_numpy()[300:], p.predict(one.arch.tolist()[300:])), abs=1e-4
    )


def test_a_data_file_without_rows_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("space,arch,device,latency_ms\n")
    for argv in (
        ["predictor", "fit", "--data", str(empty), "--device", "x", "--model", "ridge",
         "-o", str(tmp_path / "p.lbp")],
        ["predictor", "compare", "--data", str(empty), "--device", "x"],
        ["monotonicity", "--data", str(empty)],
    ):  # fmt: skip
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"{empty} holds no measured rows; expected rows of space, arch" in err, argv
    assert not (tmp_path / "p.lbp").exists()


def test_device_globs_and_short_names_select_rows_and_single_device_commands_refuse_several(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--device takes the names monotonicity takes (globs, short names); a command that scores
    one device refuses a pattern matching several instead of scoring mixed rows as one."""
    multi = tmp_path / "m.lbp"
    fit = ["predictor", "fit", "--data", str(table), "--model", "meta", "--no-embed-prior"]
    assert main([*fit, "--devices", "help/*", "-o", str(multi)]) == 0
    assert load(multi).devices_ == ["help/1080ti_1", "help/pixel3"]
    one = tmp_path / "one.lbp"
    assert main([*fit[:-3], "--model", "ridge", "--device", "pixel3", "-o", str(one)]) == 0
    assert load(one).devices_ == ["help/pixel3"]
    capsys.readouterr()
    evaluate = ["predictor", "evaluate", str(one), "--data", str(table), "--device"]
    assert main([*evaluate, "help/*"]) == 2
    err = capsys.readouterr().err
    assert "--device 'help/*' matches 2 devices (help/1080ti_1, help/pixel3)" in err
    assert "predictor evaluate scores one device at a time" in err
    # a short name scores the same rows as the full one
    assert main([*evaluate, "pixel3"]) == 0
    short = capsys.readouterr().out
    assert main([*evaluate, "help/pixel3"]) == 0
    assert capsys.readouterr().out == short
    # a multi-device predictor scores each matching device, as without --device
    assert main(["predictor", "evaluate", str(multi), "--data", str(table), "--device", "*"]) == 0
    assert capsys.readouterr().out.splitlines()[3].startswith("mean over 2 devices")
    compare = ["predictor", "compare", "--data", str(table), "--models", "ridge", "--seeds", "1"]
    assert main([*compare, "--device", "help/*", "--train-size", "100"]) == 2
    assert "predictor compare scores one device at a time" in capsys.readouterr().err
    assert main([*compare, "--device", "1080*", "--train-size", "100"]) == 0
    assert capsys.readouterr().out.startswith("help/1080ti_1: 100 training architectures")
    assert main([*fit, "--devices", "pixel3,nope*", "-o", str(multi)]) == 2
    assert "device(s) ['nope*'] not in the data; expected some of: help/1080ti_1" in (
        capsys.readouterr().err
    )


def test_predict_writes_the_format_its_output_names_and_takes_short_device_names(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    multi = _fit_multi(table, tmp_path, 100)
    predict = ["predictor", "predict", str(multi), "--sample", "4", "--device", "pixel3", "-o"]
    frames = {}
    for name in ("p.csv", "p.parquet", "p.json"):
        assert main([*predict, str(tmp_path / name)]) == 0
    frames["csv"] = pd.read_csv(tmp_path / "p.csv")
    frames["parquet"] = pd.read_parquet(tmp_path / "p.parquet")  # a real parquet file
    frames["json"] = pd.read_json(tmp_path / "p.json")
    for frame in frames.values():
        assert list(frame.columns) == ["space", "arch", "predicted_latency_ms"]
        np.testing.assert_allclose(
            frame["predicted_latency_ms"], frames["csv"]["predicted_latency_ms"]
        )
    p = load(multi)
    expected = p.predict(frames["csv"]["arch"].tolist(), device="help/pixel3")
    np.testing.assert_allclose(frames["csv"]["predicted_latency_ms"], expected, rtol=1e-6)
    capsys.readouterr()
    assert main([*predict, "-"]) == 0  # stdout, not a file named "-"
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "space,arch,predicted_latency_ms" and len(out.splitlines()) == 5
    assert not Path("-").exists()
    assert main([*predict[:-3], "--device", "help/*", "-o", str(tmp_path / "x.csv")]) == 2
    assert "--device 'help/*' matches 2 devices (help/1080ti_1, help/pixel3); pass one" in (
        capsys.readouterr().err
    )


NB_CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


def test_fit_on_graphs_then_predict_onnx_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """nn-Meter's use: a kernel predictor of a device, then the latency of a model file. An
    NB201 cell exported to ONNX and imported back is predicted exactly as the architecture is;
    an FBNet model (depthwise kernels, 96x96, wider) is predicted with a warning naming what
    lies beyond the NB201 training graphs."""
    from latbench.spaces import export, get_space

    a76 = tmp_path / "a76.lbp"
    fit = ["predictor", "fit", "--reference", "nb201", "--device", "cortexA76*"]
    assert main([*fit, "--model", "kernel", "--graphs", "--train-size", "300", "-o", str(a76)]) == 0
    assert "on the graphs of nb201 architectures" in capsys.readouterr().out
    model = load(a76)
    assert model.space_ == "graph" and model.devices_ == ["nnmeter/cortexA76cpu_tflite21"]
    assert model.graph_coverage_["max"]["hw"] == 32.0
    nb = get_space("nb201")
    cell = export(nb.build(NB_CELL), "onnx", tmp_path / "cell.onnx", seed=0)
    fb = get_space("fbnet", resolution=96)
    big = export(fb.build(fb.sample(1, seed=0)[0]), "onnx", tmp_path / "fb.onnx", seed=0)
    out = tmp_path / "pred.csv"
    argv = ["predictor", "predict", str(a76), "--onnx", str(cell), "--onnx", str(big)]
    assert main([*argv, "-o", str(out)]) == 0
    got = pd.read_csv(out)
    assert list(got.columns) == ["model", "predicted_latency_ms"]
    assert got.model.tolist() == [str(cell), str(big)] and (got.predicted_latency_ms > 0).all()
    same = model.predict([nb.build(NB_CELL)])[0]
    assert got.predicted_latency_ms.iloc[0] == pytest.approx(same, rel=1e-12)
    warned = [r.getMessage() for r in caplog.records if "beyond what" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"{big}: beyond what {a76} was trained on")
    assert "of type(s) never seen in training (" in warned[0] and "dwconv-bn-relu" in warned[0]
    assert "hw up to 96 (trained up to 32)" in warned[0]
    assert "its prediction is an extrapolation" in warned[0]
    # the same cell through --space (the architecture's graph) gives the same number
    archs = tmp_path / "a.txt"
    archs.write_text(NB_CELL + "\n")
    assert main(["predictor", "predict", str(a76), "--space", "nb201", "--archs", str(archs),
                 "-o", str(tmp_path / "p2.csv")]) == 0  # fmt: skip
    p2 = pd.read_csv(tmp_path / "p2.csv")
    assert p2.predicted_latency_ms.iloc[0] == pytest.approx(same, rel=1e-12)
    capsys.readouterr()


def test_graph_fit_and_onnx_predict_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from latbench.spaces import export, get_space

    cell = export(get_space("nb201").build(NB_CELL), "onnx", tmp_path / "cell.onnx", seed=0)
    import onnx
    from onnx import TensorProto, helper

    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in "xy")
    elu = tmp_path / "elu.onnx"
    nodes = [helper.make_node("Elu", ["x"], ["y"])]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y])), elu)
    fit = ["predictor", "fit", "--reference", "nb201", "--device", "cortexA76*", "--train-size"]
    assert main([*fit, "100", "--model", "ridge", "--graphs", "-o", str(tmp_path / "r.lbp")]) == 2
    err = capsys.readouterr().err
    assert "--graphs: ridge reads search-space architectures, not graphs" in err
    assert "expected one of flops, gcn, kernel" in err and not (tmp_path / "r.lbp").exists()
    space_model = tmp_path / "s.lbp"
    assert main([*fit, "100", "--model", "ridge", "-o", str(space_model)]) == 0
    graph_model = tmp_path / "g.lbp"
    assert main([*fit, "100", "--model", "flops", "--graphs", "-o", str(graph_model)]) == 0
    capsys.readouterr()
    cases = [
        ([str(space_model), "--onnx", str(cell)], "predicts nb201 architectures, not model graphs"),
        ([str(graph_model), "--onnx", str(cell), "--all"], "--onnx and --all: expected models"),
        ([str(graph_model), "--onnx", str(tmp_path / "none.onnx")], "none.onnx' does not exist"),
        # which of several models could not be imported, and why
        (
            [str(graph_model), "--onnx", str(cell), "--onnx", str(elu)],
            f"{elu}: ONNX node 'y' (Elu)",
        ),
        ([str(graph_model)], "pass --onnx FILE for a model, or --space"),
    ]
    for argv, want in cases:
        rc = main(["predictor", "predict", *argv, "-o", str(tmp_path / "o.csv")])
        err = capsys.readouterr().err
        assert rc in (1, 2) and want in err, (argv, err)
    rc = main(["predictor", "predict", str(graph_model), "--onnx", str(cell), "-o", str(cell)])
    assert rc == 2 and "is the --onnx file" in capsys.readouterr().err
    assert cell.stat().st_size > 1000  # the model is still there


def test_fit_on_graphs_builds_what_each_row_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store row's input_shape (a collection at --resolution 64, batch 2) is the graph the
    latency belongs to: fit --graphs builds that one, not the space's default 32x32."""
    import json

    d = load_reference("nb201")
    d = d[d.device == "help/pixel3"].iloc[:30][["space", "arch", "device", "latency_ms"]].copy()
    d["input_shape"] = json.dumps({"input": [2, 3, 64, 64]})
    table = tmp_path / "res64.csv"
    d.to_csv(table, index=False)
    out = tmp_path / "g.lbp"
    argv = ["predictor", "fit", "--data", str(table), "--model", "flops", "--graphs"]
    assert main([*argv, "-o", str(out)]) == 0
    capsys.readouterr()
    model = load(out)
    assert model.graph_coverage_["max"]["hw"] == 64.0
    from latbench.spaces import get_space

    nb = get_space("nb201")
    arch = d.arch.iloc[0]
    assert model.coverage_note(nb.build(arch, batch=2, resolution=64)) == ""
    assert "hw up to 128 (trained up to 64)" in model.coverage_note(nb.build(arch, resolution=128))
    # evaluate scores the rows on the graphs they were measured on, as fit built them
    rc = main(["predictor", "evaluate", str(out), "--data", str(table)])
    text = capsys.readouterr().out
    graphs = [nb.build(a, batch=2, resolution=64) for a in d.arch]
    from latbench.predictors.metrics import mape

    want = mape(d.latency_ms.to_numpy(), model.predict(graphs))
    got = float(next(x for x in text.splitlines() if x.startswith("mape_pct")).split()[1])
    assert rc == 0 and got == pytest.approx(want, abs=1e-4)


def test_per_kernel_rows_break_a_prediction_down_and_sum_to_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from latbench.spaces import export, get_space

    k = tmp_path / "k.lbp"
    fit = ["predictor", "fit", "--reference", "nb201", "--device", "cortexA76*", "--train-size"]
    assert main([*fit, "200", "--model", "kernel", "--graphs", "-o", str(k)]) == 0
    cell = export(get_space("nb201").build(NB_CELL), "onnx", tmp_path / "cell.onnx", seed=0)
    whole, parts = tmp_path / "whole.csv", tmp_path / "parts.csv"
    base = ["predictor", "predict", str(k), "--onnx", str(cell)]
    assert main([*base, "-o", str(whole)]) == 0
    assert main([*base, "--per-kernel", "-o", str(parts)]) == 0
    assert "(" in capsys.readouterr().err  # "predicted 1 model(s) (N kernels)"
    rows = pd.read_csv(parts)
    assert list(rows.columns)[:4] == ["model", "kernel_index", "type", "nodes"]
    assert {"hw", "cin", "cout", "kernel", "stride", "flops", "params"} <= set(rows.columns)
    assert rows.kernel_index.tolist() == list(range(len(rows))) and len(rows) > 50
    assert "conv-bn" in set(rows.type) and rows.nodes.str.contains("stem_conv").any()
    total = pd.read_csv(whole).predicted_latency_ms.iloc[0]
    assert rows.predicted_latency_ms.sum() == pytest.approx(total, rel=1e-9)
    # a kernel predictor of the space's architectures: the same breakdown by architecture
    ks = tmp_path / "ks.lbp"
    assert main([*fit, "200", "--model", "kernel", "-o", str(ks)]) == 0
    archs = tmp_path / "a.txt"
    archs.write_text(NB_CELL + "\n")
    assert main(["predictor", "predict", str(ks), "--archs", str(archs), "--per-kernel",
                 "-o", str(parts)]) == 0  # fmt: skip
    by_arch = pd.read_csv(parts)
    assert list(by_arch.columns)[:3] == ["space", "arch", "kernel_index"]
    one = load(ks).predict([NB_CELL])[0]
    assert by_arch.predicted_latency_ms.sum() == pytest.approx(one, rel=1e-9)
    ridge = tmp_path / "r.lbp"
    assert main([*fit, "100", "--model", "ridge", "-o", str(ridge)]) == 0
    capsys.readouterr()
    rc = main(["predictor", "predict", str(ridge), "--archs", str(archs), "--per-kernel",
               "-o", str(parts)])  # fmt: skip
    assert rc == 2 and "the breakdown by kernel needs a kernel predictor" in capsys.readouterr().err
