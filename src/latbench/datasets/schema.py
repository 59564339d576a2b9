"""The dataset schema: one row per measurement, versioned.

Every table latbench writes (the SQLite store, a parquet or CSV export) has the columns of
:data:`COLUMNS`, in that order; every table latbench reads may also be the *minimal long format*
``space, arch, device, latency_ms`` (the other columns then take the defaults of
:data:`DEFAULTS`). The schema version travels with the data (``schema_version`` column, the
store's ``PRAGMA user_version``, the parquet metadata key ``latbench.schema_version``); a file
written by a newer schema is refused with :class:`~latbench.errors.SchemaVersionError` rather
than misread.

Units live in names: every time is in milliseconds (``*_ms``) except ``wall_s``. Raw samples are
kept whole: in the store as a little-endian float64 blob (8 bytes a sample), in pandas and
parquet as a list of floats, in CSV as a JSON list.

This module is pure (no I/O): the conversions between a
:class:`~latbench.profilers.record.Measurement`, a store row and a DataFrame row.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from latbench.errors import DatasetError, SchemaVersionError
from latbench.profilers.record import Measurement

SCHEMA_VERSION = 1

# The minimal long format every reader accepts.
LONG_COLUMNS: tuple[str, ...] = ("space", "arch", "device", "latency_ms")


@dataclass(frozen=True)
class Column:
    """One column of the schema: name, SQLite type, and what it means."""

    name: str
    sql: str
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("collection", "TEXT NOT NULL", "collection (run) name, or the import source"),
    Column("space", "TEXT NOT NULL", "search space (nb201, fbnet, ...)"),
    Column("arch", "TEXT NOT NULL", "canonical architecture string of that space"),
    Column("arch_id", "TEXT NOT NULL", "stable id of the arch in its space (space.arch_id)"),
    Column("arch_index", "INTEGER", "index in the space's official order (NB201, FBNet table)"),
    Column("device", "TEXT NOT NULL", "device (configuration) name, e.g. local, help/pixel3"),
    Column("device_fingerprint", "TEXT", "hash of the device's hardware/software description"),
    Column("runtime", "TEXT NOT NULL", "runtime (onnxruntime, litert, torch); '' = unknown"),
    Column("runtime_version", "TEXT", "runtime package version"),
    Column("batch", "INTEGER NOT NULL", "batch size of one inference"),
    Column("threads", "INTEGER NOT NULL", "intra-op threads; 0 = runtime default or unknown"),
    Column("input_shape", "TEXT", "JSON {input name: [N, C, H, W]}"),
    Column("latency_ms", "REAL", "median latency of one inference (ms); NULL when failed"),
    Column("mean_ms", "REAL", "mean of the samples (ms)"),
    Column("std_ms", "REAL", "standard deviation of the samples (ms)"),
    Column("min_ms", "REAL", "fastest sample (ms)"),
    Column("iqr_ms", "REAL", "inter-quartile range of the samples (ms)"),
    Column("p90_ms", "REAL", "90th percentile (ms)"),
    Column("p99_ms", "REAL", "99th percentile (ms)"),
    Column("ci_low_ms", "REAL", "95 % confidence interval of the median, low end (ms)"),
    Column("ci_high_ms", "REAL", "95 % confidence interval of the median, high end (ms)"),
    Column("runs", "INTEGER", "number of timed samples"),
    Column("loops", "INTEGER", "inferences per timed sample"),
    Column("warmup_runs", "INTEGER", "untimed warm-up inferences"),
    Column("samples_ms", "BLOB", "every timed sample (ms per inference)"),
    Column("counters", "TEXT", "JSON {name: {value, unit} or {value: null, unavailable}}"),
    Column("env", "TEXT", "JSON environment (CPU, governor, versions, ...)"),
    Column("harness", "TEXT", "JSON of the timing loop: settings, stop_reason, elapsed_s"),
    Column("drift_ratio", "REAL", "latest reference-model latency / its first latency"),
    Column("wall_s", "REAL", "wall time of the whole measurement (s)"),
    Column("measured_at", "TEXT", "ISO 8601 UTC time of the measurement"),
    Column("status", "TEXT NOT NULL", "ok or failed"),
    Column("error", "TEXT", "why it failed (status = failed)"),
    Column("latbench_version", "TEXT", "latbench version that measured or imported the row"),
    Column("schema_version", "INTEGER NOT NULL", "schema version of the row"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
JSON_COLUMNS = ("input_shape", "counters", "env", "harness")
INT_COLUMNS = ("arch_index", "batch", "threads", "runs", "loops", "warmup_runs", "schema_version")
FLOAT_COLUMNS = (
    "latency_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "iqr_ms",
    "p90_ms",
    "p99_ms",
    "ci_low_ms",
    "ci_high_ms",
    "drift_ratio",
    "wall_s",
)
# What identifies one measurement: a collection measures an architecture once per device,
# runtime, batch and thread count. A resumed collection skips the keys already stored.
KEY_COLUMNS = ("collection", "device", "space", "runtime", "batch", "threads", "arch_id")
STATUSES = ("ok", "failed")


def latbench_version() -> str:
    from latbench import __version__

    return str(__version__)


DEFAULTS: dict[str, Any] = {
    "collection": "imported",
    "runtime": "",
    "batch": 1,
    "threads": 0,
    "status": "ok",
    "schema_version": SCHEMA_VERSION,
}


def utc_now() -> str:
    """Now as ISO 8601 UTC with a ``Z`` suffix (second resolution is not enough: microseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pack_samples(samples_ms: Sequence[float]) -> bytes | None:
    """Raw samples as a little-endian float64 blob (exact, 8 bytes a sample)."""
    if not samples_ms:
        return None
    from array import array

    arr = array("d", samples_ms)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        arr.byteswap()
    return arr.tobytes()


def unpack_samples(blob: bytes | None) -> list[float] | None:
    """The inverse of :func:`pack_samples`; ``None`` for no samples."""
    if blob is None:
        return None
    from array import array

    if len(blob) % 8:
        raise DatasetError(
            f"samples_ms blob of {len(blob)} bytes; expected a multiple of 8 (float64)"
        )
    arr = array("d")
    arr.frombytes(blob)
    if sys.byteorder != "little":  # pragma: no cover
        arr.byteswap()
    return arr.tolist()


def check_schema_version(version: Any, where: str) -> int:
    """The schema version as an int; :class:`SchemaVersionError` when newer than ours."""
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise DatasetError(
            f"{where}: schema_version {version!r} is not an integer; expected <= {SCHEMA_VERSION}"
        ) from None
    if v > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} was written with dataset schema version {v}; this latbench "
            f"({latbench_version()}) reads versions <= {SCHEMA_VERSION}: upgrade latbench"
        )
    if v < 1:
        raise DatasetError(f"{where}: schema_version {v}; expected 1..{SCHEMA_VERSION}")
    return v


def _json(value: Any) -> str | None:
    if value is None or value == {} or value == []:
        return None
    return json.dumps(value, sort_keys=True, default=str)


def row_from_measurement(
    m: Measurement,
    *,
    collection: str,
    space: str,
    arch: str,
    arch_id: str | None,
    arch_index: int | None,
    device: str,
    drift_ratio: float | None = None,
    measured_at: str | None = None,
) -> dict[str, Any]:
    """A store row (values as stored in SQLite) from a measurement record.

    ``device`` is the name the collection was asked for (the record's own ``device`` field may
    be an adapter kind); ``threads`` None becomes 0 ("runtime default").
    """
    row: dict[str, Any] = {
        "collection": collection,
        "space": space,
        "arch": arch,
        "arch_id": arch_id,
        "arch_index": arch_index,
        "device": device,
        "device_fingerprint": m.device_fingerprint or None,
        "runtime": m.runtime or "",
        "runtime_version": m.runtime_version or None,
        "batch": int(m.batch),
        "threads": int(m.threads or 0),
        "input_shape": _json(m.input_shapes),
        "counters": _json(m.counters),
        "env": _json(m.env),
        "harness": _json(getattr(m, "harness", None)),
        "drift_ratio": drift_ratio,
        "wall_s": float(m.wall_s) if m.wall_s else None,
        "measured_at": measured_at or m.started_at or utc_now(),
        "latbench_version": m.latbench_version or latbench_version(),
        "schema_version": SCHEMA_VERSION,
        "loops": int(m.loops),
        "warmup_runs": int(m.warmup_runs),
    }
    if m.ok:
        s = m.summary()
        row.update(
            status="ok",
            error=None,
            latency_ms=s["latency_ms"],
            mean_ms=s["mean_ms"],
            std_ms=s["std_ms"],
            min_ms=s["min_ms"],
            iqr_ms=s["iqr_ms"],
            p90_ms=s["p90_ms"],
            p99_ms=s["p99_ms"],
            ci_low_ms=s["ci_low_ms"],
            ci_high_ms=s["ci_high_ms"],
            runs=s["runs"],
            samples_ms=pack_samples(m.samples_ms),
        )
    else:
        row.update(
            status="failed",
            error=m.error or f"status {m.status!r} with {len(m.samples_ms)} samples",
            runs=len(m.samples_ms),
            samples_ms=pack_samples(m.samples_ms),
        )
    return {name: row.get(name) for name in COLUMN_NAMES}


def ordered(rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as tuples in :data:`COLUMN_NAMES` order (for ``executemany``)."""
    return [tuple(r.get(c) for c in COLUMN_NAMES) for r in rows]
