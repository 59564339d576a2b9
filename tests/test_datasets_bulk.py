"""The fast import and export paths: bulk mode, deferred key index, constant columns."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import latbench.datasets as lds
from latbench.datasets import schema as S
from latbench.datasets import store as store_module
from latbench.errors import DatasetError
from latbench.spaces import NB201Space

NB = NB201Space()
ROWS = 400  # bulk paths are switched on from 100 rows in these tests (10,000 by default)


@pytest.fixture(autouse=True)
def _small_bulk_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_DEFER_INDEX_ROWS", 100)


def _table(n: int, *, devices: int = 2) -> pd.DataFrame:
    """``n`` distinct long-format rows: n/devices architectures on ``devices`` devices."""
    per = n // devices
    archs = [NB.from_index(i) for i in range(per)]
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "space": "nb201",
            "arch": archs * devices,
            "device": [f"it's/dev{d}" for d in range(devices) for _ in range(per)],  # a quote
            "latency_ms": rng.lognormal(0.0, 1.0, per * devices),
            "nb201_index": list(range(per)) * devices,
        }
    )


def _index_names(db: Path) -> set[str]:
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}


def test_bulk_import_into_an_empty_store_rebuilds_the_key_index(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    df = _table(ROWS)
    with lds.open(db) as store:
        report = lds.import_table(store, df, collection="big")
        assert report.imported == len(df) and not report.rejected
        # durability is back to FULL for the collection path after the bulk transaction
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert lds.import_table(store, df, collection="big").imported == 0  # key index works
        back = store.to_pandas(columns=["arch", "device", "latency_ms", "arch_index"])
    assert "measurements_key" in _index_names(db)
    assert back["latency_ms"].to_numpy().tobytes() == df["latency_ms"].to_numpy().tobytes()
    assert back["device"].tolist() == df["device"].tolist()
    assert back["arch_index"].tolist() == df["nb201_index"].tolist()


def test_bulk_import_with_repeated_keys_keeps_the_first_row(tmp_path: Path) -> None:
    df = _table(ROWS)
    twice = pd.concat([df, df.assign(latency_ms=df["latency_ms"] * 2)], ignore_index=True)
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, twice, collection="dup")
        # a repeated key with another latency is reported, not counted as already present
        assert (report.imported, report.duplicates) == (len(df), 0)
        assert len(report.rejected) == len(df)
        assert all("with a different latency_ms" in why for _, why in report.rejected)
        back = store.to_pandas(columns=["latency_ms"])
    assert np.array_equal(back["latency_ms"].to_numpy(), df["latency_ms"].to_numpy())


def test_bulk_import_into_a_non_empty_store_keeps_existing_rows(tmp_path: Path) -> None:
    df = _table(ROWS)
    with lds.open(tmp_path / "s.db") as store:
        lds.import_table(store, df.head(10), collection="c")
        report = lds.import_table(store, df, collection="c")
        assert (report.imported, report.duplicates) == (len(df) - 10, 10)
        assert store.count() == len(df)


def test_constants_are_literals_and_floats_are_refused_as_constants(tmp_path: Path) -> None:
    with lds.open(tmp_path / "s.db") as store:
        row = ("x", "nb201", NB.from_index(0), NB.arch_id(NB.from_index(0)), 1.5)
        cols = ["collection", "space", "arch", "arch_id", "latency_ms"]
        consts = {"device": "o'brien", "runtime": "", "batch": 1, "threads": 0, "status": "ok",
                  "schema_version": S.SCHEMA_VERSION}  # fmt: skip
        assert store.add_tuples([row], columns=cols, constants=consts, bulk=True) == (1, 0)
        assert store.to_pandas()["device"].tolist() == ["o'brien"]
        with pytest.raises(DatasetError, match="expected str or int"):
            store.add_tuples([row], columns=cols, constants={**consts, "wall_s": 0.1})
        with pytest.raises(DatasetError, match="both per row and as constants"):
            store.add_tuples([row], columns=cols, constants={"arch": "a"})


def test_export_writes_constant_and_null_columns_without_fetching_them(tmp_path: Path) -> None:
    df = _table(200)
    with lds.open(tmp_path / "s.db") as store:
        lds.import_table(store, df, collection="c")
        profile = store.column_profile()
        assert profile["space"] == (200, "nb201") and profile["env"] == (0, lds.store.VARIES)
        n = lds.export_store(store, tmp_path / "o.parquet", chunk_rows=64)
        stored = store.to_pandas()
    table = pq.read_table(tmp_path / "o.parquet")
    assert n == 200 and table.num_rows == 200 and table.column_names == list(S.COLUMN_NAMES)
    out = table.to_pandas()
    assert out["space"].tolist() == ["nb201"] * 200 and out["env"].isna().all()
    assert out["latency_ms"].tolist() == stored["latency_ms"].tolist()
    assert out["device"].tolist() == stored["device"].tolist()
    assert out["schema_version"].tolist() == [S.SCHEMA_VERSION] * 200
    # a filter selecting nothing exports the header only
    assert lds.export_store(lds.open(tmp_path / "s.db", readonly=True),
                            tmp_path / "e.parquet", device="none") == 0  # fmt: skip
