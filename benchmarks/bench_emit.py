"""Emission speed: latbench's direct ONNX / TFLite writers against ``torch.onnx.export``.

For N random NAS-Bench-201 architectures (default 200), interleaved per architecture
(A B C, A B C, ...), times:

* ``to_onnx(graph, seed).SerializeToString()`` (graph built beforehand, weights drawn inside);
* ``torch.onnx.export`` of the same architecture's ``to_torch`` module (module built beforehand,
  TorchScript exporter, ``dynamo=False``: the ``torch.export``-based exporter needs onnxscript,
  which is not a dependency, and is slower still);
* ``to_tflite(graph, seed)``.

Prints median and IQR of each and the per-architecture speed-up ratio (median and IQR).
Usage: ``python benchmarks/bench_emit.py [--n 200] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from latbench.spaces import get_space
from latbench.spaces.emit_onnx import to_onnx
from latbench.spaces.emit_tflite import to_tflite
from latbench.spaces.emit_torch import to_torch


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(xs, [25, 50, 75])
    return float(q1), float(q2), float(q3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = get_space("nb201")
    archs = space.sample(args.n, seed=args.seed)
    onnx_ms: list[float] = []
    torch_ms: list[float] = []
    tflite_ms: list[float] = []
    # warm-up: imports, first-call caches of both exporters
    g0 = space.build(archs[0])
    to_onnx(g0).SerializeToString()
    to_tflite(g0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            to_torch(g0),
            (torch.zeros(1, 3, 32, 32),),
            io.BytesIO(),  # type: ignore[arg-type]
            dynamo=False,
        )
    for i, arch in enumerate(archs):
        graph = space.build(arch)
        module = to_torch(graph, seed=i)
        x = torch.zeros(graph.inputs[0].shape)

        t0 = time.perf_counter()
        to_onnx(graph, seed=i).SerializeToString()
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (x,),
                io.BytesIO(),  # type: ignore[arg-type]
                dynamo=False,
                opset_version=17,
                input_names=["input"],
                output_names=["output"],
            )
        t2 = time.perf_counter()
        to_tflite(graph, seed=i)
        t3 = time.perf_counter()
        onnx_ms.append((t1 - t0) * 1e3)
        torch_ms.append((t2 - t1) * 1e3)
        tflite_ms.append((t3 - t2) * 1e3)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(archs)}", file=sys.stderr)

    ratio = [t / o for t, o in zip(torch_ms, onnx_ms, strict=True)]
    tfl_ratio = [t / o for t, o in zip(tflite_ms, onnx_ms, strict=True)]
    print(f"command: python benchmarks/bench_emit.py --n {args.n} --seed {args.seed}")
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}")
    print(f"{len(archs)} random NB201 architectures, interleaved; times in ms (median [IQR])")
    for label, xs in (
        ("latbench to_onnx + serialize", onnx_ms),
        ("torch.onnx.export (dynamo=False)", torch_ms),
        ("latbench to_tflite", tflite_ms),
    ):
        q1, q2, q3 = quartiles(xs)
        print(f"  {label:<34} {q2:8.2f} [{q1:.2f}, {q3:.2f}]")
    q1, q2, q3 = quartiles(ratio)
    print(f"  speed-up torch.onnx.export / to_onnx: median {q2:.1f}x [IQR {q1:.1f}, {q3:.1f}]")
    print(
        f"  ratio of medians: {statistics.median(torch_ms) / statistics.median(onnx_ms):.1f}x; "
        f"to_tflite / to_onnx: median {statistics.median(tfl_ratio):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
