"""Importing a full-schema CSV: this tree against git revision REV, fresh processes, A B A B.

The NB201 reference (371,139 rows) is exported to CSV with every schema column, then given a
distinct ``measured_at`` per row and an ``env`` object, as a store of real measurements has
(the columns the per-row checks of ``import_table`` look at). Each round imports that file
into a new store in a fresh process, once with this tree's ``src`` and once with REV's (a
temporary ``git worktree``), alternating which goes first. Prints every run, the medians
with their min-max, and new/old.

    .venv/bin/python benchmarks/bench_datasets_csv_ab.py [--rev REV] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_ONE = """
import sys, time
import latbench.datasets as lds
with lds.open(sys.argv[1]) as st:
    t0, c0 = time.perf_counter(), time.process_time()
    r = lds.import_table(st, sys.argv[2])
    print(time.perf_counter() - t0, time.process_time() - c0, r.imported, len(r.rejected))
"""


def _make_csv(path: Path) -> int:
    import numpy as np
    import pandas as pd

    import latbench.datasets as lds

    with lds.open(path.with_suffix(".db")) as st:
        lds.import_reference(st, "nb201")
        lds.export_store(st, path)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    t0 = pd.Timestamp("2026-12-03T00:00:00Z")
    df["measured_at"] = [t.isoformat() for t in t0 + pd.to_timedelta(np.arange(len(df)), "s")]
    df["env"] = '{"cpu": "x86_64"}'
    df.to_csv(path, index=False)
    return len(df)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--rev",
        default="bbff478",
        help="git revision to compare with (default: before the "
        "import checks of NUL, arch_index, measured_at and JSON objects)",
    )
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: expected an integer >= 1")
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old_tree = work / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old_tree), args.rev],
            check=True,
        )
        try:
            csv = work / "ref.csv"
            print(f"{_make_csv(csv):,} rows written to a full-schema CSV", flush=True)
            srcs = {"new": ROOT / "src", f"old ({args.rev})": old_tree / "src"}
            walls: dict[str, list[float]] = {k: [] for k in srcs}
            for i in range(args.rounds):
                order = list(srcs) if i % 2 == 0 else list(srcs)[::-1]
                for name in order:
                    db = work / "s.db"
                    db.unlink(missing_ok=True)
                    env = {**os.environ, "PYTHONPATH": str(srcs[name])}
                    out = subprocess.run(
                        [sys.executable, "-c", _ONE, str(db), str(csv)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.split()
                    wall, cpu, imported, rejected = float(out[0]), float(out[1]), out[2], out[3]
                    walls[name].append(wall)
                    print(
                        f"  round {i + 1} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                        f"{imported} imported, {rejected} rejected",
                        flush=True,
                    )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)],
                check=False,
            )
    for name, w in walls.items():
        print(
            f"{name}: median {statistics.median(w):.2f} s (min {min(w):.2f}, max {max(w):.2f}, "
            f"n={len(w)})"
        )
    new, old = (statistics.median(w) for w in walls.values())
    print(f"new/old wall {new / old:.2f}")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
