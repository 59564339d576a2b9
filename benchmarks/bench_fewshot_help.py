"""Few-shot adaptation on unseen devices, HELP's protocol, on the bundled reference tables.

Protocol (``datasets/reference/README``): K adaptation samples drawn from indices 0-899 of the
target device; the query set is indices 900-1899 with the 10 % fastest and slowest removed; the
score is the Spearman correlation between predicted and measured latency on the query set,
averaged over draws. Devices measured on only part of the space use the rows they have in the
same index ranges.

Two base settings, the base never seeing the target:

* ``help``: the ``meta`` base is fitted on HELP's nine meta-train devices and evaluated on the
  validation devices (titanx_1, titanx_32, titanx_256 or titanx_64, gold_6240);
* ``loo``: leave-one-device-out over every other device of the table: the base is fitted on all
  the other devices, minus near-copies of the target (same ranking and same milliseconds,
  e.g. oneproxy/eagle_gtx vs oneproxy/eagle_i7), which are reported.

Usage: python benchmarks/bench_fewshot_help.py [--space nb201|fbnet|both] [--draws 10]
       [--ks 3,5,10,20] [--methods proxy,soft,combo,meta,bayes,embed,auto,auto+embed]
       [--setting help|loo|both] [--pick random|design|spread] [--out results.jsonl]
       python benchmarks/bench_fewshot_help.py --plot fewshot.png --records a.jsonl b.jsonl

``--plot`` runs nothing: it draws mean Spearman against K (per space and setting, with the
spread over draws, the goal and the oracle ceilings) and every leave-one-out device at
K = 10 (``fewshot_devices.png``) from the records of earlier runs; records of ``--pick design``
runs add the default adapted from the samples latbench chooses itself.

``--pick`` says how the K samples are chosen: ``random`` (HELP's protocol: K random
architectures of the pool, the default), or ``design`` / ``spread``: what
``latbench.predictors.adapt.choose_samples`` (the live ``latbench adapt --device`` path) picks
among a random half of the pool, one half per draw. ``--compare-picks random,design --records
...`` prints, from the records, the mean over devices per K for each way of choosing and the
devices where the choice loses.

``embed`` and ``auto+embed`` (``auto`` given the ``embed`` prior: what ``adapt()`` and
``latbench adapt`` do by default with a base from ``latbench predictor fit --devices all``)
use the prior of :mod:`latbench.predictors.fewshot_embed` learned on the base's source devices'
measured latencies in the table (never the target's) and stored with the base, as
``latbench.predictors.adapt.fit_base`` does; its time is printed at the end. ``auto`` is
``auto`` without a prior (``adapt(..., use_stored_prior=False)``, a base file without one).

Resumable: with ``--out`` every finished device is appended to the file as one JSON line (per
K and method: the Spearman of every draw, plus every fit time); a re-run with the same file,
space, setting, Ks, methods and draws skips the devices already there and prints the tables
from the file. Per-device cells are means over draws; ``MEAN`` rows add ``+-`` the standard
deviation over draws of the mean over devices.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from scipy.stats import rankdata

from latbench.datasets import load_reference
from latbench.predictors import fewshot
from latbench.predictors.adapt import choose_samples, prepare_context, stored_prior
from latbench.predictors.adapt import fit_base as adapt_fit_base
from latbench.predictors.fewshot_embed import embed_features
from latbench.predictors.metrics import spearman

META_TRAIN = [
    "1080ti_1",
    "1080ti_32",
    "1080ti_256",
    "silver_4114",
    "silver_4210r",
    "samsung_a50",
    "pixel3",
    "essential_ph_1",
    "samsung_s7",
]
VALIDATION = ["titanx_1", "titanx_32", "titanx_256", "gold_6240"]


def help_names(space: str, names: list[str]) -> list[str]:
    out = []
    for n in names:
        if space == "fbnet":
            n = n.replace("_256", "_64")
        out.append(f"help/{n}")
    return out


def wide_table(space: str) -> pd.DataFrame:
    df = load_reference(space)
    key = f"{space}_index"
    w = df.pivot_table(index=[key, "arch"], columns="device", values="latency_ms", aggfunc="first")
    return w.reset_index().sort_values(key).reset_index(drop=True)


def table_devices(w: pd.DataFrame) -> list[str]:
    """The device columns of :func:`wide_table` (``source/name``)."""
    return [c for c in w.columns if "/" in str(c)]


def near_copies(w: pd.DataFrame, target: str, devices: list[str]) -> list[str]:
    """Devices whose latencies equal the target's (same ranking and same ms, within 2 %)."""
    out = []
    y = w[target]
    for d in devices:
        m = y.notna() & w[d].notna()
        if m.sum() < 50 or d == target:
            continue
        r = np.log(w.loc[m, d].to_numpy()) - np.log(y[m].to_numpy())
        if abs(np.median(r)) < 0.02 and spearman(y[m], w.loc[m, d]) > 0.99:
            out.append(d)
    return out


def split(w: pd.DataFrame, space: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    key = w[f"{space}_index"].to_numpy()
    have = w[target].notna().to_numpy()
    pool = np.flatnonzero(have & (key < 900))
    q = np.flatnonzero(have & (key >= 900) & (key < 1900))
    yq = w[target].to_numpy()[q]
    lo, hi = np.quantile(yq, [0.1, 0.9])
    return pool, q[(yq >= lo) & (yq <= hi)]


def fit_base(w: pd.DataFrame, space: str, devices: list[str]) -> object:
    """The ``meta`` base on ``devices``' rows, with the embed prior learned from the same rows
    and stored with it, as ``latbench predictor fit --devices all`` does."""
    long = w.melt(id_vars=["arch"], value_vars=devices, var_name="device", value_name="ms")
    long = long.dropna()
    return adapt_fit_base(
        "meta", long["arch"].tolist(), long["ms"].to_numpy(), space=space, devices=long["device"]
    )


def resolution_ceiling(y: np.ndarray, reps: int = 20) -> float:
    """Spearman a perfect continuous predictor can reach against ``y``'s tied values.

    Phone tables are in whole milliseconds: ties in ``y`` cap the Spearman of any predictor
    without ties. Estimated as the mean Spearman of ``y`` with random tie-breaks of itself.
    """
    if np.unique(y).size == y.size:
        return 1.0
    rng = np.random.default_rng(0)
    return float(np.mean([spearman(y, rankdata(y) + rng.random(y.size)) for _ in range(reps)]))


def oracle_combination(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman of the best non-negative combination of columns ``x`` fitted on ``y`` itself."""
    xc = x - x.mean(axis=0)
    sd = xc.std(axis=0)
    xc = xc / np.where(sd > 0, sd, 1.0)
    coef, _ = nnls(xc, y - y.mean())
    return spearman(y, xc @ coef)


def ceilings(w, base, target, p_q, query) -> dict[str, float]:
    """How far each device is from what the data allows (fitted on the query set itself).

    ``res``: resolution ceiling of the target's own values (ties); ``src1``/``srcN``: best
    single measured source device / best non-negative combination of measured sources (the
    sources of the base having every query architecture); ``base1``/``baseN``: the same over the
    base's *predictions* of the sources, i.e. what proxy selection / a linear combination of the
    base could reach with a perfect choice.
    """
    y = w[target].to_numpy()[query]
    ly = np.log(y)
    srcs = [d for d in base.devices_ if w[d].iloc[query].notna().all()]
    meas = np.log(w[srcs].to_numpy()[query].astype(float)) if srcs else np.zeros((len(y), 0))
    out = {"res": resolution_ceiling(y)}
    out["src1"] = max((spearman(y, meas[:, j]) for j in range(meas.shape[1])), default=np.nan)
    out["srcN"] = oracle_combination(meas, ly) if srcs else np.nan
    out["base1"] = max(spearman(y, p_q[:, j]) for j in range(p_q.shape[1]))
    out["baseN"] = oracle_combination(p_q, ly)
    return out


CEILINGS = ("res", "src1", "srcN", "base1", "baseN")


def draw_samples(base, archs, pool, k, pick, rng) -> np.ndarray:
    """The K sample rows of one draw: ``random`` (HELP's protocol) K of the pool; ``design`` /
    ``spread``: what :func:`latbench.predictors.adapt.choose_samples` (the live ``latbench
    adapt --device`` path) picks among a random half of the pool."""
    if pick == "random":
        return rng.choice(pool, size=k, replace=False)
    sub = rng.choice(pool, size=max(k, len(pool) // 2), replace=False)
    row = {archs[i]: i for i in sub}
    chosen = choose_samples(base, k, candidates=list(row), strategy=pick)
    return np.array([row[a] for a in chosen])


def evaluate(w, space, base, target, ks, draws, methods, rng, pick="random"):
    pool, query = split(w, space, target)
    archs = w["arch"].tolist()
    ctx = prepare_context(base, list(base.devices_))
    prior = stored_prior(base) if any(m in ("embed", "auto+embed") for m in methods) else None
    prior_s = 0.0 if prior is None else prior.fit_seconds
    rows = np.concatenate([pool, query])
    p_all = ctx.source_log([archs[i] for i in rows])
    f_all = ctx.features([archs[i] for i in rows])
    g_all = ctx.costs([archs[i] for i in rows])
    e_all = embed_features(space, [archs[i] for i in rows])
    if prior is not None:
        e_all = e_all - prior.count_mean
    pos = {r: i for i, r in enumerate(rows)}
    y = w[target].to_numpy()
    qi = [pos[r] for r in query]
    out: dict[tuple[int, str], list[float]] = {}
    for name, v in ceilings(w, base, target, p_all[qi], query).items():
        out[(0, name)] = [v]
    times: list[float] = []
    for k in ks:
        for _ in range(draws):
            rows_k = draw_samples(base, archs, pool, k, pick, rng)
            pi = [pos[r] for r in rows_k]
            t = np.log(y[rows_k])
            g_k = None if g_all is None else g_all[pi]
            g_q = None if g_all is None else g_all[qi]
            emb = None if prior is None else (prior, e_all[pi] + prior.count_mean)
            for m in methods:
                t0 = time.perf_counter()
                name, e = ("auto", emb) if m == "auto+embed" else (m, emb if m == "embed" else None)
                fit, _ = fewshot.fit_method(
                    name, p_all[pi], t, ctx.pop_log, f_all[pi], cost=g_k, embed=e
                )
                times.append(time.perf_counter() - t0)
                pred = fit.predict_log(p_all[qi], f_all[qi], g_q, e_all[qi])
                out.setdefault((k, m), []).append(spearman(y[query], pred))
    return out, len(query), times, prior_s


def print_header(name: str) -> None:
    """The command, the machine and the load average, as every sweep prints them first."""
    print(f"# {name}: {' '.join(sys.argv)}")
    print(f"# machine: 2-core shared x86_64 VM, python {platform.python_version()}")
    print(f"# load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def targeted(device: str, targets: str) -> bool:
    """Whether ``--targets`` (a comma list of device names without their source prefix, e.g.
    ``pixel3,eagle_tpu``; empty: every device) names ``device``."""
    return not targets or device.split("/")[-1] in targets.split(",")


def sweep_lists(args: argparse.Namespace) -> tuple[list[int], list[str], list[str]]:
    """``--ks``, ``--methods`` and ``--space`` (``both`` = NB201 and FBNet) as lists."""
    ks = [int(k) for k in args.ks.split(",")]
    spaces = ["nb201", "fbnet"] if args.space == "both" else [args.space]
    return ks, args.methods.split(","), spaces


def _key(
    space: str,
    setting: str,
    target: str,
    ks: list[int],
    methods: list[str],
    draws: int,
    pick: str = "random",
):
    key = [space, setting, target, ks, methods, draws] + ([] if pick == "random" else [pick])
    return json.dumps(key)


def load_done(path: Path | None) -> dict[str, dict]:
    """Rows already in the ``--out`` file (or a gzipped copy of one, ``.jsonl.gz``), by key
    (a truncated last line is ignored)."""
    done: dict[str, dict] = {}
    if path is None or not path.is_file():
        return done
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else None
    for line in (text if text is not None else path.read_text()).splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[row["key"]] = row
    return done


#: methods drawn by ``--plot`` (when present in the records), with their labels
PLOT_METHODS = {
    "proxy": "proxy selection + calibration (baseline)",
    "auto": "auto, no stored prior",
    "auto+embed": "auto + embed prior (the default)",
}
#: anchors of issue #6 (NB201, K = 10, six unseen devices in the papers)
ANCHORS = {"HELP (paper)": 0.932, "best proxy from 10 (paper)": 0.85}


def merge_records(
    paths: list[Path], pick: str = "random"
) -> dict[tuple[str, str, str], dict[str, list[float]]]:
    """Per (space, setting, target): every ``K|method`` score list found in the JSON-lines
    files for samples chosen by ``pick`` (the longest list where several files hold the same
    cell)."""
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for path in paths:
        for row in load_done(path).values():
            if row.get("pick", "random") != pick:
                continue
            cell = cells.setdefault((row["space"], row["setting"], row["target"]), {})
            for key, vals in row["scores"].items():
                if len(vals) > len(cell.get(key, [])):
                    cell[key] = list(vals)
    return cells


def _below(
    mean: dict[tuple[str, str, str], float], common: set[str], p: str, q: str, m: str, tol: float
) -> list[str]:
    """Devices where the default with samples of ``p`` is below method ``m`` with those of ``q``
    by more than ``tol``, with the gap."""
    gaps = {t: mean[(p, "auto+embed", t)] - mean[(q, m, t)] for t in common}
    return [f"{t.split('/')[-1]} {g:+.3f}" for t, g in sorted(gaps.items()) if g < -tol]


#: the default adapted from the samples ``choose_samples`` picks (records of ``--pick design``)
DESIGN_LABEL = "the default, samples picked by choose_samples (design)"


def compare_picks(paths: list[Path], picks: list[str]) -> None:
    """How the choice of the K samples moves the scores: per space, setting and K, the mean
    over devices of the default (``auto+embed``) and of ``proxy`` for each way of choosing
    (``-`` where the records have none), and the devices on which the default loses, from the
    records (nothing is refitted). The first of ``picks`` is the reference."""
    cells = {p: merge_records(paths, p) for p in picks}
    first = picks[0]
    print(f"# samples chosen by: {', '.join(picks)} (records: {' '.join(map(str, paths))})")
    print("space setting K " + " ".join(f"default[{p}] proxy[{p}]" for p in picks) + " | notes")
    for space in ("nb201", "fbnet"):
        for setting in ("loo", "help"):
            targets = {t for (s, st, t) in cells[first] if s == space and st == setting}
            ks = sorted(
                {int(k.split("|")[0]) for t in targets
                 for k in cells[first][(space, setting, t)] if k.endswith("|auto+embed")}
            )  # fmt: skip
            for k in ks:
                mean: dict[tuple[str, str, str], float] = {}
                for p in picks:
                    for t in targets:
                        for m in ("auto+embed", "proxy"):
                            vals = cells[p].get((space, setting, t), {}).get(f"{k}|{m}")
                            if vals:
                                mean[(p, m, t)] = float(np.mean(vals))
                have = [
                    p for p in picks
                    if all((p, m, t) in mean for m in ("auto+embed", "proxy") for t in targets)
                ]  # fmt: skip
                if first not in have or len(have) < 2:
                    continue
                cols = []
                for p in picks:
                    for m in ("auto+embed", "proxy"):
                        ok = p in have
                        cols.append(
                            f"{np.mean([mean[(p, m, t)] for t in targets]):.3f}" if ok else "-"
                        )
                notes = []
                for p in have[1:]:
                    lost = _below(mean, targets, p, first, "auto+embed", 0.005)
                    notes.append(f"{p} below {first} by > 0.005 on {len(lost)}: {', '.join(lost)}")
                    for q in have:
                        behind = _below(mean, targets, p, q, "proxy", 5e-4)
                        notes.append(
                            f"default[{p}] behind proxy[{q}] on {len(behind)} of {len(targets)}"
                            + (f": {', '.join(behind)}" if behind else "")
                        )
                print(f"{space} {setting} {k} {' '.join(cols)} | {'; '.join(notes)}")


def plot_records(paths: list[Path], out: str) -> list[str]:
    """Two figures from the records: mean Spearman against K per space and setting (with the
    spread over draws, the goal and the oracle ceilings), and every device at K = 10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = merge_records(paths)
    designed = merge_records(paths, "design")
    spaces = [s for s in ("nb201", "fbnet") if any(k[0] == s for k in cells)]
    settings = [("loo", "leave-one-device-out"), ("help", "HELP split (validation devices)")]
    colours = {"proxy": "0.45", "auto": "tab:orange", "auto+embed": "tab:blue"}
    fig, axes = plt.subplots(
        len(spaces), 2, figsize=(11, 3.9 * len(spaces)), squeeze=False, sharey=True
    )
    for r, space in enumerate(spaces):
        for c, (setting, title) in enumerate(settings):
            ax = axes[r][c]
            rows = {t: v for (s, st, t), v in cells.items() if s == space and st == setting}
            ax.set_title(f"{space}, {title}: {len(rows)} devices", fontsize=10)
            ax.axhline(0.95, color="tab:red", ls="--", lw=1)
            ax.text(3, 0.951, "goal 0.95 at K = 10", color="tab:red", fontsize=8, va="bottom")
            for ceiling, ls in (("srcN", ":"), ("baseN", "-.")):
                vals = [v[f"0|{ceiling}"][0] for v in rows.values() if f"0|{ceiling}" in v]
                if vals:
                    what = "measured" if ceiling == "srcN" else "base's predicted"
                    ax.axhline(
                        float(np.nanmean(vals)), color="k", ls=ls, lw=0.9,
                        label=f"ceiling: oracle mix of the {what} sources",
                    )  # fmt: skip
            chosen = {
                t: v for (s, st, t), v in designed.items() if s == space and st == setting
            }  # fmt: skip
            series = [(m, label, rows, "o-") for m, label in PLOT_METHODS.items()]
            series.append(("auto+embed", DESIGN_LABEL, chosen, "s--"))
            for m, label, by_dev, style in series:
                ks = sorted(
                    {int(k.split("|")[0]) for v in by_dev.values() for k in v
                     if k.endswith(f"|{m}")}
                )  # fmt: skip
                ks = [k for k in ks if k > 0 and all(f"{k}|{m}" in v for v in by_dev.values())]
                if not ks:
                    continue
                mean, sd = [], []
                for k in ks:
                    n = min(len(v[f"{k}|{m}"]) for v in by_dev.values())
                    draws = np.array([v[f"{k}|{m}"][:n] for v in by_dev.values()])  # dev x draw
                    mean.append(draws.mean())
                    sd.append(draws.mean(axis=0).std())
                mu, sg = np.array(mean), np.array(sd)
                c = "tab:purple" if style == "s--" else colours[m]
                ax.plot(ks, mu, style, color=c, label=label, lw=1.6, ms=4)
                ax.fill_between(ks, mu - sg, mu + sg, color=c, alpha=0.15, lw=0)
            if space == "nb201":
                for (name, v), mk in zip(ANCHORS.items(), ("*", "v"), strict=True):
                    ax.plot([10], [v], mk, color="tab:green", ms=9, ls="none", label=name)
            ax.set_xscale("log")
            ax.set_xticks([3, 5, 10, 20], ["3", "5", "10", "20"])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("K (samples measured on the new device)")
            ax.set_ylabel("mean Spearman on the query set")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    title = "Few-shot adaptation, HELP's protocol (band: +-1 sd over draws of the mean)"
    if designed:
        title += "; squares: the K samples chosen by latbench instead of drawn at random"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    written = [out]

    # every leave-one-out device at K = 10: where the mean is lost, and what the sources allow
    fig, axes = plt.subplots(1, len(spaces), figsize=(6.2 * len(spaces), 8.5), squeeze=False)
    for ax, space in zip(axes[0], spaces, strict=True):
        rows = {
            t: v for (s, st, t), v in cells.items()
            if s == space and st == "loo" and "10|auto+embed" in v and "10|proxy" in v
        }  # fmt: skip
        order = sorted(rows, key=lambda t: np.mean(rows[t]["10|auto+embed"]))
        y = np.arange(len(order))
        for m in ("proxy", "auto+embed"):
            ax.plot(
                [np.mean(rows[t][f"10|{m}"]) for t in order], y, "o", color=colours[m],
                ms=5, label=PLOT_METHODS[m],
            )  # fmt: skip
        picked = [designed.get((space, "loo", t), {}).get("10|auto+embed") for t in order]
        if all(picked):
            ax.plot(
                [np.mean(v) for v in picked], y, "s", color="tab:purple", ms=4, mfc="none",
                label=DESIGN_LABEL,
            )  # fmt: skip
        ax.plot(
            [rows[t]["0|baseN"][0] for t in order], y, "|", color="k", ms=11,
            label="ceiling: oracle mix of the base's predicted sources",
        )  # fmt: skip
        ax.axvline(0.95, color="tab:red", ls="--", lw=1)
        ax.set_yticks(y, order, fontsize=7)
        ax.set_xlabel("Spearman on the query set, K = 10 (mean over draws)")
        ax.set_title(f"{space}, leave-one-device-out, K = 10", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    second = out.replace(".png", "_devices.png")
    fig.savefig(second, dpi=110)
    plt.close(fig)
    return [*written, second]


def adapt_timing(space: str, ks: list[int], reps: int) -> None:
    """Wall time of complete ``adapt()`` calls (base predictions included), method auto with
    the base's stored embed prior (the default).

    The base holds every device of the table but the target (HELP's gold_6240); the K samples
    are drawn from its measured architectures.
    """
    from latbench.predictors.adapt import adapt

    w = wide_table(space)
    devices = table_devices(w)
    target = "help/gold_6240"
    base = fit_base(w, space, [d for d in devices if d != target])
    col = w[["arch", target]].dropna()
    rng = np.random.default_rng(0)
    for k in ks:
        times = []
        for _ in range(reps):
            pick = rng.choice(len(col), size=k, replace=False)
            t0 = time.perf_counter()
            adapt(base, list(col["arch"].iloc[pick]), col[target].to_numpy()[pick])
            times.append(time.perf_counter() - t0)
        a = np.array(times)
        print(
            f"# adapt() {space} K={k} ({len(devices) - 1}-device base, auto with the stored "
            f"embed prior, {reps} calls): "
            f"median {np.median(a):.3f} s, p90 {np.quantile(a, 0.9):.3f} s, max {a.max():.3f} s"
        )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="both")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--ks", default="3,5,10,20")
    ap.add_argument("--methods", default="proxy,soft,combo,meta,bayes,auto")
    ap.add_argument(
        "--pick",
        default="random",
        choices=("random", "design", "spread"),
        help="how the K samples are chosen: random draws of the pool (HELP's protocol, the "
        "default), or choose_samples' design / spread among a random half of the pool",
    )
    ap.add_argument("--setting", default="both")
    ap.add_argument("--targets", default="", help="comma list of devices (loo) to restrict to")
    ap.add_argument("--out", default="", help="JSON-lines file: append per device, resume")
    ap.add_argument(
        "--adapt-timing", type=int, default=0, help="time N full adapt() calls per K instead"
    )
    ap.add_argument(
        "--plot",
        default="",
        help="draw the figures (.png) from --records (and --out) instead of running",
    )
    ap.add_argument("--records", nargs="*", default=[], help="JSON-lines files for --plot")
    ap.add_argument(
        "--compare-picks",
        default="",
        help="e.g. random,design: compare the ways of choosing the K samples from --records "
        "(runs nothing)",
    )
    args = ap.parse_args()
    if args.compare_picks:
        compare_picks([Path(p) for p in args.records], args.compare_picks.split(","))
        return 0
    if args.plot:
        paths = [Path(p) for p in [*args.records, *([args.out] if args.out else [])]]
        for written in plot_records(paths, args.plot):
            print(f"# plot: {written}")
        return 0
    ks, methods, spaces = sweep_lists(args)
    if args.adapt_timing:
        print(f"# load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        for space in spaces:
            adapt_timing(space, ks, args.adapt_timing)
        print(f"# load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return 0
    out_path = Path(args.out) if args.out else None
    done = load_done(out_path)
    print_header("bench_fewshot_help")
    all_times: list[float] = []
    prior_times: list[float] = []
    for space in spaces:
        w = wide_table(space)
        devices = table_devices(w)
        jobs = []
        help_base = None
        if args.setting in ("help", "both"):
            for t in help_names(space, VALIDATION):
                jobs.append(("help", t, None, []))
        if args.setting in ("loo", "both"):
            skip = set(help_names(space, VALIDATION))
            for t in devices:
                if t in skip or not targeted(t, args.targets):
                    continue
                jobs.append(("loo", t, None, near_copies(w, t, devices)))
        per_draw: dict[tuple[str, int, str], list[np.ndarray]] = {}
        summary: dict[tuple[str, int, str], list[float]] = {}
        header = " ".join(f"{m}@K{k}" for k in ks for m in methods) + " " + " ".join(CEILINGS)
        print(f"\n## {space}\nsetting target n_query {header}")
        for setting, target, _, copies in jobs:
            key = _key(space, setting, target, ks, methods, args.draws, args.pick)
            row = done.get(key)
            if row is None:
                if setting == "help":
                    if help_base is None:
                        help_base = fit_base(w, space, help_names(space, META_TRAIN))
                    base = help_base
                else:
                    srcs = [d for d in devices if d != target and d not in copies]
                    base = fit_base(w, space, srcs)
                rng = np.random.default_rng(0)
                res, nq, times, prior_s = evaluate(
                    w, space, base, target, ks, args.draws, methods, rng, args.pick
                )
                row = {
                    "key": key,
                    "space": space,
                    "setting": setting,
                    "target": target,
                    "n_query": nq,
                    "copies": copies,
                    "pick": args.pick,
                    "scores": {f"{k}|{m}": list(map(float, v)) for (k, m), v in res.items()},
                    "fit_seconds": times,
                    "embed_prior_seconds": prior_s,
                    "loadavg": os.getloadavg()[0],
                }
                if out_path is not None:
                    with out_path.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
            all_times += row["fit_seconds"]
            prior_times.append(row.get("embed_prior_seconds", 0.0))
            cells = []
            for k in ks:
                for m in methods:
                    v = np.array(row["scores"][f"{k}|{m}"])
                    summary.setdefault((setting, k, m), []).append(float(np.mean(v)))
                    per_draw.setdefault((setting, k, m), []).append(v)
                    cells.append(f"{np.mean(v):.3f}")
            for c in CEILINGS:
                summary.setdefault((setting, 0, c), []).append(row["scores"][f"0|{c}"][0])
                cells.append(f"{row['scores'][f'0|{c}'][0]:.3f}")
            note = f" (near-copies excluded: {', '.join(copies)})" if copies else ""
            print(f"{setting} {target} {row['n_query']} {' '.join(cells)}{note}", flush=True)
        for setting in ("help", "loo"):
            if not any(s == setting for s, _, _ in summary):
                continue
            cells = []
            for k in ks:
                for m in methods:
                    # spread: std over draws of the mean over devices
                    draws_mean = np.mean(np.stack(per_draw[(setting, k, m)]), axis=0)
                    cells.append(
                        f"{np.mean(summary[(setting, k, m)]):.3f}+-{np.std(draws_mean):.3f}"
                    )
            cells += [f"{np.nanmean(summary[(setting, 0, c)]):.3f}" for c in CEILINGS]
            print(f"{setting} MEAN - {' '.join(cells)}")
            for k in ks:
                for m in methods:
                    if m == "proxy" or "proxy" not in methods:
                        continue
                    diff = np.array(summary[(setting, k, m)]) - np.array(
                        summary[(setting, k, "proxy")]
                    )
                    print(
                        f"# {setting} K={k} {m} - proxy: better on {int((diff > 5e-4).sum())}, "
                        f"equal (within 0.0005) on {int((np.abs(diff) <= 5e-4).sum())}, worse on "
                        f"{int((diff < -5e-4).sum())} of {diff.size} devices; worst "
                        f"{diff.min():+.3f}"
                    )
    a = np.array(all_times)
    print(
        f"\n# adaptation fit time: median {np.median(a) * 1e3:.1f} ms, p90 "
        f"{np.quantile(a, 0.9) * 1e3:.1f} ms, max {a.max() * 1e3:.1f} ms over {a.size} fits"
    )
    if any(prior_times):
        print(f"# embed prior (learned with the base): max {max(prior_times):.2f} s")
    print(f"# load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
