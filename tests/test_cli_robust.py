"""The predictor, adapt, monotonicity, search and report commands on what users feed them:
Excel's CSV files, contradictory options, ``-o -``, strict JSON, tiny test sets. Real reference
rows and real fits throughout; the one live adaptation measures on this machine's CPU."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import cli
from latbench.cli import main
from latbench.commands._json import dumps
from latbench.datasets import load_reference
from latbench.predictors import create, load, save
from latbench.predictors.metrics import top_k_for

FAST = ["--min-time", "0.05", "--max-time", "0.2"]


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    df = load_reference("nb201")
    keep = df.device.isin(["help/pixel3", "help/1080ti_1", "help/titanx_1", "help/titanx_32"])
    return df[keep & (df.nb201_index < 400)][["space", "arch", "device", "latency_ms"]]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, rows: pd.DataFrame) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    pix = rows[rows.device == "help/pixel3"]
    paths = {"dir": d, "pix": d / "pix.csv", "long": d / "long.csv"}
    pix.to_csv(paths["pix"], index=False)
    rows.to_csv(paths["long"], index=False)
    one = create("ridge").fit(
        pix.arch.tolist()[:200], pix.latency_ms.to_numpy()[:200], space="nb201"
    )
    save(one, d / "pix.lbp")
    base = create("meta").fit(
        rows.arch.tolist(), rows.latency_ms.to_numpy(), space="nb201", devices=list(rows.device)
    )
    save(base, d / "base.lbp")
    paths["one"], paths["base"] = d / "pix.lbp", d / "base.lbp"
    return paths


def _bom_samples(path: Path, pix: pd.DataFrame, n: int = 10) -> Path:
    body = "space , arch , latency_ms\r\n" + "".join(
        f"nb201 , {a} , {v}\r\n" for a, v in zip(pix.arch[:n], pix.latency_ms[:n], strict=True)
    )
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    return path


def test_excel_csv_files_are_read_by_every_command(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], rows: pd.DataFrame
) -> None:
    pix = rows[rows.device == "help/pixel3"].iloc[300:]
    d = work["dir"]
    samples = _bom_samples(d / "bom.csv", pix)
    rc, _, err = cli(
        capsys, "adapt", str(work["base"]), "--samples", str(samples), "-o", str(d / "a.lbp")
    )
    assert rc == 0, err
    rc, _, err = cli(capsys, "monotonicity", "--data", str(work["long"]), "--samples", str(samples))
    assert rc == 0, err
    archs = d / "archs.csv"
    archs.write_bytes(b"\xef\xbb\xbfarch \r\n" + "".join(f"{a}\r\n" for a in pix.arch[:5]).encode())
    rc, out, err = cli(capsys, "rank", "--predictor", str(work["one"]), "--archs", str(archs))
    assert rc == 0, err
    assert all(a in out for a in pix.arch[:5])
    objective = d / "acc.csv"
    objective.write_bytes(
        b"\xef\xbb\xbfarch, accuracy\n"
        + "".join(f"{a}, {i}\n" for i, a in enumerate(pix.arch[:40])).encode()
    )
    rc, _, err = cli(
        capsys, "search", "--space", "nb201", "--objective", str(objective), "--table-only",
        "--strategy", "random", "--evaluations", "40", "--no-plot", "-q", "-o", str(d / "s.json"),
    )  # fmt: skip
    assert rc == 0, err


def test_strict_json_everywhere(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], rows: pd.DataFrame
) -> None:
    doc = {"a": float("nan"), "b": [float("-inf"), np.float32(1.5)], "c": np.int64(3)}
    assert json.loads(dumps(doc)) == {"a": None, "b": [None, 1.5], "c": 3}
    # two devices that share no architecture: their correlation is null, not NaN
    d = work["dir"]
    a = rows[rows.device == "help/pixel3"].iloc[:40]
    b = rows[rows.device == "help/1080ti_1"].iloc[40:80]
    c = rows[rows.device == "help/titanx_1"].iloc[:80]
    pd.concat([a, b, c]).to_csv(d / "disjoint.csv", index=False)
    rc, out, err = cli(capsys, "monotonicity", "--data", str(d / "disjoint.csv"), "--json")
    assert rc == 0, err
    parsed = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert None in [v for row in parsed["spearman"] for v in row]


def test_output_dash_is_stdout_only_where_the_command_writes_there(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], tmp_path: Path
) -> None:
    rc, out, _ = cli(capsys, "predictor", "predict", str(work["one"]), "--sample", "3", "-o", "-")
    assert rc == 0 and out.startswith("space,arch,predicted_latency_ms")
    for argv in (
        ["predictor", "fit", "--data", str(work["pix"]), "--model", "ridge", "-o", "-"],
        ["search", "--space", "nb201", "--evaluations", "20", "-o", "-"],
        ["monotonicity", "--data", str(work["long"]), "--csv", "-"],
    ):
        rc, _, err = cli(capsys, *argv)
        assert rc == 2 and "does not write to standard output" in err, argv
    assert not (Path.cwd() / "-").exists()


def test_contradictory_options_are_refused(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], tmp_path: Path
) -> None:
    cases = [
        (["predictor", "predict", str(work["one"]), "--all", "--sample", "3", "-o", "-"],
         "--all and --sample"),
        (["predictor", "fit", "--data", str(work["pix"]), "--reference", "nb201", "--model",
          "ridge", "-o", str(tmp_path / "x.lbp")], "expected one source of data"),
        (["adapt", str(work["base"]), "--samples", str(work["pix"]), "--budget", "5", "-o",
          str(tmp_path / "x.lbp")], "--budget with --samples"),
        (["search", "--space", "nb201", "--evaluations", "20", "--verify", "5", "--top", "3",
          "-o", str(tmp_path / "s.json")], "expected --verify <= --top"),
        (["predictor", "compare", "--data", str(work["pix"]), "--device", "pixel3", "--models", ",",
          "--train-size", "50"], "names no model"),
        (["monotonicity", "--reference", "nb201", "--target", "help/titanx*", "--k", "10"],
         "matches 6 devices"),
        (["predictor", "predict", str(work["base"]), "--sample", "3", "--device", "nope",
          "-o", "-"], "'nope' matches none of the predictor's 4 devices"),
        (["adapt", str(work["base"]), "--device", "local", "--save-samples",
          str(tmp_path / "nodir" / "s.csv"), "-o", str(tmp_path / "x.lbp")], "--save-samples"),
        (["demo", "--sample", "20000", "--out", str(tmp_path / "demo")], "--sample 20000"),
    ]  # fmt: skip
    for argv, message in cases:
        rc, _, err = cli(capsys, *argv)
        assert rc == 2 and message in err, (argv, err)
    assert not (tmp_path / "demo").exists()
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        main(["predictor"])
    assert exc.value.code == 2 and "ACTION" in capsys.readouterr().err


def test_small_test_sets_get_a_top_k_that_still_ranks(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], rows: pd.DataFrame, tmp_path: Path
) -> None:
    assert [top_k_for(n) for n in (3, 12, 50, 249, 250, 10_000)] == [1, 2, 10, 49, 50, 50]
    held = rows[rows.device == "help/pixel3"].iloc[350:]  # 50 rows the model never saw
    held.to_csv(tmp_path / "held.csv", index=False)
    rc, out, err = cli(
        capsys, "predictor", "evaluate", str(work["one"]), "--data", str(tmp_path / "held.csv")
    )
    assert rc == 0, err
    assert "top10 " in out and "top50" not in out
    # several devices of different sizes: one k, so one column and a mean over all of them
    uneven = pd.concat(
        [
            rows[rows.device == "help/pixel3"].iloc[:100],
            rows[rows.device == "help/1080ti_1"].iloc[:60],
        ]
    )
    uneven.to_csv(tmp_path / "uneven.csv", index=False)
    rc, out, err = cli(
        capsys, "predictor", "evaluate", str(work["base"]), "--data", str(tmp_path / "uneven.csv")
    )
    assert rc == 0, err
    assert "top12" in out and "nan" not in out.lower()


def test_compare_splits_distinct_architectures(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], tmp_path: Path
) -> None:
    pix = pd.read_csv(work["pix"]).iloc[:30]
    pd.concat([pix, pix]).to_csv(tmp_path / "dup.csv", index=False)
    rc, out, err = cli(
        capsys, "predictor", "compare", "--data", str(tmp_path / "dup.csv"), "--device", "pixel3",
        "--models", "ridge", "--train-size", "20", "--seeds", "1",
    )  # fmt: skip
    assert rc == 0, err
    assert "20 training architectures, 10 test" in out


def test_fit_keeps_the_one_devices_name(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], tmp_path: Path
) -> None:
    rc, _, err = cli(
        capsys, "predictor", "fit", "--data", str(work["pix"]), "--model", "ridge", "-o",
        str(tmp_path / "p.lbp"),
    )  # fmt: skip
    assert rc == 0, err
    assert load(tmp_path / "p.lbp").devices_ == ["help/pixel3"]


def test_search_without_a_latency_constraint_plots(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, out, err = cli(
        capsys,
        "search",
        "--space",
        "nb201",
        "--evaluations",
        "60",
        "-q",
        "-o",
        str(tmp_path / "r.json"),
    )
    assert rc == 0, err
    assert (tmp_path / "r.png").stat().st_size > 0
    assert "constraints: none" in out


def test_minimized_objective_is_named_negated(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], tmp_path: Path
) -> None:
    pix = pd.read_csv(work["pix"]).iloc[:30]
    pd.DataFrame({"arch": pix.arch, "error": np.linspace(5, 9, 30)}).to_csv(
        tmp_path / "err.csv", index=False
    )
    rc, out, err = cli(
        capsys, "search", "--space", "nb201", "--objective", str(tmp_path / "err.csv"),
        "--minimize", "--table-only", "--strategy", "random", "--evaluations", "30",
        "--no-plot", "-q", "-o", str(tmp_path / "o.json"),
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["objective"]["name"] == "-error"
    assert "objective -error" in out
    assert "1. -5 " in out  # the lowest error, 5, negated: and named so


def test_margin_from_too_few_rows_names_the_file(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], tmp_path: Path
) -> None:
    pd.read_csv(work["pix"]).iloc[:3][["arch", "latency_ms"]].to_csv(
        tmp_path / "m.csv", index=False
    )
    rc, _, err = cli(
        capsys, "search", "--space", "nb201", "--predictor", str(work["one"]), "--budget-ms", "5",
        "--margin-from", str(tmp_path / "m.csv"), "--evaluations", "20",
        "-o", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert rc == 2 and "m.csv' holds 3 row(s); expected at least 5" in err


def test_samples_in_seconds_are_flagged(
    work: dict[str, Path], rows: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    pix = rows[rows.device == "help/pixel3"].iloc[300:312]
    base = load(work["base"])
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.adapt"):
        base.adapt(pix.arch.tolist(), pix.latency_ms.to_numpy() / 1000.0, method="meta")
    assert "seconds or microseconds" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.adapt"):
        base.adapt(pix.arch.tolist(), pix.latency_ms.to_numpy(), method="meta")
    assert "seconds or microseconds" not in caplog.text


def test_live_adapt_json_is_the_only_stdout(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], tmp_path: Path
) -> None:
    rc, out, err = cli(
        capsys, "adapt", str(work["base"]), "--device", "local", "--budget", "3", *FAST,
        "--db", str(tmp_path / "live.db"), "-o", str(tmp_path / "l.lbp"), "--json",
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["samples"] == 3 or doc.get("n_samples", 3) == 3
    assert "measuring 3 architectures" in err


def test_data_files_with_spaced_headers_and_typos(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], tmp_path: Path
) -> None:
    pix = pd.read_csv(work["pix"]).iloc[:20]
    body = "".join(
        f"nb201, {a} , help/pixel3, {v}\n" for a, v in zip(pix.arch, pix.latency_ms, strict=True)
    )
    (tmp_path / "ws.csv").write_bytes(
        b"\xef\xbb\xbfspace, arch, device, latency_ms\n" + body.encode()
    )
    rc, out, err = cli(
        capsys, "predictor", "fit", "--data", str(tmp_path / "ws.csv"), "--model", "ridge",
        "-o", str(tmp_path / "p.lbp"),
    )  # fmt: skip
    assert rc == 0, err
    assert "20 rows of 20 architectures (help/pixel3)" in out
    typo = pix.copy().astype({"latency_ms": object})
    typo.loc[typo.index[4], "latency_ms"] = "abc"
    typo.to_csv(tmp_path / "typo.csv", index=False)
    rc, _, err = cli(
        capsys, "predictor", "fit", "--data", str(tmp_path / "typo.csv"), "--model", "ridge",
        "-o", str(tmp_path / "p.lbp"),
    )  # fmt: skip
    assert rc != 0 and "typo.csv line 6: latency_ms 'abc'; expected a number" in err
