"""The dataset schema: one row per measurement, versioned.

Every table latbench writes (the SQLite store, a parquet or CSV export) has the columns of
:data:`COLUMNS`, in that order; every table latbench reads may also be the *minimal long format*
``space, arch, device, latency_ms`` (the other columns then take the defaults of
:data:`DEFAULTS`). The schema version travels with the data (``schema_version`` column, the
store's ``PRAGMA user_version``, the parquet metadata key ``latbench.schema_version``); a file
written by a newer schema is refused with :class:`~latbench.errors.SchemaVersionError` rather
than misread.

Versions: 1, the first; 2 adds ``env_after`` (the environment captured after the timed loops,
which the before/after checks of a record's verdict need). A store of version 1 is upgraded in
place when it is opened for writing (the column is added, every row kept, ``env_after`` NULL in
the rows measured before) and read with ``env_after`` empty when it is opened read-only; a
file of version 1 reads with ``env_after`` empty.

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
from latbench.profilers.stats import STATISTICS

SCHEMA_VERSION = 2

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
    Column("env", "TEXT", "JSON environment before timing (CPU, governor, versions, ...)"),
    Column("env_after", "TEXT", "JSON environment after timing (the keys of env)"),
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
JSON_COLUMNS = ("input_shape", "counters", "env", "env_after", "harness")
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
        "env_after": _json(m.env_after),
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


#: the statistics a record rebuilt from a row can compute: all but those that need fields a
#: row lacks (the CPU-time samples, the reference re-measurement)
_ROW_STATISTICS = tuple(s for s in STATISTICS if s not in ("cpu_median", "normalized"))


def _missing(value: Any) -> bool:
    """None, NaN, ``pd.NA``: what a row read from the store or a DataFrame holds for NULL."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except TypeError:  # pd.NA: its truth value is ambiguous
        return True
    except ValueError:  # an array: a value
        return False


def _json_field(row: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    """The JSON object of column ``name`` of ``row`` ({} for NULL)."""
    value = row.get(name)
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str):
        if _missing(value):
            return {}
        raise DatasetError(f"{where}: {name} {value!r}; expected JSON text of an object")
    try:
        out = json.loads(value)
    except ValueError:
        raise DatasetError(
            f"{where}: {name} {value[:80]!r} is not JSON; expected JSON text of an object"
        ) from None
    if out is None:
        return {}
    if not isinstance(out, dict):
        raise DatasetError(f"{where}: {name} {value[:80]!r}; expected JSON text of an object")
    return out


def measurement_from_row(row: Mapping[str, Any], *, where: str = "row") -> Measurement:
    """The measurement record of a store row: the inverse of :func:`row_from_measurement`.

    ``row`` is a row as the store holds it (samples as a float64 blob, JSON as text) or as
    :meth:`~latbench.datasets.store.Store.to_pandas` gives it (samples as a list, NaN or
    ``<NA>`` for NULL). The record gets what a row keeps: status and error, every raw sample,
    loops and warm-up count, runtime and its version, the row's device name and fingerprint,
    batch, threads (0 becomes None, "runtime default"), input shapes, counters, ``env``,
    ``env_after``, ``harness``, ``measured_at`` (as ``started_at``), ``wall_s`` and the latbench
    version. A row does not keep the warm-up times, the per-operator profile, the CPU samples,
    a reference re-measurement or the model path, so those are empty; ``statistic`` is the
    harness setting when the record can compute it from its samples, else the median.
    Raises :class:`DatasetError` naming ``where`` and the column of a value that is not what
    the column holds.
    """

    def integer(name: str, default: int) -> int:
        value: Any = row.get(name)
        if _missing(value):
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: {name} {value!r}; expected an integer") from None

    def text(name: str) -> str:
        value = row.get(name)
        return "" if _missing(value) else str(value)

    harness = _json_field(row, "harness", where)
    settings = harness.get("settings")
    statistic = settings.get("statistic") if isinstance(settings, dict) else None
    input_shapes = _json_field(row, "input_shape", where)
    counters = _json_field(row, "counters", where)
    env = _json_field(row, "env", where)
    env_after = _json_field(row, "env_after", where)
    samples: Any = row.get("samples_ms")
    if isinstance(samples, bytes | bytearray | memoryview):
        try:
            samples = unpack_samples(bytes(samples))
        except DatasetError as exc:
            raise DatasetError(f"{where}: {exc}") from None
    elif isinstance(samples, str):  # a JSON list, as CSV files hold it
        try:
            samples = json.loads(samples)
        except ValueError:
            raise DatasetError(
                f"{where}: samples_ms {samples[:80]!r}; expected a JSON list of times in ms"
            ) from None
    elif not isinstance(samples, Iterable):
        if not _missing(samples):
            raise DatasetError(f"{where}: samples_ms {samples!r}; expected a list of times in ms")
        samples = ()
    try:
        return Measurement(
            status=text("status") or "ok",
            error=text("error") or None,
            samples_ms=tuple(float(x) for x in samples),
            loops=integer("loops", 1),
            warmup_runs=integer("warmup_runs", 0),
            runtime=text("runtime"),
            runtime_version=text("runtime_version"),
            device=text("device") or "local",
            device_fingerprint=text("device_fingerprint"),
            batch=integer("batch", 1),
            threads=integer("threads", 0) or None,
            started_at=text("measured_at"),
            wall_s=0.0 if _missing(row.get("wall_s")) else float(row["wall_s"]),
            latbench_version=text("latbench_version"),
            input_shapes=input_shapes,
            counters=counters,
            env=env,
            env_after=env_after,
            harness=harness,
            statistic=statistic if statistic in _ROW_STATISTICS else "median",
        )
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: cannot rebuild the measurement record: {exc}") from None


def ordered(rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as tuples in :data:`COLUMN_NAMES` order (for ``executemany``)."""
    return [tuple(r.get(c) for c in COLUMN_NAMES) for r in rows]
