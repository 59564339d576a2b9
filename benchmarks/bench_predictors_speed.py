"""Speed of latency predictors: whole-space prediction and GCN training, in-process.

* ``default``, ``gbm`` and ``ridge`` fitted on 900 NAS-Bench-201 architectures (fit time), then
  all 15,625 predicted, encoding included (fresh process: the first call of the first model
  parses every string).
* ``gcn`` (default settings) trained on 900 architectures.

    python benchmarks/bench_predictors_speed.py [--repeats 5] [--fit-repeats 3] [--gcn-repeats 3]

``--fit-repeats 0`` skips the tabular models, ``--gcn-repeats 0`` the GCN.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

from latbench import predictors
from latbench.datasets import load_reference
from latbench.predictors.encodings import space


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fit-repeats", type=int, default=3)
    ap.add_argument("--gcn-repeats", type=int, default=3)
    ap.add_argument("--device", default="help/pixel3")
    args = ap.parse_args()
    df = load_reference("nb201")
    sub = df[df.device == args.device]
    perm = np.random.default_rng(0).permutation(len(sub))[:900]
    archs = sub.arch.to_numpy()[perm].tolist()
    y = sub.latency_ms.to_numpy()[perm]
    every = list(space("nb201").enumerate())
    print(f"machine: 2-core shared {platform.machine()} VM; command: {' '.join(sys.argv)}")
    print(f"load average at start: {os.getloadavg()}; CPUs allowed: {len(os.sched_getaffinity(0))}")
    for name in ("default", "gbm", "ridge") if args.fit_repeats > 0 else ():
        fit_s, fit_cpu = [], []
        for _ in range(args.fit_repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            p = predictors.create(name).fit(archs, y, space="nb201")
            fit_s.append(time.perf_counter() - t0)
            fit_cpu.append(time.process_time() - c0)
        times, cpu = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            out = p.predict(every)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert out.shape == (15625,)
        print(
            f"predict 15,625 archs with {name}: median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}, n={len(times)}; first call "
            f"{times[0]:.3f} s; CPU median {statistics.median(cpu):.3f} s); fit on 900: median "
            f"{statistics.median(fit_s):.2f} s (min {min(fit_s):.2f}, max {max(fit_s):.2f}, "
            f"n={len(fit_s)}; CPU median {statistics.median(fit_cpu):.2f} s)",
            flush=True,
        )
    times, cpu = [], []
    for seed in range(args.gcn_repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        predictors.create("gcn", random_state=seed).fit(archs, y, space="nb201")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if not times:
        return 0
    print(
        f"gcn fit on 900 archs: median {statistics.median(times):.1f} s "
        f"(min {min(times):.1f}, max {max(times):.1f}, n={len(times)}; CPU median "
        f"{statistics.median(cpu):.1f} s, torch threads {torch_threads()})"
    )
    print(f"load average at end: {os.getloadavg()}")
    return 0


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


if __name__ == "__main__":
    raise SystemExit(main())
