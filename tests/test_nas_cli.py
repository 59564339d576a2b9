"""``latbench rank`` and ``latbench search`` end to end, with real predictors and a real device."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from latbench import predictors
from latbench.cli import main
from latbench.datasets.reference import load_reference
from latbench.spaces import get_space

SPACE = get_space("nb201")


def _fit(space: str, device: str, path: Path, n: int = 300) -> Path:
    df = load_reference(space)
    d = df[df.device == device].iloc[:n]
    p = predictors.create("ridge").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space=space)
    predictors.save(p, path)
    return path


@pytest.fixture(scope="module")
def lbp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lbp")
    return {
        "pixel3": _fit("nb201", "help/pixel3", d / "pixel3.lbp"),
        "titanx": _fit("nb201", "help/titanx_1", d / "titanx.lbp"),
        "fbnet": _fit("fbnet", load_reference("fbnet").device.iloc[0], d / "fb.lbp", 50),
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_rank_picks_and_orders_by_devices_of_a_multi_device_predictor(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    """--device keeps, of a multi-device predictor, the columns of the devices it names, in
    its order: the first orders the rows. A name that matches none of the predictor's devices,
    or --device with single-device predictors only, is refused naming what there is."""
    df = load_reference("nb201")
    d = df[df.device.isin(["help/pixel3", "help/titanx_1", "help/gold_6240"])]
    d = d[d.nb201_index % 20 == 0]
    multi = predictors.create("meta").fit(
        d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201", devices=d.device.tolist()
    )
    assert multi.devices_ == ["help/gold_6240", "help/pixel3", "help/titanx_1"]
    base = tmp_path / "base.lbp"
    predictors.save(multi, base)
    out = tmp_path / "r.csv"
    rc, _, err = run(
        capsys, "rank", "--predictor", str(base), "--device", "titanx_1,help/pixel3",
        "--space", "nb201", "--sample", "200", "--seed", "4", "-o", str(out),
    )  # fmt: skip
    assert rc == 0, err
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert list(rows[0]) == [
        "rank", "arch", "latency_ms[base:help/titanx_1]", "latency_ms[base:help/pixel3]",
    ]  # fmt: skip
    first = [float(r["latency_ms[base:help/titanx_1]"]) for r in rows]
    assert first == sorted(first) and len(rows) == 200
    # the same numbers as the predictor gives for those devices
    archs = [r["arch"] for r in rows[:5]]
    want = multi.predict(archs, device="help/pixel3")
    got = [float(r["latency_ms[base:help/pixel3]"]) for r in rows[:5]]
    assert got == pytest.approx(list(want))
    # a glob; the whole predictor without --device
    rc, text, _ = run(capsys, "rank", "--predictor", str(base), "--device", "help/*x*",
                      "--sample", "3")  # fmt: skip
    assert rc == 0 and "help/titanx_1" in text and "help/pixel3" in text
    assert "help/gold_6240" not in text
    rc, text, _ = run(capsys, "rank", "--predictor", str(base), "--sample", "3")
    assert rc == 0 and text.count("latency_ms[base:") == 3
    rc, _, err = run(capsys, "rank", "--predictor", str(base), "--device", "pixl3",
                     "--sample", "3")  # fmt: skip
    assert rc == 2 and "--device pixl3: predictor base: device 'pixl3' matches nothing" in err
    assert "help/pixel3" in err
    rc, _, err = run(capsys, "rank", "--predictor", str(lbp["pixel3"]), "--device", "pixel3",
                     "--sample", "3")  # fmt: skip
    assert rc == 2 and "pick devices of a multi-device predictor" in err
    assert "pixel3 (default)" in err
    rc, _, err = run(capsys, "rank", "--predictor", str(base), "--device", " , ",
                     "--sample", "3")  # fmt: skip
    assert rc == 2 and "names no device" in err


def test_rank_two_devices_side_by_side(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(SPACE.sample(30, seed=2)) + "\n")
    rc, out, _ = run(
        capsys,
        "rank",
        "--predictor",
        str(lbp["pixel3"]),
        "--predictor",
        str(lbp["titanx"]),
        "--archs",
        str(archs),
        "--top",
        "5",
    )
    assert rc == 0
    lines = out.strip().splitlines()
    assert "latency_ms[pixel3]" in lines[0] and "latency_ms[titanx]" in lines[0]
    assert len(lines) == 6
    dest = tmp_path / "rank.csv"
    rc, _, _ = run(
        capsys,
        "rank",
        "--predictor",
        str(lbp["pixel3"]),
        "--space",
        "nb201",
        "--all",
        "--top",
        "100",
        "--csv",
        "-o",
        str(dest),
    )
    rows = list(csv.DictReader(dest.read_text().splitlines()))
    lat = [float(r["latency_ms[pixel3]"]) for r in rows]
    assert rc == 0 and len(rows) == 100 and lat == sorted(lat)
    rc, out, _ = run(capsys, "rank", "--predictor", str(lbp["pixel3"]), "--sample", "3", "-o", "-")
    assert rc == 0 and len(out.strip().splitlines()) == 4  # "-" is stdout, not a file named "-"
    # the name of -o sets the format; a flag that contradicts it is refused
    for name in ("r.csv", "r.json"):
        rc, _, _ = run(capsys, "rank", "--predictor", str(lbp["pixel3"]), "--sample", "3",
                       "-o", str(tmp_path / name))  # fmt: skip
        assert rc == 0
    rows = list(csv.DictReader((tmp_path / "r.csv").read_text().splitlines()))
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [r["arch"] for r in rows] == [r["arch"] for r in doc] and len(doc) == 3
    rc, _, err = run(capsys, "rank", "--predictor", str(lbp["pixel3"]), "--sample", "3",
                     "--json", "-o", str(tmp_path / "x.csv"))  # fmt: skip
    assert rc == 2 and "--json, but -o" in err and "named as a csv file" in err
    fb = ("--predictor", str(lbp["fbnet"]))
    rc, _, err = run(capsys, "rank", "--predictor", str(lbp["pixel3"]), *fb, "--sample", "3")
    assert rc == 1
    assert (
        "predictor 'fb' was fitted on space 'fbnet'; the architectures to rank are of 'nb201'"
        in err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["rank", "--predictor", "{lbp}", "--sample", "3", "-o", "{missing}/r.txt"],
        ["predictor", "predict", "{lbp}", "--space", "nb201", "--all", "-o", "{missing}/p.csv"],
        [
            "predictor",
            "fit",
            "--reference",
            "nb201",
            "--device",
            "help/pixel3",
            "--model",
            "ridge",
            "-o",
            "{missing}/p.lbp",
        ],
        ["monotonicity", "--reference", "fbnet", "--plot", "{missing}/m.png"],
        [
            "search",
            "--space",
            "nb201",
            "--predictor",
            "{lbp}",
            "--budget-ms",
            "9",
            "-o",
            "{missing}/s.json",
        ],
    ],
)
def test_an_output_in_a_missing_folder_is_refused_before_any_work(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path, argv: list[str]
) -> None:
    argv = [a.format(lbp=lbp["pixel3"], missing=tmp_path / "nope") for a in argv]
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert f"directory '{tmp_path / 'nope'}' does not exist" in err
    assert err.startswith("latbench: error: ") and len(err.strip().splitlines()) == 1


def test_an_output_that_is_a_folder_is_refused(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    rc, _, err = run(
        capsys, "predictor", "predict", str(lbp["pixel3"]), "--all", "-o", str(tmp_path)
    )
    assert rc == 2
    assert f"-o/--output '{tmp_path}' is a directory; expected a file to write" in err


def test_an_output_under_a_file_names_the_file(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me\n")
    out_path = blocker / "sub" / "out.csv"
    rc, out, err = run(
        capsys, "predictor", "predict", str(lbp["pixel3"]), "--all", "-o", str(out_path)
    )
    assert rc == 2 and out == ""
    assert f"the parent '{blocker}' is not a directory" in err
    assert blocker.read_text() == "keep me\n"


def test_an_output_in_a_read_only_folder_is_refused(
    capsys: pytest.CaptureFixture[str],
    lbp: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the tests may run as root, for whom every folder is writable: the permission answer is
    # what is replaced here, for this one folder, not the check
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw),
    )
    rc, _, err = run(
        capsys, "predictor", "predict", str(lbp["pixel3"]), "--all", "-o", str(locked / "o.csv")
    )
    assert rc == 2
    assert f"directory '{locked}' is not writable" in err


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["monotonicity", "--reference", "fbnet", "--plot"], "heat.xyz"),
        (["monotonicity", "--reference", "fbnet", "--plot"], "heat"),
        (["predictor", "compare", "--reference", "nb201", "--device", "pixel3", "--plot"], "s.x"),
    ],
)
def test_a_plot_without_an_image_suffix_is_refused_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], name: str
) -> None:
    """matplotlib would raise on .xyz after the work, and write heat.png for "heat"."""
    rc, out, err = run(capsys, *argv, str(tmp_path / name))
    assert rc == 2 and out == "" and list(tmp_path.iterdir()) == []
    assert "no image format has the suffix" in err and "expected a name ending in .png" in err


def test_search_writes_result_plot_and_verifies(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "result.json"
    rc, text, _ = run(
        capsys, "search", "--space", "nb201",
        "--predictor", str(lbp["pixel3"]), "--budget-ms", "8",
        "--predictor", str(lbp["titanx"]), "--budget-ms", "9",
        "--max-params", "5e5", "--objective", "params", "--strategy", "evolution",
        "--evaluations", "300", "--seed", "3", "--top", "3", "--verify", "1",
        "--verify-min-time", "0.1", "-q", "-o", str(out),
    )  # fmt: skip
    assert rc == 0, text
    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["seed"] == 3 and doc["evaluations"] == 300 and len(doc["history"]) == 300
    assert doc["strategy"]["name"] == "evolution" and doc["objective"]["name"] == "params"
    assert [c["name"] for c in doc["constraints"]] == [
        "latency_ms[pixel3]", "latency_ms[titanx]", "max_params",
    ]  # fmt: skip
    best = doc["best"][0]
    assert best["latency_ms[pixel3]"] <= 8 and best["latency_ms[titanx]"] <= 9
    assert best["max_params"] <= 5e5 and doc["pareto"]
    # the verification really measured the best architecture on this machine (the pixel3
    # predictor's budget is what the report compares against: the plumbing is under test)
    v = doc["verification"][0]
    assert v["arch"] == best["arch"] and v["status"] == "ok" and v["measured_ms"] > 0
    assert v["predicted_ms"] == pytest.approx(best["latency_ms[pixel3]"])
    assert isinstance(v["met_budget"], bool) and "verification on local" in text
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_search_bad_inputs(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    base = [
        "search",
        "--space",
        "nb201",
        "--evaluations",
        "50",
        "-q",
        "-o",
        str(tmp_path / "r.json"),
    ]
    rc, _, err = run(capsys, *base, "--predictor", str(lbp["pixel3"]), "--budget-ms", "0.0001")
    assert rc == 1 and "no architecture of the whole space does: raise the budget" in err
    rc, _, err = run(capsys, *base, "--predictor", str(lbp["fbnet"]), "--budget-ms", "10")
    assert rc == 1 and "fitted on space 'fbnet'" in err and "over 'nb201'" in err
    table = tmp_path / "acc.csv"
    table.write_text(
        "arch,accuracy\n" + "".join(f"{a},{i}\n" for i, a in enumerate(SPACE.sample(5)))
    )
    rc, _, err = run(
        capsys, *base, "--predictor", str(lbp["pixel3"]), "--budget-ms", "30",
        "--objective", str(table),
    )  # fmt: skip
    assert rc == 1 and "has no value for" in err and "--table-only" in err
    rc, text, _ = run(
        capsys, *base, "--predictor", str(lbp["pixel3"]), "--budget-ms", "30",
        "--objective", str(table), "--table-only", "--strategy", "exhaustive", "--no-plot",
    )  # fmt: skip
    assert rc == 0 and "5 evaluations" in text
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,accuracy\n" + SPACE.sample(1)[0] + ",0.5\n|bogus~0|,0.7\n")
    rc, _, err = run(
        capsys, *base, "--predictor", str(lbp["pixel3"]), "--budget-ms", "30",
        "--objective", str(bad),
    )  # fmt: skip
    assert rc != 0 and f"{bad}:3: nb201: '|bogus~0|'" in err
    rc, _, err = run(capsys, *base, "--predictor", str(lbp["pixel3"]))
    assert rc == 2 and "one budget per predictor" in err
    # without --space the first predictor's space is searched; without either, an error
    no_space = [a for a in base if a not in ("--space", "nb201")]
    rc, _, _ = run(
        capsys, *no_space, "--predictor", str(lbp["fbnet"]), "--budget-ms", "1e9", "--no-plot"
    )
    assert rc == 0 and json.loads((tmp_path / "r.json").read_text())["space"] == "fbnet"
    rc, _, err = run(capsys, *no_space, "--max-params", "1e6")
    assert rc == 2 and "--space SPACE is needed when no --predictor names the space" in err
    # the plot goes to OUTPUT with .png: a result named .png would be overwritten by it
    rc, _, err = run(
        capsys, *base[:-1], str(tmp_path / "r.png"), "--predictor", str(lbp["pixel3"]),
        "--budget-ms", "30",
    )  # fmt: skip
    assert rc == 2 and "the Pareto plot is written next to the result" in err
    assert not (tmp_path / "r.png").exists()
    # options no search can use are refused by name, before anything is loaded
    for option, value, want in (
        ("--sigmas", "-1", "--sigmas -1.0; expected a number >= 0"),
        ("--margin-quantile", "2", "--margin-quantile 2.0; expected a number in [0, 1]"),
        ("--max-params", "-3", "--max-params -3.0; expected a number > 0"),
        ("--max-flops", "0", "--max-flops 0.0; expected a number > 0"),
        ("--max-memory-mb", "nan", "--max-memory-mb nan; expected a number > 0"),
    ):
        rc, _, err = run(
            capsys, *base, "--predictor", str(lbp["pixel3"]), "--budget-ms", "30", option, value
        )
        assert rc == 2 and want in err, (option, err)


def test_search_margin_from_measured_archs(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    # held-out reference rows of the predictor's device stand in for "measured" architectures
    df = load_reference("nb201")
    d = df[df.device == "help/pixel3"].iloc[300:400]
    measured = tmp_path / "measured.csv"
    measured.write_text(
        "arch,latency_ms\n"
        + "".join(f"{a},{v}\n" for a, v in zip(d.arch, d.latency_ms, strict=True))
    )
    out = tmp_path / "r.json"
    rc, text, err = run(
        capsys, "search", "--space", "nb201", "--predictor", str(lbp["pixel3"]),
        "--budget-ms", "8", "--margin-from", str(measured), "--margin-quantile", "0.5",
        "--evaluations", "200", "--no-plot", "-q", "-o", str(out),
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out.read_text())
    names = [c["name"] for c in doc["constraints"]]
    assert names == ["latency_ms[pixel3]", "trust_params", "trust_flops"]
    limit = doc["constraints"][0]["limit"]
    assert 0 < limit < 8 and "budget margin" in text
    assert doc["best"][0]["latency_ms[pixel3]"] <= limit
    rc, _, err = run(
        capsys, "search", "--space", "nb201", "--predictor", str(lbp["pixel3"]),
        "--budget-ms", "8", "--margin-from", str(tmp_path / "nope.csv"), "-q",
        "-o", str(out),
    )  # fmt: skip
    assert rc == 2 and "nope.csv" in err
    # a bad row is named by its line
    lines = measured.read_text().splitlines()
    for i, row, want in ((3, "|bogus~0|,1.0", "nb201: '|bogus~0|'"), (4, f"{d.arch.iloc[0]},-1",
                         "latency_ms = '-1'; expected finite positive milliseconds")):  # fmt: skip
        broken = tmp_path / f"broken{i}.csv"
        broken.write_text("\n".join([*lines[: i - 1], row, *lines[i:]]) + "\n")
        rc, _, err = run(
            capsys, "search", "--space", "nb201", "--predictor", str(lbp["pixel3"]),
            "--budget-ms", "8", "--margin-from", str(broken), "-q", "-o", str(out),
        )  # fmt: skip
        assert rc != 0 and f"--margin-from {broken}:{i}: {want}" in err, err
    # the ridge model's worst held-out errors on NB201 (sub-ms latencies) exceed 100 %: refused
    rc, _, err = run(
        capsys, "search", "--space", "nb201", "--predictor", str(lbp["pixel3"]),
        "--budget-ms", "8", "--margin-from", str(measured), "-q", "-o", str(out),
    )  # fmt: skip
    assert rc == 2 and "quantile 0.97" in err and "refit it" in err
