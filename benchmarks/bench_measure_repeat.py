"""Repeatability: 20 NB201 architectures measured in 3 separate invocations.

Each invocation is a fresh ``python`` process that opens the ``local`` device (a fresh pinned
worker) and measures the same 20 emitted ONNX models at default harness settings. ``--mode
interleaved`` (default) measures them in interleaved rounds; ``--mode sequential`` one after the
other. Figures: per-architecture spread across invocations ((max - min) / median of the three
medians), its median over the architectures, and Spearman's rank correlation between every
pair of invocations.

    .venv/bin/python benchmarks/bench_measure_repeat.py [--mode interleaved] [--invocations 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ONE_INVOCATION = r"""
import json, sys
from latbench.devices import get_device
from latbench.config import Config, MEASURE_DEFAULTS
from latbench.profilers.harness import HarnessSettings
paths, mode, rounds = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
settings = HarnessSettings.from_mapping(MEASURE_DEFAULTS)
with get_device("local", Config()) as dev:
    if mode == "interleaved":
        ms = dev.measure_many(paths, settings=settings, interleave=rounds)
    else:
        ms = [dev.measure(p, settings=settings) for p in paths]
print(json.dumps([[m.median_ms, m.min_ms, m.iqr_ms, m.runs] for m in ms]))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--invocations", type=int, default=3)
    ap.add_argument("--mode", choices=["interleaved", "sequential"], default="interleaved")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from scipy.stats import spearmanr

    from latbench.spaces import export, get_space

    nb = get_space("nb201")
    archs = nb.sample(args.n, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [
            str(export(nb.build(a), "onnx", Path(tmp) / f"a{i}.onnx")) for i, a in enumerate(archs)
        ]
        runs = []
        for k in range(args.invocations):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    ONE_INVOCATION,
                    json.dumps(paths),
                    args.mode,
                    str(args.rounds),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(
                f"invocation {k + 1}: medians (ms) " + " ".join(f"{r[0]:.3f}" for r in runs[-1]),
                flush=True,
            )
    for stat, idx in (("median", 0), ("min", 1)):
        per_arch = []
        for i in range(len(paths)):
            vals = [run[i][idx] for run in runs]
            per_arch.append((max(vals) - min(vals)) / statistics.median(vals))
        rhos = [
            float(spearmanr([r[idx] for r in a], [r[idx] for r in b]).statistic)
            for a, b in itertools.combinations(runs, 2)
        ]
        q = statistics.quantiles(per_arch, n=4)
        print(
            f"[{args.mode}, statistic={stat}] across-invocation spread: median "
            f"{statistics.median(per_arch):.2%} (IQR {q[0]:.2%}-{q[2]:.2%}, max "
            f"{max(per_arch):.2%}); Spearman rho between invocations: "
            + ", ".join(f"{r:.4f}" for r in rhos)
        )
    print("machine: 2-core shared x86_64 VM; default harness settings (bench.toml [measure])")


if __name__ == "__main__":
    main()
