"""The embedded store: one SQLite file of measurements, safe against crashes.

Why SQLite: one file to copy and share, readable by any language, transactional. A collection
writes each measurement in its own transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) with
``synchronous=FULL`` in WAL mode, so a measurement is on disk before the next one starts: a
crash, a SIGKILL or a power cut loses at most the measurement in flight, never a stored row.
WAL mode also lets readers (``latbench dataset stats``, a notebook) read while a collection
writes.

Identity: the store marks itself with ``PRAGMA application_id`` (:data:`APPLICATION_ID`) and
``PRAGMA user_version`` (the schema version). Both are read straight from the file header before
SQLite opens the file for writing, so a foreign or corrupt file, or a store of a newer schema,
is refused with a clear error and left untouched.

A row is identified by :data:`~latbench.datasets.schema.KEY_COLUMNS` (a unique index): writing a
row whose key exists does nothing, except that an ``ok`` row replaces a ``failed`` one (a
retried architecture).

Bulk paths (imports, exports) move columns between SQLite and Arrow in C through the ADBC
SQLite driver (``adbc-driver-sqlite``) instead of one Python object per cell. That driver
carries its own copy of the SQLite library, and two copies of SQLite in one process must never
hold the same file at once (closing a file in one copy drops the POSIX locks of the other:
https://www.sqlite.org/howtocorrupt.html, section 2.2.1). So the driver never opens a store
while this module's ``sqlite3`` connection holds it:

- imports: the driver writes the Arrow table into a private staging file, which the store's
  own connection then attaches and copies from with one ``INSERT ... SELECT`` (C speed, one
  transaction, the usual conflict rules);
- exports: the store closes its ``sqlite3`` connection, the driver reads the rows, and the
  connection is reopened; when another :class:`Store` of this process has the same file open,
  or a transaction is open, or the driver is missing, the plain ``sqlite3`` path is used.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import sqlite3
import struct
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from latbench.datasets import schema as S
from latbench.errors import DatasetError, SchemaVersionError

log = logging.getLogger(__name__)

APPLICATION_ID = 0x4C424E43  # "LBNC"
SQLITE_MAGIC = b"SQLite format 3\x00"

_DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS measurements (id INTEGER PRIMARY KEY, "
    + ", ".join(f"{c.name} {c.sql}" for c in S.COLUMNS)
    + ")",
    "CREATE UNIQUE INDEX IF NOT EXISTS measurements_key ON measurements("
    + ", ".join(S.KEY_COLUMNS)
    + ")",
    "CREATE TABLE IF NOT EXISTS collections (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL, params TEXT)",
    "CREATE TABLE IF NOT EXISTS drift (id INTEGER PRIMARY KEY, collection TEXT NOT NULL, "
    "device TEXT NOT NULL, arch TEXT NOT NULL, latency_ms REAL, baseline_ms REAL, "
    "ratio REAL, after_rows INTEGER NOT NULL, measured_at TEXT NOT NULL)",
]
_TABLES = {"meta", "measurements", "collections", "drift"}
#: Marks a column whose values differ between rows (:meth:`Store.column_profile`).
VARIES: Any = object()
# A bulk write of at least this many rows into an empty store rebuilds the key index after.
_DEFER_INDEX_ROWS = 10_000
# Arrow writes of at least this many rows go through the ADBC staging file (fewer: executemany).
_STAGE_ROWS = 2_000
# Open connections of this process per store file ((st_dev, st_ino) -> count): the ADBC
# driver reads a store only when this process holds no other connection to it.
_OPEN_FILES: dict[tuple[int, int], int] = {}


@functools.cache
def _adbc() -> Any:
    """The ADBC SQLite DB-API module, or None when ``adbc-driver-sqlite`` is not installed."""
    try:
        import adbc_driver_sqlite.dbapi as dbapi
    except ImportError:
        log.info("adbc-driver-sqlite not installed: bulk import/export use sqlite3 (slower)")
        return None
    return dbapi


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


#: SQL literal of each storage type for the typed first row of an ADBC read (see
#: :meth:`Store.iter_arrow`).
_TYPE_SENTINEL = {"BLOB": "x''", "REAL": "0.0", "INTEGER": "0", "TEXT": "''"}


def _sql_type(name: str) -> str:
    if name == "id":
        return "INTEGER"
    sql = next(c.sql for c in S.COLUMNS if c.name == name)
    return sql.split()[0]


def _sql_literal(value: Any) -> str:
    """``value`` as an SQL literal: NULL, an integer or a quoted string.

    Floats are refused: SQLite's text-to-double conversion is not guaranteed to round-trip, so
    float values are always bound as parameters.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise DatasetError(f"constant {value!r} of type {type(value).__name__}; expected str or int")


def _read_header(path: Path) -> tuple[int, int] | None:
    """(application_id, user_version) from the SQLite header; None for a new, empty file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with path.open("rb") as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
        what = (
            f"a truncated SQLite file ({len(head)} bytes, less than its 100-byte header)"
            if head.startswith(SQLITE_MAGIC)
            else f"not a SQLite database (header {head[:16]!r})"
        )
        raise DatasetError(
            f"{path} is not a latbench store: {what}; "
            "expected a file written by `latbench collect` or `latbench dataset import`"
        )
    (user_version,) = struct.unpack(">i", head[60:64])
    (app_id,) = struct.unpack(">I", head[68:72])
    return app_id, user_version


def check_store_file(path: str | os.PathLike[str]) -> bool:
    """Validate an existing file without modifying it; True when it is a store, False if new.

    Raises :class:`DatasetError` for a foreign or corrupt file and
    :class:`SchemaVersionError` for a store of a newer schema.
    """
    p = Path(path)
    if p.is_dir():
        raise DatasetError(f"{p} is a directory; expected a store file such as latbench.db")
    header = _read_header(p)
    if header is None:
        return False
    app_id, user_version = header
    if app_id != APPLICATION_ID:
        raise DatasetError(
            f"{p} is a SQLite database of another application (application_id "
            f"0x{app_id:08x}, expected 0x{APPLICATION_ID:08x}); latbench will not modify it"
        )
    if user_version > S.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{p} was written with dataset schema version {user_version}; this latbench "
            f"({S.latbench_version()}) reads versions <= {S.SCHEMA_VERSION}: upgrade latbench"
        )
    return True


def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """SQL WHERE clause of ``filters``: exact match, or a glob when the value has * ? [."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in filters.items():
        if value is None:
            continue
        if key not in S.COLUMN_NAMES:
            raise DatasetError(f"unknown filter column {key!r}; expected one of {S.COLUMN_NAMES}")
        values = [value] if isinstance(value, str | int | float) else list(value)
        ors = []
        for v in values:
            if isinstance(v, str) and any(ch in v for ch in "*?["):
                ors.append(f"{key} GLOB ?")
            else:
                ors.append(f"{key} = ?")
            params.append(v)
        clauses.append("(" + " OR ".join(ors) + ")")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


_END = object()


def _read_ahead(reader: Any, errors: tuple[type[BaseException], ...], where: str) -> Iterator[Any]:
    """The batches of ``reader``, read one batch ahead in a thread.

    The driver steps SQLite and fills Arrow buffers without the GIL, as the parquet writer
    does, so reading batch k+1 overlaps with writing batch k when a second core is free. The
    thread is stopped and joined when the consumer stops early.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for batch in reader:
                if not put(batch):
                    return
        except errors as exc:
            put(ArrowReadError(f"{where}: {exc}"))
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(exc)
            return
        put(_END)

    thread = threading.Thread(target=pump, name="latbench-arrow-read", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class ArrowReadError(DatasetError):
    """The ADBC read of a store failed (e.g. a value of another type than its column's)."""


class Store:
    """A latbench dataset store (SQLite). Open with :func:`latbench.datasets.open`.

    Use as a context manager or call :meth:`close`. Not shared between threads: each thread or
    process opens its own ``Store`` on the same file.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        exists = check_store_file(self.path)
        if not exists and (readonly or not create):
            raise DatasetError(
                f"store {str(self.path)!r} does not exist; create it with `latbench collect` "
                "or `latbench dataset import`"
            )
        if not exists and not self.path.parent.is_dir():
            raise DatasetError(f"directory {str(self.path.parent)!r} of the store does not exist")
        self._file: tuple[int, int] | None = None
        try:
            self._conn = self._connect()
            if not exists:
                self._create()
            if not self.readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = FULL")
            self._check_tables()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise DatasetError(f"{self.path} is corrupt or unreadable: {exc}") from None
        self._register()

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: bulk imports
        if not self.readonly:
            conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _register(self) -> None:
        self._file = _file_id(self.path)
        if self._file is not None:
            _OPEN_FILES[self._file] = _OPEN_FILES.get(self._file, 0) + 1

    def _unregister(self) -> None:
        if self._file is not None:
            left = _OPEN_FILES.get(self._file, 1) - 1
            if left > 0:
                _OPEN_FILES[self._file] = left
            else:
                _OPEN_FILES.pop(self._file, None)
            self._file = None

    # ---- lifecycle -------------------------------------------------------------------
    def _create(self) -> None:
        """Create the tables in rollback-journal mode, so the header is in the main file."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        c.execute(f"PRAGMA user_version = {S.SCHEMA_VERSION}")
        for stmt in _DDL:
            c.execute(stmt)
        c.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [
                ("schema_version", str(S.SCHEMA_VERSION)),
                ("created_at", S.utc_now()),
                ("created_by", f"latbench {S.latbench_version()}"),
            ],
        )
        c.execute("COMMIT")

    def _check_tables(self) -> None:
        names = {
            r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        missing = _TABLES - names
        if missing:
            raise DatasetError(
                f"{self.path} is marked as a latbench store but lacks table(s) {sorted(missing)}"
            )
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > S.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} was written with dataset schema version {version}; this latbench "
                f"reads versions <= {S.SCHEMA_VERSION}: upgrade latbench"
            )

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._unregister()
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise DatasetError(f"{self.path}: {exc}") from None

    # ---- writing ---------------------------------------------------------------------
    def add(self, row: Mapping[str, Any]) -> bool:
        """Write one row in its own durable transaction; True when it was stored.

        A row whose key is already stored is ignored, except that an ``ok`` row replaces a
        ``failed`` one.
        """
        return self.add_many([row], replace_failed=True)[0] == 1

    def add_many(
        self, rows: Iterable[Mapping[str, Any]], *, replace_failed: bool = False
    ) -> tuple[int, int]:
        """Write rows (dicts of schema columns) in one transaction; (stored, already present)."""
        return self.add_tuples(S.ordered(rows), replace_failed=replace_failed)

    def add_tuples(
        self,
        tuples: Sequence[tuple[Any, ...]],
        *,
        replace_failed: bool = False,
        columns: Sequence[str] = S.COLUMN_NAMES,
        constants: Mapping[str, Any] | None = None,
        bulk: bool = False,
    ) -> tuple[int, int]:
        """Write rows given as tuples of ``columns`` (default: every column) in one transaction.

        Bulk imports pass only the columns that hold values, and give the columns that hold
        the same value on every row as ``constants`` (inlined as SQL literals, so they are not
        bound once per row). ``bulk=True`` (imports) trades durability for speed inside this one
        call: ``synchronous=NORMAL`` for the transaction (in WAL mode the commit is not synced,
        so a power cut may lose the import, but the store stays consistent), restored to
        ``FULL`` afterwards; and when the store holds no measurement yet, the unique key index
        is dropped and rebuilt after the insert (one sort instead of 371k random index
        insertions), duplicates of the batch being removed in SQL first. A collection's
        per-measurement writes never use it.
        """
        if not tuples:
            return 0, 0
        cols = tuple(columns)
        return self._write(
            len(tuples),
            cols,
            dict(constants or {}),
            replace_failed=replace_failed,
            bulk=bulk,
            insert=lambda sql: self._conn.executemany(sql, tuples),
        )

    def add_arrow(
        self,
        table: Any,
        *,
        replace_failed: bool = False,
        constants: Mapping[str, Any] | None = None,
        bulk: bool = False,
    ) -> tuple[int, int]:
        """Write a ``pyarrow.Table`` whose columns are schema columns; (stored, present).

        Same rules as :meth:`add_tuples`. From :data:`_STAGE_ROWS` rows on, and when
        ``adbc-driver-sqlite`` is installed, the table is written in C: the ADBC driver
        ingests it into a private staging file (journal off: it is thrown away), the store's
        connection attaches that file and copies the rows with one ``INSERT ... SELECT``
        inside the usual transaction. No Python object is made per cell, and the store file is
        only ever opened by this module's ``sqlite3`` (see the module docstring).
        """
        n = int(table.num_rows)
        if n == 0:
            return 0, 0
        cols = tuple(str(c) for c in table.column_names)
        consts = dict(constants or {})
        dbapi = _adbc()
        if dbapi is None or n < _STAGE_ROWS:
            tuples = list(zip(*(table.column(c).to_pylist() for c in cols), strict=True))
            return self.add_tuples(
                tuples, columns=cols, constants=consts, replace_failed=replace_failed, bulk=bulk
            )
        self._insert_sql(cols, replace_failed, consts)  # validates before any work
        if self.readonly:
            raise DatasetError(f"{self.path} is open read-only")
        with tempfile.TemporaryDirectory(prefix="latbench-stage-") as tmp:
            stage = Path(tmp) / "stage.db"
            try:
                conn = dbapi.connect(str(stage), autocommit=True)
                with contextlib.closing(conn), contextlib.closing(conn.cursor()) as cur:
                    cur.execute("PRAGMA journal_mode = OFF")
                    cur.execute("PRAGMA synchronous = OFF")
                    cur.execute("BEGIN")
                    cur.adbc_ingest("staged", table, mode="create")
                    cur.execute("COMMIT")
            except dbapi.Error as exc:
                raise DatasetError(f"could not stage {n} row(s) for {self.path}: {exc}") from None
            self._execute("ATTACH DATABASE ? AS stage", (str(stage),))
            try:
                return self._write(
                    n,
                    cols,
                    consts,
                    replace_failed=replace_failed,
                    bulk=bulk,
                    insert=self._conn.execute,
                    source="stage.staged",
                )
            finally:
                self._conn.execute("DETACH DATABASE stage")

    def _write(
        self,
        n: int,
        cols: tuple[str, ...],
        consts: dict[str, Any],
        *,
        replace_failed: bool,
        bulk: bool,
        insert: Any,
        source: str | None = None,
    ) -> tuple[int, int]:
        """The one write transaction of :meth:`add_tuples` and :meth:`add_arrow`."""
        if self.readonly:
            raise DatasetError(f"{self.path} is open read-only")
        self._insert_sql(cols, replace_failed, consts, source=source)  # validates before BEGIN
        c = self._conn
        # A big load into an empty store that no other connection holds runs in rollback-
        # journal mode: the pages are written once (no WAL copy, no checkpoint), and the
        # journal stays small (new pages are not journalled). ``synchronous=FULL`` then:
        # the commit is atomic and durable. Otherwise WAL with ``synchronous=NORMAL``.
        rollback = False
        try:
            rollback = bulk and n >= _DEFER_INDEX_ROWS and self._empty() and self._leave_wal()
            if bulk and not rollback:
                c.execute("PRAGMA main.synchronous = NORMAL")
            c.execute("BEGIN IMMEDIATE")
            deferred = bulk and n >= _DEFER_INDEX_ROWS and self._empty()
            sql = self._insert_sql(cols, replace_failed, consts, plain=deferred, source=source)
            if deferred:
                c.execute("DROP INDEX measurements_key")
            before = c.total_changes
            insert(sql)
            stored = c.total_changes - before
            if deferred:
                keys = ", ".join(S.KEY_COLUMNS)
                try:
                    c.execute(_DDL[2])
                except sqlite3.IntegrityError:  # the batch repeats a key: keep the first row
                    c.execute(
                        "DELETE FROM measurements WHERE id NOT IN "
                        f"(SELECT MIN(id) FROM measurements GROUP BY {keys})"
                    )
                    stored -= c.execute("SELECT changes()").fetchone()[0]
                    c.execute(_DDL[2])
            c.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('updated_at', ?)", (S.utc_now(),)
            )
            c.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise DatasetError(f"{self.path}: could not write {n} row(s): {exc}") from None
        finally:
            if bulk:
                c.execute("PRAGMA main.synchronous = FULL")
            if rollback:
                self._enter_wal()
        return stored, n - stored

    def _leave_wal(self) -> bool:
        """Switch to rollback-journal mode; False (still WAL) when another connection holds
        the file (SQLite then refuses at once: busy timeout 0 for this one statement)."""
        c = self._conn
        c.execute("PRAGMA busy_timeout = 0")
        try:
            mode = c.execute("PRAGMA main.journal_mode = DELETE").fetchone()[0]
        except sqlite3.OperationalError:  # database is locked: someone else has it open
            mode = "wal"
        finally:
            c.execute("PRAGMA busy_timeout = 30000")
        return str(mode).lower() == "delete"

    def _enter_wal(self) -> None:
        try:
            mode = self._conn.execute("PRAGMA main.journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            mode = str(exc)
        if str(mode).lower() != "wal":  # the next writable open switches it back
            log.warning("%s: could not return to WAL mode after a bulk load (%s)", self.path, mode)

    def _empty(self) -> bool:
        return self._conn.execute("SELECT 1 FROM measurements LIMIT 1").fetchone() is None

    @staticmethod
    def _insert_sql(
        columns: tuple[str, ...],
        replace_failed: bool,
        constants: Mapping[str, Any] | None = None,
        *,
        plain: bool = False,
        source: str | None = None,
    ) -> str:
        """The INSERT of ``columns`` (bound, or selected from the table ``source``) and
        ``constants`` (SQL literals), with the conflict clause of the key."""
        consts = dict(constants or {})
        unknown = [c for c in (*columns, *consts) if c not in S.COLUMN_NAMES]
        if unknown:
            raise DatasetError(f"unknown column(s) {unknown}; expected some of {S.COLUMN_NAMES}")
        both = set(columns) & set(consts)
        if both:
            raise DatasetError(f"column(s) {sorted(both)} given both per row and as constants")
        names = (*columns, *consts)
        literals = [_sql_literal(v) for v in consts.values()]
        sql = f"INSERT INTO measurements({', '.join(names)}) "
        if source is None:
            sql += f"VALUES ({', '.join(['?'] * len(columns) + literals)}) "
        else:  # WHERE true: an upsert after a SELECT needs it (SQLite parsing rule)
            sql += f"SELECT {', '.join([*columns, *literals])} FROM {source} WHERE true "
            sql += "ORDER BY rowid "
        if plain:
            return sql
        if not replace_failed:
            return sql + "ON CONFLICT DO NOTHING"
        return (
            sql
            + f"ON CONFLICT({', '.join(S.KEY_COLUMNS)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in names)
            + " WHERE measurements.status = 'failed' AND excluded.status = 'ok'"
        )

    def upsert_collection(self, name: str, params: Mapping[str, Any]) -> None:
        """Record (or update) a collection's parameters."""
        now = S.utc_now()
        text = json.dumps(dict(params), sort_keys=True, default=str)
        self._execute("BEGIN IMMEDIATE")
        self._execute(
            "INSERT INTO collections(name, created_at, updated_at, params) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET updated_at = excluded.updated_at, "
            "params = excluded.params",
            (name, now, now, text),
        )
        self._execute("COMMIT")

    def add_drift(
        self,
        *,
        collection: str,
        device: str,
        arch: str,
        latency_ms: float | None,
        baseline_ms: float | None,
        after_rows: int,
    ) -> float | None:
        """Record one re-measurement of the drift reference model; return its ratio."""
        ratio = (
            latency_ms / baseline_ms
            if latency_ms is not None and baseline_ms is not None and baseline_ms > 0
            else None
        )
        self._execute("BEGIN IMMEDIATE")
        self._execute(
            "INSERT INTO drift(collection, device, arch, latency_ms, baseline_ms, ratio, "
            "after_rows, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (collection, device, arch, latency_ms, baseline_ms, ratio, after_rows, S.utc_now()),
        )
        self._execute("COMMIT")
        return ratio

    # ---- reading ---------------------------------------------------------------------
    def drift_baseline(self, collection: str, device: str) -> float | None:
        """The first successful reference latency of a collection on a device (resume-safe)."""
        row = self._execute(
            "SELECT latency_ms FROM drift WHERE collection = ? AND device = ? "
            "AND latency_ms IS NOT NULL ORDER BY id LIMIT 1",
            (collection, device),
        ).fetchone()
        return None if row is None else float(row[0])

    def last_drift_ratio(self, collection: str, device: str) -> float | None:
        row = self._execute(
            "SELECT ratio FROM drift WHERE collection = ? AND device = ? AND ratio IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (collection, device),
        ).fetchone()
        return None if row is None else float(row[0])

    def drift(self, collection: str | None = None) -> pd.DataFrame:
        """The drift reference measurements (one row per re-measurement)."""
        where, params = _where({"collection": collection}) if collection else ("", [])
        return pd.read_sql_query(
            f"SELECT * FROM drift{where} ORDER BY id", self._conn, params=params
        )

    def done(
        self,
        *,
        collection: str,
        space: str,
        device: str,
        runtime: str,
        batch: int,
        threads: int,
        include_failed: bool = True,
    ) -> set[str]:
        """``arch_id`` of the architectures stored for this key (what a resume skips)."""
        sql = (
            "SELECT arch_id FROM measurements WHERE collection = ? AND space = ? AND device = ? "
            "AND runtime = ? AND batch = ? AND threads = ?"
        )
        if not include_failed:
            sql += " AND status = 'ok'"
        cur = self._execute(sql, (collection, space, device, runtime, batch, threads))
        return {r[0] for r in cur}

    def count(self, **filters: Any) -> int:
        where, params = _where(filters)
        (n,) = self._execute(f"SELECT COUNT(*) FROM measurements{where}", params).fetchone()
        return int(n)

    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self._execute("SELECT key, value FROM meta")}

    def iter_frames(
        self,
        *,
        columns: Sequence[str] | None = None,
        samples: bool = True,
        chunk_rows: int = 250_000,
        **filters: Any,
    ) -> Iterator[pd.DataFrame]:
        """The rows matching ``filters`` as DataFrames of at most ``chunk_rows`` rows."""
        cols = list(columns or S.COLUMN_NAMES)
        unknown = [c for c in cols if c not in S.COLUMN_NAMES]
        if unknown:
            raise DatasetError(f"unknown column(s) {unknown}; expected some of {S.COLUMN_NAMES}")
        if not samples and "samples_ms" in cols:
            cols.remove("samples_ms")
        where, params = _where(filters)
        sql = f"SELECT {', '.join(cols)} FROM measurements{where} ORDER BY id"
        cur = self._execute(sql, params)
        while True:
            chunk = cur.fetchmany(chunk_rows)
            if not chunk:
                break
            yield _frame(chunk, cols)

    def present_columns(self, **filters: Any) -> list[str]:
        """The columns holding at least one value among the rows matching ``filters``.

        One scan in SQLite's C code; exports then fetch only these columns, which halves the
        Python-side cost on imported tables (most statistics columns are NULL there).
        """
        where, params = _where(filters)
        counts = self._execute(
            f"SELECT {', '.join(f'COUNT({c})' for c in S.COLUMN_NAMES)} FROM measurements{where}",
            params,
        ).fetchone()
        return [c for c, n in zip(S.COLUMN_NAMES, counts, strict=True) if n]

    def column_profile(self, **filters: Any) -> dict[str, tuple[int, Any]]:
        """Per column among the rows matching ``filters``: (non-NULL count, the value when
        every row holds the same one, else :data:`VARIES`).

        One scan in SQLite's C code. Exports fetch only the columns that vary and write the
        others as constant Arrow arrays: every cell fetched through ``sqlite3`` costs a Python
        object, and on typical stores about half the columns hold one value (space, runtime,
        status, versions, settings).
        """
        where, params = _where(filters)
        first = self._execute(
            f"SELECT {', '.join(S.COLUMN_NAMES)} FROM measurements{where} ORDER BY id LIMIT 1",
            params,
        ).fetchone()
        if first is None:
            return {c: (0, VARIES) for c in S.COLUMN_NAMES}
        # One scan: a column is constant when no row differs from the first row's value
        # (``IS NOT`` also compares NULLs), all-NULL when the first value is NULL and none isn't.
        parts: list[str] = ["COUNT(*)"]
        bind: list[Any] = []
        for c, v in zip(S.COLUMN_NAMES, first, strict=True):
            if v is None or c == "samples_ms":
                parts.append(f"COUNT({c})")
            else:
                parts.append(f"TOTAL({c} IS NOT ?)")
                bind.append(v)
        row = self._execute(
            f"SELECT {', '.join(parts)} FROM measurements{where}", [*bind, *params]
        ).fetchone()
        total = int(row[0])
        out: dict[str, tuple[int, Any]] = {}
        for c, v, agg in zip(S.COLUMN_NAMES, first, row[1:], strict=True):
            if v is None or c == "samples_ms":
                out[c] = (int(agg), VARIES)  # counted: constant only when all NULL (count 0)
            elif agg == 0:
                out[c] = (total, v)
            else:
                out[c] = (total, VARIES)  # non-NULL count unknown but > 0: fetched
        return out

    def can_read_arrow(self) -> bool:
        """True when :meth:`iter_arrow` may read this store through the ADBC driver now:
        the driver is installed, no transaction is open, and no other :class:`Store` of this
        process holds the file (see the module docstring)."""
        return (
            _adbc() is not None
            and self._file is not None
            and _OPEN_FILES.get(self._file, 0) == 1
            and not self._conn.in_transaction
        )

    def iter_arrow(
        self, *, columns: Sequence[str] = S.COLUMN_NAMES, chunk_rows: int = 250_000, **filters: Any
    ) -> Iterator[Any]:
        """The rows matching ``filters`` as ``pyarrow.RecordBatch`` es, read in C (ADBC).

        Columns come as their storage types: ``int64``, ``double``, ``string``, ``binary``.
        Call only when :meth:`can_read_arrow`; this store's ``sqlite3`` connection is closed
        while the batches are read and reopened afterwards. The driver infers each column's
        type from its first batch and fails on a later value of another type, so the query
        starts with a typed sentinel row (id -1, dropped here): all-NULL leading rows keep the
        schema type. A value of a type other than its column's (possible only in a store
        written by other tools) raises :class:`ArrowReadError`; the caller then uses the
        ``sqlite3`` path.
        """
        import pyarrow as pa

        dbapi = _adbc()
        if not self.can_read_arrow():
            raise DatasetError(f"{self.path}: the ADBC read path is not available now")
        cols = list(columns)
        unknown = [c for c in cols if c not in S.COLUMN_NAMES]
        if unknown:
            raise DatasetError(f"unknown column(s) {unknown}; expected some of {S.COLUMN_NAMES}")
        if chunk_rows < 1:
            raise DatasetError(f"chunk_rows {chunk_rows}; expected an integer >= 1")
        where, params = _where(filters)
        sentinel = ", ".join(f"{_TYPE_SENTINEL[_sql_type(c)]} AS {c}" for c in cols)
        sql = (
            f"SELECT -1 AS id, {sentinel} UNION ALL "
            f"SELECT id, {', '.join(cols)} FROM measurements{where} ORDER BY 1"
        )
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        errors = (dbapi.Error, OSError, pa.ArrowException)  # pyarrow turns driver statuses
        self._conn.close()  # (e.g. a type mismatch) into OSError
        try:
            try:
                conn = dbapi.connect(uri, autocommit=True)
            except errors as exc:
                raise ArrowReadError(f"{self.path}: {exc}") from None
            with contextlib.closing(conn), contextlib.closing(conn.cursor()) as cur:
                try:
                    cur.execute("PRAGMA busy_timeout = 30000")
                    cur.adbc_statement.set_options(
                        **{"adbc.sqlite.query.batch_rows": str(chunk_rows)}
                    )
                    cur.execute(sql, params or None)
                    reader = cur.fetch_record_batch()
                except errors as exc:
                    raise ArrowReadError(f"{self.path}: {exc}") from None
                first = True
                for batch in _read_ahead(reader, errors, str(self.path)):
                    if first:  # the sentinel row
                        batch, first = batch.slice(1), False
                    yield batch.drop_columns(["id"])
        finally:
            self._conn = self._connect()

    def iter_rows(
        self,
        *,
        columns: Sequence[str] = S.COLUMN_NAMES,
        chunk_rows: int = 250_000,
        **filters: Any,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Raw rows (tuples of ``columns``, samples as blobs), in chunks of ``chunk_rows``."""
        unknown = [c for c in columns if c not in S.COLUMN_NAMES]
        if unknown:
            raise DatasetError(f"unknown column(s) {unknown}; expected some of {S.COLUMN_NAMES}")
        where, params = _where(filters)
        cur = self._execute(
            f"SELECT {', '.join(columns)} FROM measurements{where} ORDER BY id", params
        )
        while True:
            chunk = cur.fetchmany(chunk_rows)
            if not chunk:
                break
            yield chunk

    def to_pandas(
        self, *, columns: Sequence[str] | None = None, samples: bool = True, **filters: Any
    ) -> pd.DataFrame:
        """The rows matching ``filters`` (``space="nb201"``, ``device="help/*"``, ...).

        JSON columns (``input_shape``, ``counters``, ``env``) stay JSON strings; ``samples_ms``
        becomes a list of floats (``samples=False`` leaves it out, faster on big stores).
        """
        cols = list(columns or S.COLUMN_NAMES)
        frames = list(self.iter_frames(columns=cols, samples=samples, **filters))
        if not frames:
            return _frame([], [c for c in cols if samples or c != "samples_ms"])
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True)

    def collections(self) -> pd.DataFrame:
        """One row per collection or import source: counts, devices, time span."""
        sql = (
            "SELECT m.collection AS name, COUNT(*) AS rows, "
            "SUM(m.status = 'ok') AS ok, SUM(m.status = 'failed') AS failed, "
            "COUNT(DISTINCT m.space) AS spaces, COUNT(DISTINCT m.device) AS devices, "
            "MIN(m.measured_at) AS first, MAX(m.measured_at) AS last, c.params AS params "
            "FROM measurements m LEFT JOIN collections c ON c.name = m.collection "
            "GROUP BY m.collection ORDER BY m.collection"
        )
        return pd.read_sql_query(sql, self._conn)

    def collection_params(self, name: str) -> dict[str, Any] | None:
        row = self._execute("SELECT params FROM collections WHERE name = ?", (name,)).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    def stats(self, **filters: Any) -> pd.DataFrame:
        """Per collection, space, device, runtime and batch: counts and latency range (ms)."""
        where, params = _where(filters)
        sql = (
            "SELECT collection, space, device, runtime, batch, COUNT(*) AS rows, "
            "SUM(status = 'ok') AS ok, SUM(status = 'failed') AS failed, "
            "MIN(latency_ms) AS min_ms, AVG(latency_ms) AS mean_ms, MAX(latency_ms) AS max_ms "
            f"FROM measurements{where} GROUP BY collection, space, device, runtime, batch "
            "ORDER BY collection, space, device, runtime, batch"
        )
        return pd.read_sql_query(sql, self._conn, params=params)


def _frame(rows: list[tuple[Any, ...]], cols: list[str]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows, columns=cols)
    if "samples_ms" in df.columns:
        df["samples_ms"] = [S.unpack_samples(b) for b in df["samples_ms"]]
    for c in S.FLOAT_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype("float64")
    for c in ("batch", "threads", "schema_version"):
        if c in df.columns and len(df):
            df[c] = df[c].astype("int64")
    for c in ("arch_index", "runs", "loops", "warmup_runs"):
        if c in df.columns:
            df[c] = df[c].astype("Int64")
    return df


def open_store(
    path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True
) -> Store:
    """Open (or create) the store at ``path``; see :class:`Store`."""
    return Store(path, readonly=readonly, create=create)
