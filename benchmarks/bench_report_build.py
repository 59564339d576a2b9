"""Report build time and pytest-plugin load overhead.

1. ``build_report`` on real data: a store-like table of the bundled NB201 reference (two devices
   treated as measured, 2,000 architectures each, with raw samples) plus the full reference for
   the heat map; median of a few builds.
2. The cost the ``latbench`` pytest plugin adds to every pytest start: ``pytest --co -q`` on an
   empty project with the plugin (A) and with ``-p no:latbench`` (B), interleaved A B A B, as a
   ratio of medians.

    .venv/bin/python benchmarks/bench_report_build.py
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _spread(xs: list[float]) -> str:
    q1, q3 = np.percentile(xs, [25, 75])
    return f"median {statistics.median(xs):.3f} s (IQR {q3 - q1:.3f} s, n={len(xs)})"


def bench_report(rounds: int = 3) -> None:
    from latbench.datasets import load_reference
    from latbench.report import build_report

    ref = load_reference("nb201")
    rng = np.random.default_rng(0)
    archs = ref["arch"].drop_duplicates().sample(2000, random_state=0)
    rows = ref[ref["arch"].isin(archs) & ref["device"].isin(["help/pixel3", "help/gold_6240"])]
    ms = rows.assign(
        device=rows["device"].str.replace("help/", "mine/"),
        runtime="onnxruntime",
        status="ok",
        samples_ms=[list(v * (1 + 0.02 * rng.standard_normal(30))) for v in rows["latency_ms"]],
    )
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            t0 = time.perf_counter()
            out = build_report(Path(tmp) / "r.html", measurements=ms, reference=ref)
            times.append(time.perf_counter() - t0)
        size_kib = out.stat().st_size / 1024
    print(
        f"build_report ({len(ms)} measurements on 2 devices + {ref['device'].nunique()} "
        f"reference devices): {_spread(times)}; page {size_kib:.0f} KiB"
    )


def bench_plugin_load(rounds: int = 6) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_empty.py").write_text("def test_nothing():\n    pass\n")
        base = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"]
        base += ["-p", "no:hypothesispytest", "-p", "no:benchmark"]  # less noise
        variants = {"with latbench": base, "without (-p no:latbench)": [*base, "-p", "no:latbench"]}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for name, cmd in variants.items():  # interleaved A B A B
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, env=os.environ)
                times[name].append(time.perf_counter() - t0)
    for name, xs in times.items():
        print(f"pytest --co start, {name}: {_spread(xs)}")
    a, b = (statistics.median(v) for v in times.values())
    print(f"ratio with/without the plugin: {a / b:.3f}")
    code = (
        "import time, pytest; t = time.perf_counter(); import latbench.pytest_plugin; "
        "print(time.perf_counter() - t)"
    )
    direct = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(rounds)
    ]
    print(f"import latbench.pytest_plugin after pytest: {_spread(direct)}")


def main() -> None:
    py = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {py}")
    bench_report()
    bench_plugin_load()


if __name__ == "__main__":
    main()
