"""Dataset I/O figures: importing the bundled NB201 reference table, exporting 1M rows to parquet.

Targets (issue 4): import of the NB201 reference table (371,139 rows) into a fresh store < 5 s;
export of 1,000,000 rows to parquet < 10 s. Each figure is the median of ``--repeat`` runs
with its min-max spread.

    .venv/bin/python benchmarks/bench_datasets_io.py [--repeat 3] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import latbench.datasets as lds
from latbench.datasets import schema as S


def _fill(store: lds.Store, rows: int) -> None:
    """``rows`` measured-like rows (key columns, statistics, a timestamp), built fast."""
    ref = lds.load_reference("nb201")
    ref = ref.head(min(rows, len(ref)))
    rng = np.random.default_rng(0)
    cols = ["collection", "space", "arch", "arch_id", "arch_index", "device", "runtime", "batch",
            "threads", "latency_ms", "mean_ms", "std_ms", "min_ms", "runs", "measured_at",
            "status", "latbench_version", "schema_version"]  # fmt: skip
    from latbench.spaces import get_space

    space = get_space("nb201")
    ids = {a: space.arch_id(a) for a in ref["arch"].unique()}
    done = 0
    copy = 0
    while done < rows:
        part = ref.head(rows - done)
        lat = part["latency_ms"].to_numpy()
        noise = rng.normal(1.0, 0.01, len(part))
        tuples = list(
            zip(
                [f"copy{copy}"] * len(part),
                part["space"],
                part["arch"],
                [ids[a] for a in part["arch"]],
                part["nb201_index"].tolist(),
                part["device"],
                ["onnxruntime"] * len(part),
                part["batch"].tolist(),
                [1] * len(part),
                lat.tolist(),
                (lat * noise).tolist(),
                (lat * 0.02).tolist(),
                (lat * 0.97).tolist(),
                [50] * len(part),
                ["2026-01-01T00:00:00Z"] * len(part),
                ["ok"] * len(part),
                [S.latbench_version()] * len(part),
                [S.SCHEMA_VERSION] * len(part),
                strict=True,
            )
        )
        store.add_tuples(tuples, columns=cols)
        done += len(part)
        copy += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}")
    print(f"load average at start: {os.getloadavg()}")
    imports: list[float] = []
    exports: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.db"
        with lds.open(big) as store:
            _fill(store, args.rows)
            n = store.count()
        for i in range(args.repeat):  # interleaved: import, export, import, export, ...
            db = Path(tmp) / f"ref{i}.db"
            t0 = time.perf_counter()
            with lds.open(db) as store:
                report = lds.import_reference(store, "nb201")
            imports.append(time.perf_counter() - t0)
            assert report.imported == 371139, report.summary()
            db.unlink()
            out = Path(tmp) / f"out{i}.parquet"
            t0 = time.perf_counter()
            with lds.open(big, readonly=True) as store:
                written = lds.export_store(store, out)
            exports.append(time.perf_counter() - t0)
            assert written == n
            out.unlink()
    for label, xs, target in (
        ("import NB201 reference (371,139 rows) into a new store", imports, 5.0),
        (f"export {n:,} rows to parquet", exports, 10.0),
    ):
        print(
            f"{label}: median {statistics.median(xs):.2f} s "
            f"(min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)}; target < {target:g} s)"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
