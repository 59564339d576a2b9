"""The small CSV files every command reads go through one reader (``latbench._csvfile``): a
file that is not UTF-8 is named by line and byte, a row by the line of the file it is on (blank
lines counted), and a row with more values than the header is refused instead of read short.
Checked here on the objective table of ``latbench search`` and ``--margin-from``, the readers
that did neither before."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench._csvfile import read_csv, rows
from latbench.commands.search import _read_measured
from latbench.errors import ConfigError
from latbench.nas.objectives import load_table
from latbench.spaces import get_space

NB201 = get_space("nb201")
A, B, C, D, E = (NB201.from_index(i) for i in (0, 1, 2, 3, 4))


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_rows_count_blank_lines_and_keep_empty_trailing_cells(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.csv", f"arch,accuracy\n\n{A},91.5\n\n\n{B},90,,\n")
    with read_csv(path) as reader:
        got = [(line, row["arch"], row["accuracy"]) for line, row in rows(path, reader)]
    assert got == [(3, A, "91.5"), (6, B, "90")]


def test_an_objective_row_with_a_decimal_comma_is_refused_not_read_short(tmp_path: Path) -> None:
    """``91,5`` unquoted used to be read as 91 without a word."""
    path = _write(tmp_path, "acc.csv", f"arch,accuracy\n{A},91,5\n")
    with pytest.raises(ConfigError) as info:
        load_table(path, NB201)
    assert str(info.value).startswith(
        f"{path}:2: 3 values, but the header has 2 columns (arch, accuracy); expected one value "
        "per column (quote a value that holds a comma"
    )


def test_an_objective_error_names_the_line_of_the_file(tmp_path: Path) -> None:
    """The line used to be counted over the rows only, so blank lines shifted it."""
    path = _write(tmp_path, "acc.csv", f"arch,accuracy\n\n\n{A},91\n{B},n/a\n")
    with pytest.raises(ConfigError, match=r"acc\.csv:5: accuracy = 'n/a'; expected a number"):
        load_table(path, NB201)


def test_an_objective_table_in_latin1_names_line_and_byte(tmp_path: Path) -> None:
    path = _write(tmp_path, "acc.csv", f"arch,accuracy,note\n{A},91,caf\xe9\n", "latin-1")
    with pytest.raises(ConfigError) as info:
        load_table(path, NB201, value_column="accuracy")
    assert str(info.value) == (
        f"{path}:2: byte 0xe9 is not UTF-8; expected UTF-8 text (re-save the file as UTF-8, "
        "e.g. iconv -f latin1 -t utf-8)"
    )


def test_margin_from_refuses_a_long_row_and_names_lines_and_encoding(tmp_path: Path) -> None:
    good = "".join(f"{a},{i + 1}.5\n" for i, a in enumerate((A, B, C, D, E)))
    archs, lat = _read_measured(str(_write(tmp_path, "m.csv", f"arch,latency_ms\n{good}")), NB201)
    assert archs == [NB201.canonical(a) for a in (A, B, C, D, E)] and lat[0] == 1.5
    long_row = _write(tmp_path, "long.csv", f"arch,latency_ms\n{good}{A},10,5\n")
    with pytest.raises(ConfigError, match=r"--margin-from .*long\.csv:7: 3 values, but the head"):
        _read_measured(str(long_row), NB201)
    blank = _write(tmp_path, "blank.csv", f"arch,latency_ms\n{good}\n\n{A},-1\n")
    with pytest.raises(ConfigError, match=r"blank\.csv:9: latency_ms = '-1'; expected finite"):
        _read_measured(str(blank), NB201)
    latin = _write(tmp_path, "latin.csv", f"arch,latency_ms,n\n{good[:-1]},\xe9\n", "latin-1")
    with pytest.raises(ConfigError, match=r"--margin-from .*latin\.csv:6: byte 0xe9 is not UTF-8"):
        _read_measured(str(latin), NB201)
