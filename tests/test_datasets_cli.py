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
