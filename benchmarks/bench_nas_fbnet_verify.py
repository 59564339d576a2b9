"""FBNet: do the architectures a search returns meet the budget when measured on this CPU?

1. Measure ``--train`` random FBNet architectures at ``--resolution`` (default 96: affordable
   on a busy 2-core CPU; batch 1, onnxruntime, 1 thread, ``local`` device) and fit a predictor
   (default ``flops``: linear in MACs, parameters and activation bytes; few features, so it
   does not invite exploitation the way a 198-feature one-hot model fitted on 60 rows does).
2. Guards against predictor error: the budget margin is the cross-validated 90th percentile of
   the one-sided relative error (:func:`latbench.nas.objectives.error_margin`), and the search
   is restricted to the training region (parameters and MACs at most the training maximum).
3. Budget = the 40th percentile of the measured training latencies. Evolution, objective
   ``params``, 2,000 evaluations, under ``budget * (1 - margin)``.
4. Measure the ``--verify`` best returned architectures *interleaved* with as many training
   architectures measured again (A B A B), so a change of machine load shows up as drift of
   the re-measured training archs; count the returned architectures within the budget
   (goal: >= 95 %), and also within the drift-corrected budget.

Per-arch latency is ``--statistic`` (default ``min`` of the wall-clock samples: on a loaded
shared machine the median drifts several-fold with the load; the minimum does not).
``--measurements FILE`` keeps the training measurements (CSV ``arch,latency_ms``, the format of
``latbench search --margin-from``) and reuses them when the file exists.

    .venv/bin/python benchmarks/bench_nas_fbnet_verify.py [--train 100 --verify 20 --quantile 0.97]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import tempfile
import time

import numpy as np

from latbench import predictors
from latbench.devices import get_device
from latbench.nas import latency_constraint, make_objective, metric_constraint, run_search
from latbench.nas.objectives import GraphStats, error_margin
from latbench.profilers.harness import HarnessSettings
from latbench.spaces import export, get_space

SETTINGS = HarnessSettings(min_time_s=0.3, max_time_s=2.0, warmup_runs=3, min_runs=15)


STAT = "min"  # set from --statistic in main()


def measure_all(
    device: object, space: object, archs: list[str], tmp: str
) -> list[dict[str, float]]:
    """Per arch: ``median`` and ``min`` of the wall-clock samples, ``cpu`` median CPU time."""
    out = []
    nan = float("nan")
    for i, a in enumerate(archs):
        path = export(space.build(a), "onnx", os.path.join(tmp, f"m{i}.onnx"))  # type: ignore[attr-defined]
        m = device.measure(str(path), runtime="onnxruntime", threads=1, settings=SETTINGS)  # type: ignore[attr-defined]
        ok = m.ok
        cpu = statistics.median(m.cpu_samples_ms) if ok and m.cpu_samples_ms else nan
        out.append(
            {
                "median": m.median_ms if ok else nan,
                "min": min(m.samples_ms) if ok else nan,
                "cpu": cpu,
            }
        )
    return out


def measure(device: object, space: object, archs: list[str], tmp: str) -> list[float]:
    """The ``--statistic`` of each arch (ms); the other statistics go to ``LAST``."""
    got = measure_all(device, space, archs, tmp)
    LAST.extend(got)
    return [g[STAT] for g in got]


LAST: list[dict[str, float]] = []


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=120)
    ap.add_argument("--verify", type=int, default=20)
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--model", default="flops")
    ap.add_argument("--quantile", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gbm-features", default="", help="gbm features (e.g. 'onehot+stats')")
    ap.add_argument(
        "--measurements", help="CSV of training measurements: read if it exists, else written"
    )
    ap.add_argument(
        "--statistic",
        choices=("min", "median", "cpu"),
        default="min",
        help="per-arch latency: min or median of the wall-clock samples, or median CPU time "
        "(min: load on a shared machine only ever adds time)",
    )
    ap.add_argument("--fit-only", action="store_true", help="stop after the predictor's errors")
    args = ap.parse_args()
    global STAT
    STAT = args.statistic
    print(f"machine: {platform.machine()}; python {platform.python_version()}")
    print("command: .venv/bin/python benchmarks/bench_nas_fbnet_verify.py", vars(args))
    space = get_space("fbnet", resolution=args.resolution)
    t0 = time.perf_counter()
    archs = space.sample(args.train, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp, get_device("local") as dev:
        if args.measurements and os.path.exists(args.measurements):
            with open(args.measurements, newline="") as f:
                rows = list(csv.DictReader(f))
            archs = [r["arch"] for r in rows]
            y = np.array([float(r["latency_ms"]) for r in rows])
            print(f"training measurements read from {args.measurements}")
        else:
            print(f"load average before training measurements: {load()}")
            y = np.array(measure(dev, space, archs, tmp))
            print(f"load average after training measurements: {load()}")
            if args.measurements:
                with open(args.measurements, "w") as f:  # the format of --margin-from
                    f.write("arch,latency_ms\n")
                    f.writelines(f"{a},{float(v)!r}\n" for a, v in zip(archs, y, strict=True))
        kw = {"features": args.gbm_features} if args.gbm_features else {}
        p = predictors.create(args.model, **kw).fit(archs, y, space="fbnet")
        margin = error_margin(p, archs, y, quantile=args.quantile, seed=args.seed)
        rel = np.abs(p.predict(archs) / y - 1)
        budget = float(np.percentile(y, 40))
        print(
            f"measured {len(y)} archs in {time.perf_counter() - t0:.0f} s: median "
            f"{np.median(y):.2f} ms (min {y.min():.2f}, max {y.max():.2f}); in-sample MAPE "
            f"{100 * rel.mean():.1f} %; CV p{100 * args.quantile:.0f} under-prediction margin "
            f"{100 * margin:.1f} %"
        )
        if args.fit_only:
            return
        stats = GraphStats(space)
        trust = [
            metric_constraint(m, float(stats(m, archs).max()), stats) for m in ("params", "flops")
        ]
        con = latency_constraint(p, budget * (1 - margin), space, label="local")
        r = run_search(
            space, make_objective("params", space), [con, *trust], "evolution",
            evaluations=2000, seed=args.seed, top=args.verify,
        )  # fmt: skip
        picks = [c.arch for c in r.best]
        again = [archs[i] for i in np.random.default_rng(1).permutation(len(archs))[: len(picks)]]
        print(f"load average before verification: {load()}")
        measured, remeasured, medians = [], [], []
        for a, b in zip(picks, again, strict=True):  # interleaved: returned, training, ...
            measured += measure(dev, space, [a], tmp)
            medians.append(LAST[-1]["median"])
            remeasured += measure(dev, space, [b], tmp)
        print(f"load average after verification: {load()}")
    orig = np.array([y[archs.index(b)] for b in again])
    drift = float(np.median(np.array(remeasured) / orig))
    met = [m <= budget for m in measured]
    met_drift = [m <= budget * drift for m in measured]
    for c, m in zip(r.best, measured, strict=True):
        print(
            f"  predicted {c.values[con.name]:7.3f} ms  measured {m:7.3f} ms  "
            f"{'ok' if m <= budget else 'OVER'}"
        )
    print(
        f"budget {budget:.3f} ms (search under {budget * (1 - margin):.3f} ms, trust region "
        f"params <= {trust[0].limit:.3g}, MACs <= {trust[1].limit:.3g}); search "
        f"{r.evaluations} evals in {r.wall_s:.2f} s; load drift (training archs re-measured "
        f"during verification / first measurement, median) {drift:.3f}"
    )
    print(
        f"RESULT: {sum(met)}/{len(met)} returned architectures ({100 * sum(met) / len(met):.0f} "
        f"%) met the budget when measured; {sum(met_drift)}/{len(met)} within the "
        f"drift-corrected budget; median measured/budget "
        f"{statistics.median(m / budget for m in measured):.3f} (statistic {STAT}); "
        f"median wall-clock of the returned archs within the budget: "
        f"{sum(m <= budget for m in medians)}/{len(medians)}; "
        f"total {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
