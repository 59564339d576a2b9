"""How many measurements: few-shot adaptation against training on the new device alone.

The question a user with a new device asks: measure ten architectures and adapt the
multi-device base, or measure a few hundred and fit a predictor on them alone? This runs both
on the same samples, leave-one-device-out on the bundled reference tables, with HELP's
protocol otherwise (``bench_fewshot_help.py``: K samples from indices 0-899 of the target,
query = indices 900-1899 minus the 10 % fastest and slowest, Spearman on the query):

* ``fewshot``: ``latbench.predictors.adapt.adapt(base, archs, latency_ms)``, the default
  (``auto`` with the stored ``embed`` prior), the base being ``meta`` on every other device
  minus near-copies of the target;
* ``default``: latbench's recommended single-device predictor fitted on the K samples alone
  (``predictors.create("default")``, as ``latbench predictor fit --data`` does);
* ``ridge_oh``: scikit-learn ``Ridge()`` on the one-hot encoding, raw ms (the ten-line
  baseline of the predictors benchmark).

K goes up to the whole 900-architecture pool (devices measured on part of the space have fewer
rows there, and stop at what they have). Usage:

    python benchmarks/bench_fewshot_scratch.py --space nb201 --ks 10,20,50,100,200,500,900 \\
        --draws 5 --out /tmp/scratch_nb201.jsonl
    python benchmarks/bench_fewshot_scratch.py --report --records /tmp/scratch_*.jsonl \\
        --plot benchmarks/results/fewshot_scratch.png

Resumable: every finished device is one JSON line of ``--out``; a rerun skips them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fewshot_help import (
    fit_base,
    load_done,
    near_copies,
    split,
    table_devices,
    targeted,
    wide_table,
)
from latbench.predictors import create, encodings
from latbench.predictors.adapt import adapt
from latbench.predictors.metrics import spearman

METHODS = ("fewshot", "default", "ridge_oh")


def run_device(w, space: str, target: str, ks: list[int], draws: int, seed: int) -> dict:
    """Every method's Spearman on the query, per K and draw, and its fit seconds."""
    devices = table_devices(w)
    copies = near_copies(w, target, devices)
    others = [d for d in devices if d != target and d not in copies]
    base = fit_base(w, space, others)
    pool, query = split(w, space, target)
    archs = w["arch"].tolist()
    y = w[target].to_numpy()
    qa = [archs[i] for i in query]
    oh_all = encodings.onehot(space, archs)
    rng = np.random.default_rng(seed)
    scores: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for k in ks:
        if k > len(pool):
            continue
        for _ in range(draws):
            rows = rng.choice(pool, size=k, replace=False)
            ka, ky = [archs[i] for i in rows], y[rows]
            for m in METHODS:
                t0 = time.perf_counter()
                if m == "fewshot":
                    pred = adapt(base, ka, ky).predict(qa)
                elif m == "default":
                    pred = create("default").fit(ka, ky, space=space).predict(qa)
                else:
                    pred = Ridge().fit(oh_all[rows], ky).predict(oh_all[query])
                seconds.setdefault(f"{k}|{m}", []).append(time.perf_counter() - t0)
                scores.setdefault(f"{k}|{m}", []).append(spearman(y[query], pred))
    return {
        "space": space,
        "target": target,
        "copies": copies,
        "pool": len(pool),
        "n_query": len(query),
        "scores": scores,
        "seconds": seconds,
        "loadavg": os.getloadavg()[0],
    }


def record_ks(rows: list[dict]) -> list[int]:
    """The Ks the records hold."""
    return sorted({int(key.split("|")[0]) for r in rows for key in r["scores"]})


def report(rows: list[dict]) -> None:
    """Per space: the mean over devices per K and method (devices that reach that K), the
    devices where few-shot is ahead, and the smallest K at which each device's ``default``
    catches up with few-shot at K = 10."""
    for space in sorted({r["space"] for r in rows}):
        sub = [r for r in rows if r["space"] == space]
        ks = record_ks(sub)
        print(f"\n## {space}: {len(sub)} leave-one-out devices")
        print("| K | devices | fewshot | default (target only) | ridge_oh (target only) | "
              "fewshot ahead of default on |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for k in ks:
            have = [r for r in sub if f"{k}|fewshot" in r["scores"]]
            if not have:
                continue
            mean = {m: np.mean([np.mean(r["scores"][f"{k}|{m}"]) for r in have]) for m in METHODS}
            ahead = sum(
                np.mean(r["scores"][f"{k}|fewshot"]) > np.mean(r["scores"][f"{k}|default"])
                for r in have
            )
            print(
                f"| {k} | {len(have)} | {mean['fewshot']:.3f} | {mean['default']:.3f} | "
                f"{mean['ridge_oh']:.3f} | {ahead} of {len(have)} |"
            )
        print("\ncatch-up: the smallest K where `default` on the target alone reaches few-shot "
              "at K = 10 (per device)")  # fmt: skip
        counts: dict[str, int] = {}
        for r in sub:
            ref = np.mean(r["scores"]["10|fewshot"])
            got = [
                k
                for k in ks
                if f"{k}|default" in r["scores"] and np.mean(r["scores"][f"{k}|default"]) >= ref
            ]
            label = (
                str(got[0]) if got else f"> {max(k for k in ks if f'{k}|default' in r['scores'])}"
            )
            counts[label] = counts.get(label, 0) + 1
            print(f"  {r['target']}: few-shot K=10 {ref:.3f}; default catches up at K {label}")
        print("  summary:", ", ".join(f"{n} device(s) at K {lab}" for lab, n in counts.items()))
        fs = [
            s for r in sub for key, v in r["seconds"].items() if key.endswith("|fewshot") for s in v
        ]
        df = [
            s for r in sub for key, v in r["seconds"].items() if key.endswith("|default") for s in v
        ]
        print(f"  fit seconds: fewshot median {np.median(fs):.3f} (max {max(fs):.2f}); "
              f"default median {np.median(df):.3f} (max {max(df):.2f})")  # fmt: skip


LABELS = {
    "fewshot": "few-shot: adapt the base (default)",
    "default": "default fitted on the K samples alone",
    "ridge_oh": "Ridge on one-hot, K samples alone",
}


def plot(rows: list[dict], out: str) -> None:
    """Mean Spearman against K per space, on the devices measured on the whole pool (every K),
    with the spread over those devices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spaces = sorted({r["space"] for r in rows}, reverse=True)
    fig, axes = plt.subplots(1, len(spaces), figsize=(5.6 * len(spaces), 4.0), squeeze=False)
    colours = {"fewshot": "tab:blue", "default": "tab:green", "ridge_oh": "0.5"}
    for ax, space in zip(axes[0], spaces, strict=True):
        ks = record_ks([r for r in rows if r["space"] == space])
        full = [
            r
            for r in rows
            if r["space"] == space and all(f"{k}|fewshot" in r["scores"] for k in ks)
        ]
        for m in METHODS:
            per = np.array([[np.mean(r["scores"][f"{k}|{m}"]) for k in ks] for r in full])
            mean = per.mean(axis=0)
            ax.plot(ks, mean, "o-", color=colours[m], label=LABELS[m], lw=1.6, ms=4)
            lo, hi = np.percentile(per, [25, 75], axis=0)
            ax.fill_between(ks, lo, hi, color=colours[m], alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylim(0.4, 1.0)
        ax.grid(alpha=0.3)
        ax.set_xlabel("K measured architectures of the new device")
        ax.set_ylabel("Spearman on the query set")
        ax.set_title(
            f"{space}: {len(full)} leave-one-out devices (mean, 25-75 % band)", fontsize=10
        )
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", choices=["nb201", "fbnet"], default="nb201")
    ap.add_argument("--ks", default="10,20,50,100,200,500,900")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", default="", help="only these devices (names without prefix)")
    ap.add_argument("--out", type=Path, default=None, help="resumable JSON-lines records")
    ap.add_argument("--report", action="store_true", help="print the tables from --records")
    ap.add_argument("--records", nargs="*", type=Path, default=[])
    ap.add_argument("--plot", default=None, help="with --report: write the learning curves")
    args = ap.parse_args()
    # adapt() says which samples it left out as outliers; hundreds of times here, so quiet
    logging.getLogger("latbench").setLevel(logging.ERROR)
    ks = [int(k) for k in args.ks.split(",")]
    if 10 not in ks:
        ap.error("--ks must include 10 (the catch-up is measured against few-shot at K = 10)")
    if args.report:
        rows = [r for p in args.records for r in load_done(p).values()]
        report(rows)
        if args.plot:
            plot(rows, args.plot)
        return 0
    print(f"# bench_fewshot_scratch: {' '.join(sys.argv)}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}"
    )
    print(f"# load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    w = wide_table(args.space)
    devices = table_devices(w)
    done = load_done(args.out)
    rows = []
    for target in devices:
        if not targeted(target, args.targets):
            continue
        key = json.dumps([args.space, target, ks, args.draws, args.seed])
        if key in done:
            rows.append(done[key])
            continue
        t0 = time.perf_counter()
        row = {"key": key, **run_device(w, args.space, target, ks, args.draws, args.seed)}
        rows.append(row)
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        print(f"{target}: {time.perf_counter() - t0:.0f} s", flush=True)
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
