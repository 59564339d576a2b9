"""Collection overhead at default settings: the share of wall time outside the timed loops.

Runs ``collect`` on NB201 with the real local device and onnxruntime at the default harness
settings (bench.toml defaults), then splits the wall time into: timed inference loops
(samples x loops), warm-up, drift reference measurements, and the rest (emission, session
creation, worker start, store writes, bookkeeping). Target (issue 4): overhead <= 15 %.

    .venv/bin/python benchmarks/bench_datasets_collect.py [--archs 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import latbench.datasets as lds
from latbench.config import MEASURE_DEFAULTS
from latbench.datasets.collect import CollectSettings, collect
from latbench.devices import get_device
from latbench.profilers.harness import HarnessSettings
from latbench.spaces import get_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-time", type=float, default=None, help="override max_time_s (quiet-machine length)"
    )
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    space = get_space("nb201")
    archs = space.sample(args.archs, args.seed)
    measure = dict(MEASURE_DEFAULTS)
    if args.max_time is not None:
        measure["max_time_s"] = args.max_time
    settings = CollectSettings(collection="bench", harness=HarnessSettings.from_mapping(measure))
    device = get_device("local")
    try:
        with tempfile.TemporaryDirectory() as tmp, lds.open(Path(tmp) / "b.db") as store:
            r = collect(store, space, archs, [device], settings)
    finally:
        device.close()
    rest = r.wall_s - r.inference_s - r.warmup_s - r.drift_s
    what = "default harness" if args.max_time is None else f"max_time_s={args.max_time:g}"
    print(f"command: collect nb201, {args.archs} archs, {what}, local onnxruntime")
    print(f"wall {r.wall_s:.1f} s = timed loops {r.inference_s:.1f} s + warm-up {r.warmup_s:.1f} s"
          f" + drift reference {r.drift_s:.1f} s + other {rest:.1f} s")  # fmt: skip
    in_measure = r.measure_s - r.inference_s - r.warmup_s - r.drift_inference_s
    drift_parts = r.drift_s  # drift emission + measurement
    print(
        "breakdown of the fixed cost (drift reference included): "
        f"emission {r.emit_s:.2f} s, inside measure() but outside timed/warm-up loops "
        f"(worker IPC, session creation, input generation, statistics) "
        f"{in_measure:.2f} s (first call: worker start and imports), "
        f"store writes {r.store_s:.2f} s "
        f"(drift reference wall {drift_parts:.2f} s)"
    )
    n = max(1, r.measured)
    print(
        f"fixed cost per arch: emission {r.emit_s / n:.3f} s, measure() overhead "
        f"{in_measure / n:.3f} s, store {r.store_s / n:.4f} s"
    )
    print(f"overhead (emission, sessions, worker, store, bookkeeping): {rest / r.wall_s:.1%}")
    print(f"overhead counting warm-up too: {(rest + r.warmup_s) / r.wall_s:.1%}")
    print(f"per arch: {r.wall_s / max(1, r.measured):.2f} s; ok {r.ok}, failed {r.failed}")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
