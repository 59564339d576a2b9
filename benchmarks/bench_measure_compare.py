"""Comparing two models: the paired, interleaved ratio of ``latbench measure A B`` against the
ratio of two measurements taken one after the other.

Two NB201 cells emitted to ONNX: A (the README's cell) and B (A with its last skip replaced by
a 3x3 convolution, a few per cent slower), and A', a second file of A. Each repetition runs, in
this order, on one ``local`` device (one pinned worker) at the default harness budget (1 s of
timing per model):

* paired A/A' and paired A/B: the rounds, the ratio and its 95 % CI exactly as ``latbench
  measure A B`` takes and reports them (``_measure_compare.compare``: half the rounds with the
  models loaded in each order; the median of the per-round medians' ratios);
* sequential A/A' and sequential A/B: ``measure(A)`` then ``measure(B)``, the ratio of the
  two medians (what comparing two separate runs gives).

Figures: over the repetitions, the median and range of each ratio (how far one comparison of
the same two models can land from another), for the paired A/A' how often the CI holds 1
(a false "slower"/"faster" otherwise) and the CI's median width, and for the paired A/B how
often the difference was shown.

    .venv/bin/python benchmarks/bench_measure_compare.py [--reps 12] [--rounds 20]
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

from latbench.commands._measure_compare import compare, ratio_to
from latbench.config import load_config
from latbench.devices import get_device
from latbench.spaces import export, get_space

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
A = CELL + "skip_connect~2|"
B = CELL + "nor_conv_3x3~2|"


def _spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.4f}  range {min(xs):.4f}-{max(xs):.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    nb = get_space("nb201")
    a = export(nb.build(A), "onnx", tmp / "a.onnx")
    a2 = tmp / "a_copy.onnx"
    shutil.copy(a, a2)
    b = export(nb.build(B), "onnx", tmp / "b.onnx")
    common = {"runtime": "onnxruntime", "threads": 1}
    rows: dict[str, list[float]] = {k: [] for k in ("pAA", "pAB", "sAA", "sAB")}
    covers, widths, shown = 0, [], 0
    t0 = time.time()
    load0 = os.getloadavg()[0]
    with get_device("local", load_config()) as dev:
        for rep in range(args.reps):
            ra, ra2 = compare(dev, [str(a), str(a2)], args.rounds, "median", common)
            r = ratio_to(ra, ra2, "median")
            assert r is not None
            rows["pAA"].append(r["ratio"])
            covers += r["ci_low"] <= 1 <= r["ci_high"]
            widths.append(r["ci_high"] - r["ci_low"])
            ra, rb = compare(dev, [str(a), str(b)], args.rounds, "median", common)
            r = ratio_to(ra, rb, "median")
            assert r is not None
            rows["pAB"].append(r["ratio"])
            shown += r["shown"] == "slower"
            sa = dev.measure(str(a), runtime="onnxruntime", threads=1)
            sa2 = dev.measure(str(a2), runtime="onnxruntime", threads=1)
            rows["sAA"].append(sa2.median_ms / sa.median_ms)
            sb = dev.measure(str(b), runtime="onnxruntime", threads=1)
            rows["sAB"].append(sb.median_ms / sa2.median_ms)
            print(
                f"rep {rep + 1}/{args.reps}: paired A/A' {rows['pAA'][-1]:.4f} A/B "
                f"{rows['pAB'][-1]:.4f}; sequential A/A' {rows['sAA'][-1]:.4f} A/B "
                f"{rows['sAB'][-1]:.4f}",
                flush=True,
            )
    n = args.reps
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
        f"{load0:.2f} -> {os.getloadavg()[0]:.2f}, {time.time() - t0:.0f} s; {n} repetitions, "
        f"{args.rounds} rounds"
    )
    print(f"paired A/A'      {_spread(rows['pAA'])}")
    print(f"sequential A/A'  {_spread(rows['sAA'])}")
    print(f"paired A/B       {_spread(rows['pAB'])}")
    print(f"sequential A/B   {_spread(rows['sAB'])}")
    print(
        f"paired A/A': the 95 % CI holds 1 in {covers} of {n}; median CI width "
        f"{statistics.median(widths):.4f}"
    )
    print(f"paired A/B: shown slower in {shown} of {n}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
