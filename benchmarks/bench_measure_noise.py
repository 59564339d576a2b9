"""Where the noise of this machine comes from: window medians vs minima, normal vs SCHED_FIFO.

A bare ``InferenceSession.run`` loop (no latbench harness) on one emitted NB201 model, pinned to
the last CPU, timed in ``--windows`` windows of ``--seconds`` each, alternating the normal
scheduler and SCHED_FIFO (real-time priority; needs root or CAP_SYS_NICE, skipped otherwise).
For each window: min, p10, median, p90 (ms) and the share of samples whose wall time exceeds the
thread's CPU time by > 5 % (preempted samples). If the medians move while the minima stay and
FIFO changes nothing, the slow-down comes from outside the process's CPU (the host), and the
repeatable statistic is the minimum.

    .venv/bin/python benchmarks/bench_measure_noise.py [--arch 2] [--windows 6] [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", type=int, default=2, help="index into nb201.sample(20, seed=0)")
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort

    from latbench.spaces import export, get_space

    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    nb = get_space("nb201")
    arch = nb.sample(20, seed=0)[args.arch]
    print(f"command: {sys.executable} {' '.join(sys.argv)}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, pinned to CPU {cpu}; "
        f"onnxruntime {ort.__version__}, 1 thread; arch {arch}; load {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = str(export(nb.build(arch), "onnx", Path(tmp) / "m.onnx"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    feed = {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    for _ in range(50):
        sess.run(None, feed)

    def window() -> tuple[list[float], float]:
        wall, pre = [], 0
        end = time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            c0, t0 = time.thread_time(), time.perf_counter()
            sess.run(None, feed)
            t1, c1 = time.perf_counter(), time.thread_time()
            wall.append((t1 - t0) * 1e3)
            pre += (t1 - t0) > 1.05 * (c1 - c0)
        return wall, pre / len(wall)

    policies = [("normal", os.SCHED_OTHER, 0)]
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        policies.append(("fifo", os.SCHED_FIFO, 10))
    except PermissionError:
        print("SCHED_FIFO not permitted here: normal scheduler only")
    print(f"{'window':>6} {'policy':<7} {'min':>7} {'p10':>7} {'median':>7} {'p90':>7} preempted")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in policies}
    for w in range(args.windows):
        name, policy, prio = policies[w % len(policies)]
        os.sched_setscheduler(0, policy, os.sched_param(prio))
        xs, pre = window()
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        q = statistics.quantiles(xs, n=10)
        med = statistics.median(xs)
        results[name].append((min(xs), med))
        print(f"{w:>6} {name:<7} {min(xs):7.3f} {q[0]:7.3f} {med:7.3f} {q[-1]:7.3f} {pre:8.1%}")
    for name, rows in results.items():
        mins, meds = [r[0] for r in rows], [r[1] for r in rows]
        print(
            f"{name}: window minima {min(mins):.3f}-{max(mins):.3f} ms, "
            f"medians {min(meds):.3f}-{max(meds):.3f} ms over {len(rows)} windows"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
