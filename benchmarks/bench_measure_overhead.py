"""Harness overhead: latbench's median vs a bare ``InferenceSession.run`` loop, interleaved.

Both run in the same pinned worker process on the same model, alternating A B A B over
``--rounds`` rounds; the figure is the ratio (and difference) of the medians of all samples.
Models: a conv net of >= 1 ms and a tiny Add model (microseconds), built with onnx.helper.

    .venv/bin/python benchmarks/bench_measure_overhead.py [--rounds 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from latbench.profilers.harness import HarnessSettings
from latbench.profilers.task import MeasureSpec, run_measurement
from latbench.profilers.worker import Worker, default_cpus
from measure_models import conv_net, tiny_net


def bare_loop(path: str, seconds: float) -> list[float]:
    """The reference: a plain timed loop around InferenceSession.run (per-call ms)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feeds = {inp.name: np.random.default_rng(0).uniform(-1, 1, inp.shape).astype(np.float32)}
    for _ in range(20):
        sess.run(None, feeds)
    out: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    settings = HarnessSettings(
        warmup_runs=20,
        warmup_time_s=0.1,
        min_runs=20,
        min_time_s=args.seconds,
        max_time_s=args.seconds,
        spread_threshold=0,
    )
    with tempfile.TemporaryDirectory() as tmp, Worker(default_cpus(1)) as w:
        models = {
            "conv (>=1 ms)": str(conv_net(Path(tmp) / "c.onnx", channels=32, size=64)),
            "tiny (Add)": str(tiny_net(Path(tmp) / "t.onnx")),
        }
        print("machine: 2-core shared x86_64 VM; worker pinned to CPU", default_cpus(1))
        for label, path in models.items():
            ours: list[float] = []
            bare: list[float] = []
            per_round: list[float] = []
            for _ in range(args.rounds):
                b = w.call(bare_loop, path, args.seconds)
                m = w.call(run_measurement, MeasureSpec(model=path, settings=settings))
                bare += b
                ours += list(m.samples_ms)
                per_round.append(m.median_ms / statistics.median(b))
            mo, mb = statistics.median(ours), statistics.median(bare)
            q = statistics.quantiles(per_round, n=4)
            print(
                f"{label:14s} latbench median {mo * 1e3:9.2f} us  bare {mb * 1e3:9.2f} us  "
                f"ratio {mo / mb:.4f} (per-round ratios IQR {q[0]:.3f}-{q[2]:.3f})  "
                f"diff {(mo - mb) * 1e3:+.2f} us  loops {m.loops}"
            )


if __name__ == "__main__":
    main()
