"""Assemble the report: gather the inputs, build every section, write one HTML file.

Two entry points:

* :func:`build_report` takes the data itself (DataFrames and dicts) -- for a program that already
  holds it, such as ``latbench demo``;
* :func:`report_from_files` reads a store and optional files (a predictor, a prediction table, a
  search result) -- what ``latbench report`` calls.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from latbench._atomic import write_text_atomic
from latbench.errors import ConfigError, DatasetError, SearchError
from latbench.report import sections as S
from latbench.report.html import Section, render_page

__all__ = [
    "build_report",
    "load_predictions",
    "load_search",
    "predictions_from_predictor",
    "render_report",
    "report_from_files",
]

log = logging.getLogger(__name__)


def _section(builder: Any, *args: Any) -> Section:
    """Run one section builder; a section that fails is shown as skipped with the reason.

    A report is often made at the end of a long run: one unreadable input must not cost the
    other sections, so a library error becomes a visible note (and a logged warning).
    """
    from latbench.errors import LatbenchError

    try:
        section: Section = builder(*args)
    except LatbenchError as exc:
        name = builder.__name__.removesuffix("_section")
        log.warning("report section %s skipped: %s", name, exc)
        return Section.skip(name, name.replace("_", " ").capitalize(), f"error: {exc}")
    return section


def render_report(
    *,
    measurements: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
    search: Mapping[str, Any] | None = None,
    local_devices: Sequence[str] | None = None,
    title: str = "latbench report",
    meta: Mapping[str, Any] | None = None,
) -> tuple[str, list[Section]]:
    """The report's HTML and its sections (see :func:`build_report` for the arguments).

    A measurement table without the columns every section reads is a
    :class:`~latbench.errors.DatasetError` that names them (not three skipped sections and then
    the same error).
    """
    # normalized once: each section would otherwise parse every row's harness JSON again
    ms = S.normalize_measurements(measurements)
    sections = [
        _section(S.distributions_section, ms),
        _section(S.predictions_section, predictions),
        _section(S.monotonicity_section, ms, reference, local_devices),
        _section(S.pareto_section, search),
        _section(S.stability_section, ms),
    ]
    from latbench import __version__

    info: list[tuple[str, str]] = [
        ("generated", datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("latbench", __version__),
        ("host", f"{platform.node()} ({platform.machine()}, {platform.system()})"),
    ]
    if ms is not None:
        ok = int((ms["status"] == "ok").sum())
        info.append(
            (
                "measurements",
                f"{len(ms)} rows ({ok} ok), {ms['arch'].nunique()} architectures, "
                f"{ms['device'].nunique()} device(s), spaces: "
                + ", ".join(sorted(ms["space"].astype(str).unique())),
            )
        )
    if reference is not None and len(reference):
        info.append(
            (
                "reference",
                f"{reference['device'].nunique()} devices, {reference['arch'].nunique()} "
                "architectures",
            )
        )
    info += [(str(k), str(v)) for k, v in (meta or {}).items()]
    return render_page(title, sections, info), sections


def build_report(
    out_path: str | os.PathLike[str],
    *,
    measurements: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
    search: Mapping[str, Any] | None = None,
    local_devices: Sequence[str] | None = None,
    title: str = "latbench report",
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write the self-contained HTML report to ``out_path`` and return the path.

    Every input is optional; a section whose data is absent says so on the page.

    * ``measurements``: store rows (``Store.to_pandas()``) or a long ``space, arch, device,
      latency_ms`` table; raw ``samples_ms`` feed the stability section.
    * ``predictions``: ``latency_ms`` (measured) and ``predicted_ms`` per architecture, with an
      optional ``predictor`` (and ``device``) column to compare several predictors.
    * ``reference``: a long reference table (``load_reference("nb201")``) for the heat map.
    * ``search``: a search result (the JSON of ``latbench search -o``, loaded).
    * ``local_devices``: the devices to mark as "this machine" in the heat map (default: the
      measured devices that are not reference devices).
    * ``meta``: extra (label, value) lines for the page header (e.g. the store path).
    """
    out = Path(out_path)
    if not out.parent.is_dir():
        raise ConfigError(f"directory {str(out.parent)!r} of the report does not exist")
    if out.is_dir():
        raise ConfigError(f"report path {str(out)!r} is a directory; expected a file to write")
    page, sections = render_report(
        measurements=measurements,
        predictions=predictions,
        reference=reference,
        search=search,
        local_devices=local_devices,
        title=title,
        meta=meta,
    )
    _write_atomic(out, page)
    shown = [s.id for s in sections if s.skipped is None]
    log.info("wrote %s (%d bytes; sections %s)", out, len(page), ", ".join(shown) or "none")
    return out


def _write_atomic(out: Path, page: str) -> None:
    """Write ``page`` to ``out`` through a temporary file in its folder, renamed into place.

    A write that fails midway (disk full, file size limit) leaves no half page and keeps the
    report already at ``out`` (a report is often remade over the last one); the error names
    ``out``, not the temporary file.
    """
    try:
        write_text_atomic(out, page)
    except OSError as exc:
        if exc.errno is not None:
            why = exc.strerror or str(exc)
            raise OSError(exc.errno, f"cannot write the report: {why}", str(out)) from exc
        raise


# ---- inputs from files -------------------------------------------------------------------
def load_predictions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A prediction table from CSV, parquet or JSON (a list of records, or under ``rows`` /
    ``predictions``); columns as :func:`latbench.report.sections.normalize_predictions` reads."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"prediction file {str(p)!r} does not exist")
    suffix = "".join(p.suffixes[-2:]) if p.suffix == ".gz" else p.suffix
    if suffix not in (".csv", ".csv.gz", ".parquet", ".json"):
        raise DatasetError(
            f"prediction file {str(p)!r}: unknown format; expected .csv, .parquet, .json"
        )
    try:
        if suffix in (".csv", ".csv.gz"):
            return pd.read_csv(p)
        if suffix == ".parquet":
            return pd.read_parquet(p)
        data = json.loads(p.read_text(encoding="utf-8"))
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{p}: the file is empty; expected a table with a header") from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        # pandas' ParserError, pyarrow's ArrowInvalid and json's JSONDecodeError are ValueErrors
        raise DatasetError(f"{p}: cannot read as a {suffix.lstrip('.')} table: {exc}") from None
    if isinstance(data, Mapping):
        data = next((data[k] for k in ("rows", "predictions", "records") if k in data), None)
    if not isinstance(data, list):
        raise DatasetError(
            f"{p}: expected a JSON list of records, or an object with a 'rows' or "
            "'predictions' list"
        )
    stray = next((i for i, r in enumerate(data) if not isinstance(r, Mapping)), None)
    if stray is not None:
        raise DatasetError(
            f"{p}: record {stray} is {json.dumps(data[stray])[:60]}; expected an object such as "
            '{"arch": ..., "latency_ms": ..., "predicted_ms": ...}'
        )
    return pd.DataFrame.from_records(data)


def load_search(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A search result written by ``latbench search -o`` (JSON object)."""
    p = Path(path)
    if not p.is_file():
        raise SearchError(f"search result {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SearchError(f"{p}: not a readable JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise SearchError(
            f"{p}: expected a JSON object (a search result), got {type(data).__name__}"
        )
    return data


def predictions_from_predictor(
    predictor_path: str | os.PathLike[str],
    measurements: pd.DataFrame | None,
    *,
    strict: bool = False,
) -> pd.DataFrame | None:
    """Evaluate a saved predictor on the store's measurements of its space and devices.

    For each measured device the predictor knows (or any device, for a single-device predictor
    fitted with one device), predict the measured architectures, once per group of the store's
    rows (device, runtime, thread count, batch, statistic, as
    :func:`latbench.report.sections.group_labels` names them: two thread counts are two
    evaluations, not one of their medians). The frame has ``predictor, device, group, arch,
    latency_ms, predicted_ms``. Returns None when the store
    holds none of the predictor's architectures and devices; with ``strict`` that is a
    :class:`~latbench.errors.DatasetError` saying what the predictor and the store hold.
    """
    from latbench import predictors

    ms = S.normalize_measurements(measurements)
    model = predictors.load(predictor_path)

    def nothing(why: str) -> None:
        if strict:
            raise DatasetError(f"predictor {str(predictor_path)!r} has nothing to evaluate: {why}")
        log.warning("predictor %s not evaluated: %s", predictor_path, why)

    if ms is None:
        nothing("no store with measurements (pass --db)")
        return None
    ms = ms.assign(group=S.group_labels(ms))
    ok = ms[(ms["status"] == "ok") & (ms["latency_ms"] > 0)]
    in_space = ok[ok["space"].astype(str) == model.space_]
    if in_space.empty:
        spaces = ", ".join(sorted(ok["space"].astype(str).unique())) or "none"
        nothing(
            f"it predicts space {model.space_!r}; the store's successful measurements are of "
            f"space(s): {spaces}"
        )
        return None
    ok = in_space
    name = f"{model.name} ({Path(predictor_path).name})"
    known = list(getattr(model, "devices_", []) or [])
    frames = []
    warned: set[str] = set()
    for group, sub in ok.groupby("group", sort=True):
        dev = str(sub["device"].iloc[0])  # a group is of one device
        if known and dev not in known and len(known) > 1:
            continue
        target = dev if dev in known else None
        label = name
        if target is None and known and known[0] != "default":
            # another device's predictor: said in the page (legend, table), not only the log
            label = f"{model.name} ({Path(predictor_path).name}, fitted on {known[0]})"
            if dev not in warned:
                warned.add(dev)
                log.warning(
                    "predictor %s was fitted on %s; scoring it on the measurements of %s",
                    predictor_path,
                    known[0],
                    dev,
                )
        per_arch = sub.groupby("arch", sort=True)["latency_ms"].median()
        pred = model.predict(list(per_arch.index), device=target)
        frames.append(
            pd.DataFrame(
                {
                    "predictor": label,
                    "device": dev,
                    "group": str(group),
                    "arch": per_arch.index,
                    "latency_ms": per_arch.to_numpy(),
                    "predicted_ms": pred,
                }
            )
        )
    if not frames:
        measured = ", ".join(sorted(ok["device"].astype(str).unique()))
        nothing(
            f"it knows devices {', '.join(known)}; the store measured {model.space_!r} on "
            f"{measured}"
        )
        return None
    return pd.concat(frames, ignore_index=True)


def _load_store(db: str | os.PathLike[str]) -> pd.DataFrame:
    from latbench.datasets.store import open_store

    with open_store(db, readonly=True) as store:
        return store.to_pandas()


def report_from_files(
    out_path: str | os.PathLike[str],
    *,
    db: str | os.PathLike[str] | None = None,
    predictions: str | os.PathLike[str] | None = None,
    predictor: Sequence[str | os.PathLike[str]] = (),
    search: str | os.PathLike[str] | None = None,
    reference: str | None = "auto",
    local_devices: Sequence[str] | None = None,
    title: str = "latbench report",
) -> Path:
    """Read the store and optional files, then :func:`build_report`.

    ``reference``: a bundled table name (``nb201``, ``fbnet``), ``"auto"`` (the table of the
    space most measured in the store, if one is bundled) or None (no reference devices).
    """
    from latbench.datasets.reference import REFERENCE_TABLES, load_reference

    measurements = _load_store(db) if db is not None else None
    meta: dict[str, Any] = {}
    if db is not None:
        meta["store"] = str(db)
    # a file named on purpose that holds nothing to show is an error before the page is
    # written, not a section that says "pass --predictions" to someone who did
    pred_frames = []
    if predictions is not None:
        table = load_predictions(predictions)
        try:
            usable = S.normalize_predictions(table)
        except DatasetError as exc:
            raise DatasetError(f"{predictions}: {exc}") from None
        if usable is None:
            raise DatasetError(
                f"{predictions}: no row with a positive measured and predicted latency "
                f"({len(table)} row(s) read, columns: {', '.join(map(str, table.columns))})"
            )
        pred_frames.append(table)
    for path in predictor:
        frame = predictions_from_predictor(path, measurements, strict=True)
        if frame is not None:
            pred_frames.append(frame)
    if local_devices:
        ms = S.normalize_measurements(measurements)
        measured = sorted(ms["device"].astype(str).unique()) if ms is not None else []
        unknown = [d for d in local_devices if d not in measured]
        if unknown:
            raise ConfigError(
                f"--local-device {', '.join(map(repr, unknown))}: not a device the store "
                f"measured; expected one of: {', '.join(measured) or 'none (no store: --db)'}"
            )
    result = load_search(search) if search is not None else None
    if result is not None:
        try:
            S.pareto_points(result)
        except SearchError as exc:
            raise SearchError(f"{search}: {exc}") from None
    pred = pd.concat(pred_frames, ignore_index=True) if pred_frames else None
    ref_name = reference
    if reference == "auto":
        ref_name = None
        ms = S.normalize_measurements(measurements)
        if ms is not None:
            spaces = ms["space"].astype(str).value_counts()
            ref_name = next((s for s in spaces.index if s in REFERENCE_TABLES), None)
    ref = load_reference(ref_name) if ref_name else None
    if ref_name:
        meta["reference table"] = ref_name
    return build_report(
        out_path,
        measurements=measurements,
        predictions=pred,
        reference=ref,
        search=result,
        local_devices=local_devices,
        title=title,
        meta=meta,
    )
