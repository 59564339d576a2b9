"""A kernel predictor trained from per-operator profiles (``latbench predictor fit-kernels``)
against predictors trained on the same models' end-to-end latencies, on this CPU.

``--train`` random NB201 architectures are measured on ``local`` with onnxruntime's
per-operator profiler (what ``fit-kernels`` does), ``--test`` others without it, one after the
other in one run (A B A B: a profiled train model, then a test model). Fitted on the train
models: ``kernel`` from the profiles (calibrated to end-to-end latency, as ``fit-kernels``),
and, on their end-to-end latencies alone, ``kernel`` (per-type linear costs), ``flops`` and
``gbm``. Printed: Spearman, MAPE and the share within +-10 % on the test models.

    python benchmarks/bench_kernel_profiles.py [--train 30] [--test 30] [--max-time 0.5]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np

from latbench import predictors
from latbench.devices import get_device
from latbench.predictors.encodings import arch_kernels
from latbench.predictors.kernel import KernelPredictor, fit_calibration, kernels_from_profile
from latbench.predictors.metrics import acc_within, mape, spearman
from latbench.profilers.harness import HarnessSettings
from latbench.spaces import export, get_space


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=30)
    ap.add_argument("--test", type=int, default=30)
    ap.add_argument("--max-time", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"# bench_kernel_profiles: {vars(args)}")
    print(f"# machine: {platform.machine()}, python {platform.python_version()}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    nb = get_space("nb201")
    archs = nb.sample(args.train + args.test, seed=args.seed)
    train, test = archs[: args.train], archs[args.train :]
    settings = HarnessSettings(min_time_s=min(0.3, args.max_time), max_time_s=args.max_time)
    profiles: dict[str, list[dict]] = {}
    lat: dict[str, float] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, get_device("local") as dev:
        order = [a for pair in zip(train, test, strict=False) for a in pair]
        order += train[len(test) :] + test[len(train) :]
        for i, arch in enumerate(order):
            path = export(nb.build(arch), "onnx", os.path.join(tmp, f"m{i}.onnx"), seed=0)
            profiled = arch in train
            m = dev.measure(str(path), threads=1, settings=settings, per_op=profiled)
            assert m.ok, m.error
            lat[arch] = float(m.latency_ms)
            if profiled:
                profiles[arch] = list(m.per_op or [])
    print(f"# measured {len(order)} models in {time.perf_counter() - t0:.0f} s")
    kernels, times = [], []
    for arch in train:
        for k, t in kernels_from_profile(nb.build(arch), profiles[arch]):
            kernels.append(k)
            times.append(t)
    y_tr = np.array([lat[a] for a in train])
    y_te = np.array([lat[a] for a in test])
    prof = KernelPredictor().fit_kernels(kernels, times, space="nb201", device="local")
    n_tr = [len(arch_kernels("nb201", a)) for a in train]
    prof.calibrate(*fit_calibration(prof.predict(train), n_tr, y_tr))
    models = {"kernel from profiles": prof}
    for name in ("kernel", "flops", "gbm"):
        models[f"{name} on model latencies"] = predictors.create(name).fit(
            train, y_tr, space="nb201"
        )
    for name, p in models.items():
        pred = p.predict(test)
        print(
            f"{name:<28} Spearman {spearman(y_te, pred):.3f}  MAPE {mape(y_te, pred):5.1f} %  "
            f"within +-10 % {100 * acc_within(y_te, pred, 10.0):3.0f} %  "
            f"({len(train)} train, {len(test)} test models)"
        )
    print(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
