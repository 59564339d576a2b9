"""The SQLite store: durability rules, identity checks, bad files left untouched."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import latbench.datasets as lds
from latbench.datasets import schema as S
from latbench.errors import DatasetError, SchemaVersionError
from latbench.profilers.record import Measurement

ARCH = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def _row(arch_id: str = "a1", status: str = "ok") -> dict[str, object]:
    samples = (1.9, 2.0, 2.1) if status == "ok" else ()
    m = Measurement(
        status=status,
        error=None if status == "ok" else "boom",
        samples_ms=samples,
        runtime="onnxruntime",
        runtime_version="1.0",
        threads=1,
        input_shapes={"input": [1, 3, 32, 32]},
        env={"cpu_model": "x"},
        started_at="2026-01-01T00:00:00Z",
    )
    row = S.row_from_measurement(
        m,
        collection="c",
        space="nb201",
        arch=ARCH,
        arch_id=arch_id,
        arch_index=7,
        device="local",
        drift_ratio=1.01,
    )
    return row


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_store_is_marked_and_rows_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with lds.open(path) as store:
        assert store.add(_row())
        assert not store.add(_row())  # same key: ignored
        df = store.to_pandas()
    assert len(df) == 1
    r = df.iloc[0]
    assert r["latency_ms"] == pytest.approx(2.0)
    assert r["samples_ms"] == [1.9, 2.0, 2.1]  # every raw sample, exact
    assert r["runs"] == 3 and r["threads"] == 1 and r["drift_ratio"] == pytest.approx(1.01)
    assert r["schema_version"] == S.SCHEMA_VERSION
    head = path.read_bytes()[:100]
    assert int.from_bytes(head[68:72], "big") == lds.APPLICATION_ID
    assert int.from_bytes(head[60:64], "big") == S.SCHEMA_VERSION


def test_ok_row_replaces_failed_row_but_not_the_reverse(tmp_path: Path) -> None:
    with lds.open(tmp_path / "s.db") as store:
        assert store.add(_row(status="failed"))
        assert store.add(_row(status="ok"))  # a retried architecture
        assert not store.add(_row(status="failed"))
        df = store.to_pandas()
    assert df["status"].tolist() == ["ok"]
    assert store.path.exists()


def test_samples_blob_is_compact_float64() -> None:
    blob = S.pack_samples([1.5, 2.25])
    assert blob is not None and len(blob) == 16
    assert S.unpack_samples(blob) == [1.5, 2.25]
    with pytest.raises(DatasetError, match="multiple of 8"):
        S.unpack_samples(b"123")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"this is not a database at all, just text\n" * 10, "not a SQLite database"),
        (b"SQLite format 3\x00" + b"\x00" * 10, "a truncated SQLite file (26 bytes"),
    ],
)
def test_corrupt_file_is_refused_and_untouched(tmp_path: Path, content: bytes, said: str) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r"is not a latbench store: " + re.escape(said)):
        lds.open(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.db"]


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    before = _sha(path)
    with pytest.raises(DatasetError, match="another application"):
        lds.open(path)
    with pytest.raises(DatasetError, match="another application"):
        lds.read_table(path)
    assert _sha(path) == before


def test_store_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    lds.open(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {S.SCHEMA_VERSION + 1}")
    con.execute("PRAGMA journal_mode = DELETE")  # header in the main file
    con.close()
    before = _sha(path)
    newer = S.SCHEMA_VERSION + 1
    with pytest.raises(SchemaVersionError, match=rf"schema version {newer}.*upgrade latbench"):
        lds.open(path)
    assert _sha(path) == before


def test_readonly_open_of_missing_store_is_clear(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        lds.open(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


def test_filters_and_stats(tmp_path: Path) -> None:
    with lds.open(tmp_path / "s.db") as store:
        for i in range(3):
            row = _row(arch_id=f"a{i}")
            row["device"] = "help/pixel3" if i else "local"
            store.add(row)
        assert store.count(device="help/*") == 2
        assert len(store.to_pandas(device="local")) == 1
        stats = store.stats()
        assert set(stats["device"]) == {"help/pixel3", "local"}
        with pytest.raises(DatasetError, match="unknown filter column"):
            store.count(colour="red")


def test_reader_in_another_process_reads_while_a_writer_holds_the_store(tmp_path: Path) -> None:
    """WAL mode: a separate reader process sees committed rows while the writer stays open."""
    path = tmp_path / "s.db"
    reader = textwrap.dedent(
        f"""
        import latbench.datasets as lds
        with lds.open({str(path)!r}, readonly=True) as s:
            print(s.count())
        """
    )
    with lds.open(path) as store:
        store.add(_row(arch_id="a0"))
        out1 = subprocess.run(
            [sys.executable, "-c", reader], capture_output=True, text=True, check=True
        )
        store.add(_row(arch_id="a1"))
        out2 = subprocess.run(
            [sys.executable, "-c", reader], capture_output=True, text=True, check=True
        )
    assert (out1.stdout.strip(), out2.stdout.strip()) == ("1", "2")
