"""Schema version 2 (``env_after``): old stores upgrade in place or read as they are, and the
environment after timing survives record -> store -> record, export and import.

The version 1 store of these tests is written with the version 1 DDL, copied here as it was
released, so the tests keep checking the upgrade of a real old file whatever the code becomes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import latbench.datasets as lds
from latbench.datasets import schema as S
from latbench.errors import DatasetError
from latbench.profilers.record import Measurement
from latbench.report.sections import stability_section
from latbench.spaces import NB201Space

NB = NB201Space()

# ---- the version 1 store, as latbench 0.1 wrote it ------------------------------------------
V1_DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS measurements (id INTEGER PRIMARY KEY, collection TEXT NOT NULL, "
    "space TEXT NOT NULL, arch TEXT NOT NULL, arch_id TEXT NOT NULL, arch_index INTEGER, "
    "device TEXT NOT NULL, device_fingerprint TEXT, runtime TEXT NOT NULL, runtime_version TEXT, "
    "batch INTEGER NOT NULL, threads INTEGER NOT NULL, input_shape TEXT, latency_ms REAL, "
    "mean_ms REAL, std_ms REAL, min_ms REAL, iqr_ms REAL, p90_ms REAL, p99_ms REAL, "
    "ci_low_ms REAL, ci_high_ms REAL, runs INTEGER, loops INTEGER, warmup_runs INTEGER, "
    "samples_ms BLOB, counters TEXT, env TEXT, harness TEXT, drift_ratio REAL, wall_s REAL, "
    "measured_at TEXT, status TEXT NOT NULL, error TEXT, latbench_version TEXT, "
    "schema_version INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS measurements_key ON measurements(collection, device, "
    "space, runtime, batch, threads, arch_id)",
    "CREATE TABLE IF NOT EXISTS collections (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL, params TEXT)",
    "CREATE TABLE IF NOT EXISTS drift (id INTEGER PRIMARY KEY, collection TEXT NOT NULL, "
    "device TEXT NOT NULL, arch TEXT NOT NULL, latency_ms REAL, baseline_ms REAL, "
    "ratio REAL, after_rows INTEGER NOT NULL, measured_at TEXT NOT NULL)",
]
V1_COLUMNS = [c for c in S.COLUMN_NAMES if c != "env_after"]
ENV = {"cpu_model": "x", "cpu_cur_freq_khz": {"0": 3_000_000}, "steal_ticks": 0}
ENV_AFTER = {"cpu_model": "x", "cpu_cur_freq_khz": {"0": 2_000_000}, "steal_ticks": 0}


def _measurement(i: int, **changes: Any) -> Measurement:
    base = 1.0 + i / 10
    m = Measurement(
        samples_ms=tuple(base * (1 + 0.001 * k) for k in range(12)),
        loops=3,
        warmup_runs=2,
        runtime="onnxruntime",
        runtime_version="1.20.0",
        device_fingerprint="fp",
        threads=1,
        input_shapes={"input": [1, 3, 32, 32]},
        counters={"cycles": {"value": 12.0, "unit": "count"}},
        env=ENV,
        env_after=ENV_AFTER,
        harness={"settings": {"min_runs": 10, "statistic": "median"}, "stop_reason": "min_time"},
        started_at="2026-01-01T00:00:00.000000Z",
        wall_s=0.5,
        latbench_version="0.1.0",
    )
    return m.with_(**changes) if changes else m


def _row(i: int, collection: str = "c", **changes: Any) -> dict[str, Any]:
    arch = NB.from_index(i)
    return S.row_from_measurement(
        _measurement(i, **changes),
        collection=collection,
        space="nb201",
        arch=arch,
        arch_id=NB.arch_id(arch),
        arch_index=i,
        device="local",
        drift_ratio=1.0,
    )


def _v1_store(path: Path, rows: int = 3) -> list[tuple[Any, ...]]:
    """A version 1 store (WAL, as collections leave it) with ``rows`` ok rows, one failed
    row, a recorded collection and a drift check; returns its rows as stored."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute(f"PRAGMA application_id = {lds.APPLICATION_ID}")
    con.execute("PRAGMA user_version = 1")
    for stmt in V1_DDL:
        con.execute(stmt)
    con.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [("schema_version", "1"), ("created_at", "2025-06-01T00:00:00Z"), ("created_by", "x")],
    )
    old = [{**_row(i), "schema_version": 1} for i in range(rows)]
    failed = Measurement.failed("worker died", runtime="onnxruntime", threads=1, env=ENV)
    arch = NB.from_index(rows)
    old.append(
        {
            **S.row_from_measurement(
                failed,
                collection="c",
                space="nb201",
                arch=arch,
                arch_id=NB.arch_id(arch),
                arch_index=rows,
                device="local",
            ),
            "schema_version": 1,
        }
    )
    con.executemany(
        f"INSERT INTO measurements({', '.join(V1_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(V1_COLUMNS))})",
        [tuple(r[c] for c in V1_COLUMNS) for r in old],
    )
    con.execute(
        "INSERT INTO collections VALUES ('c', '2025-06-01T00:00:00Z', '2025-06-01T00:00:00Z', ?)",
        (json.dumps({"space": "nb201", "threads": 1}),),
    )
    con.execute(
        "INSERT INTO drift(collection, device, arch, latency_ms, baseline_ms, ratio, after_rows, "
        "measured_at) VALUES ('c', 'local', 'ref', 1.0, 1.0, 1.0, 0, '2025-06-01T00:00:00Z')"
    )
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode = WAL")
    stored = con.execute(f"SELECT id, {', '.join(V1_COLUMNS)} FROM measurements ORDER BY id")
    out = stored.fetchall()
    con.close()
    return out


def _v1_rows_now(path: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return con.execute(
            f"SELECT id, {', '.join(V1_COLUMNS)} FROM measurements ORDER BY id"
        ).fetchall()
    finally:
        con.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- old stores ------------------------------------------------------------------------------
def test_a_version_1_store_opened_for_writing_is_upgraded_in_place_and_keeps_every_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    before = _v1_store(path)
    with lds.open(path) as store:
        assert store.schema_version == S.SCHEMA_VERSION == 2
        meta = store.meta()
        assert (meta["upgraded_from"], meta["schema_version"]) == ("1", "2")
        assert _v1_rows_now(path) == before  # every row, every value, the same ids
        df = store.to_pandas()
        assert df["env_after"].isna().all()  # not recorded by version 1
        assert df["schema_version"].tolist() == [1] * len(before)  # as they were written
        # a new row carries its environment after timing
        assert store.add(_row(10))
        new = store.to_pandas(arch_index=10).iloc[0]
        assert json.loads(new["env_after"]) == ENV_AFTER
        assert new["schema_version"] == 2
        assert store.count() == len(before) + 1
        # the rest of the store: collections, drift checks
        assert store.collection_params("c") == {"space": "nb201", "threads": 1}
        assert store.drift_baseline("c", "local") == 1.0
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "env_after" in {r[1] for r in con.execute("PRAGMA table_info(measurements)")}
    con.close()
    with lds.open(path) as again:  # upgraded once
        assert again.meta()["upgraded_from"] == "1" and again.count() == len(before) + 1


def test_a_version_1_store_opened_read_only_is_read_with_env_after_empty_and_not_changed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    before = _v1_store(path)
    sha = _sha(path)
    with lds.open(path, readonly=True) as store:
        assert store.schema_version == 1
        df = store.to_pandas()
        assert list(df.columns) == list(S.COLUMN_NAMES)
        assert len(df) == len(before) and df["env_after"].isna().all()
        assert json.loads(df["env"].iloc[0]) == ENV
        assert store.count(env_after=None) == len(before)
        assert "env_after" not in store.present_columns()
        assert store.column_profile()["env_after"][0] == 0
        assert store.misfits("env_after") == (0, [])
        records = store.measurements()
        assert [m.env for m in records[:-1]] == [ENV] * (len(before) - 1)
        assert all(m.env_after == {} for m in records)
        for fmt in ("csv", "parquet"):  # both export paths (sqlite3 and the ADBC driver)
            out = tmp_path / f"old.{fmt}"
            assert lds.export_store(store, out) == len(before)
            back = lds.read_table(out, ok_only=False)
            assert back["env_after"].isna().all() and len(back) == len(before)
    assert _sha(path) == sha
    assert _v1_rows_now(path) == before
    # a read-only command leaves it at version 1
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    con.close()


def test_importing_a_version_1_store_reads_its_rows_with_env_after_empty(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    before = _v1_store(old)
    with lds.open(tmp_path / "new.db") as store:
        report = lds.import_table(store, old)
        assert report.imported == len(before) and not report.rejected
        assert store.to_pandas()["env_after"].isna().all()
    con = sqlite3.connect(old)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1  # the source is not upgraded
    con.close()


def test_several_writers_upgrading_one_old_store_at_once_upgrade_it_once(tmp_path: Path) -> None:
    """Every writer sees version 1, then waits for the write lock another connection holds:
    the first upgrades, the others find it upgraded inside their transaction."""
    path = tmp_path / "old.db"
    before = _v1_store(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    errors: list[BaseException] = []

    def open_and_write(i: int) -> None:
        try:
            with lds.open(path) as store:
                store.add(_row(20 + i))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # every writer is past its first look at the version
    holder.execute("ROLLBACK")
    holder.close()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _v1_rows_now(path)[: len(before)] == before
    with lds.open(path, readonly=True) as store:
        assert store.meta()["upgraded_from"] == "1"  # upgraded once, from version 1
        assert store.count() == len(before) + 4
        assert store.to_pandas(schema_version=2)["env_after"].map(json.loads).tolist() == (
            [ENV_AFTER] * 4
        )


# ---- round trips -----------------------------------------------------------------------------
def test_env_after_round_trips_record_store_record(tmp_path: Path) -> None:
    m = _measurement(1)
    with lds.open(tmp_path / "s.db") as store:
        assert store.add(_row(1))
        (back,) = store.measurements()
        (via_pandas,) = [S.measurement_from_row(r) for r in store.to_pandas().to_dict("records")]
        raw = store.to_pandas().iloc[0]
    assert json.loads(raw["env_after"]) == ENV_AFTER
    for got in (back, via_pandas):
        assert got.env_after == m.env_after == ENV_AFTER
        assert got.env == m.env
        assert got.samples_ms == m.samples_ms  # every raw sample, exact
        assert (got.loops, got.warmup_runs, got.threads, got.batch) == (3, 2, 1, 1)
        assert (got.runtime, got.runtime_version, got.device_fingerprint) == (
            "onnxruntime",
            "1.20.0",
            "fp",
        )
        assert got.input_shapes == m.input_shapes and got.counters == m.counters
        assert got.harness == m.harness and got.started_at == m.started_at
        assert got.wall_s == m.wall_s and got.latbench_version == m.latbench_version
        assert got.device == "local"
        # the before/after checks of the record's own verdict are made again
        assert got.verdict()["reasons"] == m.verdict()["reasons"]
        assert any(r.startswith("CPU frequency changed") for r in got.verdict()["reasons"])
    # and the row read back is the row written
    again = S.row_from_measurement(
        back,
        collection="c",
        space="nb201",
        arch=NB.from_index(1),
        arch_id=NB.arch_id(NB.from_index(1)),
        arch_index=1,
        device="local",
        drift_ratio=1.0,
    )
    assert again == _row(1)


def test_a_failed_record_round_trips(tmp_path: Path) -> None:
    with lds.open(tmp_path / "s.db") as store:
        failed = Measurement.failed("boom", runtime="onnxruntime", threads=1, env_after=ENV_AFTER)
        row = S.row_from_measurement(
            failed, collection="c", space="nb201", arch="a", arch_id="a", arch_index=None,
            device="pi4",
        )  # fmt: skip
        assert store.add(row)
        (back,) = store.measurements(status="failed")
    assert (back.status, back.error, back.samples_ms, back.ok) == ("failed", "boom", (), False)
    assert back.env_after == ENV_AFTER and back.device == "pi4"


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz", "out.parquet"])
def test_env_after_round_trips_through_export_and_import(tmp_path: Path, name: str) -> None:
    with lds.open(tmp_path / "s.db") as store:
        for i in range(3):
            store.add(_row(i, env_after={**ENV_AFTER, "i": i}))
        assert lds.export_store(store, tmp_path / name) == 3
    with lds.open(tmp_path / "t.db") as other:
        assert lds.import_table(other, tmp_path / name).imported == 3
        got = [m.env_after for m in other.measurements()]
    assert got == [{**ENV_AFTER, "i": i} for i in range(3)]


def test_env_after_comes_along_when_a_store_is_imported(tmp_path: Path) -> None:
    with lds.open(tmp_path / "s.db") as store:
        store.add(_row(0))
    with lds.open(tmp_path / "t.db") as other:
        assert lds.import_table(other, tmp_path / "s.db").imported == 1
        (m,) = other.measurements()
    assert m.env_after == ENV_AFTER


def test_import_rejects_env_after_that_is_not_json_with_its_line(tmp_path: Path) -> None:
    arch = NB.from_index(0)
    src = tmp_path / "lab.csv"
    src.write_text(
        "space,arch,device,latency_ms,env_after\n"
        f"nb201,{arch},pi4,1.5,\"{{'bad': 1}}\"\n"
        f'nb201,{NB.from_index(1)},pi4,1.5,"{{""good"": 1}}"\n',
        encoding="utf-8",
    )
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, src)
        assert report.imported == 1
        ((where, why),) = report.rejected
        assert where == "line 2" and "env_after" in why and "expected JSON text" in why
        assert [m.env_after for m in store.measurements()] == [{"good": 1}]


def test_a_row_whose_env_after_is_not_json_names_the_row_and_the_column() -> None:
    row = {**_row(0), "env_after": "{not json"}
    with pytest.raises(DatasetError, match=r"s\.db id 7: env_after '\{not json' is not JSON"):
        S.measurement_from_row(row, where="s.db id 7")
    with pytest.raises(DatasetError, match=r"row: env_after '\[1\]'; expected JSON text"):
        S.measurement_from_row({**row, "env_after": "[1]"})


# ---- the report judges store rows by their environment before and after -----------------------
def test_the_report_makes_the_before_after_checks_on_store_rows(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    _v1_store(old, rows=2)
    with lds.open(old, readonly=True) as store:  # version 1: no environment after
        section = stability_section(store.to_pandas())
    assert section.summary["env_after"] == 0 and "are not made here" in section.body
    with lds.open(old) as store:  # upgraded; two rows measured now
        store.add(_row(5))
        store.add(_row(6, env_after=ENV))  # the frequency did not change
        rows = store.to_pandas()
    section = stability_section(rows)
    assert section.summary["env_after"] == 2
    verdicts = section.summary["verdicts"]
    by_index = dict(zip(rows["arch_index"], rows.index, strict=True))
    assert any(r.startswith("CPU frequency changed") for r in verdicts[by_index[5]]["reasons"])
    assert not any(r.startswith("CPU frequency") for r in verdicts[by_index[6]]["reasons"])
    assert not any(r.startswith("CPU frequency") for r in verdicts[by_index[0]]["reasons"])
    assert isinstance(rows, pd.DataFrame)


def test_version_1_csv_and_parquet_files_read_with_env_after_empty(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with lds.open(tmp_path / "s.db") as store:
        store.add(_row(0))
        full = lds.read_table(store)
    v1 = full[V1_COLUMNS].assign(schema_version=1)
    v1.to_csv(tmp_path / "v1.csv", index=False)
    table = pa.Table.from_pandas(v1, preserve_index=False)
    pq.write_table(
        table.replace_schema_metadata({b"latbench.schema_version": b"1"}), tmp_path / "v1.parquet"
    )
    for name in ("v1.csv", "v1.parquet"):
        back = lds.read_table(tmp_path / name)
        assert back["env_after"].isna().all() and json.loads(back["env"].iloc[0]) == ENV
        with lds.open(tmp_path / f"{name}.db") as other:
            assert lds.import_table(other, tmp_path / name).imported == 1
            (m,) = other.measurements()
        assert m.env == ENV and m.env_after == {}
