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
retried architecture). A measured (``ok``) row is never changed. Every write is one
transaction that is rolled back on any exception, an interrupt included, so a connection is
never left inside a transaction; SQLite errors become :class:`~latbench.errors.DatasetError`
naming the file (a lock held longer than the busy timeout is reported as such, not as
corruption).

Schema upgrades: a store of an older schema version is upgraded in place when it is opened for
writing: one transaction adds the columns of the newer versions (NULL in the rows stored
before: nothing is rewritten, no row is lost), sets ``PRAGMA user_version`` and records
``upgraded_from`` in ``meta``. Opened read-only, it is read as it is: the columns it lacks
read as NULL, and the file is not changed.

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
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from latbench.datasets import schema as S
from latbench.errors import DatasetError, SchemaVersionError
from latbench.profilers.record import Measurement

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
# How long a connection waits for another one's lock (the busy timeout), in seconds.
_BUSY_S = 30.0
# The storage types (SQLite ``typeof``) a read accepts per declared column type; any other
# value (text in ``latency_ms``, a fraction in ``runs``, written by another tool) reads as
# missing, with a warning naming its row ids.
_FITS = {"REAL": ("real", "integer"), "INTEGER": ("integer",), "BLOB": ("blob",)}


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


def _is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED: another connection holds a lock, nothing is wrong
    with the file."""
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def db_error(path: Path, exc: BaseException, writing: str | None = None) -> DatasetError:
    """A ``sqlite3`` error on ``path`` as a user-facing error: a lock held too long is not
    corruption, nor is a failed write (``writing`` says what: a full disk, a read-only file)."""
    kept = "; nothing was written, the rows stored before are kept" if writing else ""
    if _is_busy(exc):
        what = f": could not {writing}: it" if writing else ""
        return DatasetError(
            f"store {str(path)!r}{what} is locked by another process for longer than the "
            f"{_BUSY_S:g} s busy timeout ({exc}){kept}: try again when it is done"
        )
    # a damaged file raises the base class ("database disk image is malformed"); a write that
    # fails for another reason (a full disk, a read-only file, a constraint) a subclass
    if writing and type(exc) is not sqlite3.DatabaseError:
        return DatasetError(f"store {str(path)!r}: could not {writing}: {exc}{kept}")
    return DatasetError(f"store {str(path)!r} is corrupt or unreadable: {exc}")


def what_is(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (``a directory``, ...); None otherwise."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


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
    except NotADirectoryError:
        parent = next((a for a in path.parents if a.exists() and not a.is_dir()), path.parent)
        raise DatasetError(
            f"store {str(path)!r}: the parent {str(parent)!r} is not a directory; expected a "
            "store file in an existing directory"
        ) from None
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
    what = what_is(p)
    if what is not None:
        raise DatasetError(f"{p} is {what}; expected a store file such as latbench.db")
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
        raise _newer(p, user_version)
    return True


def _newer(path: Path, version: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"{path} was written with dataset schema version {version}; this latbench "
        f"({S.latbench_version()}) reads versions <= {S.SCHEMA_VERSION}: upgrade latbench"
    )


def _where(
    filters: Mapping[str, Any], table: str = "measurements", absent: Iterable[str] = ()
) -> tuple[str, list[Any]]:
    """SQL WHERE clause of ``filters``: exact match, or a glob when the value has * ? [.

    A value that some row of ``table`` holds exactly is matched exactly even when it has glob
    characters, so a collection named ``lab[1]`` can be selected by its name. A column of
    ``absent`` (a schema column an older store lacks) is NULL in every row.
    """
    missing = set(absent)
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in filters.items():
        if value is None:
            continue
        if key not in S.COLUMN_NAMES:
            raise DatasetError(f"unknown filter column {key!r}; expected one of {S.COLUMN_NAMES}")
        values = [value] if isinstance(value, str | int | float) else list(value)
        col = "NULL" if key in missing else key
        ors = []
        for v in values:
            if isinstance(v, str) and any(ch in v for ch in "*?["):
                ors.append(
                    f"({col} = ? OR ({col} GLOB ? AND NOT EXISTS "
                    f"(SELECT 1 FROM {table} WHERE {col} = ?)))"
                )
                params.extend([v, v, v])
            else:
                ors.append(f"{col} = ?")
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
        self._file: tuple[int, int] | None = None
        self._warned: set[str] = set()
        # schema columns the ``measurements`` table lacks (a store of an older schema opened
        # read-only): read as NULL in every row
        self._absent: frozenset[str] = frozenset()
        # Another process may remove a new, empty store (a failed import) while this one is
        # opening it: the file is then opened again rather than written after its unlink.
        for _ in range(3):
            if self._open(create):
                break
        else:
            raise DatasetError(
                f"store {str(self.path)!r} was removed or replaced by another process while it "
                "was being opened; try again"
            )
        self._register()

    def _open(self, create: bool) -> bool:
        """Connect and check the file; False when the file at ``path`` changed meanwhile."""
        exists = check_store_file(self.path)
        if not exists and (self.readonly or not create):
            if self.path.exists():
                raise DatasetError(
                    f"store {str(self.path)!r} is an empty file (0 bytes), not a latbench store; "
                    "create a store with `latbench collect` or `latbench dataset import`"
                )
            raise DatasetError(
                f"store {str(self.path)!r} does not exist; create it with `latbench collect` "
                "or `latbench dataset import`"
            )
        if not exists and not self.path.parent.is_dir():
            raise DatasetError(f"directory {str(self.path.parent)!r} of the store does not exist")
        try:
            self._conn = self._connect()
            opened = _file_id(self.path)
            if not exists:
                self._retry_busy(self._create)
            if not self.readonly:
                # switching to WAL takes an exclusive lock and does not wait on the busy timeout
                self._retry_busy(lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
                self._conn.execute("PRAGMA synchronous = FULL")
            self._retry_busy(self._check_tables)
            if not self.readonly:
                self._retry_busy(self._upgrade)
            self._absent = self._missing_columns()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise db_error(self.path, exc) from None
        except BaseException:
            self._close_quietly()
            raise
        if opened is None or _file_id(self.path) != opened:
            self._close_quietly()
            return False
        return True

    def _retry_busy(self, fn: Any) -> Any:
        """``fn()``, again while another connection's lock makes it fail, up to the busy
        timeout: some statements (a journal mode switch) fail at once instead of waiting."""
        deadline = time.monotonic() + _BUSY_S
        delay = 0.002
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_S)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_S)
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_S * 1000)}")
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
        """Create the tables in rollback-journal mode, so the header is in the main file.

        Another process may have created them meanwhile (two commands opening a new store at
        once): its store is then kept as it is.
        """
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        made = c.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'measurements'"
        ).fetchone()[0]
        if made:
            c.execute("COMMIT")
            return
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
            raise _newer(self.path, version)

    def _table_columns(self) -> set[str]:
        return {str(r[1]) for r in self._conn.execute("PRAGMA table_info(measurements)")}

    def _missing_columns(self) -> frozenset[str]:
        return frozenset(S.COLUMN_NAMES) - self._table_columns()

    def _upgrade(self) -> None:
        """Upgrade a store of an older schema in place, in one transaction: add the columns
        of the newer versions (NULL in the rows already stored: nothing is rewritten, no row is
        lost) and record the new version. Another process may have upgraded it meanwhile."""
        c = self._conn
        if c.execute("PRAGMA user_version").fetchone()[0] >= S.SCHEMA_VERSION:
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            (old,) = c.execute("PRAGMA user_version").fetchone()
            if old < S.SCHEMA_VERSION:
                have = self._table_columns()
                added = [col for col in S.COLUMNS if col.name not in have]
                for col in added:
                    if "NOT NULL" in col.sql:  # the rows stored have no value to give it
                        raise DatasetError(
                            f"{self.path}: cannot add column {col.name} ({col.sql}) to the rows "
                            f"of schema version {old}; expected a column that may be NULL"
                        )
                    c.execute(f"ALTER TABLE measurements ADD COLUMN {col.name} {col.sql}")
                c.execute(f"PRAGMA user_version = {S.SCHEMA_VERSION}")
                c.executemany(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    [
                        ("schema_version", str(S.SCHEMA_VERSION)),
                        ("upgraded_from", str(old)),
                        ("upgraded_at", S.utc_now()),
                        ("upgraded_by", f"latbench {S.latbench_version()}"),
                    ],
                )
                log.info(
                    "%s: upgraded from dataset schema version %d to %d (added %s)",
                    self.path,
                    old,
                    S.SCHEMA_VERSION,
                    ", ".join(col.name for col in added) or "no column",
                )
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        """The dataset schema version of the store (``PRAGMA user_version``)."""
        (version,) = self._execute("PRAGMA user_version").fetchone()
        return int(version)

    def _columns_sql(self, columns: Iterable[str]) -> str:
        """A SELECT list of schema ``columns``; one the table lacks (an older store opened
        read-only) is selected as NULL under its name."""
        absent = self._current_absent()
        return ", ".join(f"NULL AS {c}" if c in absent else c for c in columns)

    def _expr(self, column: str) -> str:
        """``column`` in an SQL expression: NULL when the table lacks it."""
        return "NULL" if column in self._current_absent() else column

    def _current_absent(self) -> frozenset[str]:
        """The schema columns the table lacks now (another process may have upgraded the store
        since it was opened: then they are read from the table)."""
        if self._absent:
            try:
                self._absent = self._missing_columns()
            except sqlite3.DatabaseError as exc:
                raise db_error(self.path, exc) from None
        return self._absent

    def _where(self, filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
        return _where(filters, absent=self._current_absent())

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
            del self._conn

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
            raise db_error(self.path, exc) from None

    def _check_same_file(self) -> None:
        """Inside a write transaction: refuse to write when the file at ``path`` is no longer
        the one this connection opened (another process removed a new, empty store)."""
        if self._file is not None and _file_id(self.path) != self._file:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise DatasetError(
                f"store {str(self.path)!r} was removed or replaced by another process after it "
                "was opened; nothing was written: run the command again"
            )

    def _fetch(self, cur: sqlite3.Cursor, n: int | None = None) -> list[Any]:
        """The next ``n`` rows of ``cur`` (all when None); a damaged page is found here, in
        the middle of a read, as often as at the query."""
        try:
            return cur.fetchall() if n is None else cur.fetchmany(n)
        except sqlite3.DatabaseError as exc:
            raise db_error(self.path, exc) from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        cur = self._execute(sql, params)
        rows = self._fetch(cur)
        return pd.DataFrame.from_records(rows, columns=[d[0] for d in cur.description])

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
            self._check_same_file()
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
        except BaseException as exc:
            # an interrupt (a second Ctrl-C) too: the connection never stays in a transaction,
            # which would make its next write fail
            self._rollback()
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._write_error(n, exc) from None
            raise
        finally:
            if bulk:
                c.execute("PRAGMA main.synchronous = FULL")
            if rollback:
                self._enter_wal()
        return stored, n - stored

    def _rollback(self) -> None:
        """Roll back the open transaction, if any (SQLite may have rolled it back already)."""
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _write_error(self, n: int, exc: sqlite3.Error) -> DatasetError:
        return db_error(self.path, exc, f"write {n} row(s)")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), rolled back on any
        exception, an interrupt included, so the connection never stays inside a transaction.
        SQLite errors become :class:`DatasetError` (a lock held too long is not corruption)."""
        if self.readonly:
            raise DatasetError(f"{self.path} is open read-only")
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            self._check_same_file()
            yield c
            c.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.DatabaseError):
                raise db_error(self.path, exc, "write to it") from None
            raise

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
        """Record (or update) a collection's parameters.

        When the collection was recorded before with other settings (a rerun with other
        harness options), a warning names what changed, and the earlier settings are kept
        under ``previous`` (newest last, each with the time it was replaced): the rows measured
        before were measured with those.
        """
        now = S.utc_now()
        new = json.loads(json.dumps(dict(params), sort_keys=True, default=str))
        with self._transaction() as c:
            row = c.execute("SELECT params FROM collections WHERE name = ?", (name,)).fetchone()
            old: dict[str, Any] = {}
            if row is not None and row[0]:
                with contextlib.suppress(ValueError, TypeError):
                    old = dict(json.loads(row[0]))
            history = list(old.pop("previous", None) or [])
            for key in _PER_DEVICE_PARAMS:  # this run's devices over the earlier runs' ones
                if isinstance(old.get(key), dict):
                    new[key] = {**old[key], **(new.get(key) or {})}

            def differs(k: str) -> bool:
                if k in _RUN_ONLY_PARAMS:
                    return False
                if k in _PER_DEVICE_PARAMS and isinstance(old.get(k), dict):
                    # a device added is no change; one measured otherwise than before is
                    return any(new[k].get(d) != v for d, v in old[k].items())
                return bool(old.get(k) != new.get(k))

            changed = sorted(k for k in {*old, *new} if differs(k))
            if old and changed:
                log.warning(
                    "collection %r was recorded with other settings before (changed: %s); "
                    "the new settings are recorded, the earlier ones are kept under 'previous'",
                    name,
                    ", ".join(changed),
                )
                history.append({**old, "replaced_at": now})
            if history:
                new["previous"] = history
            c.execute(
                "INSERT INTO collections(name, created_at, updated_at, params) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "updated_at = excluded.updated_at, params = excluded.params",
                (name, now, now, json.dumps(new, sort_keys=True, default=str)),
            )

    def collection_records(self) -> list[tuple[Any, ...]]:
        """The ``collections`` table: (name, created_at, updated_at, params) per collection."""
        return self._fetch(
            self._execute(
                "SELECT name, created_at, updated_at, params FROM collections ORDER BY name"
            )
        )

    def drift_records(self) -> list[tuple[Any, ...]]:
        """The ``drift`` table without ids, in order: what :meth:`add_metadata` takes."""
        return self._fetch(
            self._execute(
                "SELECT collection, device, arch, latency_ms, baseline_ms, ratio, after_rows, "
                "measured_at FROM drift ORDER BY id"
            )
        )

    def add_metadata(
        self, collections: Sequence[tuple[Any, ...]], drift: Sequence[tuple[Any, ...]]
    ) -> None:
        """Carry another store's collection settings and drift checks over (an import of a
        ``.db``): settings of a collection this store has recorded are kept, and the drift rows
        of a (collection, device) this store already has are not added again, so importing a
        store twice adds nothing."""
        if not collections and not drift:
            return
        with self._transaction() as c:
            c.executemany(
                "INSERT INTO collections(name, created_at, updated_at, params) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
                collections,
            )
            have = set(c.execute("SELECT DISTINCT collection, device FROM drift").fetchall())
            c.executemany(
                "INSERT INTO drift(collection, device, arch, latency_ms, baseline_ms, ratio, "
                "after_rows, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [r for r in drift if (r[0], r[1]) not in have],
            )

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
        with self._transaction() as c:
            c.execute(
                "INSERT INTO drift(collection, device, arch, latency_ms, baseline_ms, ratio, "
                "after_rows, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (collection, device, arch, latency_ms, baseline_ms, ratio, after_rows, S.utc_now()),
            )
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
        where, params = _where({"collection": collection}, "drift") if collection else ("", [])
        return self._query(f"SELECT * FROM drift{where} ORDER BY id", params)

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
        return {r[0] for r in self._fetch(cur)}

    def count(self, **filters: Any) -> int:
        where, params = self._where(filters)
        (n,) = self._execute(f"SELECT COUNT(*) FROM measurements{where}", params).fetchone()
        return int(n)

    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self._fetch(self._execute("SELECT key, value FROM meta"))}

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
        where, params = self._where(filters)
        sql = f"SELECT {self._columns_sql(cols)} FROM measurements{where} ORDER BY id"
        cur = self._execute(sql, params)
        while True:
            chunk = self._fetch(cur, chunk_rows)
            if not chunk:
                break
            yield _frame(chunk, cols, on_bad=lambda c: self.warn_misfits(c, filters))

    def present_columns(self, **filters: Any) -> list[str]:
        """The columns holding at least one value among the rows matching ``filters``.

        One scan in SQLite's C code; exports then fetch only these columns, which halves the
        Python-side cost on imported tables (most statistics columns are NULL there).
        """
        where, params = self._where(filters)
        counts = self._execute(
            f"SELECT {', '.join(f'COUNT({self._expr(c)})' for c in S.COLUMN_NAMES)} "
            f"FROM measurements{where}",
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
        where, params = self._where(filters)
        first = self._execute(
            f"SELECT {self._columns_sql(S.COLUMN_NAMES)} FROM measurements{where} "
            "ORDER BY id LIMIT 1",
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
                parts.append(f"COUNT({self._expr(c)})")
            else:
                parts.append(f"TOTAL({self._expr(c)} IS NOT ?)")
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
        where, params = self._where(filters)
        sentinel = ", ".join(f"{_TYPE_SENTINEL[_sql_type(c)]} AS {c}" for c in cols)
        sql = (
            f"SELECT -1 AS id, {sentinel} UNION ALL "
            f"SELECT id, {self._columns_sql(cols)} FROM measurements{where} ORDER BY 1"
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
        where, params = self._where(filters)
        cur = self._execute(
            f"SELECT {self._columns_sql(columns)} FROM measurements{where} ORDER BY id", params
        )
        while True:
            chunk = self._fetch(cur, chunk_rows)
            if not chunk:
                break
            yield chunk

    def misfits(
        self, column: str, limit: int = 3, **filters: Any
    ) -> tuple[int, list[tuple[int, str]]]:
        """Values of ``column`` whose storage type does not fit it (text in a REAL column, a
        fraction in an INTEGER one: written by another tool): (count, first ``(id, value)``)."""
        fits = _FITS.get(_sql_type(column))
        if fits is None:
            return 0, []
        where, params = self._where(filters)
        col = self._expr(column)
        cond = f"typeof({col}) NOT IN ({', '.join(repr(t) for t in (*fits, 'null'))})"
        if column == "samples_ms":
            cond += f" OR (typeof({col}) = 'blob' AND length({col}) % 8 != 0)"
        sql = f"FROM measurements{where}{' AND' if where else ' WHERE'} ({cond})"
        (n,) = self._execute(f"SELECT COUNT(*) {sql}", params).fetchone()
        first = self._fetch(
            self._execute(f"SELECT id, quote({col}) {sql} ORDER BY id LIMIT {limit}", params)
        )
        return int(n), [(int(i), str(v)) for i, v in first]

    def warn_misfits(self, column: str, filters: Mapping[str, Any]) -> None:
        """Warn once per column that some of its values were read as missing, naming rows."""
        if column in self._warned:
            return
        self._warned.add(column)
        n, first = self.misfits(column, **filters)
        shown = ", ".join(f"id {i}: {v}" for i, v in first) + (", ..." if n > len(first) else "")
        kind = {"REAL": "a number", "INTEGER": "an integer", "BLOB": "a float64 blob"}.get(
            _sql_type(column), "valid"
        )
        log.warning(
            "%s: %d value(s) of column %s are not %s (%s); read as missing",
            self.path,
            n,
            column,
            kind,
            shown or "see the rows",
        )

    def to_pandas(
        self, *, columns: Sequence[str] | None = None, samples: bool = True, **filters: Any
    ) -> pd.DataFrame:
        """The rows matching ``filters`` (``space="nb201"``, ``device="help/*"``, ...).

        JSON columns (``input_shape``, ``counters``, ``env``, ``env_after``, ``harness``) stay
        JSON strings; ``samples_ms`` becomes a list of floats (``samples=False`` leaves it out,
        faster on big stores). :meth:`measurements` gives measurement records instead.
        """
        cols = list(columns or S.COLUMN_NAMES)
        frames = list(self.iter_frames(columns=cols, samples=samples, **filters))
        if not frames:
            return _frame([], [c for c in cols if samples or c != "samples_ms"])
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True)

    def measurements(self, **filters: Any) -> list[Measurement]:
        """The rows matching ``filters`` as measurement records, in the order they were stored
        (:func:`~latbench.datasets.schema.measurement_from_row`: what a row keeps of a record,
        ``env`` and ``env_after`` included). Values of another type than their column's read
        as missing, as in :meth:`to_pandas`."""
        cols = list(S.COLUMN_NAMES)
        where, params = self._where(filters)
        cur = self._execute(
            f"SELECT id, {self._columns_sql(cols)} FROM measurements{where} ORDER BY id", params
        )
        out: list[Measurement] = []
        while True:
            chunk = self._fetch(cur, 10_000)
            if not chunk:
                return out
            ids = [r[0] for r in chunk]
            df = _frame(
                [r[1:] for r in chunk], cols, on_bad=lambda c: self.warn_misfits(c, filters)
            )
            for i, rec in zip(ids, df.to_dict("records"), strict=True):
                out.append(S.measurement_from_row(rec, where=f"{self.path} id {i}"))

    def collections(self) -> pd.DataFrame:
        """One row per collection or import source: counts, devices, time span.

        A collection recorded without rows yet (a collection that failed or was stopped
        before its first measurement) is listed with 0 rows.
        """
        sql = (
            "SELECT n.name AS name, COUNT(m.id) AS rows, "
            "COALESCE(SUM(m.status = 'ok'), 0) AS ok, "
            "COALESCE(SUM(m.status = 'failed'), 0) AS failed, "
            "COUNT(DISTINCT m.space) AS spaces, COUNT(DISTINCT m.device) AS devices, "
            "MIN(m.measured_at) AS first, MAX(m.measured_at) AS last, c.params AS params "
            "FROM (SELECT name FROM collections "
            "UNION SELECT DISTINCT collection FROM measurements) n "
            "LEFT JOIN measurements m ON m.collection = n.name "
            "LEFT JOIN collections c ON c.name = n.name "
            "GROUP BY n.name ORDER BY n.name"
        )
        return self._query(sql)

    def has_collection(self, name: str) -> bool:
        """True when ``name`` is a recorded collection or some row's collection (exactly)."""
        row = self._execute(
            "SELECT EXISTS (SELECT 1 FROM collections WHERE name = ?) "
            "OR EXISTS (SELECT 1 FROM measurements WHERE collection = ?)",
            (name, name),
        ).fetchone()
        return bool(row[0])

    def collection_params(self, name: str) -> dict[str, Any] | None:
        row = self._execute("SELECT params FROM collections WHERE name = ?", (name,)).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            return dict(json.loads(row[0]))
        except (ValueError, TypeError):
            raise DatasetError(
                f"{self.path}: settings of collection {name!r} are not a JSON object: "
                f"{str(row[0])[:80]!r}"
            ) from None

    def stats(self, **filters: Any) -> pd.DataFrame:
        """Per collection, space, device, runtime and batch: counts and latency range (ms).

        Only numeric latencies count: a value of another type (written by another tool) is
        left out, as the other reads leave it out.
        """
        where, params = self._where(filters)
        lat = "(CASE WHEN typeof(latency_ms) IN ('real', 'integer') THEN latency_ms END)"
        sql = (
            "SELECT collection, space, device, runtime, batch, COUNT(*) AS rows, "
            "SUM(status = 'ok') AS ok, SUM(status = 'failed') AS failed, "
            f"MIN({lat}) AS min_ms, AVG({lat}) AS mean_ms, MAX({lat}) AS max_ms "
            f"FROM measurements{where} GROUP BY collection, space, device, runtime, batch "
            "ORDER BY collection, space, device, runtime, batch"
        )
        df = self._query(sql, params)
        for c in ("min_ms", "mean_ms", "max_ms"):
            df[c] = df[c].astype("float64")
        return df


def _whole(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0**63)


def fit_value(value: Any, column: str) -> Any:
    """``value`` when it fits the declared type of ``column``, else None (read as missing);
    text columns take any value as its text."""
    sql = _sql_type(column)
    if value is None:
        return None
    if sql in ("REAL", "INTEGER"):
        return _as_number(value, integer=sql == "INTEGER")
    if sql == "BLOB":
        return value if isinstance(value, bytes) else None
    return value if isinstance(value, str) else str(value)


def _as_number(v: Any, integer: bool) -> Any:
    """``v`` when it is a number of the column's kind (a whole one for ``integer``), else None."""
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        return None
    if not integer:
        return float(v)
    if isinstance(v, int | np.integer):
        return int(v)
    f = float(v)
    return int(f) if f == f and abs(f) < 2.0**63 and f.is_integer() else None


def _numbers(series: pd.Series, integer: bool) -> tuple[pd.Series, bool]:
    """A numeric column as float64 / Int64 (int64 when complete); True when some value did not
    fit and was read as missing. Numeric chunks take the numpy path; only a chunk holding
    another type pays a Python call per value."""
    if series.dtype.kind in "iuf":
        values = series.to_numpy(dtype="float64")
        if not integer:
            return pd.Series(values, index=series.index), False
        if series.dtype.kind in "iu":
            return series.astype("int64"), False
        nan = np.isnan(values)
        whole = _whole(values)
        bad = bool((~nan & ~whole).any())
        out = pd.array(np.where(whole, values, 0).astype(np.int64), dtype="Int64")
        out[~whole] = pd.NA
        return pd.Series(out, index=series.index), bad
    try:  # None and numbers: converted in C
        return series.astype("Int64" if integer else "float64"), False
    except (TypeError, ValueError, OverflowError):
        pass
    raw = series.tolist()
    conv = [_as_number(v, integer) for v in raw]
    bad = any(c is None and v is not None and v == v for v, c in zip(raw, conv, strict=True))
    if not integer:
        return pd.Series(conv, index=series.index, dtype="float64"), bad
    return pd.Series(pd.array(conv, dtype="Int64"), index=series.index), bad


def _frame(rows: list[tuple[Any, ...]], cols: list[str], on_bad: Any = None) -> pd.DataFrame:
    """Rows as a DataFrame of the schema's dtypes. A value that does not fit its column
    (possible only in a store written by another tool) is read as missing, and ``on_bad`` is
    called with the column's name."""
    df = pd.DataFrame.from_records(rows, columns=cols)
    bad: list[str] = []
    if "samples_ms" in df.columns:
        samples = []
        for b in df["samples_ms"]:
            try:
                samples.append(S.unpack_samples(b))
            except (DatasetError, TypeError):
                samples.append(None)
                if "samples_ms" not in bad:
                    bad.append("samples_ms")
        df["samples_ms"] = samples
    for c in S.FLOAT_COLUMNS:
        if c in df.columns:
            df[c], misfit = _numbers(df[c], integer=False)
            if misfit:
                bad.append(c)
    for c in S.INT_COLUMNS:
        if c not in df.columns:
            continue
        df[c], misfit = _numbers(df[c], integer=True)
        if misfit:
            bad.append(c)
        # NOT NULL columns are int64; a misfit read as missing leaves them Int64
        if c in ("batch", "threads", "schema_version") and not df[c].isna().any():
            df[c] = df[c].astype("int64")
        elif c not in ("batch", "threads", "schema_version"):
            df[c] = df[c].astype("Int64")
    if on_bad is not None:
        for c in bad:
            on_bad(c)
    return df


#: collection settings of one run only, not of how its rows were measured: a change of them is
#: no change of the collection's settings
_RUN_ONLY_PARAMS = ("retry_failed", "drift_every", "drift_threshold", "drift_arch")
#: collection settings kept per device: a run of other devices adds to them, replacing nothing
_PER_DEVICE_PARAMS = ("device_harness", "device_runtime")


def remove_if_empty(path: str | os.PathLike[str], *, own: Sequence[str] = ()) -> bool:
    """Delete the store at ``path`` (and its -wal, -shm, -journal files) when it holds nothing
    and no other connection uses it; True when it was deleted.

    What a failed command calls on the store it created. Another process (a collection) may
    have opened the same file meanwhile, so the file is deleted only from inside an exclusive
    lock, after leaving WAL mode (refused at once while any other connection has the file
    open, idle ones included), and only when ``measurements``, ``collections`` and ``drift``
    are empty (``own``: collections the failed command recorded itself, which count as
    nothing while no measurement or drift row names them). A :class:`Store` that opened the
    file before the deletion refuses its next write (the file it opened is gone: run the
    command again). Anything else (a file that is not a store, a lock held, a read error)
    leaves the file alone.
    """
    p = Path(path)
    try:
        if not check_store_file(p):
            return False  # missing, or 0 bytes: another process may be creating it right now
    except DatasetError:
        return False
    try:
        conn = sqlite3.connect(p, isolation_level=None, timeout=0)
    except sqlite3.Error:
        return False
    switched = False

    names = [str(n) for n in own]

    def holds_anything() -> bool:
        if any(
            conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is not None
            for t in ("measurements", "drift")
        ):
            return True
        others = f" WHERE name NOT IN ({', '.join('?' * len(names))})" if names else ""
        return (
            conn.execute(f"SELECT 1 FROM collections{others} LIMIT 1", names).fetchone() is not None
        )

    try:
        conn.execute("PRAGMA busy_timeout = 0")
        if holds_anything():
            return False
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        if str(mode).lower() != "delete":
            return False
        switched = True
        conn.execute("BEGIN EXCLUSIVE")
        # another connection may have switched the file back to WAL before the lock was taken
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "delete":
            conn.execute("ROLLBACK")
            switched = False
            return False
        if holds_anything():
            conn.execute("ROLLBACK")
            return False
        for f in (p, Path(f"{p}-wal"), Path(f"{p}-shm"), Path(f"{p}-journal")):
            f.unlink(missing_ok=True)
        conn.execute("ROLLBACK")
        switched = False
        return True
    except (sqlite3.Error, OSError):
        return False
    finally:
        if switched:  # kept: back to WAL, as every store is
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.execute("PRAGMA journal_mode = WAL")
        conn.close()


def open_store(
    path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True
) -> Store:
    """Open (or create) the store at ``path``; see :class:`Store`."""
    return Store(path, readonly=readonly, create=create)
