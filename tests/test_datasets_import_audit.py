"""Audit of dataset import: each defect reproduced with a real file, then the message it gets.

A row that contradicts itself, a file that is not what its name says, a file that is not UTF-8,
a row longer than the header: each is named (file, line, value, what was expected), and the
good rows of a file with a bad row are still imported.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import latbench.datasets as lds
from latbench.errors import DatasetError
from latbench.spaces import get_space

NB = get_space("nb201")
A, B = NB.sample(2, seed=0)
HEAD = "space,arch,device,latency_ms"


def _store(tmp_path: Path) -> lds.Store:
    return lds.open(tmp_path / "s.db")


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_arch_index_that_names_another_arch_is_rejected(tmp_path: Path) -> None:
    i = NB.index(A)
    other = (i + 1) % 15625
    path = _csv(
        tmp_path,
        "im.csv",
        f"{HEAD},arch_index\nnb201,{A},d,1.5,{other}\nnb201,{B},d,2.5,{NB.index(B)}\n",
    )
    with _store(tmp_path) as st:
        report = lds.import_table(st, path)
        assert report.imported == 1
        (where, why), *_ = report.rejected
        assert where == "line 2"
        assert f"arch_index {other} is {NB.from_index(other)}" in why
        assert f"not this arch (index {i})" in why and "unknown arch" not in why
        stored = st.to_pandas()
        assert stored["arch"].tolist() == [B] and stored["arch_index"].tolist() == [NB.index(B)]


def test_an_arch_index_out_of_range_names_the_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "ir.csv", f"{HEAD},arch_index\nnb201,{A},d,1.5,99999\n")
    with _store(tmp_path) as st:
        report = lds.import_table(st, path)
    assert report.imported == 0
    assert "arch_index 99999" in report.rejected[0][1]
    assert "out of range 0..15624" in report.rejected[0][1]


def test_a_row_longer_than_the_header_is_named_not_shifted(tmp_path: Path) -> None:
    first = _csv(tmp_path, "r1.csv", f"{HEAD}\nnb201,{A},d,1,5\n")
    later = _csv(tmp_path, "r2.csv", f"{HEAD}\nnb201,{A},d,1\nnb201,{B},d,2,7\n")
    with _store(tmp_path) as st:
        with pytest.raises(DatasetError) as err:
            lds.import_table(st, first)
        assert str(err.value).startswith(f"{first} line 2: 5 values, but the header has 4")
        with pytest.raises(DatasetError, match="line 3: 5 values, but the header has 4"):
            lds.import_table(st, later)
        assert len(st.to_pandas()) == 0
    gz = tmp_path / "r3.csv.gz"
    gz.write_bytes(gzip.compress(f"{HEAD}\nnb201,{A},d,1,5\n".encode()))
    with pytest.raises(DatasetError, match="line 2: 5 values"):
        lds.read_table(gz)


def test_a_nul_character_rejects_its_row_only(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(f"{HEAD}\nnb201,{A},bad\x00dev,1\nnb201,{B},good,2\n".encode())
    with _store(tmp_path) as st:
        report = lds.import_table(st, path)
        assert report.imported == 1
        assert report.rejected == [
            ("line 2", "device 'bad\\x00dev' holds a NUL character; expected text")
        ]
        assert st.to_pandas()["device"].tolist() == ["good"]


def test_a_file_whose_content_is_another_format_says_which(tmp_path: Path) -> None:
    frame = pd.DataFrame({"space": ["nb201"], "arch": [A], "device": ["d"], "latency_ms": [1.0]})
    frame.to_parquet(tmp_path / "pq.csv")
    (tmp_path / "gz.csv").write_bytes(gzip.compress(f"{HEAD}\n".encode()))
    (tmp_path / "plain.csv.gz").write_text(f"{HEAD}\n")
    (tmp_path / "text.parquet").write_text(f"{HEAD}\n")
    full = tmp_path / "full.parquet"
    frame.to_parquet(full)
    (tmp_path / "cut.parquet").write_bytes(full.read_bytes()[:60])
    expected = {
        "pq.csv": "the file is a parquet file, but its name says CSV; expected a name ending "
        "in .parquet",
        "gz.csv": "the file is gzip-compressed, but its name says CSV; expected a name ending "
        "in .csv.gz",
        "plain.csv.gz": "the name ends in .gz but the file is not gz-compressed",
        "text.parquet": "does not start with the parquet magic bytes PAR1 (it is text (CSV?))",
        "cut.parquet": "ends without the parquet footer: it is truncated",
    }
    for name, message in expected.items():
        with pytest.raises(DatasetError) as err:
            lds.read_table(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)), name
        assert message in str(err.value), name
    assert lds.read_table(full)["latency_ms"].tolist() == [1.0]


def test_a_latin1_file_names_the_line_and_the_byte(tmp_path: Path) -> None:
    text = f"{HEAD}\nnb201,{A},plain,1\nnb201,{B},caf\xe9,1\n"
    path = tmp_path / "l1.csv"
    path.write_bytes(text.encode("latin-1"))
    gz = tmp_path / "l1.csv.gz"
    gz.write_bytes(gzip.compress(text.encode("latin-1")))
    for p in (path, gz):
        with pytest.raises(DatasetError) as err:
            lds.read_table(p)
        assert str(err.value) == (
            f"{p} line 3: byte 0xe9 is not UTF-8; expected UTF-8 text (re-save the file as "
            "UTF-8, e.g. iconv -f latin1 -t utf-8)"
        )


def test_an_empty_file_asks_for_a_header(tmp_path: Path) -> None:
    blank = _csv(tmp_path, "blank.csv", "\n\n  \n")
    empty_gz = tmp_path / "e.csv.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    for p in (blank, empty_gz):
        with pytest.raises(DatasetError) as err:
            lds.read_table(p)
        assert f"{p}: the file is empty (no header line); expected a header such as {HEAD}" in str(
            err.value
        )


def test_a_truncated_gzip_file_says_truncated(tmp_path: Path) -> None:
    body = (f"{HEAD}\n" + f"nb201,{A},d,1\n" * 200).encode()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(body)[:60])
    with pytest.raises(DatasetError, match="the compressed file is truncated"):
        lds.read_table(path)


def test_parquet_schema_metadata_that_is_not_text_is_named(tmp_path: Path) -> None:
    table = pa.table({"space": ["nb201"], "arch": [A], "device": ["m"], "latency_ms": [1.0]})
    path = tmp_path / "meta.parquet"
    pq.write_table(table.replace_schema_metadata({b"latbench.schema_version": b"\xff"}), path)
    with pytest.raises(DatasetError) as err:
        lds.read_table(path)
    assert "parquet metadata latbench.schema_version is b'\\xff', not text" in str(err.value)
    assert "expected an integer <= " in str(err.value)


def test_a_space_given_that_contradicts_the_file_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, "spc.csv", f"{HEAD}\nnb201,{A},d,1\n")
    with _store(tmp_path) as st:
        with pytest.raises(DatasetError) as err:
            lds.import_table(st, path, space="fbnet")
        assert "the space 'fbnet' was given, but the file's space column holds ['nb201']" in str(
            err.value
        )
        assert len(st.to_pandas()) == 0
        # the same space, and blank cells that take it: imported
        mixed = _csv(tmp_path, "mixed.csv", f"{HEAD}\nnb201,{A},d,1\n,{B},d,2\n")
        report = lds.import_table(st, mixed, space="nb201")
        assert (report.imported, report.rejected) == (2, [])


def test_boolean_latencies_are_not_milliseconds(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"space": ["nb201"] * 2, "arch": [A, B], "device": ["d"] * 2, "latency_ms": [True, 2.0]}
    )
    with _store(tmp_path) as st:
        report = lds.import_table(st, frame)
        assert report.imported == 1
        assert report.rejected == [("row 1", "latency_ms True; expected a positive finite number")]
    with pytest.raises(DatasetError, match="row 1: latency_ms True; expected a number"):
        lds.read_table(frame)
    all_bool = frame.assign(latency_ms=[True, False])
    with pytest.raises(DatasetError, match="latency_ms True"):
        lds.read_table(all_bool)


def test_env_must_be_an_object_and_measured_at_a_time(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "meta.csv",
        f"{HEAD},env,measured_at\n"
        f'nb201,{A},d,1,5,2026-12-03T10:00:00+00:00\nnb201,{A},e,1,"{{""cpu"": ""x""}}",yesterday\n'
        f'nb201,{B},d,1,"{{""cpu"": ""x""}}",2026-12-03T10:00:00Z\n',
    )
    with _store(tmp_path) as st:
        report = lds.import_table(st, path)
        assert report.imported == 1
        assert report.rejected == [
            ("line 2", "env '5'; expected JSON text of an object"),
            ("line 3", "measured_at 'yesterday'; expected an ISO 8601 time, e.g. "
             "2026-12-03T10:00:00+00:00"),
        ]  # fmt: skip
        row = st.to_pandas().iloc[0]
        assert row["arch"] == B and row["measured_at"] == "2026-12-03T10:00:00Z"
