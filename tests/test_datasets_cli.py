"""``latbench dataset ...`` and ``latbench collect`` argument handling, in process."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from latbench.cli import main
from latbench.spaces import NB201Space

NB = NB201Space()


def _csv(tmp_path: Path) -> Path:
    p = tmp_path / "lab.csv"
    p.write_text(
        "space,arch,device,latency_ms\n"
        f"nb201,{NB.from_index(0)},pi4,3.5\n"
        "nb201,|bogus~0|,pi4,2.0\n"
        f"nb201,{NB.from_index(1)},pi4,-1\n"
        f"nb201,{NB.from_index(2)},pi4,4.0\n"
    )
    return p


def test_import_prints_rejected_lines_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    assert main(["dataset", "import", str(_csv(tmp_path)), "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert "line 3: rejected: unknown arch '|bogus~0|'" in err
    assert "line 4: rejected: latency_ms -1.0" in err
    assert "4 row(s) read, 2 imported into 'lab', 0 already present, 2 rejected" in out
    assert main(["dataset", "import", str(_csv(tmp_path)), "--db", str(db), "--strict"]) == 1


def test_list_show_stats_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.db")
    main(["dataset", "import", str(_csv(tmp_path)), "--db", db])
    capsys.readouterr()
    assert main(["dataset", "list", "--db", db]) == 0
    assert "lab" in capsys.readouterr().out
    assert main(["dataset", "show", "lab", "--db", db]) == 0
    assert "pi4" in capsys.readouterr().out
    assert main(["dataset", "stats", "--db", db, "--device", "pi*"]) == 0
    assert "pi4" in capsys.readouterr().out
    out_file = tmp_path / "o.parquet"
    assert main(["dataset", "export", "--format", "parquet", "-o", str(out_file), "--db", db]) == 0
    assert "wrote 2 row(s)" in capsys.readouterr().out
    # filters that match nothing say what the store holds
    argv = ["dataset", "export", "-o", str(out_file), "--db", db, "--device", "pj*"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "wrote 0 row(s)" in out
    assert "no rows match --device 'pj*' (the store holds: pi4)" in err
    assert main(["dataset", "stats", "--db", db, "--space", "nb999"]) == 0
    assert "no rows match --space 'nb999' (the store holds: nb201)" in capsys.readouterr().err
    # --status failed on a store of ok rows: not "holds no rows"
    argv = ["dataset", "export", "-o", str(tmp_path / "f.csv"), "--db", db, "--status", "failed"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "no rows match --status 'failed' (the store holds 2 ok, 0 failed row(s))" in err
    assert main(["dataset", "show", "nope", "--db", db]) == 2
    assert "no collection 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("o.parquet", "csv", "is named as a parquet file, but the format is csv"),
        ("o.csv", "parquet", "is named as a csv file, but the format is parquet"),
        ("o.tsv", "csv", "is named as a tab-separated file"),
        ("s.db", "csv", "is named as a store (SQLite), but the format is csv"),
    ],
)
def test_export_refuses_a_name_of_another_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, fmt: str, expected: str
) -> None:
    """Readers tell a file's format by its name: what export writes must read back. Exporting
    over the store itself is refused too, before a byte of it is overwritten."""
    db = tmp_path / "s.db"
    main(["dataset", "import", str(_csv(tmp_path)), "--db", str(db)])
    before = db.read_bytes()
    capsys.readouterr()
    out = tmp_path / name
    assert main(["dataset", "export", "--format", fmt, "-o", str(out), "--db", str(db)]) == 2
    assert expected in capsys.readouterr().err
    assert db.read_bytes() == before
    assert name == "s.db" or not out.exists()


def test_a_failed_import_leaves_no_empty_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "new.db"
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,latency\nx,1\n")
    for argv in (["missing.csv"], ["--reference", "nb999"], [str(bad)]):
        assert main(["dataset", "import", *argv, "--db", str(db)]) != 0
        assert "error" in capsys.readouterr().err
        assert sorted(tmp_path.iterdir()) == [bad], argv
    # a store that existed before the failed import is kept, rows and all
    assert main(["dataset", "import", str(_csv(tmp_path)), "--db", str(db)]) == 0
    assert main(["dataset", "import", str(bad), "--db", str(db)]) != 0
    capsys.readouterr()
    assert main(["dataset", "stats", "--db", str(db)]) == 0
    assert "pi4" in capsys.readouterr().out


def test_reference_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "reference"]) == 0
    out = capsys.readouterr().out
    assert "nb201" in out and "fbnet" in out and "ATTRIBUTION.md" in out
    # descriptions and sources are printed whole, not shortened to a table cell
    assert "BRP-NAS LatBench (Apache-2.0)" in out and "..." not in out
    assert "FBNet: 5,000 architectures on 21 device configurations (HELP)" in out
    assert main(["dataset", "reference", "nb201"]) == 0
    assert re.search(r"help/1080ti_256\s+256", capsys.readouterr().out)


def test_foreign_database_is_a_clear_error_and_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"just some notes, not a database\n" * 4)
    before = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert main(["dataset", "import", str(_csv(tmp_path)), "--db", str(bad)]) == 1
    assert "is not a latbench store" in capsys.readouterr().err
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == before
    assert main(["dataset", "list", "--db", str(tmp_path / "missing.db")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_collect_rejects_a_bad_archs_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archs = tmp_path / "archs.txt"
    archs.write_text(f"# two archs\n{NB.from_index(5)}\n\n|nope|\n")
    db = tmp_path / "s.db"
    rc = main(["collect", "--space", "nb201", "--archs", str(archs), "--db", str(db)])
    assert rc == 2
    assert "line 4" in capsys.readouterr().err
    assert not db.exists()


def test_query_one_architecture_on_every_device(capsys: pytest.CaptureFixture[str]) -> None:
    """HW-NAS-Bench's lookup: an architecture (or its index) on every reference device, with
    the share of each device's architectures that ran faster; devices that never measured it
    are named, not left out silently."""
    import json

    from latbench.datasets import load_reference

    ref = load_reference("nb201")
    arch = NB.from_index(1234)
    rc = main(["dataset", "query", "--reference", "nb201", "--index", "1234", "--device",
               "pixel3,nnmeter/*"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and f"nb201 {arch} (index 1234) in reference nb201: measured on 1" in out
    pixel = ref[ref.device == "help/pixel3"]
    mine = float(pixel[pixel.arch == arch].latency_ms.iloc[0])
    line = next(x for x in out.splitlines() if x.strip().startswith("help/pixel3"))
    assert f"{mine:g}"[:5] in line
    assert "not measured on 4 device(s): nnmeter/adreno630gpu_tflite21" in out
    # the same by its string (and SPACE:ARCH), as JSON
    rc = main(["dataset", "query", "--reference", "nb201", f"nb201:{arch}", "--json"])
    doc = json.loads(capsys.readouterr().out)
    measured = set(ref[ref.arch == arch].device)
    assert rc == 0 and doc["arch"] == arch and {r["device"] for r in doc["rows"]} == measured
    row = next(r for r in doc["rows"] if r["device"] == "help/pixel3")
    assert row["latency_ms"] == pytest.approx(mine)
    assert row["faster_pct"] == pytest.approx(100 * float((pixel.latency_ms < mine).mean()))
    assert row["archs"] == 15625
    assert set(doc["not_measured_on"]) == set(ref.device) - measured
    for argv, want in [
        (["--reference", "nb201"], "give an architecture or --index N"),
        (["--reference", "nb201", "--index", "99999"], "--index 99999; expected 0 to 15624"),
        (["--reference", "nope", "--index", "1"], "unknown reference dataset 'nope'"),
        (["--reference", "nb201", "--index", "1", "--device", "zzz"], "device 'zzz' matches"),
        (["--reference", "nb201", "|bogus~0|"], "bogus"),
    ]:
        rc = main(["dataset", "query", *argv])
        err = capsys.readouterr().err
        assert rc in (1, 2) and want in err, (argv, err)


def test_query_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    assert main(["dataset", "import", str(_csv(tmp_path)), "--db", str(db)]) == 0
    capsys.readouterr()
    rc = main(["dataset", "query", "--db", str(db), "--index", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and "measured on 1 device(s)" in out and "pi4" in out and "4.0" in out
    assert "50.0" in out  # of the two architectures of pi4, the other one ran faster
    rc = main(["dataset", "query", "--db", str(db), "--index", "7"])
    assert rc == 2 and "was not measured in" in capsys.readouterr().err
