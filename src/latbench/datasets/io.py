"""Reading any dataset, importing into a store, exporting to parquet or CSV.

Accepted inputs, everywhere a dataset is read:

- a store (``.db``; detected by its SQLite header, whatever the suffix);
- parquet (``.parquet``, ``.pq``) or CSV (``.csv``, ``.csv.gz``, ``.csv.bz2``, ``.csv.xz``,
  ``.txt``; ``.tsv`` tab-separated) with the full schema (``docs/datasets.md``) or the
  minimal long format ``space,arch,device,latency_ms`` (the other columns take defaults);
- a wide table (``arch`` plus one latency column per device named ``source/device``, like the
  bundled reference tables); give ``space`` when the file has no ``space`` column.

Import validates each row (known space, valid architecture string and its own ``arch_index``,
positive finite latency for an ``ok`` row (not True/False), known status, whole numbers within
int64 in the integer columns, finite numbers, JSON text (an object in ``counters``, ``env``,
``env_after``, ``harness``), an ISO 8601 ``measured_at``, no NUL in text, a list of
non-negative finite samples) and rejects bad rows with their line number
(CSV: the file line, header = line 1; parquet: ``row N`` counting from 1); the good rows are
imported in one transaction. Rows already in the store (same key) are skipped, so importing a
file twice adds nothing; a key repeated within the file with another latency is rejected.
Export writes only names that import reads back as the same format, under a temporary name
renamed when complete.
"""

from __future__ import annotations

import bz2
import contextlib
import difflib
import gzip
import io
import json
import logging
import lzma
import math
import os
import re
import sys
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
import pandas as pd

from latbench._atomic import atomic_path
from latbench.datasets import schema as S
from latbench.datasets.reference import REFERENCE_TABLES, batch_of, load_reference
from latbench.datasets.store import (
    SQLITE_MAGIC,
    ArrowReadError,
    Store,
    db_error,
    fit_value,
    what_is,
)
from latbench.errors import ArchError, ConfigError, DatasetError, LatbenchError, UnknownNameError

Source: TypeAlias = "str | os.PathLike[str] | Store | pd.DataFrame"

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv")
_PARQUET_META_KEY = b"latbench.schema_version"


# ---- reading --------------------------------------------------------------------------
_STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_PARQUET_SUFFIXES = (".parquet", ".pq")
# CSV names import reads and export writes (the compression follows the suffix).
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".txt")
_TSV_SUFFIXES = (".tsv",)  # read only: export writes comma-separated text
# Columns read as text from CSV: only an empty cell is missing there (a device named NA is a
# device), while the numeric columns also take the usual NA spellings.
_TEXT_COLUMNS = tuple(
    c for c in S.COLUMN_NAMES if c not in S.FLOAT_COLUMNS and c not in S.INT_COLUMNS
)
_NA_TEXT = ["", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "<NA>"]
_NA_TEXT += ["#N/A", "#NA"]


def _format_of(name: str) -> str | None:
    """The format a reader takes a file name for: parquet, csv, tsv, or None."""
    low = name.lower()
    if low.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if low.endswith(_CSV_SUFFIXES):
        return "csv"
    if low.endswith(_TSV_SUFFIXES):
        return "tsv"
    return None


def _is_sqlite(path: Path) -> bool:
    if path.suffix in _STORE_SUFFIXES:
        return True
    if not path.is_file():  # a FIFO would block the read below
        return False
    try:
        with path.open("rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def _read_file(path: Path) -> tuple[pd.DataFrame, str]:
    """The raw table of a parquet or CSV file and how rows are located (``line``/``row``)."""
    if not path.exists():
        raise DatasetError(f"dataset file {str(path)!r} does not exist")
    what = what_is(path)
    if what is not None:
        raise DatasetError(
            f"dataset file {str(path)!r} is {what}; expected a .db, .parquet or .csv file"
        )
    fmt = _format_of(path.name)
    if fmt is None:
        names = ", ".join((*_STORE_SUFFIXES, *_PARQUET_SUFFIXES, *_CSV_SUFFIXES, *_TSV_SUFFIXES))
        raise DatasetError(f"{path}: unknown dataset format; expected a name ending in {names}")
    _check_content(path, fmt)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            if _PARQUET_META_KEY in meta:
                raw = meta[_PARQUET_META_KEY]
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    raise DatasetError(
                        f"{path}: parquet metadata {_PARQUET_META_KEY.decode()} is {raw!r}, "
                        f"not text; expected an integer <= {S.SCHEMA_VERSION}"
                    ) from None
                S.check_schema_version(text, str(path))
            return pd.read_parquet(path), "row"
        sep = "\t" if fmt == "tsv" else ","
        # skipinitialspace: "arch, latency_ms" (a space after each comma) reads as written.
        # Two lines: a first data row longer than the header would otherwise make pandas
        # take the first column for an index and shift every value one column right.
        first = pd.read_csv(
            path,
            sep=sep,
            header=None,
            nrows=2,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
        ).iloc[:1]
        cells = [str(c).strip() for c in first.iloc[0].tolist()] if len(first) else []
        twice = sorted({c for c in cells if cells.count(c) > 1})
        if twice:  # pandas would rename the second one (latency_ms.1) and drop it silently
            raise DatasetError(
                f"{path}: column(s) {twice} appear more than once in the header; expected "
                "each column once"
            )
        fast = _read_csv_arrow(path, sep, cells)
        if fast is not None:
            return fast, "line"
        header = pd.read_csv(path, sep=sep, nrows=0, skipinitialspace=True).columns
        # raw header names (" arch " in a spaced header), judged by their stripped name
        text = [c for c in header if str(c).strip() in _TEXT_COLUMNS]
        na = {c: ([""] if c in text else _NA_TEXT) for c in header}
        # integers as text too: parsed exactly by the import (a float64 column would round
        # 9223372036854775807 up, out of range). Python strings (object), not pandas' Arrow
        # "str" dtype: building Arrow arrays cell by cell costs the read ~2.5x its time, and
        # the import factorises these columns and makes its own Arrow arrays anyway.
        exact = [c for c in header if str(c).strip() in S.INT_COLUMNS]
        df = pd.read_csv(
            path,
            sep=sep,
            keep_default_na=False,
            na_values=na,
            dtype={c: object for c in (*text, *exact)},
            low_memory=False,
            skipinitialspace=True,
        )
        df.columns = [str(c).strip() for c in df.columns]
        for c in text:
            df[str(c).strip()] = _stripped(df[str(c).strip()])
        return df, "line"
    except LatbenchError:
        raise
    except pd.errors.EmptyDataError:
        raise DatasetError(
            f"{path}: the file is empty (no header line); expected a header such as "
            f"{','.join(S.LONG_COLUMNS)} and one row per measurement"
        ) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(_not_utf8(path, exc)) from None
    except pd.errors.ParserError as exc:
        raise DatasetError(_ragged(path, exc)) from None
    except EOFError as exc:
        raise DatasetError(
            f"{path}: cannot read as a table: {exc}: the compressed file is truncated (an "
            "interrupted copy or download?); expected a whole file"
        ) from None
    except (ValueError, OSError, lzma.LZMAError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read as a table: {exc}") from None


# Compressed CSV suffixes: their first bytes and how to read them.
_COMPRESSED: dict[str, tuple[bytes, Callable[..., Any]]] = {
    ".gz": (b"\x1f\x8b", gzip.open),
    ".bz2": (b"BZh", bz2.open),
    ".xz": (b"\xfd7zXZ\x00", lzma.open),
}
# The first bytes of the formats a misnamed file most often holds.
_MAGIC = (
    (b"PAR1", "a parquet file", ".parquet"),
    (_COMPRESSED[".gz"][0], "gzip-compressed", ".csv.gz"),
    (_COMPRESSED[".bz2"][0], "bzip2-compressed", ".csv.bz2"),
    (_COMPRESSED[".xz"][0], "xz-compressed", ".csv.xz"),
    (b"PK\x03\x04", "a zip archive (a spreadsheet?)", ".csv (exported as CSV text)"),
)


def _check_content(path: Path, fmt: str) -> None:
    """A file whose first bytes say another format than its name: the name says what to use."""
    whole_parquet = True
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if head.startswith(b"PAR1"):
                fh.seek(-4, os.SEEK_END)
                whole_parquet = fh.read(4) == b"PAR1"
    except OSError:
        return  # the reader below names the error
    if not head:
        return  # empty: the reader says so
    is_what = next((what for magic, what, _ in _MAGIC if head.startswith(magic)), None)
    if fmt == "parquet":
        if not head.startswith(b"PAR1"):
            kind = is_what or ("text (CSV?)" if _looks_text(head) else "not parquet")
            raise DatasetError(
                f"{path}: the file does not start with the parquet magic bytes PAR1 (it is "
                f"{kind}); expected a parquet file (a .csv name for CSV text)"
            )
        if not whole_parquet:
            raise DatasetError(
                f"{path}: the file ends without the parquet footer: it is truncated (an "
                "interrupted copy or download?); expected a whole parquet file"
            )
        return
    suffix = next((k for k in _COMPRESSED if path.name.lower().endswith(k)), None)
    if suffix is not None:
        if not head.startswith(_COMPRESSED[suffix][0]):
            raise DatasetError(
                f"{path}: the name ends in {suffix} but the file is not {suffix[1:]}-compressed; "
                "expected a compressed file, or a name without the suffix"
            )
        return
    if is_what is not None:
        right = next(sfx for magic, _, sfx in _MAGIC if head.startswith(magic))
        raise DatasetError(
            f"{path}: the file is {is_what}, but its name says {fmt.upper()}; expected a name "
            f"ending in {right}"
        )


def _looks_text(head: bytes) -> bool:
    try:
        head.decode()
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def _raw_bytes(path: Path) -> bytes:
    """The (decompressed) bytes of a CSV file, for naming where it goes wrong."""
    low = path.name.lower()
    opener = next((o for k, (_, o) in _COMPRESSED.items() if low.endswith(k)), open)
    with opener(path, "rb") as fh:
        data: bytes = fh.read()
    return data


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> str:
    """Where a CSV file stops being UTF-8: its line and the byte there."""
    try:
        data = _raw_bytes(path)
        data.decode()
    except UnicodeDecodeError as found:
        at = found.start
        line = data.count(b"\n", 0, at) + 1
        return (
            f"{path} line {line}: byte 0x{data[at]:02x} is not UTF-8; expected UTF-8 text "
            "(re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8)"
        )
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        pass
    return f"{path}: cannot read as a table: {exc}; expected UTF-8 text"


def _ragged(path: Path, exc: Exception) -> str:
    """A row with more values than the header, in words."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if found is None:
        return f"{path}: cannot read as a table: {exc}"
    want, line, saw = found.groups()
    return (
        f"{path} line {line}: {saw} values, but the header has {want} columns; expected one "
        "value per column (quote a value that holds the separator)"
    )


def _read_csv_arrow(path: Path, sep: str, names: list[str]) -> pd.DataFrame | None:
    """The table of a plain (uncompressed) CSV/TSV file read by Arrow's multi-threaded reader,
    as the pandas reader below would give it; None where this reader does not apply (a
    compressed file, or anything Arrow refuses: ragged rows, invalid UTF-8), so that the
    pandas reader reads it and reports what is wrong as before.

    Every cell is read as text, then: blanks around it are stripped; text columns hold
    strings (pandas' Arrow-backed "str" dtype), "" -> missing; integer columns stay text (the
    import parses them exactly) with the NA spellings missing; number columns become float64
    (other columns int64 when every cell is an integer, as pandas infers) and stay text when
    a cell is no number, so the
    import names it. About 4x faster than pandas' reader on the 371,139-row reference CSV.
    """
    if not names or path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return None
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pcsv.ParseOptions(delimiter=sep),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError):
        return None
    na_text = pa.array(_NA_TEXT, type=pa.string())
    missing = pa.scalar(None, pa.string())
    columns = []
    for name in names:
        col = pc.utf8_trim_whitespace(table.column(name))
        if name in _TEXT_COLUMNS:
            columns.append(pc.if_else(pc.equal(col, ""), missing, col))
            continue
        col = pc.if_else(pc.is_in(col, value_set=na_text), missing, col)
        if name in S.INT_COLUMNS:
            columns.append(col)
            continue
        kinds = [pa.float64()] if name in S.FLOAT_COLUMNS or col.null_count else []
        for kind in kinds or [pa.int64(), pa.float64()]:
            try:
                col = pc.cast(col, kind)
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        columns.append(col)
    # text stays Arrow-backed (pandas' "str" dtype, as ``dtype=str`` gives): no Python string
    # per cell; the import factorises these columns
    df: pd.DataFrame = pa.table(columns, names=[f"c{i}" for i in range(len(names))]).to_pandas()
    df.columns = names
    return df


def _stripped(column: pd.Series) -> pd.Series:
    """A text column without surrounding blanks (``"arch "`` -> ``"arch"``), stripped once per
    distinct value: a column holds few of them (36 devices, 15,625 architectures), and a
    row-wise ``str.strip`` on 371,139 rows costs the import a second."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    values = np.asarray(uniques, dtype=object)
    stripped = np.array([v.strip() if isinstance(v, str) else v for v in values], dtype=object)
    if len(values) == 0 or bool((stripped == values).all()):
        return column
    out = stripped[np.asarray(codes).clip(0)]
    out[np.asarray(codes) < 0] = None
    return pd.Series(out, index=column.index, dtype=object)


def _locate(kind: str, pos: int) -> str:
    """Human location of the ``pos``-th data row (0-based)."""
    return f"line {pos + 2}" if kind == "line" else f"row {pos + 1}"


# Columns of a predictions file (``latbench predictor predict -o out.csv``). Read as a wide
# table they would pass for a device named "predicted_latency_ms", and a predictor
# evaluated on its own output scores perfectly.
_PREDICTION_COLUMNS = ("predicted_latency_ms", "uncertainty_ms")


def _device_columns(df: pd.DataFrame) -> list[Any]:
    """The columns a wide table would hold latencies in (all but arch, space, ``*_index``)."""
    return [c for c in df.columns if c not in ("arch", "space") and not str(c).endswith("_index")]


def _is_wide(df: pd.DataFrame) -> bool:
    """A wide table names every device column ``source/device``, as the reference tables do.

    A file of other columns without ``latency_ms`` (``latency``, ``accuracy``, ``status``) is
    not taken for one: its columns would become devices.
    """
    devices = _device_columns(df)
    return bool(devices) and all("/" in str(c) for c in devices)


def _wide_to_long(df: pd.DataFrame, space: str | None, where: str) -> pd.DataFrame:
    index_cols = [c for c in df.columns if str(c).endswith("_index")]
    dev_cols = _device_columns(df)
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
            raise DatasetError(
                f"{where}: wide table without a space column: give the space (--space)"
            )
        long.insert(0, "space", space)
    long["batch"] = [batch_of(d) for d in long["device"]]
    return long.sort_values(["_pos", "device"], kind="stable")


def _missing_hint(df: pd.DataFrame, missing: list[str]) -> str:
    """What may be meant when long-format columns are missing: a misspelt column, the
    ``--device`` of one device's samples, or how a wide table is named."""
    hints = []
    if len(df.columns) == 1:
        only = str(df.columns[0])
        sep = next((c for c in ";\t|" if c in only), None)
        if sep is not None:
            hints.append(
                f"the header is the one column {_short(only)!r}: the file looks separated by "
                f"{sep!r}; expected commas (tabs in a .tsv file)"
            )
    others = [str(c) for c in df.columns if c not in S.COLUMN_NAMES]
    for name in missing:
        near = difflib.get_close_matches(name, others, n=1, cutoff=0.6)
        if near:
            hints.append(f"column {near[0]!r} is not a schema column: rename it to {name}?")
    if missing == ["device"]:
        hints.append(
            "a file of one device's samples (space,arch,latency_ms) needs the device named "
            "(--device NAME of the commands that read one device's file, device= in Python) "
            "or a device column"
        )
    if "arch" in df.columns and "latency_ms" in missing and "device" in missing:
        hints.append(
            "a wide table (arch plus one latency column per device, as the bundled reference "
            "tables) names every device column source/device, e.g. lab/pi4"
        )
    return "".join(f"; {h}" for h in hints)


def _columns_check(
    df: pd.DataFrame, where: str, space: str | None, device: str | None = None
) -> pd.DataFrame:
    if "schema_version" in df.columns and len(df):
        versions = pd.to_numeric(df["schema_version"], errors="coerce")
        if versions.notna().any():
            S.check_schema_version(int(versions.max()), where)
    cols = set(df.columns)
    if "arch" in cols and "device" not in cols and "latency_ms" not in cols:
        predicted = [c for c in df.columns if c in _PREDICTION_COLUMNS]
        if predicted:
            raise DatasetError(
                f"{where}: table has column(s) {predicted}: it holds predictions (the output of "
                "`latbench predictor predict`), not measurements; expected measured latencies, "
                f"in the long format {list(S.LONG_COLUMNS)} or one column per device"
            )
        if _is_wide(df):
            return _wide_to_long(df, space, where)
    if "space" not in cols and space is not None:
        df = df.assign(space=space)
    elif space is not None:
        held = pd.Series(df["space"], dtype=object)
        blank = held.isna() | (held.astype(str).str.strip() == "")
        others = sorted({str(v).strip() for v in held[~blank].unique()} - {space})
        if others:
            raise DatasetError(
                f"{where}: the space {space!r} was given, but the file's space column holds "
                f"{others[:5]}; expected the file's own spaces (leave the space out) or rows of "
                f"{space!r}"
            )
        if blank.any():  # the rows without a space are of the space given
            df = df.assign(space=held.where(~blank, space))
    if "device" not in cols and device is not None and "latency_ms" in cols:
        df = df.assign(device=device)  # one device's samples (the adapt --samples format)
    missing = [c for c in S.LONG_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{where}: missing column(s) {missing}; expected at least {list(S.LONG_COLUMNS)} "
            f"(the minimal long format) or the full schema (docs/datasets.md)"
            + _missing_hint(df, missing)
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
    kind = "row"
    if isinstance(source, pd.DataFrame):
        raw, where = source, "DataFrame"
    else:
        path = Path(source)
        if _is_sqlite(path):
            with Store(path, readonly=True) as store:
                return store.to_pandas(status="ok" if ok_only else None)
        raw, kind = _read_file(path)
        where = str(path)
    df = _columns_check(raw, where, space, device)
    pos = df["_pos"].to_numpy() if "_pos" in df.columns else np.arange(len(df))
    out = pd.DataFrame(index=range(len(df)))
    for name in S.COLUMN_NAMES:
        if name in df.columns:
            out[name] = df[name].to_numpy()
        else:
            out[name] = S.DEFAULTS.get(name)
    if out["latbench_version"].isna().all():
        out["latbench_version"] = None
    latency = pd.Series(_floats(out["latency_ms"]), index=out.index)
    text_lat = out["latency_ms"].astype(object)
    unread = latency.isna().to_numpy() & text_lat.map(
        lambda v: (isinstance(v, str) and v.strip() != "") or isinstance(v, bool | np.bool_)
    ).to_numpy(dtype=bool)
    if unread.any():  # "abc" is a typo to name, not an unmeasured row to drop later as NaN
        i = int(np.flatnonzero(unread)[0])
        raise DatasetError(
            f"{where} {_locate(kind, int(pos[i]))}: latency_ms {text_lat.iloc[i]!r}; expected a "
            "number of milliseconds"
        )
    out["latency_ms"] = latency
    for c in S.INT_COLUMNS:
        if c == "schema_version":
            continue
        values, missing, bad, why = _integers(out[c], c, 1 if c == "batch" else 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{where} {_locate(kind, int(pos[i]))}: {why(bad)[0]}")
        if c in S.DEFAULTS:
            out[c] = np.where(missing, S.DEFAULTS[c], values).astype("int64")
        else:
            out[c] = pd.array(np.where(missing, 0, values), dtype="Int64")
            out.loc[missing, c] = pd.NA
    version = pd.to_numeric(out["schema_version"], errors="coerce").to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        version = np.where(np.isfinite(version) & (np.abs(version) < 2**31), version, np.nan)
    out["schema_version"] = np.nan_to_num(version, nan=S.SCHEMA_VERSION).astype("int64")
    samples = []
    for i, v in enumerate(out["samples_ms"].tolist()):
        try:
            samples.append(_samples_list(v))
        except DatasetError as exc:
            raise DatasetError(f"{where} {_locate(kind, int(pos[i]))}: {exc}") from None
    out["samples_ms"] = samples
    if ok_only:
        out = out[out["status"] == "ok"].reset_index(drop=True)
    for extra in df.columns:
        if extra not in out.columns and extra.endswith("_index") and len(df) == len(out):
            out[extra] = df[extra].to_numpy()
    return out


_SAMPLES_EXPECTED = "expected a JSON list of non-negative finite numbers (ms)"


def _short(v: Any, limit: int = 60) -> Any:
    """A value for a message: long text cut to ``limit`` characters."""
    if isinstance(v, str) and len(v) > limit:
        return v[: limit - 3] + "..."
    return v


def _samples_list(v: Any) -> list[float] | None:
    """Raw samples (JSON text, a list, a float64 blob) as floats; DatasetError naming the value
    when they are not a list of non-negative finite numbers."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bytes):
        try:
            values = S.unpack_samples(v)
        except DatasetError as exc:
            raise DatasetError(f"samples_ms: {exc}") from None
        parsed: Any = values
    else:
        parsed = v
        if isinstance(v, str):
            if not v.strip():
                return None
            try:
                parsed = json.loads(v)
            except ValueError:
                raise DatasetError(f"samples_ms {_short(v)!r}; {_SAMPLES_EXPECTED}") from None
        if isinstance(parsed, np.ndarray):
            parsed = parsed.tolist()
        if not isinstance(parsed, list | tuple):
            raise DatasetError(f"samples_ms {_short(v)!r}; {_SAMPLES_EXPECTED}")
    values = []
    for x in parsed or []:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x < 0:
            raise DatasetError(f"samples_ms {_short(v)!r}: sample {x!r}; {_SAMPLES_EXPECTED}")
        values.append(float(x))
    return values


_INT_MAX = 2**63 - 1


def _integer(v: Any, name: str, low: int) -> tuple[int | None, str | None]:
    """``v`` as an integer of an INTEGER column (>= ``low``, within int64), or why it is not."""
    x: int | None = None
    if isinstance(v, bool):
        x = None
    elif isinstance(v, int):
        x = v
    elif isinstance(v, float):
        x = int(v) if math.isfinite(v) and v.is_integer() else None
    elif isinstance(v, str):
        t = v.strip()
        try:
            x = int(t)
        except ValueError:
            with contextlib.suppress(ValueError, OverflowError):
                f = float(t)
                x = int(f) if math.isfinite(f) and f.is_integer() else None
    shown = repr(v)
    if isinstance(v, str):  # a number read as text from CSV is shown as the number
        with contextlib.suppress(ValueError):
            float(v)
            shown = v.strip()
    if x is not None and not -_INT_MAX - 1 <= x <= _INT_MAX:
        return None, f"{name} {shown} is out of range; expected an integer from {low} to {_INT_MAX}"
    if x is None or x < low:
        return None, f"{name} {shown}; expected an integer >= {low}"
    return x, None


def _integers(
    raw: pd.Series, name: str, low: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[np.ndarray], list[str]]]:
    """An INTEGER column checked once per distinct value: (int64 values, missing, bad, the
    reasons of the rows of a mask)."""
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    checked = [_integer(u, name, low) for u in pd.Series(uniques, dtype=object).tolist()]
    u_values = np.array([v if v is not None else 0 for v, _ in checked], dtype=np.int64)
    u_bad = np.array([why is not None for _, why in checked], dtype=bool)
    u_why = np.array([why for _, why in checked], dtype=object)
    missing = codes < 0
    at = codes.clip(0)
    if len(checked):
        bad = ~missing & u_bad[at]
        values = np.where(missing | bad, 0, u_values[at])
    else:
        bad = np.zeros(len(codes), dtype=bool)
        values = np.zeros(len(codes), dtype=np.int64)
    return values, missing, bad, lambda m: list(u_why[at[m]])


def _reasons_of(whys: np.ndarray) -> Callable[[np.ndarray], list[str]]:
    return lambda m: [str(w) for w in whys[m]]


def _floats(raw: pd.Series) -> np.ndarray:
    """A REAL column as float64 (NaN where missing or not a number; True and False are not
    numbers of milliseconds, though numpy would read them as 1 and 0)."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        return np.full(len(raw), np.nan)
    if raw.dtype == object:
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        flags = np.array([isinstance(u, bool | np.bool_) for u in uniques], dtype=bool)
        if flags.any():
            codes = np.asarray(codes)
            raw = raw.where(~((codes >= 0) & flags[codes.clip(0)]), None)
    try:
        num = pd.to_numeric(raw, errors="coerce")
    except TypeError:  # lists or dicts among the values
        num = pd.Series([v if isinstance(v, int | float) else None for v in raw.tolist()])
    return np.asarray(num.to_numpy(dtype="float64", na_value=np.nan), dtype=np.float64)


def _per_value(
    series: pd.Series, fn: Callable[[Any], tuple[Any, str | None]]
) -> tuple[np.ndarray, np.ndarray]:
    """``fn(value) -> (converted, reason)`` per row, called once per distinct value (once per
    row when the values are lists); as object arrays."""
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable values: the lists of a DataFrame or parquet file
        done = [fn(v) for v in series.tolist()]
        values = np.empty(len(done), dtype=object)
        reasons = np.empty(len(done), dtype=object)
        values[:] = [v for v, _ in done]
        reasons[:] = [r for _, r in done]
        return values, reasons
    results = [fn(u) for u in pd.Series(uniques, dtype=object).tolist()] + [fn(None)]
    u_values = np.empty(len(results), dtype=object)
    u_reasons = np.empty(len(results), dtype=object)
    u_values[:] = [v for v, _ in results]
    u_reasons[:] = [r for _, r in results]
    at = np.where(np.asarray(codes) < 0, len(results) - 1, codes)  # NA: the last entry
    return u_values[at], u_reasons[at]


# JSON columns that hold an object (name -> value) in every record latbench writes.
_JSON_OBJECTS = ("counters", "env", "env_after", "harness")


def _json_cell(name: str) -> Callable[[Any], tuple[Any, str | None]]:
    expected = "expected JSON text of an object" if name in _JSON_OBJECTS else "expected JSON text"

    def check(v: Any) -> tuple[Any, str | None]:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None, None
        if isinstance(v, str):
            if not v.strip():
                return None, None
            try:
                parsed = json.loads(v)
            except ValueError:
                return None, f"{name} {_short(v)!r}; {expected}"
            if name in _JSON_OBJECTS and not isinstance(parsed, dict):
                return None, f"{name} {_short(v)!r}; {expected}"
            return v, None
        if name in _JSON_OBJECTS and not isinstance(v, dict):
            return None, f"{name} {_short(v)!r}; {expected}"
        try:
            return json.dumps(v, sort_keys=True, default=str), None
        except (TypeError, ValueError):
            return None, f"{name} {_short(v)!r}; {expected}"

    return check


def _samples_cell(v: Any) -> tuple[bytes | None, str | None]:
    try:
        samples = _samples_list(v)
    except DatasetError as exc:
        return None, str(exc)
    return (S.pack_samples(samples) if samples else None), None


# ---- import ---------------------------------------------------------------------------
@dataclass
class ImportReport:
    """What an import did: rows stored, skipped as already present, rejected with reasons.

    ``collections`` names the collections the accepted rows belong to (a file with its own
    ``collection`` column may hold several); ``repeated`` counts rows that repeat an earlier
    row of the same file exactly (a repeat with another latency or status is rejected);
    ``cells`` is the number of latency cells of a wide table (``read`` counts its rows).
    """

    source: str
    collection: str
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (location, reason)
    collections: list[str] = field(default_factory=list)
    repeated: int = 0
    cells: int | None = None

    def summary(self) -> str:
        names = self.collections or [self.collection]
        into = (
            repr(names[0])
            if len(names) == 1
            else f"{len(names)} collections ("
            + ", ".join(repr(n) for n in names[:5])
            + (", ..." if len(names) > 5 else "")
            + ")"
        )
        read = f"{self.read} row(s) read" + (
            f" ({self.cells} latency cell(s))" if self.cells is not None else ""
        )
        repeated = f", {self.repeated} repeated in the file" if self.repeated else ""
        return (
            f"{self.source}: {read}, {self.imported} imported into {into}, "
            f"{self.duplicates} already present{repeated}, {len(self.rejected)} rejected"
        )


class _IndexMismatch(ArchError):
    """A row's ``arch_index`` that is out of range or names another architecture."""


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
        named: str | None = None
        if given is not None and from_index is not None:
            try:
                named = from_index(int(given))
            except ArchError as exc:
                raise _IndexMismatch(f"arch_index {int(given)}: {exc}") from None
        if named is not None and arch == named:
            canon, idx = arch, int(given)
        else:
            canon = space.canonical(arch)
            if index_fn is not None:
                idx = int(index_fn(canon))
                if given is not None and idx != int(given):
                    raise _IndexMismatch(
                        f"arch_index {int(given)} is {named or 'another architecture'}, not "
                        f"this arch (index {idx}); expected the arch's own index or no arch_index"
                    )
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


def _iso_times(series: pd.Series) -> bool:
    """Every value of ``series`` is missing or an ISO 8601 time with its zone (the form
    latbench writes): Arrow's parse of the whole column, the fast path of the check."""
    import pyarrow as pa

    try:
        _text_array(series).cast(pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


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
        except _IndexMismatch as exc:
            reasons[u] = f"arch {name!r}: {exc}"
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
    A store (``.db``) brings its collections' settings and drift checks along.
    """
    records: list[tuple[Any, ...]] = []
    drift: list[tuple[Any, ...]] = []
    if isinstance(source, pd.DataFrame):
        raw, kind, label = source.reset_index(drop=True), "row", "DataFrame"
    else:
        path = Path(source)
        label = str(path)
        if _is_sqlite(path):
            with Store(path, readonly=True) as other:
                raw, kind = other.to_pandas(), "row"
                records, drift = other.collection_records(), other.drift_records()
        else:
            raw, kind = _read_file(path)
    df = _columns_check(raw, label, space).reset_index(drop=True)
    wide = "_pos" in df.columns
    pos = df["_pos"].to_numpy() if wide else np.arange(len(df))
    default_name = collection or (
        Path(label).name.split(".")[0] if not isinstance(source, pd.DataFrame) else "imported"
    )
    report = ImportReport(
        source=label,
        collection=default_name,
        read=len(raw) if wide else len(df),
        cells=len(df) if wide else None,
    )
    if not len(df):
        return report
    _import_rows(store, df, pos, kind, default_name, collection, report)
    if (records or drift) and (report.imported or report.duplicates):
        if collection is not None:  # every row renamed: one source's settings still apply,
            sources = {r[0] for r in records} | {r[0] for r in drift}  # several would mix
            keep = len(sources) == 1
            records = [(collection, *r[1:]) for r in records] if keep else []
            drift = [(collection, *r[1:]) for r in drift] if keep else []
        else:
            records = [r for r in records if r[0] in report.collections]
            drift = [r for r in drift if r[0] in report.collections]
        store.add_metadata(records, drift)
    return report


def _import_rows(
    store: Store,
    df: pd.DataFrame,
    pos: np.ndarray,
    kind: str,
    default_name: str,
    collection: str | None,
    report: ImportReport,
) -> None:
    """Validate the rows of ``df``, write the good ones, and fill in ``report``.

    Vectorised: string columns are factorised and checked once per distinct value, numbers
    with numpy, each distinct ``(space, arch, index)`` is resolved by its space once, and the
    good rows go to the store as one Arrow table (:meth:`Store.add_arrow`) with the columns
    that hold a single value as SQL constants. A rejected row keeps the first reason found,
    in this order: empty space/arch/device, status, latency, integers (batch, threads, ...),
    other numbers, JSON text, samples, architecture, a repeat of an earlier row's key with
    another latency or status.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(df)
    wide = "_pos" in df.columns

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
        return lambda m: [f"{name} {_short(v)!r}{suffix}" for v in arr[m]]

    for name, codes in (("space", space), ("arch", arch), ("device", device)):
        flag(codes.empty(), f"{name} is empty")
    factorised = {"space": space, "arch": arch, "device": device}
    for name in df.columns:  # SQLite text ends at a NUL: the value would be cut, or refused
        if name not in S.COLUMN_NAMES or name in (*S.FLOAT_COLUMNS, *S.INT_COLUMNS, "samples_ms"):
            continue
        if name in factorised:
            codes = factorised[name]
            has = np.array([isinstance(u, str) and "\x00" in u for u in codes.uniques], bool)
            nul = codes.rows(has)
        else:  # one Arrow pass (a column of 371,139 distinct times costs no factorising)
            found = pc.match_substring(_text_array(df[name]), "\x00")
            nul = np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), bool)
        if nul.any():
            flag(nul, described(df[name], name, " holds a NUL character; expected text"))
    at_col = column("measured_at")
    if at_col is not None and not _iso_times(at_col):
        when = _Codes(at_col)  # some are no ISO 8601 time: find which, once per value
        stamps = pd.to_datetime(
            pd.Series([str(u) for u in when.uniques], dtype=object),
            format="ISO8601",
            errors="coerce",
            utc=True,
        )
        late = np.asarray(stamps.isna(), dtype=bool) & np.array(
            [str(u).strip() != "" for u in when.uniques], dtype=bool
        )
        flag(
            when.rows(late),
            described(at_col, "measured_at", "; expected an ISO 8601 time, e.g. "
                      "2026-12-03T10:00:00+00:00"),
        )  # fmt: skip
    st_text = np.array([str(u) for u in status.uniques], dtype=object)
    flag(
        status.rows(~np.isin(st_text, S.STATUSES)) | (status.codes < 0),
        lambda m: [f"status {v!r}; expected {list(S.STATUSES)}" for v in st_text[status.codes[m]]],
    )
    lat_raw = df["latency_ms"]
    lat = _floats(lat_raw)
    ok = status.rows(st_text == "ok")
    with np.errstate(invalid="ignore"):
        bad_lat = ok & ~((lat > 0) & np.isfinite(lat))
    if bad_lat.any():
        if wide:  # name the device column the cell is in
            cells = np.asarray(lat_raw, dtype=object)
            dev_names = np.array([str(u) for u in device.uniques], dtype=object)
            flag(
                bad_lat,
                lambda m: [
                    f"latency_ms {_short(v)!r} in column {d!r}; expected a positive finite number"
                    for v, d in zip(cells[m], dev_names[device.codes[m]], strict=True)
                ],
            )
        else:
            flag(bad_lat, described(lat_raw, "latency_ms", "; expected a positive finite number"))
    lat = np.where(ok, lat, np.nan)  # the schema's latency of a failed row is NULL
    ints: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in S.INT_COLUMNS:
        if name == "schema_version":
            continue  # written as this schema's version
        low = 1 if name == "batch" else 0
        raw = column(name)
        if raw is None:
            if name in S.DEFAULTS:
                ints[name] = (np.full(n, S.DEFAULTS[name], dtype=np.int64), np.zeros(n, bool))
            continue
        values, missing, bad, why = _integers(raw, name, low)
        flag(bad, why)
        if name in S.DEFAULTS:  # NOT NULL: a missing value takes the default
            values, missing = np.where(missing, S.DEFAULTS[name], values), np.zeros(n, bool)
        ints[name] = (values, missing | bad)
    floats: dict[str, np.ndarray] = {}
    for name in S.FLOAT_COLUMNS:
        raw = column(name)
        if name == "latency_ms" or raw is None:
            continue
        num = _floats(raw)
        bad = ~pd.isna(raw).to_numpy(dtype=bool) & ~np.isfinite(num)
        flag(bad, described(raw, name, "; expected a finite number"))
        floats[name] = np.where(bad, np.nan, num)
    converted: dict[str, np.ndarray] = {}
    for name in (*S.JSON_COLUMNS, "samples_ms"):
        raw = column(name)
        if raw is None:
            continue
        check = _samples_cell if name == "samples_ms" else _json_cell(name)
        cells, whys = _per_value(raw, check)
        flag(~pd.isna(whys), _reasons_of(whys))
        converted[name] = cells
    given_col = column("arch_index")
    given = (
        np.where(ints["arch_index"][1], np.nan, ints["arch_index"][0].astype("float64"))
        if given_col is not None
        else np.full(n, np.nan)
    )
    group, canon, ids, indexes, reasons = _resolve(space, arch, given, pd.isna(reason))
    if any(r is not None for r in reasons):
        g_reason = np.array(reasons, dtype=object)
        m = group >= 0
        reason[m] = g_reason[group[m]]
    sel = np.flatnonzero(pd.isna(reason))
    repeat = np.zeros(n, dtype=bool)
    if len(sel) > 1:
        repeat = _flag_repeats(
            sel, reason, pos, kind, lat, st_text[status.codes.clip(0)],
            [coll.codes, device.codes, space.codes, runtime.codes,
             ints["batch"][0], ints["threads"][0],
             np.asarray(pd.factorize(np.asarray(ids, dtype=object))[0])[group.clip(0)]],
        )  # fmt: skip
    report.repeated = int(repeat.sum())
    bad = ~pd.isna(reason)
    report.rejected = [
        (_locate(kind, int(p)), str(r)) for p, r in zip(pos[bad], reason[bad], strict=True)
    ]
    sel = np.flatnonzero(~bad & ~repeat)
    if not len(sel):
        return
    report.collections = sorted(str(coll.uniques[c]) for c in np.unique(coll.codes[sel]))

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
        "schema_version": pa.array(np.full(len(sel), S.SCHEMA_VERSION, dtype=np.int64)),
    }
    for name, (values, missing) in ints.items():
        if name != "arch_index":
            arrays[name] = pa.array(values[sel], mask=missing[sel], type=pa.int64())
    for name, num in floats.items():
        arrays[name] = pa.array(num[sel], mask=np.isnan(num[sel]), type=pa.float64())
    for name, done in converted.items():
        kind_of = pa.binary() if name == "samples_ms" else pa.string()
        arrays[name] = pa.array(done[sel].tolist(), type=kind_of)
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
        arrays[name] = _text_array(col)
    names: list[str] = []
    columns: list[Any] = []
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
        columns.append(arr)
    table = pa.Table.from_arrays(columns, names=names)
    report.imported, report.duplicates = store.add_arrow(table, constants=constants, bulk=True)


def _flag_repeats(
    sel: np.ndarray,
    reason: np.ndarray,
    pos: np.ndarray,
    kind: str,
    lat: np.ndarray,
    status: np.ndarray,
    keys: list[np.ndarray],
) -> np.ndarray:
    """The rows of ``sel`` whose key an earlier row of the file has: a ``reason`` when their
    latency or status differs from that row's (the first is kept); the exact repeats are
    returned as a mask (neither imported again nor rejected)."""
    repeat = np.zeros(len(reason), dtype=bool)
    frame = pd.DataFrame({f"k{i}": np.asarray(k)[sel] for i, k in enumerate(keys)})
    dup = frame.duplicated(keep="first").to_numpy()
    if not dup.any():
        return repeat
    group = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    _, first_at = np.unique(group, return_index=True)
    rows = sel[dup]
    firsts = sel[first_at[group[dup]]]
    a, b = lat[rows], lat[firsts]
    same_lat = (a == b) | (np.isnan(a) & np.isnan(b))
    same_status = status[rows] == status[firsts]
    for r, f, sl, ss in zip(rows, firsts, same_lat, same_status, strict=True):
        where = _locate(kind, int(pos[f]))
        if not ss:
            reason[r] = (
                f"duplicate of {where} with a different status ({status[r]} vs {status[f]}); "
                "kept the first"
            )
        elif not sl:
            reason[r] = (
                f"duplicate of {where} with a different latency_ms ({float(lat[r])!r} vs "
                f"{float(lat[f])!r}); kept the first"
            )
        else:
            repeat[r] = True
    return repeat


def import_reference(store: Store, name: str, *, collection: str | None = None) -> ImportReport:
    """Load a bundled reference table into ``store`` (collection ``reference/<name>``)."""
    if name not in REFERENCE_TABLES:
        raise UnknownNameError(
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
        try:
            if pa.types.is_integer(types[name]) and type(value) is float:
                raise pa.ArrowInvalid("a REAL value")  # pa.scalar would truncate it
            return pa.repeat(pa.scalar(value, type=types[name]), n)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            store.warn_misfits(name, filters)
            return pa.repeat(pa.scalar(fit_value(value, name), type=types[name]), n)

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
                values = tuple(_unpacked(b, store, filters) for b in values)
            try:
                if pa.types.is_integer(fld.type) and any(type(v) is float for v in values):
                    raise pa.ArrowInvalid("a REAL value")  # pa.array would truncate 2.5 to 2
                arrays.append(pa.array(values, type=fld.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                # a value of another type than its column's (another tool wrote it): missing
                store.warn_misfits(fld.name, filters)
                fitted = [fit_value(v, fld.name) for v in values]
                arrays.append(pa.array(fitted, type=fld.type))
        yield pa.Table.from_arrays(arrays, schema=schema)


def _unpacked(blob: Any, store: Store, filters: dict[str, Any]) -> list[float] | None:
    """A samples blob as floats; None (with a warning) for one that is not a float64 blob."""
    if blob is None:
        return None
    try:
        return S.unpack_samples(blob)
    except (DatasetError, TypeError):
        store.warn_misfits("samples_ms", filters)
        return None


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
        raise ArrowReadError(f"samples_ms blob of {bad} bytes; expected a multiple of 8 (float64)")
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
                try:
                    arrays.append(arr.cast(fld.type))
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                    # the driver typed the column by a value of another type: the sqlite3
                    # path reads it value by value
                    raise ArrowReadError(f"{store.path}: column {fld.name}: {exc}") from None
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


_COMPRESSORS: dict[str, Any] = {".bz2": bz2.BZ2File, ".xz": lzma.LZMAFile}


def _open_text(stack: contextlib.ExitStack, path: Path, name: str) -> IO[str]:
    """``path`` opened for text, compressed as the final ``name`` says (gz, bz2, xz)."""
    low = name.lower()
    binary: Any
    compressor = next((c for suffix, c in _COMPRESSORS.items() if low.endswith(suffix)), None)
    if low.endswith(".gz"):  # the header names the final file, not the temporary one
        raw = stack.enter_context(path.open("wb"))
        binary = stack.enter_context(gzip.GzipFile(filename=name, mode="wb", fileobj=raw))
    elif compressor is not None:
        raw = stack.enter_context(path.open("wb"))
        binary = stack.enter_context(compressor(raw, "wb"))
    else:
        return stack.enter_context(path.open("w", encoding="utf-8", newline=""))
    return stack.enter_context(io.TextIOWrapper(binary, encoding="utf-8", newline=""))


def _export_format(out: Path, fmt: str | None) -> str:
    """The format of an export to ``out``: the one import reads the name as, which ``fmt``
    (when given) must agree with, so that what export writes reads back."""
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {list(FORMATS)}")
    by_suffix = _format_of(out.name)
    want = {
        "parquet": " or ".join(_PARQUET_SUFFIXES),
        "csv": ", ".join(_CSV_SUFFIXES[:-1]) + " or " + _CSV_SUFFIXES[-1],
    }
    other = None
    if out.suffix in _STORE_SUFFIXES:
        other = "a store (SQLite)"
    elif _is_sqlite(out):
        # the name is one export writes, but the file there is a SQLite database (a store
        # copied or linked under that name, another application's file): overwriting it
        # would lose what it holds, so the export is refused, naming what the file is
        raise ConfigError(
            f"-o/--output {str(out)!r} is an existing SQLite database (a store, or a file of "
            "another application), not a parquet or CSV file; export will not overwrite it: "
            "expected a new file name or an earlier export"
        )
    elif by_suffix == "tsv":
        other = "a tab-separated file"
    elif by_suffix is not None and fmt is not None and by_suffix != fmt:
        other = f"a {by_suffix} file"
    if other is not None:
        shown = fmt or "csv or parquet"
        raise ConfigError(
            f"{str(out)!r} is named as {other}, but the format is {shown}; expected a name "
            f"ending in {want[fmt] if fmt else want['csv'] + ' (csv) or ' + want['parquet']}"
        )
    if by_suffix is None:
        if fmt is None:
            raise ConfigError(
                f"cannot tell the format of {str(out)!r}; expected a name ending in "
                f"{want['parquet']} (parquet) or {want['csv']} (csv), as `latbench dataset "
                "import` reads them (--format must agree with the name)"
            )
        raise ConfigError(
            f"{str(out)!r} has no suffix `latbench dataset import` reads as {fmt}; expected a "
            f"name ending in {want[fmt]}"
        )
    return by_suffix


def _damaged(exc: BaseException) -> bool:
    """True when a driver read failed on the file itself (not on a value's type)."""
    text = str(exc).lower()
    return any(k in text for k in ("malformed", "not a database", "i/o error", "is locked"))


def export_store(
    store: Store,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    chunk_rows: int = 250_000,
    **filters: Any,
) -> int:
    """Write the rows matching ``filters`` to parquet or CSV; return the number of rows.

    The format comes from the name (``.parquet``, ``.pq``; ``.csv``, ``.csv.gz``, ``.csv.bz2``,
    ``.csv.xz``, ``.txt``); ``fmt`` must agree with it. Rows are streamed in chunks, so memory
    stays bounded on big stores. Parquet keeps ``samples_ms`` as a list of floats and carries
    the schema version in its metadata; CSV writes it as a JSON list. The file is written
    under a temporary name beside ``path`` and renamed when complete: a failed export leaves
    no partial file, and an earlier file at ``path`` untouched.
    """
    out = Path(path)
    fmt = _export_format(out, fmt)
    if not out.parent.is_dir():
        raise ConfigError(f"output directory {str(out.parent)!r} does not exist")
    what = what_is(out)
    if what is not None:
        raise ConfigError(f"output {str(out)!r} is {what}; expected a file name")
    with atomic_path(out) as tmp:
        n = _write_export(store, tmp, out.name, fmt, chunk_rows, filters)
    return n


def _write_export(
    store: Store, tmp: Path, name: str, fmt: str, chunk_rows: int, filters: dict[str, Any]
) -> int:
    if fmt == "parquet":
        schema = _arrow_schema()
        if store.can_read_arrow():
            try:
                return _write_parquet(tmp, schema, _arrow_fast(store, schema, chunk_rows, filters))
            except ArrowReadError as exc:
                if _damaged(exc):
                    raise db_error(store.path, exc) from None
                log.warning("%s; exporting through sqlite3 instead (slower)", exc)
        return _write_parquet(tmp, schema, _arrow_tables(store, schema, chunk_rows, filters))
    frames: Iterator[pd.DataFrame] = store.iter_frames(chunk_rows=chunk_rows, **filters)
    n = 0
    with contextlib.ExitStack() as stack:
        fh = _open_text(stack, tmp, name)
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
