"""Datasets under bad input and concurrent use: real files, real stores, real processes.

Each test names the failure it guards against: a row that would make a store unreadable, a
message naming the wrong thing, an export that could leave half a file, a store deleted while
another process writes to it.
"""

from __future__ import annotations

import bz2
import logging
import lzma
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

import latbench.datasets as lds
from latbench.cli import main
from latbench.datasets import schema as S
from latbench.datasets.reference import HELP_GPUS, batch_of
from latbench.datasets.store import db_error, remove_if_empty
from latbench.errors import ConfigError, DatasetError, UnknownNameError
from latbench.spaces import NB201Space

NB = NB201Space()
A0, A1, A2 = NB.from_index(0), NB.from_index(1), NB.from_index(2)
LONG = "space,arch,device,latency_ms"


def _csv(path: Path, header: str, *lines: str) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def _store(path: Path, rows: int = 3, collection: str = "lab") -> Path:
    src = _csv(
        path.with_suffix(".src.csv"),
        LONG,
        *(f"nb201,{NB.from_index(i)},pi4,{1.5 + i}" for i in range(rows)),
    )
    with lds.open(path) as store:
        assert lds.import_table(store, src, collection=collection).imported == rows
    return path


def _holder(path: Path, write: bool = False) -> subprocess.Popen[str]:
    """Another process holding the store open (as a running collection does), idle until a
    line on its stdin; then it records a collection when ``write`` and prints its count."""
    code = textwrap.dedent(
        f"""
        import sys
        import latbench.datasets as lds
        store = lds.open({str(path)!r})
        print("open", flush=True)
        sys.stdin.readline()
        if {write!r}:
            store.upsert_collection("held", {{"space": "nb201"}})
        print(store.count(), flush=True)
        store.close()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


# ---- 1: a failed command never deletes a store another process uses ------------------------
def test_remove_if_empty_deletes_an_unused_empty_store_and_its_wal_files(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    lds.open(db).close()
    assert remove_if_empty(db)
    assert sorted(tmp_path.iterdir()) == []


def test_remove_if_empty_keeps_a_store_another_process_has_open(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    lds.open(db).close()
    proc = _holder(db)
    try:
        assert not remove_if_empty(db)
        assert db.exists()
    finally:
        out, _ = proc.communicate("\n", timeout=60)
    assert proc.returncode == 0 and out.strip() == "0"
    assert remove_if_empty(db)  # once nobody holds it


def test_remove_if_empty_keeps_rows_and_recorded_collections(tmp_path: Path) -> None:
    with_rows = _store(tmp_path / "rows.db")
    assert not remove_if_empty(with_rows)
    with sqlite3.connect(with_rows) as c:  # still in WAL mode, as every store
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    recorded = tmp_path / "recorded.db"
    with lds.open(recorded) as store:
        store.upsert_collection("c", {"space": "nb201"})
    assert not remove_if_empty(recorded)
    assert lds.open(recorded, readonly=True).collection_params("c") == {"space": "nb201"}


def test_a_failed_import_keeps_a_new_store_that_another_process_writes_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import made the store, a collection opened it meanwhile, the import fails: the
    collection's store must survive and its later rows land in the file at that path."""
    db = tmp_path / "shared.db"
    bad = _csv(tmp_path / "bad.csv", "space,arch", "nb201,x")

    created = threading.Event()
    proc: list[subprocess.Popen[str]] = []
    real_import = lds.import_table

    def import_while_another_process_opens(store: lds.Store, *a: object, **k: object) -> object:
        proc.append(_holder(db, write=True))  # the other process opens the new store now
        created.set()
        return real_import(store, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(lds, "import_table", import_while_another_process_opens)
    assert main(["dataset", "import", str(bad), "--db", str(db)]) == 1
    assert created.is_set() and db.exists()
    assert "missing column(s)" in capsys.readouterr().err
    out, _ = proc[0].communicate("\n", timeout=60)
    assert proc[0].returncode == 0 and out.strip() == "0"
    with lds.open(db) as store:  # the other process wrote into the file at that path
        assert store.collection_params("held") == {"space": "nb201"}


def test_a_store_removed_after_it_was_opened_refuses_to_write(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = lds.open(db)
    try:
        for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            p.unlink(missing_ok=True)
        with pytest.raises(DatasetError, match="removed or replaced by another process"):
            store.upsert_collection("c", {})
    finally:
        store.close()
    assert not db.exists()


# ---- 15: opening a new store from several processes at once --------------------------------
def _open_at(path: str, start: float, out: multiprocessing.Queue[str]) -> None:
    while time.time() < start:
        pass
    try:
        lds.open(path).close()
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put(f"{type(exc).__name__}: {exc}")


def test_several_processes_open_a_new_store_at_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    results: list[str] = []
    for i in range(6):
        path = str(tmp_path / f"r{i}.db")
        queue: multiprocessing.Queue[str] = ctx.Queue()
        start = time.time() + 0.2
        procs = [ctx.Process(target=_open_at, args=(path, start, queue)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        results += [queue.get(timeout=10) for _ in procs]
    assert results == ["ok"] * len(results)


def test_a_locked_store_waits_and_is_never_called_corrupt(tmp_path: Path) -> None:
    db = _store(tmp_path / "s.db")
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    assert holder.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.5, lambda: (holder.execute("ROLLBACK"), holder.close())).start()
    with lds.open(db) as store:  # the switch back to WAL waits for the lock
        assert store.count() == 3
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("PRAGMA journal_mode = DELETE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        late = sqlite3.connect(db, isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as exc:
            late.execute("BEGIN IMMEDIATE")
        late.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    text = str(db_error(db, exc.value))
    assert "is locked by another process" in text and "corrupt" not in text


# ---- 2, 4: integer columns -----------------------------------------------------------------
def test_a_fraction_in_an_integer_column_is_rejected_with_its_line(tmp_path: Path) -> None:
    src = _csv(tmp_path / "f.csv", f"{LONG},runs", f"nb201,{A0},pi4,1.5,2.5", f"nb201,{A1},pi4,1,7")
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, src)
        assert report.rejected == [("line 2", "runs 2.5; expected an integer >= 0")]
        assert report.imported == 1
        assert store.to_pandas()["runs"].tolist() == [7]
    assert lds.export_store(lds.open(tmp_path / "s.db", readonly=True), tmp_path / "o.csv") == 1


def test_huge_integers_are_rejected_with_the_range_not_wrapped(tmp_path: Path) -> None:
    src = _csv(
        tmp_path / "big.csv",
        f"{LONG},batch",
        f"nb201,{A0},pi4,1.5,1e30",
        f"nb201,{A1},pi4,1.5,9223372036854775808",
        f"nb201,{A2},pi4,1.5,9223372036854775807",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy cast warning either
        with lds.open(tmp_path / "s.db") as store:
            report = lds.import_table(store, src)
            batches = store.to_pandas()["batch"].tolist()
    expected = "is out of range; expected an integer from 1 to 9223372036854775807"
    assert [w for w, _ in report.rejected] == ["line 2", "line 3"]
    assert all(expected in why for _, why in report.rejected)
    assert "1e30" in report.rejected[0][1]
    assert batches == [9223372036854775807]
    with pytest.raises(DatasetError, match=r"line 2: batch .*1e30.* is out of range"):
        lds.read_table(src)


# ---- 2, 9: values of another type already in a store ---------------------------------------
def _poisoned(tmp_path: Path) -> Path:
    db = _store(tmp_path / "p.db", rows=4)
    with sqlite3.connect(db) as c:  # what the docs' "any SQLite client" may write
        c.execute("UPDATE measurements SET latency_ms = 'fast' WHERE id = 2")
        c.execute("UPDATE measurements SET runs = 2.5 WHERE id = 3")
        c.execute("UPDATE measurements SET runs = 9 WHERE id = 4")
    return db


@pytest.mark.parametrize("name", ["o.parquet", "o.csv"])
def test_mistyped_values_in_a_store_read_as_missing_with_their_row_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    db = _poisoned(tmp_path)
    out = tmp_path / name
    with lds.open(db, readonly=True) as store, caplog.at_level(logging.WARNING):
        assert lds.export_store(store, out) == 4
    back = pd.read_parquet(out) if name.endswith(".parquet") else pd.read_csv(out)
    assert back["latency_ms"].isna().tolist() == [False, True, False, False]
    assert back["runs"].isna().tolist() == [True, True, True, False]
    assert "column latency_ms are not a number (id 2: 'fast'); read as missing" in caplog.text
    assert "column runs are not an integer (id 3: 2.5); read as missing" in caplog.text
    with lds.open(tmp_path / "again.db") as again:  # and the export imports back
        assert lds.import_table(again, out).imported == 3  # the row without a latency: rejected


def test_stats_and_pandas_of_a_store_with_mistyped_values(tmp_path: Path) -> None:
    db = _poisoned(tmp_path)
    with lds.open(db, readonly=True) as store:
        stats = store.stats()
        df = store.to_pandas()
    assert stats["max_ms"].dtype == "float64" and stats["max_ms"].item() == pytest.approx(4.5)
    assert str(df["runs"].dtype) == "Int64" and df["runs"].tolist()[3] == 9
    assert df["latency_ms"].dtype == "float64"


# ---- 3: reference batch sizes --------------------------------------------------------------
@pytest.mark.parametrize("table", ["nb201", "fbnet"])
def test_every_reference_device_has_its_batch_size(table: str) -> None:
    devices = lds.reference_devices(table)
    gpus = [d for d in devices if d.split("/")[1].rsplit("_", 1)[0] in HELP_GPUS]
    assert len(gpus) == 14
    for d in devices:
        expected = int(d.rsplit("_", 1)[1]) if d in gpus else 1
        assert batch_of(d) == expected, d
    for cpu in ("help/gold_6240", "help/silver_4114", "help/silver_4210r", "help/essential_ph_1"):
        assert batch_of(cpu) == 1
    ref = lds.load_reference(table)
    assert set(ref.loc[ref["device"] == "help/gold_6240", "batch"]) == {1}


def test_reference_listing_prints_batch_1_for_the_xeons(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["dataset", "reference", "nb201"]) == 0
    out = capsys.readouterr().out
    assert "help/gold_6240      1" in out and "help/silver_4114      1" in out


# ---- 5, 18: samples, JSON, failed rows -----------------------------------------------------
def test_bad_samples_and_json_are_rejected_per_line(tmp_path: Path) -> None:
    src = _csv(
        tmp_path / "s.csv",
        f"{LONG},samples_ms,env",
        f"nb201,{A0},a,1.5,notjson,",
        f'nb201,{A0},b,1.5,"[""a""]",',
        f'nb201,{A0},c,1.5,"[1.0, -3, 2.0]",',
        f'nb201,{A0},d,1.5,"[1.0, NaN]",',
        f'nb201,{A0},e,1.5,"{{""x"": 1}}",',
        f'nb201,{A0},f,1.5,"[1.0, 2.0]",{{bad json',
        f'nb201,{A0},g,1.5,"[1.0, 2.0]","{{""cpu"": ""x""}}"',
    )
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, src)
        df = store.to_pandas()
    reasons = dict(report.rejected)
    assert reasons["line 2"].startswith("samples_ms 'notjson'; expected a JSON list")
    assert "sample 'a'" in reasons["line 3"]
    assert "sample -3" in reasons["line 4"]
    assert "sample nan" in reasons["line 5"]
    assert reasons["line 6"].startswith("samples_ms '{\"x\": 1}'")
    assert reasons["line 7"] == "env '{bad json'; expected JSON text of an object"
    assert report.imported == 1
    assert df["samples_ms"].tolist() == [[1.0, 2.0]] and df["env"].tolist() == ['{"cpu": "x"}']


def test_a_failed_row_stores_no_latency(tmp_path: Path) -> None:
    src = _csv(tmp_path / "f.csv", f"{LONG},status,error", f"nb201,{A0},pi4,-5,failed,boom")
    with lds.open(tmp_path / "s.db") as store:
        assert lds.import_table(store, src).imported == 1
        df = store.to_pandas()
    assert df["status"].item() == "failed" and pd.isna(df["latency_ms"].item())


# ---- 6: compressed exports, suffixes both ways ---------------------------------------------
@pytest.mark.parametrize(("suffix", "opener"), [(".csv.bz2", bz2.open), (".csv.xz", lzma.open)])
def test_export_writes_real_bz2_and_xz_that_import_reads_back(
    tmp_path: Path, suffix: str, opener: object
) -> None:
    db = _store(tmp_path / "s.db")
    out = tmp_path / f"o{suffix}"
    with lds.open(db, readonly=True) as store:
        assert lds.export_store(store, out) == 3
    with opener(out, "rt") as fh:  # type: ignore[operator]
        assert fh.readline().startswith("collection,space,arch")
    with lds.open(tmp_path / "b.db") as back:
        report = lds.import_table(back, out)
    assert report.imported == 3


def test_a_corrupt_compressed_file_is_a_dataset_error(tmp_path: Path) -> None:
    for name in ("x.csv.xz", "x.csv.bz2", "x.csv.gz"):
        bad = tmp_path / name
        bad.write_text("space,arch,device,latency_ms\n")  # plain text under a compressed name
        suffix = name.rsplit(".", 1)[1]
        with pytest.raises(
            DatasetError, match=f"{name}: the name ends in .{suffix} but the file is not {suffix}-"
        ):
            lds.read_table(bad)


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("x.txt", "parquet", "is named as a csv file, but the format is parquet"),
        ("xplain", "csv", "has no suffix `latbench dataset import` reads as csv"),
        ("xplain", None, "cannot tell the format of"),
        ("x.csv.zip", "csv", "has no suffix"),
    ],
)
def test_export_refuses_names_import_would_not_read_back(
    tmp_path: Path, name: str, fmt: str | None, expected: str
) -> None:
    db = _store(tmp_path / "s.db")
    with lds.open(db, readonly=True) as store, pytest.raises(ConfigError, match=expected):
        lds.export_store(store, tmp_path / name, fmt=fmt)
    assert not (tmp_path / name).exists()


def test_a_txt_export_reads_back(tmp_path: Path) -> None:
    db = _store(tmp_path / "s.db")
    with lds.open(db, readonly=True) as store:
        assert lds.export_store(store, tmp_path / "x.txt", fmt="csv") == 3
    assert len(lds.read_table(tmp_path / "x.txt")) == 3


# ---- 7: wide tables are told from typos ----------------------------------------------------
@pytest.mark.parametrize(
    ("header", "line", "said"),
    [
        ("space,arch,latency", f"nb201,{A0},1.5", "column 'latency' is not a schema column"),
        ("space,arch,device,latency", f"nb201,{A0},pi4,1.5", "rename it to latency_ms"),
        ("space,arch,pixel3,accuracy,status", f"nb201,{A0},1.5,93.1,ok", "source/device"),
        ("space;arch;device;latency_ms", f"nb201;{A0};pi4;1.5", "looks separated by ';'"),
    ],
)
def test_a_typo_is_not_taken_for_a_wide_table(
    tmp_path: Path, header: str, line: str, said: str
) -> None:
    src = _csv(tmp_path / "t.csv", header, line)
    with lds.open(tmp_path / "s.db") as store, pytest.raises(DatasetError) as exc:
        lds.import_table(store, src)
    assert str(src) in str(exc.value) and "missing column(s)" in str(exc.value)
    assert said in str(exc.value)
    with lds.open(tmp_path / "s.db", readonly=True) as store:
        assert store.count() == 0


def test_a_wide_table_counts_rows_and_names_the_column_of_a_bad_cell(tmp_path: Path) -> None:
    src = _csv(
        tmp_path / "w.csv",
        "arch,lab/pi4,lab/pixel3",
        f"{A0},1.5,2.5",
        f"{A1},ok,",
        f"{A2},3.0,4.0",
    )
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, src, space="nb201")
    assert (report.read, report.cells, report.imported) == (3, 5, 4)
    assert report.rejected == [
        ("line 3", "latency_ms 'ok' in column 'lab/pi4'; expected a positive finite number")
    ]
    assert "3 row(s) read (5 latency cell(s)), 4 imported" in report.summary()


def test_duplicate_header_columns_are_refused(tmp_path: Path) -> None:
    src = _csv(tmp_path / "d.csv", f"{LONG},latency_ms", f"nb201,{A0},pi4,1.5,2.5")
    with pytest.raises(DatasetError, match=r"\['latency_ms'\] appear more than once"):
        lds.read_table(src)


# ---- 8: names with glob characters ---------------------------------------------------------
def test_a_collection_named_with_glob_characters_is_matched_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "g.db"
    _store(db, rows=2, collection="lab[1]")
    _store(db, rows=3, collection="lab1")
    with lds.open(db, readonly=True) as store:
        assert store.count(collection="lab[1]") == 2  # exactly the collection of that name
        assert store.count(collection="lab?") == 3  # no collection is named 'lab?': a glob
        assert store.count(collection="lab*") == 5
    assert main(["dataset", "show", "lab[1]", "--db", str(db)]) == 0
    assert "pi4" in capsys.readouterr().out
    out = tmp_path / "o.csv"
    assert (
        main(["dataset", "export", "-o", str(out), "--collection", "lab[1]", "--db", str(db)]) == 0
    )
    assert set(pd.read_csv(out)["collection"]) == {"lab[1]"}


# ---- 10: corrupt stores, atomic exports ----------------------------------------------------
def _corrupt(tmp_path: Path) -> Path:
    db = tmp_path / "c.db"
    with lds.open(db) as store:
        lds.import_reference(store, "fbnet")
    size = db.stat().st_size
    with db.open("r+b") as fh:
        fh.seek(size // 2)
        fh.write(os.urandom(200_000))
    return db


def test_a_corrupt_store_is_a_one_line_error_and_an_earlier_export_survives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _corrupt(tmp_path)
    for name in ("o.csv", "o.parquet"):
        out = tmp_path / name
        out.write_text("an earlier export\n")
        assert main(["dataset", "export", "-o", str(out), "--db", str(db)]) == 1
        err = capsys.readouterr().err
        assert f"store '{db}' is corrupt or unreadable" in err and "Traceback" not in err
        assert out.read_text() == "an earlier export\n"
    for argv in (["list"], ["stats"]):
        assert main(["dataset", *argv, "--db", str(db)]) == 1
        err = capsys.readouterr().err
        assert "corrupt or unreadable" in err and "SELECT" not in err
    assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name) == []


def test_an_export_into_a_new_name_leaves_nothing_when_it_fails(tmp_path: Path) -> None:
    db = _corrupt(tmp_path)
    with lds.open(db, readonly=True) as store, pytest.raises(DatasetError, match="corrupt"):
        lds.export_store(store, tmp_path / "new.csv.gz")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".new", "new"))]


# ---- 11: the summary names the collections; a .db brings its settings and drift -------------
def test_the_summary_names_the_collections_written(tmp_path: Path) -> None:
    src = _csv(
        tmp_path / "multi.csv",
        f"collection,{LONG}",
        f"ci,nb201,{A0},pi4,1.5",
        f"cg,nb201,{A1},pi4,1.5",
    )
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, src)
    assert report.collections == ["cg", "ci"]
    assert "2 imported into 2 collections ('cg', 'ci')" in report.summary()
    assert "multi" not in report.summary().split(":", 1)[1]


def test_importing_a_store_brings_its_settings_and_drift_once(tmp_path: Path) -> None:
    src = _store(tmp_path / "src.db", collection="run")
    with lds.open(src) as store:
        store.upsert_collection("run", {"space": "nb201", "threads": 1})
        store.add_drift(
            collection="run", device="pi4", arch=A0, latency_ms=1.0, baseline_ms=1.0, after_rows=0
        )
    with lds.open(tmp_path / "dst.db") as dst:
        for _ in range(2):
            lds.import_table(dst, src)
        assert dst.collection_params("run") == {"space": "nb201", "threads": 1}
        assert len(dst.drift("run")) == 1
        lds.import_table(dst, src, collection="renamed")
        assert dst.collection_params("renamed") == {"space": "nb201", "threads": 1}
        assert len(dst.drift("renamed")) == 1


# ---- 12: conflicting repeats in one file ---------------------------------------------------
def test_a_key_repeated_with_another_latency_is_reported(tmp_path: Path) -> None:
    src = _csv(
        tmp_path / "dup.csv",
        LONG,
        f"nb201,{A0},pi4,1.5",
        f"nb201,{A1},pi4,2.0",
        f"nb201,{A0},pi4,1.7",
        f"nb201,{A1},pi4,2.0",
    )
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, src)
        assert store.to_pandas()["latency_ms"].tolist() == [1.5, 2.0]
    assert report.rejected == [
        ("line 4", "duplicate of line 2 with a different latency_ms (1.7 vs 1.5); kept the first")
    ]
    assert (report.imported, report.duplicates, report.repeated) == (2, 0, 1)
    assert "0 already present, 1 repeated in the file, 1 rejected" in report.summary()


# ---- 16: messages that name the right thing ------------------------------------------------
def test_messages_name_what_the_file_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert main(["dataset", "list", "--db", str(empty)]) == 1
    assert "is an empty file (0 bytes), not a latbench store" in capsys.readouterr().err
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    (tmp_path / "adir.csv").mkdir()
    db = tmp_path / "s.db"
    for name, said in (("fifo.csv", "is a named pipe (FIFO)"), ("adir.csv", "is a directory")):
        assert main(["dataset", "import", str(tmp_path / name), "--db", str(db)]) == 1
        assert said in capsys.readouterr().err
    assert not db.exists()
    nolat = _csv(tmp_path / "nolat.csv", "space,arch", "nb201,x")
    with pytest.raises(DatasetError, match=f"^{nolat}: missing column"):
        lds.read_table(nolat)


def test_a_device_named_na_is_a_device(tmp_path: Path) -> None:
    src = _csv(tmp_path / "na.csv", f"{LONG},batch", f"nb201,{A0},NA,1.5,NA", f"nb201,{A1},,1,")
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, src)
        df = store.to_pandas()
    assert df["device"].tolist() == ["NA"] and df["batch"].tolist() == [1]
    assert report.rejected == [("line 3", "device is empty")]


def test_an_unknown_reference_is_a_usage_error_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    assert main(["dataset", "reference", "bogus"]) == 2
    assert main(["dataset", "import", "--reference", "bogus", "--db", str(db)]) == 2
    assert capsys.readouterr().err.count("unknown reference dataset 'bogus'") == 2
    assert not db.exists()
    with lds.open(db) as store, pytest.raises(UnknownNameError):
        lds.import_reference(store, "bogus")


# ---- 17: collections without rows, changed settings ----------------------------------------
def test_a_collection_without_rows_is_listed_and_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    with lds.open(db) as store:
        store.upsert_collection("empty", {"space": "nb201"})
    assert main(["dataset", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "empty" in out and "0 row(s)" in out
    assert main(["dataset", "show", "empty", "--db", str(db)]) == 0
    assert '"space": "nb201"' in capsys.readouterr().out


def test_changed_settings_warn_and_keep_the_earlier_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with lds.open(tmp_path / "s.db") as store, caplog.at_level(logging.WARNING):
        store.upsert_collection("c", {"space": "nb201", "harness": {"min_runs": 5}})
        store.upsert_collection("c", {"space": "nb201", "harness": {"min_runs": 5}})
        assert not caplog.text  # a plain rerun
        store.upsert_collection("c", {"space": "nb201", "harness": {"min_runs": 10}})
        params = store.collection_params("c")
    assert "collection 'c' was recorded with other settings before (changed: harness)" in (
        caplog.text
    )
    assert params is not None and params["harness"] == {"min_runs": 10}
    assert [p["harness"] for p in params["previous"]] == [{"min_runs": 5}]


def test_schema_defaults_still_hold(tmp_path: Path) -> None:
    src = _csv(tmp_path / "m.csv", LONG, f"nb201,{A0},pi4,1.5")
    df = lds.read_table(src)
    assert df["batch"].item() == 1 and df["threads"].item() == 0
    assert df["schema_version"].item() == S.SCHEMA_VERSION
