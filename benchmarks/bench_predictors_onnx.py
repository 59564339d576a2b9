"""Predicting model files: predictors fitted on graphs (``predictor fit --graphs``), applied to
ONNX models (``predictor predict --onnx``), as nn-Meter users predict their models.

For each (space, device): ``kernel`` and ``flops`` fitted on the graphs of 900 random reference
architectures; then ``--held-out`` other architectures are exported to ONNX, imported back
(:func:`latbench.spaces.onnx_import.from_onnx`) and predicted. Printed per model: fit time, the
time per ONNX model (import + predict; median and range), the largest difference between the
ONNX path and the architecture's own graph (the import must lose nothing), and Spearman, MAPE
and the share within +-10 % of the ONNX-path predictions against the reference measurements.

    python benchmarks/bench_predictors_onnx.py [--held-out 40]
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
from latbench.datasets import load_reference
from latbench.predictors.metrics import acc_within, mape, spearman
from latbench.spaces import export, get_space
from latbench.spaces.onnx_import import from_onnx

CASES = (("nb201", "nnmeter/cortexA76cpu_tflite21"), ("fbnet", "help/pixel3"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--held-out", type=int, default=40)
    ap.add_argument("--train", type=int, default=900)
    args = ap.parse_args()
    print(f"# bench_predictors_onnx: {vars(args)}")
    print(f"# machine: {platform.machine()}, python {platform.python_version()}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for space_name, device in CASES:
        sp = get_space(space_name)
        d = load_reference(space_name)
        d = d[d.device == device].reset_index(drop=True)
        perm = np.random.default_rng(0).permutation(len(d))
        tr, te = perm[: args.train], perm[args.train : args.train + args.held_out]
        graphs = [sp.build(a) for a in d.arch.iloc[tr]]
        y_te = d.latency_ms.to_numpy()[te]
        for name in ("kernel", "flops"):
            t0 = time.perf_counter()
            p = predictors.create(name).fit(
                graphs, d.latency_ms.to_numpy()[tr], space="graph", devices=[device] * len(tr)
            )
            fit_s = time.perf_counter() - t0
            per_model, via_onnx, diffs = [], [], []
            with tempfile.TemporaryDirectory() as tmp:
                for i, arch in enumerate(d.arch.iloc[te]):
                    g = sp.build(arch)
                    path = export(g, "onnx", os.path.join(tmp, f"m{i}.onnx"), seed=0)
                    t1 = time.perf_counter()
                    pred = float(p.predict([from_onnx(path)])[0])
                    per_model.append(time.perf_counter() - t1)
                    os.unlink(path)
                    via_onnx.append(pred)
                    diffs.append(abs(pred / float(p.predict([g])[0]) - 1))
            pr = np.asarray(via_onnx)
            print(
                f"{space_name} {device} {name}: fit {fit_s:.2f} s on {len(tr)} graphs; ONNX "
                f"import + predict per model median {1e3 * statistics.median(per_model):.0f} ms "
                f"({1e3 * min(per_model):.0f}-{1e3 * max(per_model):.0f}); max |ONNX / graph - 1| "
                f"{max(diffs):.1e}; on {len(te)} held-out models: Spearman "
                f"{spearman(y_te, pr):.3f}, MAPE {mape(y_te, pr):.1f} %, within +-10 % "
                f"{100 * acc_within(y_te, pr, 10.0):.0f} %"
            )
    print(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
