"""The ADBC (Arrow in C) import and export paths against the plain ``sqlite3`` paths.

Each fast path must give exactly what the ``sqlite3`` path gives: the same rows in the store,
the same parquet table. The thresholds are lowered so that small tables take the fast paths.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import latbench.datasets as lds
from latbench.datasets import schema as S
from latbench.datasets import store as store_module
from latbench.errors import DatasetError
from latbench.profilers.record import Measurement
from latbench.spaces import NB201Space

NB = NB201Space()

pytest.importorskip("adbc_driver_sqlite", reason="adbc-driver-sqlite is a core dependency")


@pytest.fixture(autouse=True)
def _small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_DEFER_INDEX_ROWS", 100)
    monkeypatch.setattr(store_module, "_STAGE_ROWS", 1)


def _fails(*args: object, **kwargs: object) -> None:
    raise AssertionError("the sqlite3 export path was used")


def _no_adbc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_adbc", lambda: None)


def _table(n: int, *, devices: int = 2) -> pd.DataFrame:
    per = n // devices
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "space": "nb201",
            "arch": [NB.from_index(i) for i in range(per)] * devices,
            "device": [f"o'dev{d}" for d in range(devices) for _ in range(per)],
            "latency_ms": rng.lognormal(0.0, 1.0, per * devices),
            "nb201_index": list(range(per)) * devices,
        }
    )


def _measured(i: int, status: str = "ok") -> dict[str, object]:
    """A full row as a collection writes it: samples, JSON columns, statistics."""
    samples = tuple(1.0 + 0.001 * k + i for k in range(5)) if status == "ok" else ()
    m = Measurement(
        status=status,
        error=None if status == "ok" else "runtime crashed",
        samples_ms=samples,
        runtime="onnxruntime",
        runtime_version="1.18",
        threads=1,
        input_shapes={"input": [1, 3, 32, 32]},
        env={"cpu_model": "x", "i": i},
        started_at="2026-01-01T00:00:00Z",
    )
    arch = NB.from_index(i)
    return S.row_from_measurement(
        m,
        collection="c",
        space="nb201",
        arch=arch,
        arch_id=NB.arch_id(arch),
        arch_index=i,
        device="local",
        drift_ratio=None if i % 3 else 1.01,
    )


def _store_rows(db: Path) -> pd.DataFrame:
    with lds.open(db, readonly=True) as store:
        return store.to_pandas().drop(columns=["latbench_version"])


def test_staged_import_stores_what_the_sqlite3_path_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = _table(400)
    with lds.open(tmp_path / "fast.db") as store:
        fast = lds.import_table(store, df, collection="c")
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    with monkeypatch.context() as m:
        _no_adbc(m)
        with lds.open(tmp_path / "slow.db") as store:
            slow = lds.import_table(store, df, collection="c")
    assert (fast.imported, fast.duplicates) == (slow.imported, slow.duplicates) == (400, 0)
    pd.testing.assert_frame_equal(
        _store_rows(tmp_path / "fast.db"), _store_rows(tmp_path / "slow.db")
    )
    # plain sqlite3 reads it; the store is still a WAL store, intact, with its key index
    with sqlite3.connect(tmp_path / "fast.db") as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA application_id").fetchone()[0] == lds.APPLICATION_ID
        assert c.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 400
        indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "measurements_key" in indexes
        assert "stage" not in {r[1] for r in c.execute("PRAGMA database_list")}


def test_staged_import_counts_rows_already_present_and_repeated_keys(tmp_path: Path) -> None:
    df = _table(400)
    with lds.open(tmp_path / "s.db") as store:
        assert lds.import_table(store, df.head(150), collection="c").imported == 150
        report = lds.import_table(store, df, collection="c")  # ON CONFLICT path, non-empty
        assert (report.imported, report.duplicates) == (250, 150)
        assert store.count() == 400
    twice = pd.concat([df, df.assign(latency_ms=df["latency_ms"] * 2)], ignore_index=True)
    with lds.open(tmp_path / "t.db") as store:
        report = lds.import_table(store, twice, collection="c")  # deferred index
        # a key repeated in the file with another latency is reported, the first row kept
        assert (report.imported, report.duplicates, len(report.rejected)) == (400, 0, 400)
        assert report.rejected[0][0] == "row 401"
        assert "duplicate of row 1 with a different latency_ms" in report.rejected[0][1]
        kept = store.to_pandas(columns=["latency_ms"])["latency_ms"].to_numpy()
    assert np.array_equal(kept, df["latency_ms"].to_numpy())  # the first row of each key
    # the store's own rule, when a staged batch repeats a key: keep the first row
    import pyarrow as pa

    cols = ["collection", "space", "arch", "arch_id", "device", "runtime", "batch", "threads"]
    cols += ["status", "schema_version"]
    with lds.open(tmp_path / "t.db", readonly=True) as store:
        rows = [r for chunk in store.iter_rows(columns=[*cols, "latency_ms"]) for r in chunk]
    table = pa.table({c: [r[i] for r in rows * 2] for i, c in enumerate([*cols, "latency_ms"])})
    with lds.open(tmp_path / "u.db") as store:
        assert store.add_arrow(table, bulk=True) == (400, 400)
        kept = store.to_pandas(columns=["latency_ms"])["latency_ms"].to_numpy()
    assert np.array_equal(kept, df["latency_ms"].to_numpy())


def test_staged_import_of_full_rows_round_trips_through_parquet(tmp_path: Path) -> None:
    with lds.open(tmp_path / "a.db") as store:
        store.add_many([_measured(i, "failed" if i % 7 == 3 else "ok") for i in range(40)])
        original = store.to_pandas()
        assert lds.export_store(store, tmp_path / "a.parquet") == 40
    with lds.open(tmp_path / "b.db") as other:
        report = lds.import_table(other, tmp_path / "a.parquet")
        assert report.imported == 40 and not report.rejected
        copy = other.to_pandas()
    cols = [c for c in S.COLUMN_NAMES if c != "latbench_version"]
    pd.testing.assert_frame_equal(original[cols], copy[cols])
    assert copy["samples_ms"].iloc[0] == [1.0, 1.001, 1.002, 1.003, 1.004]


@pytest.mark.parametrize("filters", [{}, {"status": "ok"}, {"device": "loc*"}, {"device": "x"}])
def test_fast_export_writes_the_same_table_as_the_sqlite3_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filters: dict[str, str]
) -> None:
    db = tmp_path / "s.db"
    with lds.open(db) as store:
        store.add_many([_measured(i, "failed" if i % 5 == 2 else "ok") for i in range(60)])
    with monkeypatch.context() as m, lds.open(db, readonly=True) as store:
        m.setattr(lds.io, "_arrow_tables", _fails)  # the fast path must not fall back
        assert store.can_read_arrow()
        n_fast = lds.export_store(store, tmp_path / "fast.parquet", chunk_rows=16, **filters)
        assert store.count() == 60  # the store's own connection is back after the export
    with monkeypatch.context() as m:
        _no_adbc(m)
        with lds.open(db, readonly=True) as store:
            assert not store.can_read_arrow()
            n_slow = lds.export_store(store, tmp_path / "slow.parquet", chunk_rows=16, **filters)
    fast, slow = pq.read_table(tmp_path / "fast.parquet"), pq.read_table(tmp_path / "slow.parquet")
    assert n_fast == n_slow == fast.num_rows
    assert fast.schema.equals(slow.schema, check_metadata=True)
    assert fast.equals(slow)


def test_fast_export_falls_back_on_a_value_of_another_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "s.db"
    with lds.open(db) as store:
        store.add_many([_measured(i) for i in range(30)])
    with sqlite3.connect(db) as c:  # another tool wrote a fraction into an INTEGER column
        c.execute("UPDATE measurements SET runs = 2.5 WHERE arch_index = 20")
    with lds.open(db, readonly=True) as store, caplog.at_level(logging.WARNING):
        assert lds.export_store(store, tmp_path / "o.parquet", chunk_rows=8) == 30
    assert "exporting through sqlite3 instead" in caplog.text
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 30


def test_fast_read_is_not_used_while_another_store_holds_the_file(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with lds.open(db) as writer:
        writer.add_many([_measured(i) for i in range(10)])
        with lds.open(db, readonly=True) as reader:
            assert not reader.can_read_arrow() and not writer.can_read_arrow()
            assert lds.export_store(reader, tmp_path / "o.parquet") == 10  # sqlite3 path
            with pytest.raises(DatasetError, match="not available"):
                next(reader.iter_arrow())
        assert writer.can_read_arrow()
        assert lds.export_store(writer, tmp_path / "p.parquet") == 10
        assert writer.add(_measured(11))  # the writer's connection was reopened, FULL again
        assert writer._conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_fast_export_reads_a_torn_samples_blob_as_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A blob another tool wrote that is not float64 samples is missing, with a warning naming
    its row id; the other rows export whole."""
    db = tmp_path / "s.db"
    with lds.open(db) as store:
        store.add_many([_measured(i) for i in range(3)])
    with sqlite3.connect(db) as c:
        c.execute("UPDATE measurements SET samples_ms = x'0102030405' WHERE arch_index = 1")
    with lds.open(db, readonly=True) as store, caplog.at_level(logging.WARNING):
        assert lds.export_store(store, tmp_path / "o.parquet") == 3
    samples = pq.read_table(tmp_path / "o.parquet").column("samples_ms").to_pylist()
    assert samples[1] is None and samples[0] and samples[2]
    assert "column samples_ms are not a float64 blob (id 2: X'0102030405')" in caplog.text


def test_import_and_export_work_without_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_adbc(monkeypatch)
    df = _table(200)
    with lds.open(tmp_path / "s.db") as store:
        assert lds.import_table(store, df, collection="c").imported == 200
        assert lds.export_store(store, tmp_path / "o.parquet") == 200
    out = pq.read_table(tmp_path / "o.parquet").to_pandas()
    assert out["latency_ms"].tolist() == df["latency_ms"].tolist()


def test_bulk_load_into_an_empty_store_held_by_a_reader_stays_in_wal(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    lds.open(db).close()
    reader = sqlite3.connect(db)  # another connection: the store may not leave WAL mode
    try:
        assert reader.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 0
        with lds.open(db) as store:
            assert not store._leave_wal()
            assert lds.import_table(store, _table(400), collection="c").imported == 400
        assert reader.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 400
    finally:
        reader.close()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_bulk_load_killed_in_flight_leaves_an_empty_intact_wal_store(tmp_path: Path) -> None:
    """SIGKILL while the rollback-journal bulk load of an empty store runs: reopening rolls the
    hot journal back (no row, no damage) and the store is a WAL store again."""
    db = tmp_path / "k.db"
    journal = tmp_path / "k.db-journal"
    code = (
        "import sys, latbench.datasets as lds\n"
        "with lds.open(sys.argv[1]) as s:\n"
        "    lds.import_reference(s, 'fbnet')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)])
    try:
        deadline = time.monotonic() + 120
        while not journal.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is not None:
            pytest.skip("the import finished before its transaction was seen")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    with lds.open(db) as store:
        assert store.count() == 0
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert lds.import_reference(store, "fbnet").imported == 105_000  # and it still works
