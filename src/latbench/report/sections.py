"""The report's sections: each takes plain data (DataFrames, dicts) and returns a :class:`Section`.

Every function here is pure apart from drawing: it reads its inputs, computes, and returns an
HTML fragment with its plot embedded. When its data is absent it returns a skipped section whose
visible note says what is missing and how to provide it, so a report of a young store (no
predictor, no search yet) still builds and says what it lacks.

Inputs (all latencies in milliseconds):

* ``measurements``: store rows (``latbench.datasets`` store ``to_pandas()``) or any long table
  with ``space, arch, device, latency_ms``; optional ``runtime``, ``batch``, ``status``,
  ``samples_ms`` (list of raw samples), ``drift_ratio``, ``error``.
* ``predictions``: one row per (predictor, architecture): ``latency_ms`` (measured),
  ``predicted_ms``; optional ``predictor``, ``device``, ``arch``.
* ``reference``: long reference table (:func:`latbench.datasets.reference.load_reference`).
* ``search``: a search result (``latbench search -o``): candidates with a latency and an
  objective, optionally the Pareto front itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from latbench.report.html import Section, bullet_list, df_table, esc, figure_img, new_figure

__all__ = [
    "distributions_section",
    "monotonicity_section",
    "normalize_measurements",
    "pareto_points",
    "pareto_section",
    "predictions_section",
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

    Returns None for no data. Missing optional columns get the store's defaults (runtime ``""``,
    batch 1, status ``ok``).
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
    defaults: dict[str, Any] = {"runtime": "", "batch": 1, "status": "ok", "error": None}
    for col, value in defaults.items():
        if col not in out.columns:
            out[col] = value
    out["runtime"] = out["runtime"].fillna("").astype(str)
    out["latency_ms"] = pd.to_numeric(out["latency_ms"], errors="coerce").astype("float64")
    return out


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    lat = df["latency_ms"]
    return df[(df["status"] == "ok") & np.isfinite(lat) & (lat > 0)]


def _group_label(df: pd.DataFrame) -> pd.Series:
    """``device`` or ``device (runtime, batch N)`` when those vary or are known."""
    label = df["device"].astype(str)
    rt = df["runtime"].astype(str)
    label = label.where(rt == "", label + " · " + rt)
    if "batch" in df.columns and df["batch"].nunique() > 1:
        label = label + " · b" + df["batch"].astype(str)
    return label


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
    """Per device and runtime: the latency of the measured architectures (log scale)."""
    sid, title = "distributions", "Latency distributions"
    df = normalize_measurements(measurements)
    if df is None:
        return Section.skip(sid, title, "no measurements (run `latbench collect` or pass --db)")
    ok = _ok(df)
    if ok.empty:
        return Section.skip(sid, title, f"all {len(df)} measurement(s) failed; nothing to draw")
    ok = ok.assign(group=_group_label(ok))
    groups, note = _busiest(ok["group"])
    data = [ok.loc[ok["group"] == g, "latency_ms"].to_numpy(dtype=np.float64) for g in groups]
    fig = new_figure(8.5, max(2.4, 0.38 * len(groups) + 1.3))
    ax = fig.add_subplot()
    ax.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=False, widths=0.6)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        shown = values if values.size <= 400 else rng.choice(values, 400, replace=False)
        jitter = rng.uniform(-0.18, 0.18, shown.size)
        ax.plot(shown, i + jitter, ".", ms=2.5, alpha=0.45, color=_PALETTE[0])
    ax.set_yticks(range(1, len(groups) + 1), groups, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency of one inference (ms, log scale); box 25-75 %, whiskers 5-95 %")
    ax.grid(axis="x", which="both", alpha=0.3)
    rows = []
    for g, values in zip(groups, data, strict=True):
        sub = ok[ok["group"] == g]
        rows.append(
            {
                "device · runtime": g,
                "space": ", ".join(sorted(sub["space"].astype(str).unique())),
                "archs": int(sub["arch"].nunique()),
                "min ms": float(values.min()),
                "median ms": float(np.median(values)),
                "p90 ms": float(np.percentile(values, 90)),
                "max ms": float(values.max()),
                "max/min": float(values.max() / values.min()),
            }
        )
    table = pd.DataFrame(rows)
    failed = int((df["status"] != "ok").sum())
    failed_note = (
        f'<p class="note bad">{failed} failed measurement(s) left out (see Measurement '
        "stability).</p>"
        if failed
        else ""
    )
    body = (
        '<p class="note">Each point is one architecture (its median latency). The spread across '
        "architectures is what a latency predictor has to model.</p>"
        + figure_img(fig, "Latency of the measured architectures per device and runtime")
        + note
        + df_table(table)
        + failed_note
    )
    return Section(sid, title, body, plots=1, summary={"groups": groups, "failed": failed})


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
    keys = ["predictor", "device"] if "device" in df.columns else ["predictor"]
    fig = new_figure(6.5, 6.0)
    ax = fig.add_subplot()
    rows = []
    # one k for every predictor and device, so that the top-k column covers them all
    k = top_k_for(int(df.groupby(keys, sort=True).size().min()))
    for i, (key, sub) in enumerate(df.groupby(keys, sort=True)):
        name = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        y, p = sub["latency_ms"].to_numpy(), sub["predicted_ms"].to_numpy()
        ax.plot(y, p, ".", ms=4, alpha=0.6, color=_PALETTE[i % len(_PALETTE)], label=name)
        metrics = evaluate(y, p, k=k)
        topk = next(k for k in metrics if k.startswith("top"))
        rows.append(
            {
                "predictor": name,
                "archs": len(y),
                "RMSE ms": metrics["rmse_ms"],
                "MAPE %": metrics["mape_pct"],
                "±5 % acc": metrics["acc5"],
                "±10 % acc": metrics["acc10"],
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
        + figure_img(fig, "Predicted against measured latency (log-log)")
        + df_table(pd.DataFrame(rows), digits=3)
    )
    return Section(sid, title, body, plots=1, summary={"metrics": rows})


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
    ok = _ok(ms) if ms is not None else None
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
    if ok is not None and local:
        mine = ok[ok["device"].astype(str).isin(local)]
        if space is not None:
            mine = mine[mine["space"].astype(str) == space]
        mine = mine[["arch", "device", "latency_ms"]]
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
        return Section.skip(
            sid, title, "no measurements and no reference data (pass --reference nb201)"
        )
    long = pd.concat(parts, ignore_index=True)
    if long["device"].nunique() < 2:
        return Section.skip(sid, title, "fewer than two devices; a correlation needs two")
    wide = mono.wide_table(long)
    sparse = [d for d in wide.columns if d not in local and wide[d].notna().sum() < mono.MIN_SHARED]
    if sparse:
        wide = wide.drop(columns=sparse)
        notes.append(
            f"Left out {len(sparse)} reference device(s) that measured fewer than "
            f"{mono.MIN_SHARED} of these architectures ({', '.join(sparse[:6])}"
            f"{', ...' if len(sparse) > 6 else ''})."
        )
    if wide.shape[1] < 2:
        return Section.skip(sid, title, "fewer than two devices share enough architectures")
    present = [d for d in local if d in wide.columns]
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
    ax.set_xticks(range(n), order, rotation=90, fontsize=7)
    ax.set_yticks(range(n), order, fontsize=7)
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        for lab in labels:
            if lab.get_text() in present:
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


def _first_key(records: list[Mapping[str, Any]], keys: Sequence[str]) -> str | None:
    for k in keys:
        if any(
            isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool) for r in records
        ):
            return k
    return None


def pareto_mask(latency_ms: np.ndarray, objective: np.ndarray, maximize: bool) -> np.ndarray:
    """Points no other point beats on both latency (lower) and objective (higher if maximize)."""
    obj = objective if maximize else -objective
    order = np.lexsort((-obj, latency_ms))  # by latency, then best objective first
    mask = np.zeros(latency_ms.size, dtype=bool)
    best = -math.inf
    for i in order:
        if obj[i] > best:
            mask[i] = True
            best = obj[i]
    return mask


def pareto_points(search: Mapping[str, Any]) -> tuple[pd.DataFrame, str, str, bool]:
    """Candidates of a search result as ``arch, latency_ms, objective, on_front``.

    Reads the candidate list (``evaluated``, ``candidates``, ``history``, ...) and the front
    (``pareto``, ``pareto_front``, ``front``); when the file has no front it is computed.
    Returns the frame, the latency and objective key names, and whether higher is better.
    """
    from latbench.errors import SearchError

    front = next((_records(search[k]) for k in _FRONT_KEYS if k in search), [])
    cands = next((_records(search[k]) for k in _CANDIDATE_KEYS if k in search), [])
    records = cands + [r for r in front if r not in cands]
    # ``latbench search -o`` names the latency column of its front in ``pareto_x`` (the first
    # latency constraint, e.g. ``latency_ms@local``)
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
    rows = [
        {
            "arch": str(r.get("arch", r.get("arch_id", ""))),
            "latency_ms": float(r[lat_key]),
            "objective": float(r[obj_key]),
        }
        for r in records
        if isinstance(r.get(lat_key), int | float) and isinstance(r.get(obj_key), int | float)
    ]
    df = pd.DataFrame(rows).drop_duplicates().reset_index(drop=True)
    df["on_front"] = pareto_mask(
        df["latency_ms"].to_numpy(dtype=np.float64),
        df["objective"].to_numpy(dtype=np.float64),
        maximize,
    )
    return df, lat_key, obj_key, maximize


def pareto_section(search: Mapping[str, Any] | None) -> Section:
    """The candidates of a search and their latency/objective Pareto front."""
    sid, title = "pareto", "Pareto front"
    if not search:
        return Section.skip(
            sid, title, "no search result (run `latbench search -o result.json`, pass --search)"
        )
    df, lat_key, obj_key, maximize = pareto_points(search)
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
    budget = search.get("budget_ms") or search.get("latency_budget_ms")
    if isinstance(budget, int | float) and not isinstance(budget, bool):
        ax.axvline(float(budget), color=_PALETTE[2], ls="--", lw=1, label=f"budget {budget} ms")
    if df["latency_ms"].min() > 0 and df["latency_ms"].max() / df["latency_ms"].min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"{lat_key} (ms)")
    ax.set_ylabel(obj_key + ("" if maximize else " (lower is better)"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    info = [
        f"{k}: {search[k]}"
        for k in ("space", "device", "predictor", "strategy", "budget_ms", "seed")
        if k in search and isinstance(search[k], str | int | float)
    ]
    body = (
        (bullet_list(info) if info else "")
        + figure_img(fig, f"{obj_key} against {lat_key}: candidates and Pareto front")
        + df_table(
            front[["arch", "latency_ms", "objective"]].rename(
                columns={"latency_ms": f"{lat_key}", "objective": obj_key}
            ),
            digits=4,
            max_rows=30,
        )
    )
    return Section(sid, title, body, plots=1, summary={"front": len(front), "points": len(df)})


# ---- measurement stability ----------------------------------------------------------------------
def stability_section(measurements: pd.DataFrame | None) -> Section:
    """Per device: how noisy its measurements are (IQR/median of the raw samples), failures."""
    from latbench.profilers import stats

    sid, title = "stability", "Measurement stability"
    df = normalize_measurements(measurements)
    if df is None:
        return Section.skip(sid, title, "no measurements (run `latbench collect` or pass --db)")
    if "samples_ms" not in df.columns:
        return Section.skip(sid, title, "the measurements carry no raw samples")
    df = df.assign(group=_group_label(df))
    has = df["samples_ms"].map(lambda s: isinstance(s, list | tuple | np.ndarray) and len(s) >= 2)
    sampled = df[has & (df["status"] == "ok")]
    failed = df[df["status"] != "ok"]
    if sampled.empty and failed.empty:
        return Section.skip(
            sid, title, "no raw samples (imported reference rows keep only their medians)"
        )
    rows = []
    spreads: dict[str, np.ndarray] = {}
    groups = sorted(set(sampled["group"]) | set(failed["group"]))
    for g in groups:
        sub = sampled[sampled["group"] == g]
        verdicts = [stats.stability(list(s)) for s in sub["samples_ms"]]
        spread = np.array([float(v["spread"]) for v in verdicts], dtype=np.float64)
        spreads[g] = spread[np.isfinite(spread)] * 100.0
        n_failed = int((failed["group"] == g).sum())
        errors = failed.loc[failed["group"] == g, "error"].dropna().astype(str)
        drift = sub["drift_ratio"].dropna() if "drift_ratio" in sub.columns else pd.Series([])
        rows.append(
            {
                "device · runtime": g,
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
                "drift ratio": float(drift.iloc[-1]) if len(drift) else math.nan,
                "failed": n_failed,
                "most common failure": errors.value_counts().index[0][:80] if len(errors) else "",
            }
        )
    body = (
        '<p class="note">Spread is IQR / median of one measurement\'s raw samples; a measurement '
        f"is unstable when the spread exceeds {stats.SPREAD_LIMIT:.0%}, its second half drifts "
        f"more than {stats.DRIFT_LIMIT:.0%} from its first, or it has fewer than "
        f"{stats.MIN_RUNS_FOR_VERDICT} runs. Drift ratio is the latest latency of the "
        "collection's reference model over its first (1.00 = the device did not change).</p>"
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
        ax.set_yticks(range(1, len(drawn) + 1), drawn, fontsize=8)
        ax.set_xlabel("spread of one measurement: IQR / median of its raw samples (%)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8)
        body += figure_img(fig, "Spread of the raw samples of each measurement, per device")
        plots = 1
    else:
        body += '<p class="note">No raw samples to draw (only failed or imported rows).</p>'
    body += df_table(pd.DataFrame(rows), digits=3)
    return Section(sid, title, body, plots=plots, summary={"rows": rows})
