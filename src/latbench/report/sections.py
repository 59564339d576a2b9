"""The report's sections: each takes plain data (DataFrames, dicts) and returns a :class:`Section`.

Every function here is pure apart from drawing: it reads its inputs, computes, and returns an
HTML fragment with its plot embedded. When its data is absent it returns a skipped section whose
visible note says what is missing and how to provide it, so a report of a young store (no
predictor, no search yet) still builds and says what it lacks.

Inputs (all latencies in milliseconds):

* ``measurements``: store rows (``latbench.datasets`` store ``to_pandas()``) or any long table
  with ``space, arch, device, latency_ms``; optional ``collection``, ``runtime``, ``threads``,
  ``batch``, ``status``, ``samples_ms`` (list of raw samples), ``harness`` and ``env`` (dicts or
  their JSON, as the store keeps them), ``env_after``, ``statistic``, ``drift_ratio``, ``error``.
  Rows are grouped by device, runtime, thread count, batch, statistic and (where one
  configuration was measured by several collections) collection: see :func:`group_labels`.
* ``predictions``: one row per (predictor, architecture): ``latency_ms`` (measured),
  ``predicted_ms``; optional ``predictor``, ``device``, ``arch``.
* ``reference``: long reference table (:func:`latbench.datasets.reference.load_reference`).
* ``search``: a search result (``latbench search -o``): candidates with a latency and an
  objective, optionally the Pareto front itself.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

from latbench.report.html import (
    Section,
    bullet_list,
    df_table,
    esc,
    figure_img,
    new_figure,
    plot_text,
)

__all__ = [
    "distributions_section",
    "group_labels",
    "monotonicity_section",
    "normalize_measurements",
    "pareto_points",
    "pareto_section",
    "predictions_section",
    "row_verdict",
    "stability_section",
]

log = logging.getLogger(__name__)

#: Most device groups drawn in one plot (the busiest are kept; the note says so).
MAX_GROUPS = 40
#: Most architectures used for a reference-only heat map (seeded sample; keeps it fast).
MAX_HEATMAP_ARCHS = 2000
#: Most closest-reference rows listed per local device.
TOP_PROXIES = 5

_PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a", "#e16f24")


# ---- inputs -------------------------------------------------------------------------------------
def normalize_measurements(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """Store rows or a minimal long table -> a frame with every column the sections read.

    Returns None for no data. Missing optional columns get the store's defaults (collection
    ``""``, runtime ``""``, threads 0 = runtime default, batch 1, status ``ok``). ``statistic``
    is what each row's ``latency_ms`` is: the row's own ``statistic`` column when it has one,
    else ``harness.settings.statistic`` (the store keeps it there), else ``median``.
    """
    if df is None or len(df) == 0:
        return None
    missing = [c for c in ("space", "arch", "device", "latency_ms") if c not in df.columns]
    if missing:
        from latbench.errors import DatasetError

        raise DatasetError(
            f"measurement table lacks column(s) {missing}; expected at least "
            "space, arch, device, latency_ms"
        )
    out = df.copy()
    defaults: dict[str, Any] = {
        "collection": "",
        "runtime": "",
        "threads": 0,
        "batch": 1,
        "status": "ok",
        "error": None,
    }
    for col, value in defaults.items():
        if col not in out.columns:
            out[col] = value
    out["collection"] = out["collection"].fillna("").astype(str)
    out["runtime"] = out["runtime"].fillna("").astype(str)
    out["threads"] = pd.to_numeric(out["threads"], errors="coerce").fillna(0).astype("int64")
    out["batch"] = pd.to_numeric(out["batch"], errors="coerce").fillna(1).astype("int64")
    out["latency_ms"] = pd.to_numeric(out["latency_ms"], errors="coerce").astype("float64")
    out["statistic"] = _row_statistics(out)
    return out


def _json_obj(value: Any) -> dict[str, Any]:
    """A JSON column (the store's text, or a dict already) as a dict; ``{}`` when absent."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str | bytes) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _settings(harness: Mapping[str, Any]) -> dict[str, Any]:
    settings = harness.get("settings")
    return dict(settings) if isinstance(settings, Mapping) else {}


def _row_statistics(df: pd.DataFrame) -> pd.Series:
    """Which statistic of its samples each row's ``latency_ms`` is (``stats.STATISTICS``)."""
    from latbench.profilers import stats

    own = df["statistic"] if "statistic" in df.columns else pd.Series(None, index=df.index)
    harness = df["harness"] if "harness" in df.columns else pd.Series(None, index=df.index)
    samples = df["samples_ms"] if "samples_ms" in df.columns else pd.Series(None, index=df.index)
    out: list[str | None] = []
    parsed: dict[str, Any] = {}  # a collection's rows share one harness text: parse it once
    for stat, h, lat, xs in zip(own, harness, df["latency_ms"], samples, strict=True):
        if isinstance(stat, str) and stat in stats.STATISTICS:
            out.append(stat)
            continue
        if isinstance(h, str):
            if h not in parsed:
                parsed[h] = _settings(_json_obj(h)).get("statistic")
            chosen = parsed[h]
        else:
            chosen = _settings(_json_obj(h)).get("statistic")
        if not isinstance(chosen, str) or chosen not in stats.STATISTICS:
            out.append(None)  # not recorded (a failed or imported row): see below
            continue
        if chosen == "normalized" and _is_median_of(lat, xs):
            # a run without a reference model records the median instead (``task._statistic``)
            chosen = "median"
        out.append(chosen)
    result = pd.Series(out, index=df.index, dtype=object)
    unknown = result.isna()
    if unknown.any():
        # a row that records no statistic (a failed measurement keeps no settings) is of its
        # collection's: the one its other rows of that device name; else the store's default
        known = pd.DataFrame(
            {"key": df["collection"] + "\0" + df["device"].astype(str), "stat": result}
        )[~unknown]
        common = known.groupby("key")["stat"].agg(lambda v: v.value_counts().index[0])
        keys = (df["collection"] + "\0" + df["device"].astype(str))[unknown]
        # a plain lookup: with no known statistic at all (a table of failures) ``common`` is an
        # empty float Series, and filling its NaN with a string is refused by pandas
        found = common.to_dict()
        result.loc[unknown] = [found.get(k, "median") for k in keys]
    return result


def _is_median_of(latency: Any, samples: Any) -> bool:
    if not isinstance(samples, list | tuple | np.ndarray) or len(samples) == 0:
        return False
    xs = np.asarray(samples, dtype=np.float64)
    if not (np.isfinite(xs).all() and isinstance(latency, float) and math.isfinite(latency)):
        return False
    return math.isclose(float(np.median(xs)), latency, rel_tol=1e-9)


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    lat = df["latency_ms"]
    return df[(df["status"] == "ok") & np.isfinite(lat) & (lat > 0)]


def _threads_text(n: int) -> str:
    return f"t{n}" if n > 0 else "t default"


def group_labels(df: pd.DataFrame) -> pd.Series:
    """The group of each row: ``device · runtime``, then whatever else varies.

    A thread count (``t2``), batch (``b4``) or statistic (``min``) is added when the rows hold
    more than one of it, so no group mixes two configurations the store tells apart; the
    collection is added to the groups that more than one collection measured (two runs of one
    configuration are shown side by side, as pyperf and pytest-benchmark compare runs). Every
    section groups with these labels, so a distribution row, a stability row, a heat-map column
    and a predictor evaluation of the same rows carry the same name. ``df`` is a frame of
    :func:`normalize_measurements` (another table is normalized first).
    """
    if not {"collection", "runtime", "threads", "batch", "statistic"} <= set(df.columns):
        norm = normalize_measurements(df)
        if norm is None:
            return pd.Series([], index=df.index, dtype=object)
        df = norm
    label = df["device"].astype(str)
    rt = df["runtime"].astype(str)
    label = label.where(rt == "", label + " · " + rt)
    if df["threads"].nunique() > 1:
        label = label + " · " + df["threads"].map(_threads_text)
    if df["batch"].nunique() > 1:
        label = label + " · b" + df["batch"].astype(str)
    if df["statistic"].nunique() > 1:
        label = label + " · " + df["statistic"].astype(str)
    coll = df["collection"].astype(str)
    runs = coll.groupby(label).transform("nunique")
    return label.where(runs <= 1, label + " · " + coll)


def _statistic_text(stats_used: Sequence[str]) -> str:
    """How the notes name the statistic(s) of ``latency_ms``."""
    names = sorted(set(stats_used))
    if len(names) == 1:
        return names[0]
    return "the statistic of each group (" + ", ".join(names) + ")"


def _busiest(labels: pd.Series) -> tuple[list[str], str]:
    counts = labels.value_counts()
    keep = sorted(counts.index[:MAX_GROUPS].tolist())
    note = (
        f'<p class="note">{len(counts) - MAX_GROUPS} device group(s) with fewer rows not drawn.</p>'
        if len(counts) > MAX_GROUPS
        else ""
    )
    return keep, note


# ---- latency distributions ----------------------------------------------------------------------
def distributions_section(measurements: pd.DataFrame | None) -> Section:
    """Per group (device, runtime, ...): the latency of the measured architectures (log scale)."""
    sid, title = "distributions", "Latency distributions"
    df = normalize_measurements(measurements)
    if df is None:
        return Section.skip(sid, title, "no measurements (run `latbench collect` or pass --db)")
    df = df.assign(group=group_labels(df))
    ok = _ok(df)
    failed = int((df["status"] != "ok").sum())
    # a row that says ok but holds no positive finite latency (a NaN, an infinity, a zero or a
    # negative value of an edited or imported table) is no point to draw: counted, not hidden
    invalid = len(df) - len(ok) - failed
    if ok.empty:
        why = (
            f"all {len(df)} measurement(s) failed"
            if not invalid
            else f"none of the {len(df)} measurement(s) is usable ({failed} failed, {invalid} "
            "marked ok hold no positive finite latency_ms)"
        )
        return Section.skip(sid, title, f"{why}; nothing to draw")
    groups, note = _busiest(ok["group"])
    data = [ok.loc[ok["group"] == g, "latency_ms"].to_numpy(dtype=np.float64) for g in groups]
    stat = _statistic_text(ok.loc[ok["group"].isin(groups), "statistic"].astype(str).tolist())
    fig = new_figure(8.5, max(2.4, 0.38 * len(groups) + 1.3))
    ax = fig.add_subplot()
    ax.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=False, widths=0.6)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        shown = values if values.size <= 400 else rng.choice(values, 400, replace=False)
        jitter = rng.uniform(-0.18, 0.18, shown.size)
        ax.plot(shown, i + jitter, ".", ms=2.5, alpha=0.45, color=_PALETTE[0])
    ax.set_yticks(range(1, len(groups) + 1), [plot_text(g) for g in groups], fontsize=8)
    ax.set_xscale("log")
    one_stat = "(" not in stat
    ax.set_xlabel(
        f"latency of one inference ({stat if one_stat else 'statistic per group'} of its "
        "samples; ms, log scale); box 25-75 %, whiskers 5-95 %"
    )
    ax.grid(axis="x", which="both", alpha=0.3)
    rows = []
    repeated = 0
    for g, values in zip(groups, data, strict=True):
        sub = ok[ok["group"] == g]
        archs = int(sub["arch"].nunique())
        repeated += int(len(sub) > archs)
        rows.append(
            {
                "device · configuration": g,
                "space": ", ".join(sorted(sub["space"].astype(str).unique())),
                "archs": archs,
                "statistic": ", ".join(sorted(sub["statistic"].astype(str).unique())),
                "min ms": float(values.min()),
                "median ms": float(np.median(values)),
                "p90 ms": float(np.percentile(values, 90)),
                "max ms": float(values.max()),
                "max/min": float(values.max() / values.min()),
            }
        )
    table = pd.DataFrame(rows)
    failed_note = (
        f'<p class="note bad">{failed} failed measurement(s) left out (see Measurement '
        "stability).</p>"
        if failed
        else ""
    )
    if invalid:
        failed_note += (
            f'<p class="note bad">{invalid} measurement(s) marked ok left out: their latency_ms '
            "is not a positive finite number (NaN, infinite, zero or negative).</p>"
        )
    repeat_note = (
        f'<p class="note">{repeated} group(s) hold more than one measurement of an '
        "architecture (a table without collections); each measurement is drawn.</p>"
        if repeated
        else ""
    )
    body = (
        '<p class="note">Each point is one architecture: its stored latency, the '
        f"{esc(stat)} of the raw samples of its measurement (the collection's "
        "<code>statistic</code> setting). The min, median, p90 and max columns are taken over "
        "the architectures of a group. The spread across architectures is what a latency "
        "predictor has to model.</p>"
        + figure_img(fig, "Latency of the measured architectures per device and configuration")
        + note
        + df_table(table)
        + repeat_note
        + failed_note
    )
    summary = {"groups": groups, "failed": failed, "invalid": invalid, "rows": rows}
    return Section(sid, title, body, plots=1, summary=summary)


# ---- predicted vs measured ----------------------------------------------------------------------
_PRED_ALIASES = {
    "latency_ms": ("latency_ms", "measured_ms", "y_true", "true_ms", "target_ms"),
    "predicted_ms": ("predicted_ms", "prediction_ms", "y_pred", "pred_ms", "predicted_latency_ms"),
}


def normalize_predictions(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """Accept the usual column names (``y_true``/``y_pred``, ``measured_ms``, ...)."""
    if df is None or len(df) == 0:
        return None
    out = df.copy()
    for canonical, aliases in _PRED_ALIASES.items():
        if canonical in out.columns:
            continue
        found = next((a for a in aliases if a in out.columns), None)
        if found is None:
            from latbench.errors import DatasetError

            raise DatasetError(
                f"prediction table has columns {list(out.columns)}; expected a measured column "
                f"({', '.join(_PRED_ALIASES['latency_ms'])}) and a predicted one "
                f"({', '.join(_PRED_ALIASES['predicted_ms'])})"
            )
        out = out.rename(columns={found: canonical})
    if "predictor" not in out.columns:
        out["predictor"] = "predictor"
    for col in ("latency_ms", "predicted_ms"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    keep = np.isfinite(out["latency_ms"]) & np.isfinite(out["predicted_ms"])
    keep &= (out["latency_ms"] > 0) & (out["predicted_ms"] > 0)
    out = out[keep]
    return out if len(out) else None


def predictions_section(predictions: pd.DataFrame | None) -> Section:
    """Predicted against measured latency, log-log, with the accuracy and ranking metrics."""
    from latbench.predictors.metrics import evaluate, top_k_for

    sid, title = "predictions", "Predicted vs measured"
    df = normalize_predictions(predictions)
    if df is None:
        return Section.skip(
            sid,
            title,
            "no predictor results (pass --predictor FILE.lbp to evaluate a saved predictor on "
            "the store's measurements, or --predictions FILE with measured and predicted columns)",
        )
    # a NaN, infinite, zero or negative latency (a predictor's output, an edited table) has no
    # place on a log-log plot nor in a MAPE: the note counts the rows left out
    dropped = len(predictions) - len(df) if predictions is not None else 0
    # ``group`` (a predictor evaluated on store rows: device and configuration) else ``device``
    where = next((c for c in ("group", "device") if c in df.columns), None)
    keys = ["predictor", where] if where else ["predictor"]
    fig = new_figure(6.5, 6.0)
    ax = fig.add_subplot()
    rows = []
    # one k for every predictor and device, so that the top-k column covers them all
    k = top_k_for(int(df.groupby(keys, sort=True).size().min()))
    for i, (key, sub) in enumerate(df.groupby(keys, sort=True)):
        name = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        y, p = sub["latency_ms"].to_numpy(), sub["predicted_ms"].to_numpy()
        color = _PALETTE[i % len(_PALETTE)]
        ax.plot(y, p, ".", ms=4, alpha=0.6, color=color, label=plot_text(name))
        metrics = evaluate(y, p, k=k)
        topk = next(k for k in metrics if k.startswith("top"))
        rows.append(
            {
                "predictor": name,
                "archs": len(y),
                "RMSE ms": metrics["rmse_ms"],
                "MAPE %": metrics["mape_pct"],
                # shares of the architectures, in percent as MAPE is (a bare 0.95 under a
                # "±10 %" header reads as 0.95 %)
                "within ±5 % (%)": 100.0 * metrics["acc5"],
                "within ±10 % (%)": 100.0 * metrics["acc10"],
                "Spearman": metrics["spearman"],
                "Kendall": metrics["kendall"],
                f"{topk} overlap": metrics[topk],
            }
        )
    lo = float(min(df["latency_ms"].min(), df["predicted_ms"].min())) * 0.8
    hi = float(max(df["latency_ms"].max(), df["predicted_ms"].max())) * 1.25
    line = np.array([lo, hi])
    ax.plot(line, line, "-", color="#24292f", lw=1, label="prediction = measurement")
    ax.plot(line, line * 1.1, "--", color="#8c959f", lw=0.8, label="±10 %")
    ax.plot(line, line / 1.1, "--", color="#8c959f", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    body = (
        '<p class="note">Accuracy (RMSE, MAPE, share within ±5/±10 %) says whether the '
        "predictor can stand in for a measurement; rank metrics (Spearman, Kendall, top-k "
        "overlap) say whether it orders architectures correctly, which is what a search "
        "needs.</p>"
        + (
            f'<p class="note bad">{dropped} row(s) left out: their latency_ms or predicted_ms '
            "is not a positive finite number (NaN, infinite, zero or negative).</p>"
            if dropped
            else ""
        )
        + figure_img(fig, "Predicted against measured latency (log-log)")
        + df_table(pd.DataFrame(rows), digits=3)
    )
    return Section(sid, title, body, plots=1, summary={"metrics": rows, "left_out": dropped})


# ---- monotonicity heat map ----------------------------------------------------------------------
def monotonicity_section(
    measurements: pd.DataFrame | None,
    reference: pd.DataFrame | None,
    local_devices: Sequence[str] | None = None,
) -> Section:
    """Spearman rank correlation of latency between devices, this machine among the references.

    The heat map is clustered (average linkage on 1 - Spearman) so blocks of mutually monotone
    devices show; this machine's rows are marked. With measurements of the reference space's
    architectures, correlations are computed on the architectures this machine measured; the
    table lists the reference devices that rank them most like this machine (the best proxies).
    """
    from latbench.predictors import monotonicity as mono
    from latbench.predictors.metrics import kendall

    sid, title = "monotonicity", "Latency monotonicity across devices"
    ms = normalize_measurements(measurements)
    ok = _ok(ms.assign(group=group_labels(ms))) if ms is not None else None
    ref = reference if reference is not None and len(reference) else None
    ref_devices = {str(d) for d in ref["device"].unique()} if ref is not None else set()
    if local_devices is None:
        local = (
            sorted({str(d) for d in ok["device"].unique()} - ref_devices) if ok is not None else []
        )
    else:
        local = list(local_devices)
    notes: list[str] = []
    space = str(ref["space"].iloc[0]) if ref is not None and "space" in ref.columns else None
    mine = pd.DataFrame(columns=["arch", "device", "latency_ms"])
    mine_stats: list[str] = []
    if ok is not None and local:
        mine = ok[ok["device"].astype(str).isin(local)]
        if space is not None:
            mine = mine[mine["space"].astype(str) == space]
        mine_stats = mine["statistic"].astype(str).tolist()
        # one column per group (device and configuration), as the other sections group: two
        # thread counts of this machine are two columns, not the median of both
        mine = mine.assign(device=mine["group"])[["arch", "device", "latency_ms"]]
    local_cols = sorted({str(d) for d in mine["device"]})
    mine_archs = pd.unique(mine["arch"])
    if ref is not None:
        # Pivot only the architectures the heat map uses: this machine's, when it measured
        # enough of them, else a seeded sample (a 15,625 x 36 pivot costs seconds).
        if len(mine_archs) >= mono.MIN_SHARED:
            ref = ref[ref["arch"].isin(mine_archs)]
        else:
            archs = pd.unique(ref["arch"])
            if len(archs) > MAX_HEATMAP_ARCHS:
                pick = np.random.default_rng(0).choice(len(archs), MAX_HEATMAP_ARCHS, replace=False)
                ref = ref[ref["arch"].isin(archs[np.sort(pick)])]
                notes.append(
                    f"Correlations over a seeded sample of {MAX_HEATMAP_ARCHS} architectures."
                )
    parts = [
        p
        for p in (ref[["arch", "device", "latency_ms"]] if ref is not None else None, mine)
        if p is not None and len(p)
    ]
    if not parts:
        what = "no measurements" if ok is None else "no successful measurement"
        if ok is not None and not ok.empty:
            what = f"no measurement of {', '.join(local) or 'a device that is not a reference'}"
        return Section.skip(sid, title, f"{what} and no reference data (pass --reference nb201)")
    long = pd.concat(parts, ignore_index=True)
    if long["device"].nunique() < 2:
        return Section.skip(sid, title, "fewer than two devices; a correlation needs two")
    wide = mono.wide_table(long)
    sparse = [
        d for d in wide.columns if d not in local_cols and wide[d].notna().sum() < mono.MIN_SHARED
    ]
    if sparse:
        wide = wide.drop(columns=sparse)
        notes.append(
            f"Left out {len(sparse)} reference device(s) that measured fewer than "
            f"{mono.MIN_SHARED} of these architectures ({', '.join(sparse[:6])}"
            f"{', ...' if len(sparse) > 6 else ''})."
        )
    if wide.shape[1] < 2:
        return Section.skip(sid, title, "fewer than two devices share enough architectures")
    present = [d for d in local_cols if d in wide.columns]
    if present and set(mine_stats) - {"median"}:
        notes.append(
            f"This machine's latency is the {_statistic_text(mine_stats)} of each "
            "measurement's samples (its collection's statistic setting)."
            if len(set(mine_stats)) == 1
            else "This machine's columns use different statistics of each measurement's "
            f"samples ({', '.join(sorted(set(mine_stats)))}); their names say which."
        )
    if present:
        n_mine = int(wide[present].notna().any(axis=1).sum())
        if n_mine >= mono.MIN_SHARED:
            notes.append(
                f"Correlations over the {n_mine} architecture(s) this machine measured "
                f"({', '.join(present)})."
            )
        else:
            notes.append(
                f"This machine measured only {n_mine} architecture(s) of the "
                f"{space or 'reference'} space (at least {mono.MIN_SHARED} are needed); its "
                "correlations are blank. Collect more with `latbench collect`."
            )
    elif local:
        notes.append(
            f"No measurement of {', '.join(local)} is in the {space or 'reference'} space; "
            "showing the reference devices only."
        )
    # pandas' pairwise Spearman over pairwise-complete rows, as ``mono.rank_correlations``
    # computes it (a device with too few rows keeps a blank diagonal here); Kendall is
    # computed only for the closest-proxy table below.
    sp = wide.corr(method="spearman", min_periods=mono.MIN_SHARED)
    order = mono.cluster_order(sp)
    m = sp.loc[order, order].to_numpy(dtype=np.float64)
    n = len(order)
    size = max(4.5, 0.26 * n + 2.5)
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot()
    finite = m[np.isfinite(m)]
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    im = ax.imshow(np.ma.masked_invalid(m), vmin=vmin, vmax=1.0, cmap="viridis")
    ticks = [plot_text(d) for d in order]
    ax.set_xticks(range(n), ticks, rotation=90, fontsize=7)
    ax.set_yticks(range(n), ticks, fontsize=7)
    marked = {plot_text(d) for d in present}
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        for lab in labels:
            if lab.get_text() in marked:
                lab.set_color("#cf222e")
                lab.set_fontweight("bold")
    if n <= 14:
        for i in range(n):
            for j in range(n):
                if np.isfinite(m[i, j]):
                    color = "white" if m[i, j] < 0.75 else "black"
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, c=color)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Spearman ρ")
    ax.set_title("Spearman rank correlation of latency (clustered)", fontsize=10)
    proxies = []
    values = wide.to_numpy(dtype=np.float64)
    cols = list(wide.columns)
    for dev in present:
        others = [d for d in cols if d not in present]
        ranked = sp.loc[dev, others].dropna().sort_values(ascending=False).head(TOP_PROXIES)
        for other, rho in ranked.items():
            a, b = values[:, cols.index(dev)], values[:, cols.index(str(other))]
            shared = np.isfinite(a) & np.isfinite(b)
            proxies.append(
                {
                    "this machine": dev,
                    "reference device": str(other),
                    "Spearman": float(rho),
                    "Kendall": kendall(a[shared], b[shared]),
                    "shared archs": int(shared.sum()),
                }
            )
    body = (
        '<p class="note">High rank correlation means one device orders architectures like the '
        "other: a search on one transfers to the other (one proxy device is enough). "
        + (" ".join(esc(t) for t in notes))
        + (" This machine is marked in red." if present else "")
        + "</p>"
        + figure_img(fig, f"Spearman correlation of latency across {n} devices")
    )
    if proxies:
        body += "<h3>Closest reference devices to this machine</h3>" + df_table(
            pd.DataFrame(proxies), digits=3
        )
    summary = {"devices": order, "local": present, "archs": len(wide)}
    return Section(sid, title, body, plots=1, summary=summary)


# ---- Pareto front -------------------------------------------------------------------------------
_LATENCY_KEYS = ("latency_ms", "predicted_ms", "predicted_latency_ms", "measured_ms")
_OBJECTIVE_KEYS = (
    "accuracy",
    "acc",
    "val_acc",
    "test_acc",
    "top1",
    "score",
    "objective",
    "proxy",
    "error",
)
_CANDIDATE_KEYS = ("evaluated", "candidates", "history", "population", "archs", "results")
_FRONT_KEYS = ("pareto", "pareto_front", "front")


def _records(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, list):
        return [r for r in value if isinstance(r, Mapping)]
    return []


def _number(value: Any) -> TypeGuard[float]:
    """A finite real number: not a bool (JSON ``true`` is no latency), not NaN or infinite."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(float(value))
    )


def _first_key(records: list[Mapping[str, Any]], keys: Sequence[str]) -> str | None:
    for k in keys:
        if any(_number(r.get(k)) for r in records):
            return k
    return None


def pareto_mask(latency_ms: np.ndarray, objective: np.ndarray, maximize: bool) -> np.ndarray:
    """Points no other point dominates (at least as fast and at least as good, strictly better
    in one): the front of ``latbench search`` itself (:func:`latbench.nas.pareto.pareto_front`),
    exact ties included."""
    from latbench.nas.pareto import pareto_front

    mask = np.zeros(latency_ms.size, dtype=bool)
    mask[pareto_front(latency_ms, objective if maximize else -objective)] = True
    return mask


def pareto_points(search: Mapping[str, Any]) -> tuple[pd.DataFrame, str, str, bool]:
    """Candidates of a search result as ``arch, latency_ms, objective, on_front``.

    Reads the candidate list (``evaluated``, ``candidates``, ``history``, ...), the front
    (``pareto``, ``pareto_front``, ``front``) and the returned ``best``; the front is computed
    from them all. Returns the frame, the latency and objective key names, and whether higher is
    better. A candidate whose latency or objective is not a finite number (absent or null, a
    boolean, a string, NaN, infinite) is left out; ``df.attrs["left_out"]`` counts them by
    cause (``missing``, ``invalid``) and the section says so.
    """
    from latbench.errors import SearchError

    front = next((_records(search[k]) for k in _FRONT_KEYS if k in search), [])
    cands = next((_records(search[k]) for k in _CANDIDATE_KEYS if k in search), [])
    records = list(cands)
    for extra in (front, _records(search.get("best"))):
        records += [r for r in extra if r not in records]
    # ``latbench search -o`` names the latency column of its front in ``pareto_x`` (the first
    # latency constraint, e.g. ``latency_ms[local]``)
    x_name = search.get("pareto_x")
    lat_key = (
        str(x_name)
        if x_name and any(str(x_name) in r for r in records)
        else _first_key(records, _LATENCY_KEYS)
    )
    obj_key = _first_key(records, _OBJECTIVE_KEYS)
    if lat_key is None or obj_key is None:
        raise SearchError(
            f"search result has no candidates with a latency ({', '.join(_LATENCY_KEYS)}) and an "
            f"objective ({', '.join(_OBJECTIVE_KEYS)}); expected keys "
            f"{', '.join(_CANDIDATE_KEYS + _FRONT_KEYS)} holding lists of such records"
        )
    maximize = obj_key != "error"
    rows = []
    left_out = {"missing": 0, "invalid": 0}
    for r in records:
        lat, obj = r.get(lat_key), r.get(obj_key)
        if _number(lat) and _number(obj):
            rows.append(
                {
                    "arch": str(r.get("arch", r.get("arch_id", ""))),
                    "latency_ms": float(lat),
                    "objective": float(obj),
                }
            )
        elif lat is None or obj is None:
            left_out["missing"] += 1  # e.g. an objective not computed for an infeasible arch
        else:
            left_out["invalid"] += 1
    if not rows:
        raise SearchError(
            f"search result has no candidate with a finite number for both {lat_key} and "
            f"{obj_key} ({left_out['missing']} lack one, {left_out['invalid']} hold a value "
            "that is not a finite number: a boolean, a string, NaN or infinity)"
        )
    df = pd.DataFrame(rows).drop_duplicates().reset_index(drop=True)
    df["on_front"] = pareto_mask(
        df["latency_ms"].to_numpy(dtype=np.float64),
        df["objective"].to_numpy(dtype=np.float64),
        maximize,
    )
    df.attrs["left_out"] = left_out
    return df, lat_key, obj_key, maximize


def _objective_name(search: Mapping[str, Any], obj_key: str) -> str:
    """The objective's own name (``latbench search -o`` writes ``objective: {name, ...}``)."""
    if obj_key == "objective":
        declared = search.get("objective")
        if isinstance(declared, Mapping) and isinstance(declared.get("name"), str):
            return str(declared["name"])
        if isinstance(declared, str) and declared:
            return declared
    return obj_key


def _budgets(search: Mapping[str, Any], lat_key: str) -> list[tuple[str, float, float | None]]:
    """``(constraint name, budget ms, searched limit ms or None)`` of the plotted latency axis.

    A top-level ``budget_ms`` / ``latency_budget_ms``, else the latency constraint of
    ``latbench search -o`` named like the axis (its ``budget_ms``, or its ``limit``; the limit
    is returned too when a margin made it lower than the budget). Only the axis's own
    constraint is drawn: another device's budget is on another latency scale.
    """
    for key in ("budget_ms", "latency_budget_ms"):
        if _number(search.get(key)):
            return [(lat_key, float(search[key]), None)]
    cons = [
        c for c in _records(search.get("constraints")) if str(c.get("kind", "latency")) == "latency"
    ]
    mine = [c for c in cons if str(c.get("name")) == lat_key]
    if not mine and len(cons) == 1 and not cons[0].get("name"):
        mine = cons
    out: list[tuple[str, float, float | None]] = []
    for c in mine:
        budget = c.get("budget_ms") if _number(c.get("budget_ms")) else c.get("limit")
        if not _number(budget):
            continue
        limit = c.get("limit")
        searched = float(limit) if _number(limit) and float(limit) < float(budget) else None
        out.append((str(c.get("name") or lat_key), float(budget), searched))
    return out


def _predictor_text(record: Any) -> str:
    """A ``predictors`` record of ``latbench search -o`` as a reader wants it:
    ``cpu (cpu.lbp: ridge of help/silver_4114)``; anything else as it is."""
    if not isinstance(record, Mapping):
        return str(record)
    label = str(record.get("label") or record.get("path") or "?")
    what = []
    if record.get("path"):
        what.append(Path(str(record["path"])).name)
    devices = record.get("devices")
    model = str(record.get("model") or "")
    if isinstance(devices, list) and devices:
        shown = ", ".join(map(str, devices[:3])) + (
            f" and {len(devices) - 3} more" if len(devices) > 3 else ""
        )
        model = f"{model} of {shown}" if model else shown
    text = ": ".join(x for x in (", ".join(what), model) if x)
    return f"{label} ({text})" if text else label


def _search_info(search: Mapping[str, Any], obj_name: str) -> list[str]:
    """The lines above the plot: what was searched, how, under which constraints."""
    info: list[str] = []

    def named(value: Any) -> str | None:
        if isinstance(value, Mapping):
            value = value.get("name")
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        return None

    for key in ("space", "device", "predictor"):
        text = named(search.get(key))
        if text is not None:
            info.append(f"{key}: {text}")
    predictors = search.get("predictors")
    if isinstance(predictors, list) and predictors:
        info.append("predictors: " + ", ".join(_predictor_text(p) for p in predictors))
    strategy = named(search.get("strategy"))
    if strategy is not None:
        info.append(f"strategy: {strategy}")
    declared = search.get("objective")
    if isinstance(declared, Mapping) and declared.get("description"):
        info.append(f"objective: {obj_name}: {declared['description']}")
    for c in _records(search.get("constraints")):
        if not _number(c.get("limit")):
            continue
        text = f"constraint: {c.get('name', c.get('kind', '?'))} <= {float(c['limit']):g}"
        text += f" {c['unit']}" if isinstance(c.get("unit"), str) and c["unit"] else ""
        if _number(c.get("budget_ms")) and float(c["budget_ms"]) != float(c["limit"]):
            text += f" (budget {float(c['budget_ms']):g} ms less a margin)"
        info.append(text)
    if _number(search.get("budget_ms")):
        info.append(f"budget_ms: {search['budget_ms']}")
    for key in ("evaluations", "seed"):
        if _number(search.get(key)):
            info.append(f"{key}: {search[key]}")
    return info


def pareto_section(search: Mapping[str, Any] | None) -> Section:
    """The candidates of a search and their latency/objective Pareto front."""
    sid, title = "pareto", "Pareto front"
    if not search:
        return Section.skip(
            sid, title, "no search result (run `latbench search -o result.json`, pass --search)"
        )
    df, lat_key, obj_key, maximize = pareto_points(search)
    obj_name = _objective_name(search, obj_key)
    front = df[df["on_front"]].sort_values("latency_ms")
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    rest = df[~df["on_front"]]
    ax.plot(
        rest["latency_ms"],
        rest["objective"],
        ".",
        color="#8c959f",
        ms=4,
        alpha=0.6,
        label=f"candidates ({len(df)})",
    )
    ax.step(front["latency_ms"], front["objective"], where="post", color=_PALETTE[1], lw=1.2)
    ax.plot(
        front["latency_ms"],
        front["objective"],
        "o",
        color=_PALETTE[1],
        ms=5,
        label=f"Pareto front ({len(front)})",
    )
    budgets = _budgets(search, lat_key)
    for _, budget, searched in budgets:
        ax.axvline(budget, color=_PALETTE[2], ls="--", lw=1, label=f"budget {budget:g} ms")
        if searched is not None:
            ax.axvline(
                searched, color=_PALETTE[2], ls=":", lw=1, label=f"searched under {searched:g} ms"
            )
    if df["latency_ms"].min() > 0 and df["latency_ms"].max() / df["latency_ms"].min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel(plot_text(f"{lat_key} (ms)"))
    ax.set_ylabel(plot_text(obj_name + ("" if maximize else " (lower is better)")))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    info = _search_info(search, obj_name)
    left_out = df.attrs.get("left_out", {})
    notes = []
    if left_out.get("missing"):
        notes.append(
            f"{left_out['missing']} candidate(s) without a {lat_key} or {obj_name} value left out"
            " (a search does not compute an expensive objective of an infeasible candidate)."
        )
    if left_out.get("invalid"):
        notes.append(
            f"{left_out['invalid']} candidate(s) left out whose {lat_key} or {obj_name} is not a "
            "finite number (a boolean, a string, NaN or infinity)."
        )
    body = (
        (bullet_list(info) if info else "")
        + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
        + figure_img(fig, f"{obj_name} against {lat_key}: candidates and Pareto front")
        + df_table(
            front[["arch", "latency_ms", "objective"]].rename(
                columns={"latency_ms": f"{lat_key}", "objective": obj_name}
            ),
            digits=4,
            max_rows=30,
        )
    )
    summary = {
        "front": len(front),
        "points": len(df),
        "objective": obj_name,
        "budgets_ms": [b for _, b, _ in budgets],
        "info": info,
        "left_out": dict(left_out),
    }
    return Section(sid, title, body, plots=1, summary=summary)


# ---- measurement stability ----------------------------------------------------------------------
def row_verdict(
    samples_ms: Any, harness: Any = None, env: Any = None, env_after: Any = None
) -> dict[str, Any]:
    """The stability verdict of one stored measurement: what its record's own
    :meth:`~latbench.profilers.record.Measurement.verdict` says (and ``latbench measure``
    prints), rebuilt from the row's raw samples, ``harness`` settings (``min_runs``) and
    environment. ``harness``, ``env`` and ``env_after`` are dicts or the store's JSON text.

    The store keeps the environment before (``env``) and, from schema version 2, after the
    measurement (``env_after``); the checks that compare the two (CPU frequency, steal time,
    throttling) run where the rows carry ``env_after`` (rows of older stores and files do
    not). Samples that are not finite non-negative numbers are not judged.
    """
    from latbench.profilers.record import Measurement

    def unjudged(why: str) -> dict[str, Any]:
        nan = float("nan")
        return {"stable": False, "judged": False, "reasons": [why], "spread": nan, "drift": nan}

    try:
        xs = np.asarray(samples_ms, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return unjudged("unreadable samples")
    bad = np.flatnonzero(~np.isfinite(xs) | (xs < 0))
    if bad.size:
        return unjudged(f"invalid sample: samples_ms[{int(bad[0])}] = {float(xs[bad[0]])!r}")
    h = _json_obj(harness)
    settings = _settings(h)
    try:
        m = Measurement(
            status="ok",
            samples_ms=tuple(float(x) for x in xs),
            # the whole harness, its settings made a dict (``verdict`` reads ``min_runs``)
            harness={**h, "settings": settings} if settings else {},
            env=_json_obj(env),
            env_after=_json_obj(env_after),
        )
        verdict: dict[str, Any] = m.verdict()
    except (TypeError, ValueError, AttributeError) as exc:  # a min_runs that is no number
        return unjudged(f"cannot judge: {exc}")
    return verdict


def _reason_kind(reason: str) -> str:
    """``spread too wide: IQR/median = 12.3 % > 10 %`` -> ``spread too wide`` (to count them)."""
    return re.split(r"[:(]|\d", reason, maxsplit=1)[0].strip() or reason[:40]


def stability_section(measurements: pd.DataFrame | None) -> Section:
    """Per group: how noisy its measurements are (IQR/median of the raw samples), the share
    its records judge unstable, failures."""
    from latbench.profilers import stats

    sid, title = "stability", "Measurement stability"
    df = normalize_measurements(measurements)
    if df is None:
        return Section.skip(sid, title, "no measurements (run `latbench collect` or pass --db)")
    if "samples_ms" not in df.columns:
        # no raw samples to judge, but the failures (and their reasons) are still shown here
        df = df.assign(samples_ms=None)
    df = df.assign(group=group_labels(df))
    has = df["samples_ms"].map(lambda s: isinstance(s, list | tuple | np.ndarray) and len(s) >= 2)
    sampled = df[has & (df["status"] == "ok")]
    failed = df[df["status"] != "ok"]
    if sampled.empty and failed.empty:
        return Section.skip(
            sid, title, "no raw samples (imported reference rows keep only their medians)"
        )
    none = pd.Series(None, index=sampled.index, dtype=object)
    columns = {c: sampled[c] if c in sampled.columns else none for c in ("harness", "env")}
    after = sampled["env_after"] if "env_after" in sampled.columns else none
    with_after = int(after.map(lambda v: bool(_json_obj(v))).sum())
    verdict_of = {
        idx: row_verdict(xs, h, e, a)
        for idx, xs, h, e, a in zip(
            sampled.index,
            sampled["samples_ms"],
            columns["harness"],
            columns["env"],
            after,
            strict=True,
        )
    }
    rows = []
    spreads: dict[str, np.ndarray] = {}
    groups = sorted(set(sampled["group"]) | set(failed["group"]))
    for g in groups:
        sub = sampled[sampled["group"] == g]
        verdicts = [verdict_of[i] for i in sub.index]
        spread = np.array([float(v["spread"]) for v in verdicts], dtype=np.float64)
        spreads[g] = spread[np.isfinite(spread)] * 100.0
        n_failed = int((failed["group"] == g).sum())
        errors = failed.loc[failed["group"] == g, "error"].dropna().astype(str)
        drift = sub["drift_ratio"].dropna() if "drift_ratio" in sub.columns else pd.Series([])
        why = Counter(
            _reason_kind(r) for v in verdicts if not v["stable"] for r in v.get("reasons", [])
        )
        rows.append(
            {
                "device · configuration": g,
                "measurements": len(sub),
                "median runs": float(np.median(sub["samples_ms"].map(len)))
                if len(sub)
                else math.nan,
                "median spread %": float(np.median(spreads[g])) if spreads[g].size else math.nan,
                "p90 spread %": float(np.percentile(spreads[g], 90))
                if spreads[g].size
                else math.nan,
                "unstable %": 100.0 * float(np.mean([not v["stable"] for v in verdicts]))
                if verdicts
                else math.nan,
                "why unstable": ", ".join(f"{k} ({n})" for k, n in why.most_common(3)),
                "drift ratio": float(drift.iloc[-1]) if len(drift) else math.nan,
                "failed": n_failed,
                "most common failure": errors.value_counts().index[0][:80] if len(errors) else "",
            }
        )
    env_note = (
        " A CPU frequency change, steal time above "
        f"{stats.STEAL_LIMIT:.0%} or thermal throttling between the environment before and "
        "after also make it unstable."
        if with_after
        else " These rows carry no environment after each measurement (stores before schema "
        "version 2 kept only the one before), so the checks that compare the two (CPU "
        "frequency, steal time, throttling), which the record's own verdict also makes, are not "
        "made here."
    )
    body = (
        '<p class="note">Spread is IQR / median of one measurement\'s raw samples. Unstable is '
        "the verdict of the measurement's record (<code>Measurement.verdict()</code>, what "
        "<code>latbench measure</code> prints): the spread exceeds "
        f"{stats.SPREAD_LIMIT:.0%}, its second half drifts more than {stats.DRIFT_LIMIT:.0%} "
        "from its first, or it has fewer runs than its collection's <code>min_runs</code> "
        f"(at most {stats.MIN_RUNS_FOR_VERDICT} are asked; below "
        f"{stats.MIN_SAMPLES_TO_JUDGE} nothing can be judged)."
        + esc(env_note)
        + " Drift ratio is the latest latency of the collection's reference model over its "
        "first (1.00 = the device did not change).</p>"
    )
    drawn = [g for g in groups if spreads.get(g) is not None and spreads[g].size]
    plots = 0
    if drawn:
        drawn = drawn[:MAX_GROUPS]
        fig = new_figure(8.5, max(2.4, 0.38 * len(drawn) + 1.3))
        ax = fig.add_subplot()
        ax.boxplot(
            [spreads[g] for g in drawn],
            orientation="horizontal",
            whis=(5, 95),
            showfliers=True,
            widths=0.6,
            flierprops={"markersize": 2},
        )
        ax.axvline(
            stats.SPREAD_LIMIT * 100,
            color=_PALETTE[1],
            ls="--",
            lw=1,
            label=f"unstable above {stats.SPREAD_LIMIT:.0%}",
        )
        ax.set_yticks(range(1, len(drawn) + 1), [plot_text(g) for g in drawn], fontsize=8)
        ax.set_xlabel("spread of one measurement: IQR / median of its raw samples (%)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8)
        body += figure_img(fig, "Spread of the raw samples of each measurement, per device")
        plots = 1
    else:
        body += '<p class="note">No raw samples to draw (only failed or imported rows).</p>'
    body += df_table(pd.DataFrame(rows), digits=3)
    summary = {"rows": rows, "verdicts": verdict_of, "env_after": with_after}
    return Section(sid, title, body, plots=plots, summary=summary)
