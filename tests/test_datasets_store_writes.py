"""Store writes: interrupted writes leave nothing behind, measured rows are never changed, a
store locked too long or of a newer schema says so."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import latbench.datasets as lds
from latbench.datasets import schema as S
from latbench.datasets import store as store_module
from latbench.datasets.store import Store
from latbench.errors import DatasetError, SchemaVersionError
from latbench.profilers.record import Measurement
from latbench.spaces import NB201Space

NB = NB201Space()


def _row(i: int, latency: float = 1.0, status: str = "ok") -> dict[str, Any]:
    arch = NB.from_index(i)
    m = (
        Measurement(samples_ms=(latency, latency, latency), runtime="onnxruntime", threads=1)
        if status == "ok"
        else Measurement.failed("boom", runtime="onnxruntime", threads=1)
    )
    return S.row_from_measurement(
        m, collection="c", space="nb201", arch=arch, arch_id=NB.arch_id(arch), arch_index=i,
        device="local",
    )  # fmt: skip


def _interrupt_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C (KeyboardInterrupt) inside the next write transaction, after its BEGIN."""
    original = Store._check_same_file
    state = {"armed": True}

    def check(self: Store) -> None:
        if state["armed"]:
            state["armed"] = False
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(Store, "_check_same_file", check)


WRITES: dict[str, Callable[[Store], Any]] = {
    "add": lambda s: s.add(_row(1)),
    "add_many": lambda s: s.add_many([_row(1), _row(2)]),
    "add_arrow": lambda s: s.add_arrow(pa.Table.from_pylist([_row(1)]), bulk=True),
    "add_drift": lambda s: s.add_drift(
        collection="c", device="local", arch="ref", latency_ms=1.0, baseline_ms=1.0, after_rows=0
    ),
    "upsert_collection": lambda s: s.upsert_collection("c", {"space": "nb201"}),
    "add_metadata": lambda s: s.add_metadata([("m", "t0", "t0", "{}")], []),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_an_interrupt_inside_a_write_rolls_it_back_and_the_next_write_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    """A second Ctrl-C during a collection lands wherever the collector is, a store write
    included: the write is rolled back, and the store (the same object, in a notebook) writes
    on, instead of failing every later write as 'corrupt'."""
    with lds.open(tmp_path / "s.db") as store:
        store.add(_row(0))
        _interrupt_once(monkeypatch)
        with pytest.raises(KeyboardInterrupt):
            WRITES[write](store)
        assert store.count() == 1 and store.drift().empty
        assert store.collection_params("m") is None
        # every kind of write works afterwards
        assert store.add(_row(3))
        store.upsert_collection("c", {"space": "nb201"})
        store.add_drift(
            collection="c", device="local", arch="r", latency_ms=1.0, baseline_ms=1.0, after_rows=1
        )
        WRITES[write](store)
        assert store.count(arch_index=3) == 1


def test_a_store_locked_longer_than_the_busy_timeout_is_reported_locked_for_every_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_BUSY_S", 0.2)
    path = tmp_path / "s.db"
    with lds.open(path) as store:
        store.add(_row(0))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process's long write
        try:
            for write in ("add", "add_drift", "upsert_collection", "add_arrow"):
                with pytest.raises(DatasetError) as exc:
                    WRITES[write](store)
                text = str(exc.value)
                assert str(path) in text and "locked by another process" in text, text
                assert "0.2 s busy timeout" in text and "corrupt" not in text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.add(_row(1))  # and once it is released
        assert store.count() == 2


def test_a_measured_row_is_never_overwritten_by_any_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with lds.open(path) as store:
        assert store.add(_row(0, latency=1.0))
        before = list(store.iter_rows(arch_index=0))
        other = _row(0, latency=9.0)
        assert not store.add(other)
        assert store.add_many([other], replace_failed=True) == (0, 1)
        assert store.add_many([_row(0, status="failed")], replace_failed=True) == (0, 1)
        assert store.add_arrow(pa.Table.from_pylist([other]), bulk=True) == (0, 1)
        many = [_row(0, latency=9.0)] + [_row(i, latency=2.0) for i in range(1, 2_500)]
        assert store.add_arrow(pa.Table.from_pylist(many), bulk=True) == (2_499, 1)  # staged
        csv = tmp_path / "lab.csv"
        csv.write_text(
            f"collection,space,arch,device,runtime,threads,latency_ms\n"
            f"c,nb201,{NB.from_index(0)},local,onnxruntime,1,9.0\n"
        )
        report = lds.import_table(store, csv)
        assert (report.imported, report.duplicates) == (0, 1)
        after = list(store.iter_rows(arch_index=0))
        (m,) = store.measurements(arch_index=0)
    assert after == before  # every value as stored: samples, latency, time, status
    assert m.median_ms == 1.0


def test_only_an_ok_row_replaces_a_failed_one(tmp_path: Path) -> None:
    with lds.open(tmp_path / "s.db") as store:
        assert store.add(_row(0, status="failed"))
        assert not store.add(_row(0, status="failed"))
        assert store.add(_row(0, latency=2.0))  # a retried architecture
        assert not store.add(_row(0, latency=3.0))
        (m,) = store.measurements()
    assert (m.status, m.median_ms) == ("ok", 2.0)


def test_a_newer_schema_found_inside_the_file_is_refused_with_the_same_message(
    tmp_path: Path,
) -> None:
    """The version in the file header can lag behind the one in the WAL (not checkpointed
    yet): the check after opening says what the header check says."""
    path = tmp_path / "s.db"
    lds.open(path).close()
    newer = S.SCHEMA_VERSION + 1
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute(f"PRAGMA user_version = {newer}")  # in the WAL only, while it stays open
    try:
        assert int.from_bytes(path.read_bytes()[60:64], "big") == S.SCHEMA_VERSION
        for readonly in (True, False):
            with pytest.raises(SchemaVersionError) as exc:
                lds.open(path, readonly=readonly)
            assert str(exc.value) == (
                f"{path} was written with dataset schema version {newer}; this latbench "
                f"({S.latbench_version()}) reads versions <= {S.SCHEMA_VERSION}: upgrade latbench"
            )
    finally:
        writer.close()


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_to_a_store_opened_read_only_says_so(tmp_path: Path, write: str) -> None:
    """Not 'corrupt or unreadable: attempt to write a readonly database'."""
    path = tmp_path / "s.db"
    with lds.open(path) as store:
        store.add(_row(0))
    with lds.open(path, readonly=True) as store:
        with pytest.raises(DatasetError, match=r"s\.db is open read-only$"):
            WRITES[write](store)
        assert store.count() == 1 and store.add_many([]) == (0, 0)


def test_a_write_that_fails_for_another_reason_is_not_called_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (or a read-only file) during a write says the write failed and that the
    rows stored before are kept, not that the store is corrupt."""
    store = Store(tmp_path / "t.db")

    def full() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_check_same_file", full)
    with pytest.raises(DatasetError) as err:
        store.add_drift(
            collection="c", device="local", arch="x", latency_ms=1.0, baseline_ms=1.0, after_rows=0
        )
    text = str(err.value)
    assert "could not write to it: database or disk is full" in text
    assert "rows stored before are kept" in text and "corrupt" not in text
