"""Proxy adaptation: does adapting the proxy's predictor with K samples raise its ranking?

What ``latbench monotonicity --target DEV`` does, on every device of the bundled reference
tables in turn, with HELP's protocol of ``bench_fewshot_help.py``: K samples from indices
0-899 of the target, the query set = indices 900-1899 without the 10 % fastest and slowest,
score = Spearman on the query set. Per draw:

1. the proxy = the device of the table (any but the target, near-copies included, as the
   command does) whose latencies rank the K samples best (``monotonicity.best_proxies``);
2. its predictor = ``meta`` fitted on the proxy's column (``monotonicity.fit_proxy_predictor``);
3. "before" = that predictor's ranking of the query set (``proxy``: the calibration alone,
   which cannot change a ranking); "after" = each adaptation method of
   ``monotonicity.adapt_proxy``: ``embed+proxy`` (the default; its prior learned from the
   table's other devices, the target's column left out), ``meta``, ``bayes``, ``auto``.

Usage: python benchmarks/bench_proxy_adaptation.py [--space nb201|fbnet|both] [--ks 3,5,10,20]
       [--draws 10] [--methods embed+proxy,meta,bayes,auto] [--targets a,b] [--out results.jsonl]
       [--plot P.png]

A draw whose K latencies are all equal (whole-ms phone tables at K = 3) cannot be adapted
(``adapt`` refuses it with an error); the user keeps the proxy's predictor, so every method
scores the proxy's figure on that draw, and the count is printed.

Resumable: with ``--out`` every finished device is one JSON line (the Spearman of every draw
and method, the proxies chosen, the adaptation times); a re-run with the same file and
settings skips the devices already there. ``--plot`` draws before vs after per device.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fewshot_help import (
    load_done,
    print_header,
    split,
    sweep_lists,
    table_devices,
    targeted,
    wide_table,
)
from latbench.errors import PredictorError
from latbench.predictors import monotonicity as mono
from latbench.predictors.metrics import spearman

LEVEL = 0.0005  # a device whose mean moved by less is "level"


def evaluate(w, table, space, target, ks, draws, methods):
    """Per (K, method): the Spearman of every draw on the query set; the proxies; the times."""
    pool, query = split(w, space, target)
    qa = [w["arch"].iloc[i] for i in query]
    qy = w[target].to_numpy()[query]
    others = table.drop(columns=[target])
    cache: dict[str, tuple[object, object, float]] = {}
    scores: dict[str, list[float]] = {}
    proxies: dict[str, list[str]] = {}
    times: list[float] = []
    unadaptable: dict[str, int] = {}
    rng = np.random.default_rng(0)
    for k in ks:
        for _ in range(draws):
            pick = rng.choice(pool, size=k, replace=False)
            archs = [w["arch"].iloc[i] for i in pick]
            lat = w[target].to_numpy()[pick]
            proxy = mono.best_proxies(others, archs, lat, target=target).best
            proxies.setdefault(str(k), []).append(proxy)
            if proxy not in cache:
                t0 = time.perf_counter()
                base = mono.fit_proxy_predictor(table, space, proxy)
                prior = mono.proxy_prior(base, table, proxy, exclude=[target])
                cache[proxy] = (base, prior, time.perf_counter() - t0)
            base, prior, _ = cache[proxy]
            before = base.predict(qa, device=proxy)
            scores.setdefault(f"{k}|proxy", []).append(spearman(qy, before))
            for m in methods:
                t0 = time.perf_counter()
                try:
                    a = mono.adapt_proxy(
                        table, space, proxy, archs, lat, exclude=[target], method=m,
                        device=target, base=base, prior=prior,
                    )  # fmt: skip
                except PredictorError:
                    # e.g. K whole-ms phone latencies all equal: no adaptation can be made, so
                    # the user keeps the proxy's predictor; counted and reported
                    unadaptable[str(k)] = unadaptable.get(str(k), 0) + 1
                    scores.setdefault(f"{k}|{m}", []).append(scores[f"{k}|proxy"][-1])
                    continue
                times.append(time.perf_counter() - t0)
                scores.setdefault(f"{k}|{m}", []).append(spearman(qy, a.predict(qa)))
    setup = [c[2] for c in cache.values()]
    return scores, proxies, len(query), times, setup, unadaptable


def report(rows: list[dict], ks: list[int], methods: list[str]) -> None:
    cols = [f"{m}@K{k}" for k in ks for m in ["proxy", *methods]]
    print("target n_query " + " ".join(cols) + " proxies@K10")
    for r in rows:
        cells = [np.mean(r["scores"][f"{c.split('@K')[1]}|{c.split('@K')[0]}"]) for c in cols]
        top = r["proxies"].get("10") or next(iter(r["proxies"].values()))
        common = max(set(top), key=top.count).split("/")[-1]
        print(f"{r['target']} {r['n_query']} " + " ".join(f"{v:.3f}" for v in cells), common)
    for k in ks:
        per_draw = {
            m: np.array([r["scores"][f"{k}|{m}"] for r in rows]) for m in ["proxy", *methods]
        }
        line = " ".join(
            f"{m} {v.mean():.4f}+-{v.mean(axis=0).std():.4f}" for m, v in per_draw.items()
        )
        print(f"# K={k} MEAN over {len(rows)} devices (+- sd over draws): {line}")
        bad = {r["target"]: r.get("unadaptable", {}).get(str(k), 0) for r in rows}
        bad = {t: n // len(methods) for t, n in bad.items() if n}
        if bad:
            print(f"#   draws that no method could adapt (scored as the proxy's): {bad}")
        for m in methods:
            d = per_draw[m].mean(axis=1) - per_draw["proxy"].mean(axis=1)
            worst = rows[int(np.argmin(d))]["target"]
            print(
                f"#   {m} - proxy: up on {(d > LEVEL).sum()}, level on {(abs(d) <= LEVEL).sum()}, "
                f"down on {(d < -LEVEL).sum()} of {len(d)} devices; largest gain {d.max():+.3f}, "
                f"worst {d.min():+.4f} ({worst})"
            )


def plot(rows: list[dict], ks: list[int], method: str, path: str, space: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ks), figsize=(3.2 * len(ks), 3.4), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        b = np.array([np.mean(r["scores"][f"{k}|proxy"]) for r in rows])
        a = np.array([np.mean(r["scores"][f"{k}|{method}"]) for r in rows])
        lo = min(b.min(), a.min()) - 0.02
        ax.plot([lo, 1], [lo, 1], color="0.6", lw=0.8)
        ax.scatter(b, a, s=14, c=np.where(a >= b - LEVEL, "tab:blue", "tab:red"))
        ax.set_title(f"{space}, K = {k}")
        ax.set_xlabel("proxy's predictor (Spearman)")
        ax.set_ylabel(f"adapted, {method}")
        ax.set_xlim(lo, 1)
        ax.set_ylim(lo, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="both")
    ap.add_argument("--ks", default="3,5,10,20")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--methods", default="embed+proxy,meta,bayes,auto")
    ap.add_argument("--targets", default="", help="comma list of devices to restrict to")
    ap.add_argument("--out", default="", help="JSON-lines file: append per device, resume")
    ap.add_argument("--plot", default="", help="before vs after per device (.png; per space)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the fallback and fit warnings of 10,000s of fits
    ks, methods, spaces = sweep_lists(args)
    out_path = Path(args.out) if args.out else None
    done = load_done(out_path)
    print_header("bench_proxy_adaptation")
    times: list[float] = []
    setups: list[float] = []
    for space in spaces:
        w = wide_table(space)
        devices = table_devices(w)
        table = w.set_index("arch")[devices]
        rows = []
        for target in devices:
            if not targeted(target, args.targets):
                continue
            key = json.dumps(["proxy", space, target, ks, methods, args.draws])
            row = done.get(key)
            if row is None:
                scores, proxies, nq, t, setup, unadaptable = evaluate(
                    w, table, space, target, ks, args.draws, methods
                )
                row = {
                    "key": key,
                    "space": space,
                    "target": target,
                    "n_query": nq,
                    "scores": scores,
                    "proxies": proxies,
                    "adapt_seconds": t,
                    "setup_seconds": setup,
                    "unadaptable": unadaptable,
                    "loadavg": os.getloadavg()[0],
                }
                if out_path is not None:
                    with out_path.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                print(f"# {space} {target} done", file=sys.stderr, flush=True)
            rows.append(row)
            times += row["adapt_seconds"]
            setups += row["setup_seconds"]
        print(f"\n## {space}")
        report(rows, ks, methods)
        if args.plot:
            path = args.plot.replace(".png", f"_{space}.png")
            plot(rows, ks, methods[0], path, space)
            print(f"# plot: {path}")
    t = np.array(times)
    s = np.array(setups)
    print(
        f"\n# adaptation time: median {np.median(t) * 1e3:.1f} ms, p90 "
        f"{np.quantile(t, 0.9) * 1e3:.1f} ms, max {t.max():.2f} s over {t.size} fits"
    )
    print(
        f"# proxy predictor + prior, per (target, proxy): median {np.median(s):.2f} s, "
        f"max {s.max():.2f} s over {s.size}"
    )
    print(f"# load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
