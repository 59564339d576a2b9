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
    from latbench.spaces import get_space

    space = get_space(space_name)
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
        hit = (canon, space.arch_id(canon), idx)
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


def _validate(w: pd.DataFrame) -> pd.Series:
    """Per row, why it cannot be stored (None when it can); vectorised."""
    reason = pd.Series([None] * len(w), index=w.index, dtype=object)

    def flag(mask: pd.Series, text: pd.Series | str) -> None:
        mask = mask & reason.isna()
        if mask.any():
            reason[mask] = text[mask] if isinstance(text, pd.Series) else text

    for name in ("space", "arch", "device"):
        col = w[name]
        flag(col.isna() | (col.astype(str).str.strip() == ""), f"{name} is empty")
    status = w["status"].astype(str)
    flag(~status.isin(S.STATUSES), "status " + status.map(repr) + f"; expected {list(S.STATUSES)}")
    lat = pd.to_numeric(w["latency_ms"], errors="coerce")
    ok = status == "ok"
    bad_lat = ok & ~((lat > 0) & np.isfinite(lat))
    flag(
        bad_lat,
        "latency_ms " + w["latency_ms"].map(repr) + "; expected a positive finite number",
    )
    for name, low in (("batch", 1), ("threads", 0)):
        num = pd.to_numeric(w[name], errors="coerce")
        bad = num.isna() | (num < low) | (num % 1 != 0)
        flag(bad, f"{name} " + w[name].map(repr) + f"; expected an integer >= {low}")
    return reason


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
    line number. Validation is vectorised and architectures are resolved once per distinct
    string, so the 371,139-row NB201 reference table imports in seconds.
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
    reason = _validate(w)

    # Architectures: resolve each distinct (space, arch) once.
    canon: dict[tuple[Any, Any, Any], tuple[str, str, int | None] | str] = {}
    resolvers: dict[str, Callable[[str, Any], tuple[str, str, int | None]] | str] = {}
    valid = reason.isna()
    given_index = w["arch_index"].where(w["arch_index"].notna(), None)
    pairs = (
        pd.DataFrame({"space": w["space"], "arch": w["arch"], "idx": given_index})
        .loc[valid]
        .drop_duplicates()
    )
    for sp, arch, idx in pairs.itertuples(index=False, name=None):
        if sp not in resolvers:
            try:
                resolvers[sp] = _arch_resolver(sp)
            except LatbenchError as exc:
                resolvers[sp] = f"space {sp!r}: {exc}"
        res = resolvers[sp]
        if isinstance(res, str):
            canon[(sp, arch, idx)] = res
            continue
        try:
            canon[(sp, arch, idx)] = res(str(arch), None if idx is None else int(idx))
        except (ArchError, ValueError, TypeError) as exc:
            canon[(sp, arch, idx)] = f"unknown arch {arch!r}: {exc}"
    keys = list(zip(w["space"], w["arch"], given_index, strict=True))
    resolved = [canon.get(k) if v else None for k, v in zip(keys, valid, strict=True)]
    arch_reason = [r if isinstance(r, str) else None for r in resolved]
    reason = reason.where(reason.notna(), pd.Series(arch_reason, index=w.index, dtype=object))
    bad = reason.notna().to_numpy()
    report.rejected = [
        (_locate(kind, int(p)), str(r)) for p, r in zip(pos[bad], reason[bad], strict=True)
    ]
    good = ~bad
    g = w[good]
    info: list[tuple[str, str, int | None]] = [
        r for r, ok in zip(resolved, good, strict=True) if ok and isinstance(r, tuple)
    ]
    if not len(g):
        return report
    g = g.assign(
        arch=[t[0] for t in info],
        arch_id=[t[1] for t in info],  # always recomputed: the key must match the space's ids
        arch_index=[t[2] for t in info],
        latency_ms=pd.to_numeric(g["latency_ms"], errors="coerce"),
        batch=_numeric(g["batch"], 1).astype("int64"),
        threads=_numeric(g["threads"], 0).astype("int64"),
        latbench_version=g["latbench_version"].fillna(S.latbench_version()),
        schema_version=S.SCHEMA_VERSION,
    )
    columns: list[list[Any]] = []
    names: list[str] = []
    for name in S.COLUMN_NAMES:
        col = g[name]
        if col.isna().all():
            continue  # NULL in the store: not bound at all
        if name == "samples_ms":
            values: list[Any] = [S.pack_samples(_samples_list(v) or []) for v in col.tolist()]
        elif name in S.JSON_COLUMNS:
            values = [_json_text(v) for v in col.tolist()]
        elif name == "arch_index":
            values = [None if v is None or v != v else int(v) for v in col.tolist()]
        else:
            values = _as_list(col)
        columns.append(values)
        names.append(name)
    rows = list(zip(*columns, strict=True))
    report.imported, report.duplicates = store.add_tuples(rows, columns=names)
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
    """Arrow tables straight from the cursor: no DataFrame in between (the fast path)."""
    import pyarrow as pa

    present = store.present_columns(**filters)
    for rows in store.iter_rows(columns=present, chunk_rows=chunk_rows, **filters):
        fetched = dict(zip(present, zip(*rows, strict=True), strict=True))
        arrays = []
        for fld in schema:
            values = fetched.get(fld.name)
            if values is None:
                arrays.append(pa.nulls(len(rows), type=fld.type))
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
