"""FBNet: do the architectures a search returns meet the budget when measured on this CPU?

1. Measure ``--train`` random FBNet architectures (224x224, batch 1, onnxruntime, 1 thread) on
   this machine (``local`` device) and fit a predictor on them; measure ``--holdout`` more to
   estimate the predictor's relative error (90th percentile of |pred/measured - 1|), used as the
   search's budget margin.
2. Budget = the 40th percentile of the measured latencies. Regularized evolution, objective
   ``params``, 2,000 evaluations, under ``budget * (1 - margin)``.
3. Measure the ``--verify`` best returned architectures and count those within the budget
   (goal: >= 95 %).

    .venv/bin/python benchmarks/bench_nas_fbnet_verify.py [--train 60 --holdout 20 --verify 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np

from latbench import predictors
from latbench.devices import get_device
from latbench.nas import latency_constraint, make_objective, run_search
from latbench.profilers.harness import HarnessSettings
from latbench.spaces import export, get_space

SETTINGS = HarnessSettings(min_time_s=0.4, max_time_s=2.0, warmup_runs=3, min_runs=10)


def measure(device: object, space: object, archs: list[str], tmp: str) -> list[float]:
    out = []
    for i, a in enumerate(archs):
        path = export(space.build(a), "onnx", os.path.join(tmp, f"m{i}.onnx"))  # type: ignore[attr-defined]
        m = device.measure(str(path), runtime="onnxruntime", threads=1, settings=SETTINGS)  # type: ignore[attr-defined]
        out.append(m.median_ms if m.ok else float("nan"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=60)
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--verify", type=int, default=20)
    ap.add_argument("--model", default="ridge")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}; python {platform.python_version()}")
    print("command: .venv/bin/python benchmarks/bench_nas_fbnet_verify.py", vars(args))
    space = get_space("fbnet")
    t0 = time.perf_counter()
    archs = space.sample(args.train + args.holdout, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp, get_device("local") as dev:
        lat = measure(dev, space, archs, tmp)
        y = np.array(lat)
        tr, ho = slice(0, args.train), slice(args.train, None)
        p = predictors.create(args.model).fit(archs[tr], y[tr], space="fbnet")
        rel = np.abs(p.predict(archs[ho]) / y[ho] - 1)
        margin = float(np.percentile(rel, 90))
        budget = float(np.percentile(y, 40))
        print(
            f"measured {len(y)} archs in {time.perf_counter() - t0:.0f} s: median "
            f"{np.median(y):.2f} ms (min {y.min():.2f}, max {y.max():.2f}); holdout MAPE "
            f"{100 * rel.mean():.1f} %, p90 {100 * margin:.1f} %"
        )
        con = latency_constraint(p, budget * (1 - margin), space, label="local")
        r = run_search(
            space, make_objective("params", space), [con], "evolution",
            evaluations=2000, seed=args.seed, top=args.verify,
        )  # fmt: skip
        picks = [c.arch for c in r.best]
        measured = measure(dev, space, picks, tmp)
    met = [m <= budget for m in measured]
    for c, m in zip(r.best, measured, strict=True):
        print(
            f"  predicted {c.values[con.name]:7.2f} ms  measured {m:7.2f} ms  "
            f"{'ok' if m <= budget else 'OVER'}"
        )
    print(
        f"budget {budget:.2f} ms (search under {budget * (1 - margin):.2f} ms); search "
        f"{r.evaluations} evals in {r.wall_s:.2f} s; {sum(met)}/{len(met)} returned architectures "
        f"({100 * sum(met) / len(met):.0f} %) met the budget when measured; median measured/budget "
        f"{statistics.median(m / budget for m in measured):.3f}; "
        f"total {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
