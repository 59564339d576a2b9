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

import contextlib
import gzip
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
import pandas as pd

from latbench.datasets import schema as S
from latbench.datasets.reference import REFERENCE_TABLES, batch_of, load_reference
from latbench.datasets.store import SQLITE_MAGIC, ArrowReadError, Store
from latbench.errors import ArchError, ConfigError, DatasetError, LatbenchError

Source: TypeAlias = "str | os.PathLike[str] | Store | pd.DataFrame"

log = logging.getLogger(__name__)

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


# Columns of a predictions file (``latbench predictor predict -o out.csv``). Read as a wide
# table they would pass for a device named "predicted_latency_ms", and a predictor
# evaluated on its own output scores perfectly.
_PREDICTION_COLUMNS = ("predicted_latency_ms", "uncertainty_ms")


def _wide_to_long(df: pd.DataFrame, space: str | None) -> pd.DataFrame:
    index_cols = [c for c in df.columns if str(c).endswith("_index")]
    dev_cols = [c for c in df.columns if c not in ("arch", "space", *index_cols)]
    predicted = [c for c in dev_cols if c in _PREDICTION_COLUMNS]
    if predicted:
        raise DatasetError(
            f"table has column(s) {predicted}: it holds predictions (the output of `latbench "
            "predictor predict`), not measurements; expected measured latencies, in the long "
            f"format {list(S.LONG_COLUMNS)} or one column per device"
        )
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


def _columns_check(
    df: pd.DataFrame, where: str, space: str | None, device: str | None = None
) -> pd.DataFrame:
    if "schema_version" in df.columns and len(df):
        versions = pd.to_numeric(df["schema_version"], errors="coerce")
        if versions.notna().any():
            S.check_schema_version(int(versions.max()), where)
    cols = set(df.columns)
    if "arch" in cols and "device" not in cols and "latency_ms" not in cols:
        return _wide_to_long(df, space)
    if "space" not in cols and space is not None:
        df = df.assign(space=space)
    if "device" not in cols and device is not None and "latency_ms" in cols:
        df = df.assign(device=device)  # one device's samples (the adapt --samples format)
    missing = [c for c in S.LONG_COLUMNS if c not in df.columns]
    if missing:
        hint = (
            "; a file of one device's samples (space,arch,latency_ms) needs the device named "
            "(--device NAME)"
            if missing == ["device"]
            else ""
        )
        raise DatasetError(
            f"{where}: missing column(s) {missing}; expected at least {list(S.LONG_COLUMNS)} "
            f"(the minimal long format) or the full schema (docs/datasets.md){hint}"
        )
    return df


def read_table(
    source: Source, *, space: str | None = None, ok_only: bool = True, device: str | None = None
) -> pd.DataFrame:
    """Any dataset as a DataFrame with every schema column (minimal formats get defaults).

    ``source`` is a store, a path (``.db``, ``.parquet``, ``.csv``, ``.csv.gz``), or a
    DataFrame. ``ok_only`` drops failed measurements (what predictors want). ``device`` names
    the device of a table without a device column (one device's ``space,arch,latency_ms``
    samples, as ``latbench adapt --samples`` reads them). Rows are not validated against the
    spaces here (use :func:`import_table` for that); the columns are.
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
    df = _columns_check(raw, where, space, device)
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


def _json_text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        return v or None
    return json.dumps(v, sort_keys=True, default=str)


class _Codes:
    """A column factorised (``pd.factorize``, C speed): per-row code (-1 = NA), distinct values.

    Validation and conversion then work on the distinct values (36 devices, 15,625
    architectures) instead of on every row.
    """

    def __init__(self, values: pd.Series) -> None:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        self.codes = np.asarray(codes, dtype=np.int64)
        self.uniques = np.asarray(uniques, dtype=object)

    def rows(self, flags: np.ndarray) -> np.ndarray:
        """Per row: the flag of its value (False for NA)."""
        if not len(self.uniques):
            return np.zeros(len(self.codes), dtype=bool)
        return np.where(self.codes >= 0, flags[self.codes.clip(0)], False)

    def empty(self) -> np.ndarray:
        """Per row: NA or blank text."""
        blank = np.array([str(u).strip() == "" for u in self.uniques], dtype=bool)
        return (self.codes < 0) | self.rows(blank)

    def text(self, sel: np.ndarray) -> Any:
        """The rows ``sel`` as an Arrow string array (values as text, NA as null)."""
        import pyarrow as pa

        dictionary = pa.array([str(u) for u in self.uniques], type=pa.string())
        codes = self.codes[sel]
        return dictionary.take(pa.array(codes, mask=codes < 0, type=pa.int64()))


def _text_array(series: pd.Series) -> Any:
    """A text column as an Arrow string array (NA -> null; other values as their text)."""
    import pyarrow as pa

    try:
        return pa.array(series, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    return pa.array([None if pd.isna(v) else str(v) for v in series.tolist()], type=pa.string())


def _number_array(series: pd.Series, integer: bool) -> Any:
    """A numeric column as Arrow: float64, or int64 when ``integer`` and every value is whole
    (a fractional value in an integer column stays a float, as SQLite would store it)."""
    import pyarrow as pa

    num = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    nan = np.isnan(num)
    if integer:
        whole = np.where(nan, 0.0, num)
        if np.all(whole == np.floor(whole)) and np.all(np.abs(whole) < 2**62):
            return pa.array(whole.astype(np.int64), mask=nan, type=pa.int64())
    return pa.array(num, mask=nan, type=pa.float64())


def _resolve(
    space: _Codes, arch: _Codes, given: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, list[str | None], list[str | None], list[int | None], list[str | None]]:
    """Resolve each distinct ``(space, arch, given index)`` of the rows ``free`` once.

    Returns (group per row, -1 outside ``free``) and per group: canonical string, arch_id,
    index, rejection reason. Groups are found with two ``pd.factorize`` of integer keys.
    """
    n = len(free)
    rows = np.flatnonzero(free)
    group = np.full(n, -1, dtype=np.int64)
    if not len(rows):
        return group, [], [], [], []
    pair = space.codes[rows] * max(len(arch.uniques), 1) + arch.codes[rows]
    idx = np.where(np.isnan(given[rows]), -1.0, given[rows])
    i_codes, i_uniques = pd.factorize(idx)
    if (int(pair.max()) + 1) * max(len(i_uniques), 1) < 2**62:
        g_codes, _ = pd.factorize(pair * max(len(i_uniques), 1) + i_codes)
    else:  # pragma: no cover - needs ~10^9 distinct pairs
        _, g_codes = np.unique(np.stack([pair, i_codes], axis=1), axis=0, return_inverse=True)
    g_codes = np.asarray(g_codes, dtype=np.int64).ravel()
    group[rows] = g_codes
    k = int(g_codes.max()) + 1
    first = rows[np.unique(g_codes, return_index=True)[1]]
    canon: list[str | None] = [None] * k
    ids: list[str | None] = [None] * k
    indexes: list[int | None] = [None] * k
    reasons: list[str | None] = [None] * k
    resolvers: dict[str, Callable[[str, Any], tuple[str, str, int | None]] | str] = {}
    for u, r in enumerate(first.tolist()):
        sp = str(space.uniques[space.codes[r]])
        name = arch.uniques[arch.codes[r]]
        if sp not in resolvers:
            try:
                resolvers[sp] = _arch_resolver(sp)
            except LatbenchError as exc:
                resolvers[sp] = f"space {sp!r}: {exc}"
        res = resolvers[sp]
        if isinstance(res, str):
            reasons[u] = res
            continue
        g = given[r]
        try:
            canon[u], ids[u], indexes[u] = res(name, None if np.isnan(g) else int(g))
        except (ArchError, ValueError, TypeError) as exc:
            reasons[u] = f"unknown arch {name!r}: {exc}"
    return group, canon, ids, indexes, reasons


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
    line number. Validation is vectorised and the good rows are written in bulk mode as one
    Arrow table (:func:`_import_rows`, :meth:`Store.add_arrow`); figures in BENCHMARKS.md.
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
    if not len(df):
        return report
    imported, duplicates, report.rejected = _import_rows(
        store, df, pos, kind, default_name, collection
    )
    report.imported, report.duplicates = imported, duplicates
    return report


def _import_rows(
    store: Store,
    df: pd.DataFrame,
    pos: np.ndarray,
    kind: str,
    default_name: str,
    collection: str | None,
) -> tuple[int, int, list[tuple[str, str]]]:
    """Validate the rows of ``df`` and write the good ones; (stored, present, rejected).

    Vectorised: string columns are factorised and checked once per distinct value, numbers
    with numpy, each distinct ``(space, arch, index)`` is resolved by its space once, and the
    good rows go to the store as one Arrow table (:meth:`Store.add_arrow`) with the columns
    that hold a single value as SQL constants. A rejected row keeps the first reason found,
    in this order: empty space/arch/device, status, latency, batch, threads, architecture.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(df)

    def column(name: str) -> pd.Series | None:
        return df[name] if name in df.columns else None

    def absent(name: str) -> pd.Series:
        return pd.Series([S.DEFAULTS.get(name)] * n, index=df.index, dtype=object)

    coll_col = column("collection")
    if collection is not None or coll_col is None:
        coll = _Codes(pd.Series([default_name], dtype=object).take(np.zeros(n, dtype=np.int64)))
    else:
        coll = _Codes(coll_col.fillna(default_name))
    space, arch, device = (_Codes(df[c]) for c in ("space", "arch", "device"))
    status_col = column("status")
    status = _Codes(status_col.fillna("ok") if status_col is not None else absent("status"))
    runtime_col = column("runtime")
    runtime = _Codes(
        runtime_col.fillna("").astype(str) if runtime_col is not None else absent("runtime")
    )
    reason = np.full(n, None, dtype=object)

    def flag(mask: np.ndarray, text: Callable[[np.ndarray], list[str]] | str) -> None:
        m = mask & pd.isna(reason)
        if m.any():
            reason[m] = text if isinstance(text, str) else text(m)

    def described(values: Any, name: str, suffix: str) -> Callable[[np.ndarray], list[str]]:
        arr = np.asarray(values, dtype=object)
        return lambda m: [f"{name} {v!r}{suffix}" for v in arr[m]]

    for name, codes in (("space", space), ("arch", arch), ("device", device)):
        flag(codes.empty(), f"{name} is empty")
    st_text = np.array([str(u) for u in status.uniques], dtype=object)
    flag(
        status.rows(~np.isin(st_text, S.STATUSES)) | (status.codes < 0),
        lambda m: [f"status {v!r}; expected {list(S.STATUSES)}" for v in st_text[status.codes[m]]],
    )
    lat_raw = df["latency_ms"]
    lat = pd.to_numeric(lat_raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    ok = status.rows(st_text == "ok")
    with np.errstate(invalid="ignore"):
        bad_lat = ok & ~((lat > 0) & np.isfinite(lat))
    if bad_lat.any():
        flag(bad_lat, described(lat_raw, "latency_ms", "; expected a positive finite number"))
    ints: dict[str, np.ndarray] = {}
    for name, low in (("batch", 1), ("threads", 0)):
        raw = column(name)
        raw = raw.fillna(S.DEFAULTS[name]) if raw is not None else absent(name)
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = np.isnan(num) | (num < low) | (num % 1 != 0)
        if bad.any():
            flag(bad, described(raw, name, f"; expected an integer >= {low}"))
        ints[name] = np.where(bad, 0, num).astype(np.int64)
    given_col = column("arch_index")
    given = (
        pd.to_numeric(given_col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        if given_col is not None
        else np.full(n, np.nan)
    )
    group, canon, ids, indexes, reasons = _resolve(space, arch, given, pd.isna(reason))
    if any(r is not None for r in reasons):
        g_reason = np.array(reasons, dtype=object)
        m = group >= 0
        reason[m] = g_reason[group[m]]
    bad = ~pd.isna(reason)
    rejected = [(_locate(kind, int(p)), str(r)) for p, r in zip(pos[bad], reason[bad], strict=True)]
    sel = np.flatnonzero(~bad)
    if not len(sel):
        return 0, 0, rejected

    g_take = pa.array(group[sel], type=pa.int64())
    arrays: dict[str, Any] = {
        "collection": coll.text(sel),
        "space": space.text(sel),
        "arch": pa.array(canon, type=pa.string()).take(g_take),
        "arch_id": pa.array(ids, type=pa.string()).take(g_take),  # the key must match the space
        "arch_index": pa.array(indexes, type=pa.int64()).take(g_take),
        "device": device.text(sel),
        "runtime": runtime.text(sel),
        "status": status.text(sel),
        "latency_ms": pa.array(lat[sel], mask=np.isnan(lat[sel]), type=pa.float64()),
        "batch": pa.array(ints["batch"][sel], type=pa.int64()),
        "threads": pa.array(ints["threads"][sel], type=pa.int64()),
        "schema_version": pa.array(np.full(len(sel), S.SCHEMA_VERSION, dtype=np.int64)),
    }
    good = df.iloc[sel] if len(sel) < n else df
    for name in S.COLUMN_NAMES:
        if name in arrays:
            continue
        col = good[name] if name in good.columns else None
        if name == "latbench_version":
            col = (col if col is not None else pd.Series([None] * len(sel), dtype=object)).fillna(
                S.latbench_version()
            )
        if col is None or bool(col.isna().all()):
            continue  # NULL in the store: not written at all
        if name == "samples_ms":
            blobs = [S.pack_samples(_samples_list(v) or []) for v in col.tolist()]
            arrays[name] = pa.array(blobs, type=pa.binary())
        elif name in S.JSON_COLUMNS:
            arrays[name] = pa.array([_json_text(v) for v in col.tolist()], type=pa.string())
        elif name in S.FLOAT_COLUMNS or name in S.INT_COLUMNS:
            arrays[name] = _number_array(col, integer=name in S.INT_COLUMNS)
        else:
            arrays[name] = _text_array(col)
    names: list[str] = []
    values: list[Any] = []
    constants: dict[str, Any] = {}
    for name in S.COLUMN_NAMES:
        arr = arrays.get(name)
        if arr is None or arr.null_count == len(arr):
            continue
        one_value = (
            name not in S.FLOAT_COLUMNS
            and name not in S.JSON_COLUMNS
            and name not in ("samples_ms", "arch_index")
            and arr.null_count == 0
            and (pa.types.is_integer(arr.type) or pa.types.is_string(arr.type))
            and pc.count_distinct(arr).as_py() == 1
        )
        if one_value:  # one value: an SQL literal, not written per row
            constants[name] = arr[0].as_py()
            continue
        names.append(name)
        values.append(arr)
    table = pa.Table.from_arrays(values, names=names)
    stored, present = store.add_arrow(table, constants=constants, bulk=True)
    return stored, present, rejected


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
) -> Generator[Any, None, None]:
    """Arrow tables from ``sqlite3`` rows (the path without the ADBC driver).

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


def _samples_lists(blobs: Any) -> Any:
    """A binary Arrow array of float64 sample blobs as ``list<float64>``, without a Python
    object per sample: the blob bytes are the list's values buffer (little-endian hosts)."""
    import pyarrow as pa

    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        values = [None if b is None else S.unpack_samples(b) for b in blobs.to_pylist()]
        return pa.array(values, type=pa.list_(pa.float64()))
    blobs = blobs.cast(pa.binary())
    n = len(blobs)
    offsets = np.frombuffer(blobs.buffers()[1], dtype=np.int32)[blobs.offset : blobs.offset + n + 1]
    sizes = np.diff(offsets)
    if (sizes % 8).any():
        bad = int(sizes[np.flatnonzero(sizes % 8)[0]])
        raise DatasetError(f"samples_ms blob of {bad} bytes; expected a multiple of 8 (float64)")
    start, stop = int(offsets[0]), int(offsets[-1])
    data = blobs.buffers()[2]
    floats = (
        np.frombuffer(data, dtype="<f8", count=(stop - start) // 8, offset=start)
        if stop > start
        else np.empty(0, dtype="<f8")
    )
    list_offsets = pa.array(((offsets - start) // 8).astype(np.int32), type=pa.int32())
    mask = blobs.is_null()
    return pa.ListArray.from_arrays(list_offsets, pa.array(floats), mask=mask)


def _arrow_fast(
    store: Store, schema: Any, chunk_rows: int, filters: dict[str, Any]
) -> Generator[Any, None, None]:
    """Arrow tables read in C by the ADBC driver (:meth:`Store.iter_arrow`): every column in
    one scan, no profile, no Python object per cell; constant and all-NULL columns cost a few
    bytes each in parquet (dictionary and run-length encoding)."""
    import pyarrow as pa

    for batch in store.iter_arrow(columns=schema.names, chunk_rows=chunk_rows, **filters):
        arrays = []
        for fld in schema:
            arr = batch.column(fld.name)
            if fld.name == "samples_ms":
                arrays.append(_samples_lists(arr))
            elif arr.type != fld.type:
                arrays.append(arr.cast(fld.type))
            else:
                arrays.append(arr)
        yield pa.Table.from_arrays(arrays, schema=schema)


def _write_parquet(out: Path, schema: Any, tables: Generator[Any, None, None]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Dictionary encoding for the text columns only (few distinct values: devices, spaces,
    # versions); on float columns it is tried, overflows and is dropped, at a cost.
    text = [f.name for f in schema if pa.types.is_string(f.type)]
    n = 0
    writer = pq.ParquetWriter(out, schema, compression="zstd", use_dictionary=text)
    with contextlib.closing(tables) as gen, writer as w:
        for table in gen:
            w.write_table(table)
            n += table.num_rows
    return n


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
    low = out.name.lower()
    by_suffix = "parquet" if low.endswith((".parquet", ".pq")) else "csv" if ".csv" in low else None
    if fmt is None:
        fmt = by_suffix
        if fmt is None:
            raise ConfigError(f"cannot tell the format of {str(out)!r}; use --format parquet|csv")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {list(FORMATS)}")
    # a reader tells a file's format by its suffix (``_read_file``): a CSV named .parquet, or
    # comma-separated text named .tsv or .db, could be written but not read back
    other = f"a {by_suffix} file" if by_suffix not in (None, fmt) else None
    if other is None and _is_sqlite(out):
        other = "a store (SQLite)"
    if other is None and low.endswith(".tsv"):
        other = "a tab-separated file"
    if other is not None:
        want = ".parquet" if fmt == "parquet" else ".csv or .csv.gz"
        raise ConfigError(
            f"{str(out)!r} is named as {other}, but the format is {fmt}; expected a name "
            f"ending in {want}"
        )
    if not out.parent.is_dir():
        raise ConfigError(f"output directory {str(out.parent)!r} does not exist")
    if fmt == "parquet":
        schema = _arrow_schema()
        if store.can_read_arrow():
            try:
                return _write_parquet(out, schema, _arrow_fast(store, schema, chunk_rows, filters))
            except ArrowReadError as exc:
                log.warning("%s; exporting through sqlite3 instead (slower)", exc)
        return _write_parquet(out, schema, _arrow_tables(store, schema, chunk_rows, filters))
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
