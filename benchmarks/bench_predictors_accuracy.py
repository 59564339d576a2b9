"""Accuracy of latency predictors on the reference NAS-Bench-201 data (BRP-NAS protocol).

For every device column: 900 random training architectures, the rest to test, several seeds.
Compares latbench's recommended ``default`` predictor with two baselines anyone writes in ten
lines: scikit-learn ``Ridge`` and ``GradientBoostingRegressor`` (default settings) on the
one-hot encoding, raw millisecond targets. Prints a Markdown table (mean over seeds).

    python benchmarks/bench_predictors_accuracy.py [--devices a,b] [--seeds 3] [--models default]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge

from latbench import predictors
from latbench.datasets import load_reference
from latbench.predictors import encodings
from latbench.predictors.metrics import acc_within, spearman


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=900)
    ap.add_argument("--models", default="default")
    args = ap.parse_args()
    df = load_reference("nb201")
    devices = args.devices.split(",") if args.devices else sorted(df.device.unique())
    models = args.models.split(",")
    print(f"# machine: 2-core shared {platform.machine()} VM; command: {' '.join(sys.argv)}")
    cols = ["ridge_oh", "gbm_oh", *models]
    print("| device | n | " + " | ".join(f"{c} acc10 | {c} rho" for c in cols) + " |")
    print("|---|---|" + "---|---|" * len(cols))
    summary: dict[str, list[tuple[float, float]]] = {c: [] for c in cols}
    t0 = time.perf_counter()
    for dev in devices:
        sub = df[df.device == dev]
        archs = sub.arch.tolist()
        y = sub.latency_ms.to_numpy()
        oh = encodings.onehot("nb201", archs)
        res: dict[str, list[tuple[float, float]]] = {c: [] for c in cols}
        for seed in range(args.seeds):
            perm = np.random.default_rng(seed).permutation(len(archs))
            tr, te = perm[: args.train_size], perm[args.train_size :]
            preds = {
                "ridge_oh": Ridge().fit(oh[tr], y[tr]).predict(oh[te]),
                "gbm_oh": GradientBoostingRegressor(random_state=seed)
                .fit(oh[tr], y[tr])
                .predict(oh[te]),
            }
            for m in models:
                p = predictors.create(m).fit([archs[i] for i in tr], y[tr], space="nb201")
                preds[m] = p.predict([archs[i] for i in te])
            for c in cols:
                res[c].append((acc_within(y[te], preds[c], 10), spearman(y[te], preds[c])))
        row = []
        for c in cols:
            a = np.array(res[c])
            summary[c].append((a[:, 0].mean(), a[:, 1].mean()))
            row.append(f"{a[:, 0].mean() * 100:.1f} | {a[:, 1].mean():.4f}")
        print(f"| {dev} | {len(archs)} | " + " | ".join(row) + " |", flush=True)
    means = []
    for c in cols:
        acc, rho = np.mean([s[0] for s in summary[c]]), np.mean([s[1] for s in summary[c]])
        means.append(f"{acc * 100:.1f} | {rho:.4f}")
    print("| **mean** | | " + " | ".join(means) + " |")
    best = {
        c: sum(
            1
            for i in range(len(devices))
            if summary[c][i][0] > max(summary["ridge_oh"][i][0], summary["gbm_oh"][i][0])
            and summary[c][i][1] > max(summary["ridge_oh"][i][1], summary["gbm_oh"][i][1])
        )
        for c in models
    }
    print(
        f"\ndevices where the model beats both baselines in both metrics: {best} of {len(devices)}"
    )
    print(f"wall time: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
