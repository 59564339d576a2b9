"""Dataset I/O figures: importing the bundled NB201 reference table, exporting 1M rows to parquet.

Targets (issue 4): import of the NB201 reference table (371,139 rows) into a fresh store < 5 s;
export of 1,000,000 rows to parquet < 10 s. Each figure is the median of ``--repeat`` runs
with its min-max spread, wall-clock and CPU time of this process (CPU time says what the work
costs when the machine is shared; wall-clock is what a user waits). Imports and exports are
interleaved (import, export, import, export, ...).

``--cold`` adds the import as a new process sees it (reading the bundled CSV included), one
subprocess per repeat. ``--ab REV`` adds an interleaved A/B against the dataset code of git
revision ``REV`` (its ``store.py``, ``io.py`` and ``reference.py`` imported side by side with
the current ones, same schema): new, old, new, old, ... in one process, so the gain is a ratio
within one run.

    .venv/bin/python benchmarks/bench_datasets_io.py [--repeat 3] [--rows 1000000] [--cold]
        [--ab REV]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import latbench.datasets as lds
from latbench.datasets import schema as S

ROOT = Path(__file__).resolve().parents[1]
NB201_ROWS = 371_139


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


def _old_datasets(rev: str) -> types.SimpleNamespace:
    """``store``, ``reference`` and ``io`` of git revision ``rev`` as modules of their own."""
    mods: dict[str, types.ModuleType] = {}
    package = types.ModuleType("_old_datasets")
    package.__path__ = []
    sys.modules["_old_datasets"] = package
    for name in ("store", "reference", "io"):
        src = subprocess.run(
            ["git", "show", f"{rev}:src/latbench/datasets/{name}.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        src = src.replace("latbench.datasets.store", "_old_datasets.store").replace(
            "latbench.datasets.reference", "_old_datasets.reference"
        )
        mod = types.ModuleType(f"_old_datasets.{name}")
        sys.modules[mod.__name__] = mod
        exec(compile(src, f"{rev}:{name}.py", "exec"), mod.__dict__)
        mods[name] = mod
    return types.SimpleNamespace(
        open=lambda p, **kw: mods["store"].Store(p, **kw),
        import_reference=mods["io"].import_reference,
        export_store=mods["io"].export_store,
    )


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


_COLD = f"""
import time, sys
c0, w0 = time.process_time(), time.perf_counter()
import latbench.datasets as lds
with lds.open(sys.argv[1]) as store:
    report = lds.import_reference(store, "nb201")
assert report.imported == {NB201_ROWS}, report.summary()
print(time.perf_counter() - w0, time.process_time() - c0)
"""


def _summary(label: str, walls: list[float], cpus: list[float], target: float | None) -> str:
    goal = ""
    if target is not None:
        met = "met" if statistics.median(walls) < target else "NOT met"
        goal = f"; target < {target:g} s: {met}"
    return (
        f"{label}: median {statistics.median(walls):.2f} s wall (min {min(walls):.2f}, "
        f"max {max(walls):.2f}, n={len(walls)}), CPU {statistics.median(cpus):.2f} s "
        f"(min {min(cpus):.2f}, max {max(cpus):.2f})" + goal
    )


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = []
    try:
        from importlib.metadata import version

        adbc = version("adbc-driver-sqlite")
    except Exception:  # noqa: BLE001 - only reported
        adbc = "not installed"
    return (
        f"machine: {platform.machine()}, {model}, {os.cpu_count()} CPUs (this process may run "
        f"on {affinity}), Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"adbc-driver-sqlite {adbc}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cold", action="store_true", help="also time imports in new processes")
    ap.add_argument("--ab", metavar="REV", help="interleaved A/B against git revision REV")
    args = ap.parse_args()
    if args.repeat < 1 or args.rows < 1:
        ap.error(f"--repeat {args.repeat} and --rows {args.rows}: expected integers >= 1")
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(_machine())
    print(f"load average at start: {os.getloadavg()}", flush=True)
    variants: dict[str, Any] = {"new": lds}
    if args.ab:
        variants[f"old ({args.ab})"] = _old_datasets(args.ab)
    imports: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in variants}
    exports: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in variants}
    cold: tuple[list[float], list[float]] = ([], [])
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.db"
        with lds.open(big) as store:
            _fill(store, args.rows)
            n = store.count()
        print(f"filled a store of {n:,} rows; load average {os.getloadavg()}", flush=True)
        for i in range(args.repeat):  # interleaved: import, export (new, old), ...
            for name, mod in variants.items():
                db = Path(tmp) / f"ref{i}.db"

                def imp(mod: Any = mod, db: Path = db) -> Any:
                    with mod.open(db) as store:
                        return mod.import_reference(store, "nb201")

                wall, cpu, report = _timed(imp)
                assert report.imported == NB201_ROWS, report.summary()
                imports[name][0].append(wall)
                imports[name][1].append(cpu)
                db.unlink()
                out = Path(tmp) / f"out{i}.parquet"

                def exp(mod: Any = mod, out: Path = out) -> Any:
                    with mod.open(big, readonly=True) as store:
                        return mod.export_store(store, out)

                wall, cpu, written = _timed(exp)
                assert written == n
                exports[name][0].append(wall)
                exports[name][1].append(cpu)
                out.unlink()
                print(
                    f"  round {i + 1} {name}: import {imports[name][0][-1]:.2f} s, "
                    f"export {exports[name][0][-1]:.2f} s, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            if args.cold:
                db = Path(tmp) / f"cold{i}.db"
                proc = subprocess.run(
                    [sys.executable, "-c", _COLD, str(db)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                wall, cpu = (float(x) for x in proc.stdout.split())
                cold[0].append(wall)
                cold[1].append(cpu)
                db.unlink()
    for name in variants:
        tag = "" if len(variants) == 1 else f" [{name}]"
        print(_summary(f"import NB201 reference ({NB201_ROWS:,} rows) into a new store{tag}",
                       *imports[name], 5.0 if name == "new" else None))  # fmt: skip
        print(_summary(f"export {n:,} rows to parquet{tag}",
                       *exports[name], 10.0 if name == "new" else None))  # fmt: skip
    if args.cold:
        print(_summary("import NB201 reference in a new process (CSV read, imports included)",
                       *cold, 5.0))  # fmt: skip
    if args.ab:
        old = f"old ({args.ab})"
        for label, data in (("import", imports), ("export", exports)):
            new_w, old_w = statistics.median(data["new"][0]), statistics.median(data[old][0])
            new_c, old_c = statistics.median(data["new"][1]), statistics.median(data[old][1])
            print(
                f"A/B {label}: new/old wall {new_w / old_w:.2f} ({new_w:.2f} / {old_w:.2f} s), "
                f"CPU {new_c / old_c:.2f} ({new_c:.2f} / {old_c:.2f} s)"
            )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
