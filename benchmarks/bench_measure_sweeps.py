"""Sweeps of one model: ``latbench measure TARGET --threads 1,2`` and ``--batch 1,8`` on this
machine's CPU.

Three models emitted to ONNX: the README's NB201 cell (``cell``, small convolutions at 32x32),
the NB201 cell of 3x3 convolutions only (``heavy``) and an FBNet network (``fbnet``, 224x224).
Each repetition runs, on one ``local`` device at the default harness budget (1 s of timing per
variant):

* 1 vs 1 thread: the same model, the same setting twice, in interleaved rounds
  (``Device.measure_variants``, exactly what the command runs): the ratio should be 1, and how
  often its 95 % CI holds 1 is how often a sweep shows a difference that is not there;
* 1 vs 2 threads: the ratio, the speedup (1 / ratio) and the parallel efficiency (speedup / 2),
  as ``latbench measure --threads 1,2`` prints them;
* batch 1 vs 8 (one thread; the architecture emitted at each size, as the command does): the
  time per sample and the throughput gain (8 / ratio), as ``latbench measure --batch 1,8``
  prints them.

Figures, over the repetitions: median and range of the 1/1 ratio and how often its CI held 1;
median and range of the 1-vs-2 speedup, how often it was shown (the CI excludes 1), and the
wall time of one sweep; median and range of the batch-8 throughput gain and time per sample.

    .venv/bin/python benchmarks/bench_measure_sweeps.py [--reps 5] [--rounds 20] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from latbench.commands._measure_compare import (
    batch_scaling,
    compare_batches,
    compare_threads,
    ratio_to,
    scaling,
)
from latbench.config import load_config
from latbench.devices import get_device
from latbench.spaces import export, get_space

MODELS = {
    "cell": (
        "nb201",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "skip_connect~2|",
    ),
    "heavy": (
        "nb201",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|",
    ),
    "fbnet": ("fbnet", "8-1-3-6-5-2-2-1-3-5-0-5-3-7-0-2-7-5-2-6-8-4"),
}


def _spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.3f}  range {min(xs):.3f}-{max(xs):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--models", default=",".join(MODELS), help="of " + ", ".join(MODELS))
    ap.add_argument("--batch", type=int, default=8, help="the batch size compared with 1")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweeps-"))
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    files, batched = {}, {}
    for name in names:
        space, arch = MODELS[name]
        files[name] = str(export(get_space(space).build(arch), "onnx", tmp / f"{name}.onnx"))
        graph = get_space(space).build(arch, batch=args.batch)
        batched[name] = str(export(graph, "onnx", tmp / f"{name}_b{args.batch}.onnx"))
    common = {"runtime": "onnxruntime"}
    null: dict[str, list[float]] = {n: [] for n in names}
    covers = dict.fromkeys(names, 0)
    speed: dict[str, list[float]] = {n: [] for n in names}
    shown = dict.fromkeys(names, 0)
    walls: dict[str, list[float]] = {n: [] for n in names}
    medians: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    gains: dict[str, list[float]] = {n: [] for n in names}
    per_sample: dict[str, list[float]] = {n: [] for n in names}
    t0 = time.time()
    load0 = os.getloadavg()[0]
    with get_device("local", load_config()) as dev:
        for rep in range(args.reps):
            for name in names:  # 1/1 and 1/2 alternate within each repetition
                a, b = dev.measure_variants(
                    files[name],
                    [{"threads": 1}, {"threads": 1}],
                    rounds=args.rounds,
                    statistic="median",
                    **common,
                )
                r = ratio_to(a, b, "median")
                assert r is not None, (a.error, b.error)
                null[name].append(r["ratio"])
                covers[name] += r["ci_low"] <= 1 <= r["ci_high"]
                w0 = time.perf_counter()
                one, two = compare_threads(dev, files[name], [1, 2], args.rounds, "median", common)
                walls[name].append(time.perf_counter() - w0)
                r = ratio_to(one, two, "median")
                assert r is not None, (one.error, two.error)
                sc = scaling([1, 2], r, 1)
                assert sc is not None
                speed[name].append(sc["speedup"])
                shown[name] += r["shown"] == "faster"
                medians[name].append((one.median_ms, two.median_ms))
                b1, bn = compare_batches(
                    dev,
                    [files[name], batched[name]],
                    [1, args.batch],
                    args.rounds,
                    "median",
                    {**common, "threads": 1},
                )
                r = ratio_to(b1, bn, "median")
                bs = batch_scaling([1, args.batch], r, 1, bn)
                assert bs is not None, (b1.error, bn.error)
                gains[name].append(bs["throughput_gain"])
                per_sample[name].append(bs["ms_per_sample"])
                print(
                    f"rep {rep + 1}/{args.reps} {name}: 1/1 {null[name][-1]:.3f}; 1 -> 2 threads "
                    f"speedup {sc['speedup']:.3f} ({one.median_ms:.3f} -> {two.median_ms:.3f} "
                    f"ms), {walls[name][-1]:.1f} s; batch {args.batch} throughput gain "
                    f"{gains[name][-1]:.3f} ({per_sample[name][-1]:.3f} ms/sample)",
                    flush=True,
                )
    n = args.reps
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
        f"{load0:.2f} -> {os.getloadavg()[0]:.2f}, {time.time() - t0:.0f} s; {n} repetitions, "
        f"{args.rounds} rounds"
    )
    for name in names:
        one_ms = statistics.median(m[0] for m in medians[name])
        print(
            f"{name:6} ({one_ms:.3f} ms at 1 thread)  1/1 ratio {_spread(null[name])}, CI holds 1 "
            f"in {covers[name]} of {n}; 1 -> 2 speedup {_spread(speed[name])} (efficiency "
            f"{statistics.median(speed[name]) / 2:.0%}), shown faster in {shown[name]} of {n}; "
            f"sweep wall {statistics.median(walls[name]):.1f} s; batch {args.batch} throughput "
            f"gain {_spread(gains[name])}, {_spread(per_sample[name])} ms/sample"
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
