"""Audit of the dataset store, its CLI and ``latbench export``: bad paths name the bad part."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.cli import main
from latbench.datasets import open_store
from latbench.errors import DatasetError

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
    "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


def test_export_under_a_regular_file_says_the_parent_is_not_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = blocker / "m.onnx"
    rc = main(["export", "nb201", ARCH, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"{str(blocker)!r} is not a directory" in err and str(out) in err
    assert "does not exist" not in err


def test_export_into_a_missing_directory_still_says_it_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nodir" / "m.onnx"
    rc = main(["export", "nb201", ARCH, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{str(out.parent)!r} does not exist" in err


def test_export_to_a_directory_or_stdout_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "nb201", ARCH, "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["export", "nb201", ARCH, "--format", "onnx", "-o", "-"]) == 2
    assert "standard output" in capsys.readouterr().err


def test_a_store_under_a_regular_file_names_that_file(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for path in (blocker / "s.db", blocker / "sub" / "s.db"):
        with pytest.raises(DatasetError, match=f"parent {str(blocker)!r} is not a directory"):
            open_store(path, readonly=True)
        with pytest.raises(DatasetError, match="is not a directory"):
            open_store(path)


def test_dataset_list_with_a_store_under_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    rc = main(["dataset", "list", "--db", str(blocker / "s.db")])
    err = capsys.readouterr().err
    assert rc == 1 and "Errno" not in err and "Traceback" not in err
    assert f"{str(blocker)!r} is not a directory" in err


def test_dataset_list_shows_a_missing_time_as_a_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # imported rows carry no measurement time: the listing says "-", not None
    src = tmp_path / "lab.csv"
    src.write_text(f"space,arch,device,latency_ms\nnb201,{ARCH},labdev,1.5\n")
    db = tmp_path / "s.db"
    assert main(["dataset", "import", str(src), "--name", "lab", "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["dataset", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("lab"))
    assert row.split()[-2:] == ["-", "-"] and "None" not in out and "NaN" not in out
