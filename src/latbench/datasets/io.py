"""Reading any dataset, importing into a store, exporting to parquet or CSV.

Accepted inputs, everywhere a dataset is read:

- a store (``.db``; detected by its SQLite header, whatever the suffix);
- parquet or CSV (``.csv``, ``.csv.gz``) with the full schema (``docs/datasets.md``) or the
  minimal long format ``space,arch,device,latency_ms`` (the other columns take defaults);
- a wide table (``arch`` plus one latency column per device, like the bundled reference
  tables); give ``space`` when the file has no ``space`` column.

Import validates each row (known space, valid architecture string, positive finite latency for
an ``ok`` row, known status, batch >= 1) and rejects bad rows with their line number (CSV: the
file line, header = line 1; parquet: ``row N`` counting from 1); the good rows are imported in
one transaction. Rows already in the store (same key) are skipped, so importing a file twice
adds nothing.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
import pandas as pd

from latbench.datasets import schema as S
from latbench.datasets.reference import REFERENCE_TABLES, batch_of, load_reference
from latbench.datasets.store import SQLITE_MAGIC, Store
from latbench.errors import ArchError, ConfigError, DatasetError, LatbenchError

Source: TypeAlias = "str | os.PathLike[str] | Store | pd.DataFrame"

FORMATS = ("parquet", "csv")
_PARQUET_META_KEY = b"latbench.schema_version"


# ---- reading --------------------------------------------------------------------------
def _is_sqlite(path: Path) -> bool:
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return True
    try:
        with path.open("rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def _read_file(path: Path) -> tuple[pd.DataFrame, str]:
    """The raw table of a parquet or CSV file and how rows are located (``line``/``row``)."""
    if not path.is_file():
        raise DatasetError(f"dataset file {str(path)!r} does not exist")
    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            if _PARQUET_META_KEY in meta:
                S.check_schema_version(meta[_PARQUET_META_KEY].decode(), str(path))
            return pd.read_parquet(path), "row"
        if name.endswith((".csv", ".csv.gz", ".tsv", ".txt", ".csv.bz2", ".csv.xz")):
            sep = "\t" if name.endswith(".tsv") else ","
            return pd.read_csv(path, sep=sep, keep_default_na=True, low_memory=False), "line"
    except LatbenchError:
        raise
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read as a table: {exc}") from None
    raise DatasetError(f"{path}: unknown dataset format; expected .db, .parquet, .csv or .csv.gz")


def _locate(kind: str, pos: int) -> str:
    """Human location of the ``pos``-th data row (0-based)."""
    return f"line {pos + 2}" if kind == "line" else f"row {pos + 1}"


def _wide_to_long(df: pd.DataFrame, space: str | None) -> pd.DataFrame:
    index_cols = [c for c in df.columns if str(c).endswith("_index")]
    dev_cols = [c for c in df.columns if c not in ("arch", "space", *index_cols)]
    if not dev_cols:
        raise DatasetError(
            "table has an arch column but neither device/latency_ms columns nor device columns; "
            f"expected the long format {list(S.LONG_COLUMNS)}"
        )
    df = df.assign(_pos=np.arange(len(df)))
    long = df.melt(
        id_vars=["arch", "_pos", *index_cols, *(["space"] if "space" in df.columns else [])],
        value_vars=dev_cols,
        var_name="device",
        value_name="latency_ms",
    ).dropna(subset=["latency_ms"])
    if index_cols:
        long = long.rename(columns={index_cols[0]: "arch_index"})
    if "space" not in long.columns and space is None and index_cols:
        space = index_cols[0][: -len("_index")]
    if "space" not in long.columns:
        if space is None:
            raise DatasetError("wide table without a space column: give the space (--space)")
        long.insert(0, "space", space)
    long["batch"] = [batch_of(d) for d in long["device"]]
    return long.sort_values(["_pos", "device"], kind="stable")


def _columns_check(df: pd.DataFrame, where: str, space: str | None) -> pd.DataFrame:
    if "schema_version" in df.columns and len(df):
        versions = pd.to_numeric(df["schema_version"], errors="coerce")
        if versions.notna().any():
            S.check_schema_version(int(versions.max()), where)
    cols = set(df.columns)
    if "arch" in cols and "device" not in cols and "latency_ms" not in cols:
        return _wide_to_long(df, space)
    if "space" not in cols and space is not None:
        df = df.assign(space=space)
    missing = [c for c in S.LONG_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{where}: missing column(s) {missing}; expected at least {list(S.LONG_COLUMNS)} "
            "(the minimal long format) or the full schema (docs/datasets.md)"
        )
    return df


def read_table(source: Source, *, space: str | None = None, ok_only: bool = True) -> pd.DataFrame:
    """Any dataset as a DataFrame with every schema column (minimal formats get defaults).

    ``source`` is a store, a path (``.db``, ``.parquet``, ``.csv``, ``.csv.gz``), or a
    DataFrame. ``ok_only`` drops failed measurements (what predictors want). Rows are not
    validated against the spaces here (use :func:`import_table` for that); the columns are.
    """
    if isinstance(source, Store):
        return source.to_pandas(status="ok" if ok_only else None)
    if isinstance(source, pd.DataFrame):
        raw, where = source, "DataFrame"
    else:
        path = Path(source)
        if _is_sqlite(path):
            with Store(path, readonly=True) as store:
                return store.to_pandas(status="ok" if ok_only else None)
        raw, _ = _read_file(path)
        where = str(path)
    df = _columns_check(raw, where, space)
    out = pd.DataFrame(index=range(len(df)))
    for name in S.COLUMN_NAMES:
        if name in df.columns:
            out[name] = df[name].to_numpy()
        else:
            out[name] = S.DEFAULTS.get(name)
    if out["latbench_version"].isna().all():
        out["latbench_version"] = None
    out["latency_ms"] = pd.to_numeric(out["latency_ms"], errors="coerce").astype("float64")
    for c in ("batch", "threads", "schema_version"):
        out[c] = pd.to_numeric(out[c], errors="coerce").fillna(S.DEFAULTS[c]).astype("int64")
    out["samples_ms"] = [_samples_list(v) for v in out["samples_ms"]]
    if ok_only:
        out = out[out["status"] == "ok"].reset_index(drop=True)
    for extra in df.columns:
        if extra not in out.columns and extra.endswith("_index") and len(df) == len(out):
            out[extra] = df[extra].to_numpy()
    return out


def _samples_list(v: Any) -> list[float] | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bytes):
        return S.unpack_samples(v)
    if isinstance(v, str):
        v = json.loads(v)
    return [float(x) for x in v]


# ---- import ---------------------------------------------------------------------------
@dataclass
class ImportReport:
    """What an import did: rows stored, skipped as already present, rejected with reasons."""

    source: str
    collection: str
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (location, reason)

    def summary(self) -> str:
        return (
            f"{self.source}: {self.read} row(s) read, {self.imported} imported into "
            f"{self.collection!r}, {self.duplicates} already present, "
            f"{len(self.rejected)} rejected"
        )


def _arch_resolver(
    space_name: str,
) -> Callable[[str, Any], tuple[str, str, int | None]]:
    """A cached ``(arch, given index) -> (canonical, arch_id, index)`` of a space.

    Raises ArchError for a bad string. When the row gives an index and the space has
    ``from_index``, the string must be the canonical string of that index (one cheap check
    instead of a parse); otherwise the string is parsed and canonicalised.
    """
    import hashlib

    from latbench.spaces import get_space
    from latbench.spaces.base import SearchSpace

    space = get_space(space_name)
    # The base class's arch_id re-parses its argument; for a string already known canonical
    # the same hash is computed directly (a space overriding arch_id keeps its own).
    plain_id = type(space).arch_id is SearchSpace.arch_id

    def arch_id(canon: str) -> str:
        if plain_id:
            return hashlib.sha256(f"{space.name}:{canon}".encode()).hexdigest()[:16]
        return space.arch_id(canon)

    index_fn = getattr(space, "index", None)
    from_index = getattr(space, "from_index", None)
    cache: dict[tuple[str, Any], tuple[str, str, int | None]] = {}

    def resolve(arch: str, given: Any) -> tuple[str, str, int | None]:
        key = (arch, given)
        hit = cache.get(key)
        if hit is not None:
            return hit
        idx: int | None = None
        if given is not None and from_index is not None and arch == from_index(int(given)):
            canon, idx = arch, int(given)
        else:
            canon = space.canonical(arch)
            if index_fn is not None:
                idx = int(index_fn(canon))
            elif given is not None:
                idx = int(given)
        hit = (canon, arch_id(canon), idx)
        cache[key] = hit
        return hit

    return resolve


def _numeric(series: pd.Series, default: float) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").fillna(default)


def _json_text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        return v or None
    return json.dumps(v, sort_keys=True, default=str)


def _as_list(series: pd.Series) -> list[Any]:
    """A column as a list sqlite3 can bind: NA -> None, numpy scalars -> Python scalars."""
    mask = series.isna().to_numpy()
    if mask.all():
        return [None] * len(series)
    if series.dtype.kind in "fiu":  # float NaN binds as NULL
        return series.to_numpy().tolist()
    arr = series.to_numpy(dtype=object)
    if mask.any():
        arr[mask] = None
    return arr.tolist()


def _unset(reason: np.ndarray) -> np.ndarray:
    """Mask of the rows without a rejection reason (an object array of None or text)."""
    return np.asarray(pd.isna(reason), dtype=bool)


def _validate(w: pd.DataFrame) -> np.ndarray:
    """Per row, why it cannot be stored (None when it can); vectorised.

    The reason texts are built for the bad rows only: formatting 371k ``repr`` strings to
    throw them away was a third of an import.
    """
    reason = np.full(len(w), None, dtype=object)

    def flag(mask: Any, text: Callable[[np.ndarray], list[str]] | str) -> None:
        m = np.asarray(mask, dtype=bool) & _unset(reason)
        if m.any():
            reason[m] = text if isinstance(text, str) else text(m)

    def described(name: str, suffix: str) -> Callable[[np.ndarray], list[str]]:
        values = w[name].to_numpy(dtype=object)
        return lambda m: [f"{name} {v!r}{suffix}" for v in values[m]]

    for name in ("space", "arch", "device"):
        col = w[name]
        flag(col.isna() | (col.astype(str).str.strip() == ""), f"{name} is empty")
    status = w["status"].astype(str)
    statuses = status.to_numpy(dtype=object)
    flag(
        ~status.isin(S.STATUSES),
        lambda m: [f"status {v!r}; expected {list(S.STATUSES)}" for v in statuses[m]],
    )
    lat = pd.to_numeric(w["latency_ms"], errors="coerce").to_numpy(dtype="float64")
    ok = (status == "ok").to_numpy()
    with np.errstate(invalid="ignore"):
        bad_lat = ok & ~((lat > 0) & np.isfinite(lat))
    flag(bad_lat, described("latency_ms", "; expected a positive finite number"))
    for name, low in (("batch", 1), ("threads", 0)):
        num = pd.to_numeric(w[name], errors="coerce")
        bad = num.isna() | (num < low) | (num % 1 != 0)
        flag(bad, described(name, f"; expected an integer >= {low}"))
    return reason


def _resolve_archs(
    w: pd.DataFrame, reason: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(canonical arch, arch_id, arch_index, reason) per row; each distinct arch resolved once.

    Rows are grouped by ``(space, arch, given index)`` with ``pd.factorize`` (C speed); the
    space's parser runs once per group and the results are spread back with a ``take``.
    """
    n = len(w)
    given = w["arch_index"]
    idx_key = given.astype("float64") if given.notna().any() else pd.Series(np.nan, index=w.index)
    codes, uniques = pd.MultiIndex.from_arrays(
        [w["space"].astype(str), w["arch"].astype(str), idx_key.fillna(-1.0)]
    ).factorize()
    k = len(uniques)
    u_canon = np.full(k, None, dtype=object)
    u_id = np.full(k, None, dtype=object)
    u_index = np.full(k, None, dtype=object)
    u_reason = np.full(k, None, dtype=object)
    wanted = np.zeros(k, dtype=bool)
    wanted[codes[_unset(reason)]] = True
    resolvers: dict[str, Callable[[str, Any], tuple[str, str, int | None]] | str] = {}
    u_space = uniques.get_level_values(0).to_numpy(dtype=object)
    u_arch = uniques.get_level_values(1).to_numpy(dtype=object)
    u_given = uniques.get_level_values(2).to_numpy(dtype="float64")
    for u in np.flatnonzero(wanted):
        sp, arch, idx = u_space[u], u_arch[u], u_given[u]
        if sp not in resolvers:
            try:
                resolvers[sp] = _arch_resolver(sp)
            except LatbenchError as exc:
                resolvers[sp] = f"space {sp!r}: {exc}"
        res = resolvers[sp]
        if isinstance(res, str):
            u_reason[u] = res
            continue
        try:
            u_canon[u], u_id[u], u_index[u] = res(arch, None if idx < 0 else int(idx))
        except (ArchError, ValueError, TypeError) as exc:
            u_reason[u] = f"unknown arch {arch!r}: {exc}"
    out_reason = reason.copy() if n else reason
    free = _unset(out_reason)
    out_reason[free] = u_reason[codes[free]]
    return u_canon[codes], u_id[codes], u_index[codes], out_reason


def import_table(
    store: Store,
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    collection: str | None = None,
    space: str | None = None,
) -> ImportReport:
    """Validate and import a file (or DataFrame) into ``store``; bad rows are reported, not fatal.

    ``collection`` names the import (default: the file's ``collection`` column, else the file
    name without suffixes). Returns an :class:`ImportReport` listing every rejected row, by
    line number. Validation is vectorised, architectures are resolved once per distinct
    string, columns holding one value are written as SQL constants, and the store writes the
    rows in bulk mode (:meth:`Store.add_tuples`), so the 371,139-row NB201 reference table
    imports in about a second on an idle machine.
    """
    if isinstance(source, pd.DataFrame):
        raw, kind, label = source.reset_index(drop=True), "row", "DataFrame"
    else:
        path = Path(source)
        label = str(path)
        if _is_sqlite(path):
            with Store(path, readonly=True) as other:
                raw, kind = other.to_pandas(), "row"
        else:
            raw, kind = _read_file(path)
    df = _columns_check(raw, label, space).reset_index(drop=True)
    pos = df["_pos"].to_numpy() if "_pos" in df.columns else np.arange(len(df))
    default_name = collection or (
        Path(label).name.split(".")[0] if not isinstance(source, pd.DataFrame) else "imported"
    )
    report = ImportReport(source=label, collection=default_name, read=len(df))
    w = pd.DataFrame(index=df.index)
    for name in S.COLUMN_NAMES:
        w[name] = df[name] if name in df.columns else S.DEFAULTS.get(name)
    if collection is not None or "collection" not in df.columns:
        w["collection"] = default_name
    w["collection"] = w["collection"].fillna(default_name)
    w["status"] = w["status"].fillna("ok")
    w["runtime"] = w["runtime"].fillna("").astype(str)
    w["batch"] = w["batch"].fillna(1)
    w["threads"] = w["threads"].fillna(0)
    if not len(w):
        return report
    canon, ids, indexes, reason = _resolve_archs(w, _validate(w))
    bad = ~_unset(reason)
    report.rejected = [
        (_locate(kind, int(p)), str(r)) for p, r in zip(pos[bad], reason[bad], strict=True)
    ]
    good = ~bad
    if not good.any():
        return report
    g = w if good.all() else w[good]
    g = g.assign(
        arch=canon[good],
        arch_id=ids[good],  # always recomputed: the key must match the space's ids
        arch_index=pd.array(indexes[good], dtype="Int64"),
        latency_ms=pd.to_numeric(g["latency_ms"], errors="coerce"),
        batch=_numeric(g["batch"], 1).astype("int64"),
        threads=_numeric(g["threads"], 0).astype("int64"),
        latbench_version=g["latbench_version"].fillna(S.latbench_version()),
        schema_version=S.SCHEMA_VERSION,
    )
    columns: list[list[Any]] = []
    names: list[str] = []
    constants: dict[str, Any] = {}
    for name in S.COLUMN_NAMES:
        col = g[name]
        if col.isna().all():
            continue  # NULL in the store: not bound at all
        if name == "samples_ms":
            values: list[Any] = [S.pack_samples(_samples_list(v) or []) for v in col.tolist()]
        elif name in S.JSON_COLUMNS:
            values = [_json_text(v) for v in col.tolist()]
        elif name == "arch_index":
            values = [None if v is pd.NA else int(v) for v in col.tolist()]
        elif name not in S.FLOAT_COLUMNS and col.notna().all() and col.nunique() == 1:
            first = col.iloc[0]  # one value: an SQL literal, not bound per row
            constants[name] = int(first) if isinstance(first, np.integer | int) else str(first)
            continue
        else:
            values = _as_list(col)
        columns.append(values)
        names.append(name)
    rows = list(zip(*columns, strict=True))
    report.imported, report.duplicates = store.add_tuples(
        rows, columns=names, constants=constants, bulk=True
    )
    return report


def import_reference(store: Store, name: str, *, collection: str | None = None) -> ImportReport:
    """Load a bundled reference table into ``store`` (collection ``reference/<name>``)."""
    if name not in REFERENCE_TABLES:
        raise DatasetError(
            f"unknown reference dataset {name!r}; expected one of {sorted(REFERENCE_TABLES)}"
        )
    t = REFERENCE_TABLES[name]
    long = load_reference(name).rename(columns={t.index_column: "arch_index"})
    report = import_table(store, long, collection=collection or f"reference/{name}")
    report.source = f"reference:{name}"
    return report


# ---- export ---------------------------------------------------------------------------
def _arrow_schema() -> Any:
    import pyarrow as pa

    types: dict[str, Any] = {}
    for c in S.COLUMNS:
        if c.name == "samples_ms":
            types[c.name] = pa.list_(pa.float64())
        elif c.name in S.FLOAT_COLUMNS:
            types[c.name] = pa.float64()
        elif c.name in S.INT_COLUMNS:
            types[c.name] = pa.int64()
        else:
            types[c.name] = pa.string()
    return pa.schema(
        [pa.field(n, t) for n, t in types.items()],
        metadata={_PARQUET_META_KEY: str(S.SCHEMA_VERSION).encode()},
    )


def _arrow_tables(
    store: Store, schema: Any, chunk_rows: int, filters: dict[str, Any]
) -> Iterator[Any]:
    """Arrow tables straight from the cursor: no DataFrame in between (the fast path).

    Only the columns whose values vary are fetched; all-NULL and one-valued columns become
    Arrow arrays built in C (``pa.nulls`` / ``pa.repeat``), so the per-cell Python cost is paid
    for the informative columns alone.
    """
    import pyarrow as pa

    from latbench.datasets.store import VARIES

    profile = store.column_profile(**filters)
    fetch = [c for c, (n, value) in profile.items() if n and value is VARIES]
    types = {fld.name: fld.type for fld in schema}

    def const(name: str, n: int) -> Any:
        count, value = profile[name]
        if not count:
            return pa.nulls(n, type=types[name])
        return pa.repeat(pa.scalar(value, type=types[name]), n)

    def chunks() -> Iterator[list[tuple[Any, ...]]]:
        if fetch:
            yield from store.iter_rows(columns=fetch, chunk_rows=chunk_rows, **filters)
            return
        total = store.count(**filters)  # every column constant: no fetch at all
        for start in range(0, total, chunk_rows):
            yield [()] * min(chunk_rows, total - start)

    for rows in chunks():
        fetched = dict(zip(fetch, zip(*rows, strict=True), strict=True)) if fetch else {}
        arrays = []
        for fld in schema:
            values = fetched.get(fld.name)
            if values is None:
                arrays.append(const(fld.name, len(rows)))
                continue
            if fld.name == "samples_ms":
                values = tuple(None if b is None else S.unpack_samples(b) for b in values)
            arrays.append(pa.array(values, type=fld.type))
        yield pa.Table.from_arrays(arrays, schema=schema)


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return path.open("w", encoding="utf-8", newline="")


def export_store(
    store: Store,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    chunk_rows: int = 250_000,
    **filters: Any,
) -> int:
    """Write the rows matching ``filters`` to parquet or CSV; return the number of rows.

    The format comes from ``fmt`` or the suffix (``.parquet``, ``.csv``, ``.csv.gz``). Rows are
    streamed in chunks, so memory stays bounded on big stores. Parquet keeps ``samples_ms`` as
    a list of floats and carries the schema version in its metadata; CSV writes it as a JSON list.
    """
    out = Path(path)
    if fmt is None:
        low = out.name.lower()
        fmt = "parquet" if low.endswith((".parquet", ".pq")) else "csv" if ".csv" in low else None
        if fmt is None:
            raise ConfigError(f"cannot tell the format of {str(out)!r}; use --format parquet|csv")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {list(FORMATS)}")
    if not out.parent.is_dir():
        raise ConfigError(f"output directory {str(out.parent)!r} does not exist")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        schema = _arrow_schema()
        n = 0
        with pq.ParquetWriter(out, schema, compression="zstd") as writer:
            for table in _arrow_tables(store, schema, chunk_rows, filters):
                writer.write_table(table)
                n += table.num_rows
        return n
    frames: Iterator[pd.DataFrame] = store.iter_frames(chunk_rows=chunk_rows, **filters)
    n = 0
    with _open_text(out) as fh:
        header = True
        for chunk in frames:
            chunk = chunk.copy()
            chunk["samples_ms"] = [
                None if v is None else json.dumps(v) for v in chunk["samples_ms"]
            ]
            chunk.to_csv(fh, header=header, index=False)
            header = False
            n += len(chunk)
        if header:  # no rows: still write the header
            pd.DataFrame(columns=list(S.COLUMN_NAMES)).to_csv(fh, index=False)
    return n
