"""Bad and unusual input to ``latbench rank``, ``export`` and ``predictor predict/evaluate``.

Each test feeds what a user could: an output named after an input, a table name of another
format, measurements that cannot be ranked. Real predictors on the bundled reference rows.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cli_helpers import cli, no_config_fixture
from latbench.cli import main
from latbench.datasets import load_reference

ARCH = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|"


_no_config = no_config_fixture()


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    df = load_reference("nb201")
    two = df[df.device.isin(["help/pixel3", "help/1080ti_1"]) & (df.nb201_index % 50 == 0)]
    return two[["space", "arch", "device", "latency_ms"]].reset_index(drop=True)


def _fit(factory: pytest.TempPathFactory, name: str, devices: str, model: str, n: int) -> Path:
    """A predictor fitted by the CLI on the reference rows of ``devices``."""
    out = factory.mktemp("lbp") / name
    argv = ["predictor", "fit", "--reference", "nb201", "--device", devices, "--model", model]
    assert main([*argv, "--train-size", str(n), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def ridge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fit(tmp_path_factory, "pixel3.lbp", "help/pixel3", "ridge", 200)


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fit(tmp_path_factory, "two.lbp", "help/pixel3,help/1080ti_1", "meta", 100)


def _archs(tmp_path: Path) -> Path:
    path = tmp_path / "archs.txt"
    path.write_text(ARCH + "\n|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|\n")
    return path


# -- an output that names an input ---------------------------------------------------------------


def test_predict_refuses_an_output_that_is_its_predictor_or_archs_file(
    ridge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, ``-o`` over the predictor wrote the CSV over it (exit 0: the model was lost)."""
    model = tmp_path / "model.bin"  # a predictor file may have any name
    shutil.copy(ridge, model)
    before = model.read_bytes()
    rc, _, err = cli(capsys, "predictor", "predict", str(model), "--sample", "3", "-o", "model.bin")
    assert rc == 2
    assert "-o/--output 'model.bin' is the predictor file; expected a new file" in err
    assert model.read_bytes() == before
    archs = _archs(tmp_path)
    listed = archs.read_text()
    rc, _, err = cli(capsys, "predictor", "predict", str(model), "--archs", str(archs), "-o",
                     "./archs.txt")  # fmt: skip
    assert rc == 2 and "-o/--output './archs.txt' is the --archs file" in err
    assert archs.read_text() == listed


def test_fit_refuses_an_output_that_is_its_data_file(
    rows: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, ``predictor fit -o`` over ``--data`` replaced the measurements with the model."""
    data = tmp_path / "rows.csv"
    rows.to_csv(data, index=False)
    before = data.read_bytes()
    argv = ["predictor", "fit", "--data", str(data), "--device", "help/pixel3", "--model", "ridge"]
    rc, _, err = cli(capsys, *argv, "-o", "./rows.csv")
    assert rc == 2
    assert "-o/--output './rows.csv' is the --data file; expected a new file" in err
    assert data.read_bytes() == before
    rc, out, _ = cli(capsys, *argv, "-o", "p.lbp")
    assert rc == 0 and "-> p.lbp" in out and (tmp_path / "p.lbp").stat().st_size > 0


def test_rank_refuses_an_output_that_is_a_predictor_or_the_archs_file(
    ridge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, ``rank -o`` over the --archs list (or a --predictor) replaced it with the table."""
    archs = _archs(tmp_path)
    listed = archs.read_text()
    model = tmp_path / "p.lbp"
    shutil.copy(ridge, model)
    before = model.read_bytes()
    base = ["rank", "--predictor", str(ridge), "--predictor", str(model), "--archs", str(archs)]
    rc, _, err = cli(capsys, *base, "-o", str(archs))
    assert rc == 2
    assert f"-o/--output {str(archs)!r} is the --archs file; expected a new file" in err
    assert archs.read_text() == listed
    rc, _, err = cli(capsys, *base, "-o", "p.lbp")
    assert rc == 2 and "-o/--output 'p.lbp' is the --predictor file" in err
    assert model.read_bytes() == before
    rc, _, _ = cli(capsys, *base, "-o", "-")  # stdout is no file of theirs
    assert rc == 0


def test_export_refuses_to_write_over_its_onnx_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, ``export --onnx m.onnx -o m.onnx`` replaced the model with seeded weights."""
    src = tmp_path / "m.onnx"
    assert cli(capsys, "export", "nb201", ARCH, "-o", str(src))[0] == 0
    before = src.read_bytes()
    rc, _, err = cli(capsys, "export", "--onnx", str(src), "--seed", "3", "-o", "./m.onnx")
    assert rc == 2
    assert "-o/--output './m.onnx' is the --onnx file; expected a new file" in err
    assert src.read_bytes() == before


def test_export_says_when_it_replaces_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = cli(capsys, "export", "nb201", ARCH, "-o", "m.onnx")
    assert rc == 0 and "replaced" not in out
    rc, out, _ = cli(capsys, "export", "nb201", ARCH, "-o", "m.onnx", "--seed", "1")
    assert rc == 0 and "; replaced the file already there)" in out


# -- predict: the output's name sets its format --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("out.tsv", "latbench does not write .tsv tables (it would write CSV under that name)"),
        ("out.xlsx", "latbench does not write .xlsx tables"),
        ("out.parquet.gz", "a parquet table compresses itself, and .gz is no suffix"),
    ],
)
def test_predict_refuses_a_table_name_of_another_format(
    ridge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, said: str
) -> None:
    """Before, each of these names got a plain (or gzipped) CSV, exit 0."""
    rc, _, err = cli(capsys, "predictor", "predict", str(ridge), "--sample", "3", "-o", name)
    assert rc == 2
    assert f"-o/--output {name!r}: {said}" in err
    assert "expected a name ending in .csv, .csv.gz, .json, .parquet or .pq" in err
    assert not (tmp_path / name).exists()


def test_predict_json_gz_is_compressed_json(
    ridge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, ``-o out.json.gz`` held gzipped CSV."""
    rc, _, _ = cli(capsys, "predictor", "predict", str(ridge), "--sample", "3", "-o", "out.json.gz")
    assert rc == 0
    doc = json.loads(gzip.decompress((tmp_path / "out.json.gz").read_bytes()))
    assert len(doc) == 3 and set(doc[0]) == {"space", "arch", "predicted_latency_ms"}


# -- evaluate: measurements without an order ---------------------------------------------------


def _metrics(out: str) -> dict[str, str]:
    return {ln.split()[0]: ln.split()[1] for ln in out.splitlines() if len(ln.split()) == 2}


def test_evaluate_of_one_row_says_the_rank_metrics_are_undefined(
    ridge: Path, rows: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``spearman 0.0000``, ``kendall 0.0000``, ``top1 1.0000`` for a single row."""
    rows[rows.device == "help/pixel3"].head(1).to_csv("one.csv", index=False)
    rc, out, _ = cli(capsys, "predictor", "evaluate", str(ridge), "--data", "one.csv")
    assert rc == 0
    m = _metrics(out)
    assert m["spearman"] == m["kendall"] == m["top1"] == "n/a"
    assert float(m["rmse_ms"]) > 0  # the error metrics still score the one row
    assert "n/a: 1 measured row; the rank metrics (spearman, kendall, top-k) need at least 2" in out


def test_evaluate_of_one_latency_says_the_rank_metrics_are_undefined(
    ridge: Path, rows: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: every row 5 ms gave ``spearman 0.0000`` and ``top10 1.0000``."""
    rows[rows.device == "help/pixel3"].assign(latency_ms=5.0).to_csv("flat.csv", index=False)
    rc, out, _ = cli(capsys, "predictor", "evaluate", str(ridge), "--data", "flat.csv")
    assert rc == 0
    m = _metrics(out)
    assert m["spearman"] == m["kendall"] == "n/a"
    assert "every measured latency is 5 ms" in out


def test_evaluate_each_device_leaves_an_unranked_device_out_of_the_mean(
    multi: Path, rows: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, one device with a single row set k = 1 for every device and its spearman 0.0
    halved the mean."""
    full = rows[rows.device == "help/pixel3"]
    data = pd.concat([full, rows[rows.device == "help/1080ti_1"].head(1)])
    data.to_csv("two.csv", index=False)
    full.to_csv("full.csv", index=False)
    rc, out, _ = cli(capsys, "predictor", "evaluate", str(multi), "--data", "two.csv")
    assert rc == 0
    head, one, px = out.splitlines()[:3]
    k = f"top{max(1, min(50, len(full) // 5))}"
    assert head.split()[-1] == k  # the pixel3 rows' k, not 1
    assert one.split()[0] == "help/1080ti_1" and one.split()[-3:] == ["n/a"] * 3
    rc, alone, _ = cli(capsys, "predictor", "evaluate", str(multi), "--data", "full.csv")
    assert rc == 0
    rho = alone.splitlines()[1].split()[head.split().index("spearman")]
    assert px.split()[head.split().index("spearman")] == rho
    assert f"spearman {rho}" in out  # the mean is pixel3's own
    assert "n/a: the rows of help/1080ti_1 have no order to rank" in out


def test_evaluate_names_the_data_file_of_a_bad_architecture(
    ridge: Path, rows: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, the message named the string but not the file it came from."""
    bad = rows[rows.device == "help/pixel3"].copy()
    bad.iloc[[0, 1], bad.columns.get_loc("arch")] = "|bogus~0|+|"
    bad.to_csv("bad.csv", index=False)
    rc, _, err = cli(capsys, "predictor", "evaluate", str(ridge), "--data", "bad.csv")
    assert rc == 2
    assert "bad.csv: nb201: '|bogus~0|+|' has 2 node group(s)" in err
    assert "(2 row(s) of that architecture)" in err
