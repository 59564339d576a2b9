"""Repeatability: 20 NB201 architectures measured in 3 separate invocations.

Each invocation is a fresh ``python`` process that opens the ``local`` device (a fresh pinned
worker) and measures the same 20 emitted ONNX models at default harness settings (bench.toml
``[measure]`` defaults). ``--mode interleaved`` (default) measures them with
``measure_many(..., interleave=10)``, the reference model re-measured between every 4 targets;
``--mode sequential`` one after the other with ``measure`` (no reference).

Figures, for every statistic a record can give (median, min, p10, p25, round_min, cpu_median,
normalized): the per-architecture spread across invocations ((max - min) / median of the
invocations' values), its median over the architectures, and Spearman's rank correlation between
every pair of invocations. The load average and the steal fraction of each invocation are
printed next to them: compare figures only between runs with similar load.

The reference calibration is kept in a temporary cache shared by the invocations of this run
(the first invocation calibrates), so the figures do not depend on an earlier run.

    .venv/bin/python benchmarks/bench_measure_repeat.py [--mode interleaved] [--invocations 3]
        [--n 20] [--rounds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STATISTICS = ("median", "min", "p10", "p25", "round_min", "cpu_median", "normalized")

ONE_INVOCATION = r"""
import json, os, sys
from latbench.devices import get_device
from latbench.config import Config, MEASURE_DEFAULTS
from latbench.profilers.harness import HarnessSettings
from latbench.profilers import stats

def main():
    paths, mode, rounds = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    stat_names = json.loads(sys.argv[4])
    records = sys.argv[5] if len(sys.argv) > 5 else ""
    overrides = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    settings = HarnessSettings.from_mapping({**MEASURE_DEFAULTS, **overrides})
    load0 = os.getloadavg()
    with get_device("local", Config()) as dev:
        if mode == "interleaved":
            ms = dev.measure_many(paths, settings=settings, interleave=rounds)
        else:
            ms = [dev.measure(p, settings=settings) for p in paths]
    if records:
        with open(records, "w") as f:
            json.dump([m.to_dict() for m in ms], f)
    rows = []
    for m in ms:
        row = {}
        for name in stat_names:
            try:
                row[name] = m.estimate(name)
            except ValueError:
                row[name] = None
        row["runs"] = m.runs
        row["discarded_rounds"] = len(m.reference.get("discarded", [])) if m.reference else 0
        rows.append(row)
    steal = stats.steal_fraction(ms[0].env, ms[-1].env_after)
    cal = ms[0].reference.get("calibration") if ms[0].reference else None
    print(json.dumps({"rows": rows, "load_before": load0, "load_after": os.getloadavg(),
                      "steal": steal, "calibration": cal,
                      "wall_s": sum(m.wall_s for m in ms) if mode != "interleaved"
                      else ms[0].wall_s}))

if __name__ == "__main__":
    main()
"""


def summarise(runs: list[dict], name: str) -> tuple[float, float, float, float, list[float]]:
    """(median spread, q1, q3, max, Spearman rhos) of statistic ``name`` across invocations."""
    from scipy.stats import spearmanr

    n = len(runs[0]["rows"])
    per_arch = []
    for i in range(n):
        vals = [run["rows"][i][name] for run in runs]
        per_arch.append((max(vals) - min(vals)) / statistics.median(vals))
    rhos = [
        float(spearmanr([r[name] for r in a["rows"]], [r[name] for r in b["rows"]]).statistic)
        for a, b in itertools.combinations(runs, 2)
    ]
    q = statistics.quantiles(per_arch, n=4)
    return statistics.median(per_arch), q[0], q[2], max(per_arch), rhos


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--invocations", type=int, default=3)
    ap.add_argument("--mode", choices=["interleaved", "sequential"], default="interleaved")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--json", default=None, help="also write every invocation's values here")
    ap.add_argument("--records", default=None, help="directory for the full records (JSON)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a harness setting (not default settings any more), e.g. min_time_s=3",
    )
    args = ap.parse_args()

    from latbench.spaces import export, get_space

    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    nb = get_space("nb201")
    archs = nb.sample(args.n, seed=0)
    print(f"command: {sys.executable} {' '.join(sys.argv)}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
        f"; {args.n} NB201 archs (sample seed 0), mode {args.mode}, {args.rounds} rounds"
        + (f"; settings changed: {overrides}" if overrides else "; default harness settings")
    )
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [
            str(export(nb.build(a), "onnx", Path(tmp) / f"a{i}.onnx")) for i, a in enumerate(archs)
        ]
        env = {**os.environ, "LATBENCH_CACHE_DIR": str(Path(tmp) / "cache")}
        for k in range(args.invocations):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    ONE_INVOCATION,
                    json.dumps(paths),
                    args.mode,
                    str(args.rounds),
                    json.dumps(STATISTICS),
                    str(Path(args.records) / f"invocation{k + 1}.json") if args.records else "",
                    json.dumps(overrides),
                ],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(run)
            steal = run["steal"]
            print(
                f"invocation {k + 1}: load average {run['load_before'][0]:.2f} -> "
                f"{run['load_after'][0]:.2f}, steal "
                + (f"{steal:.2%}" if steal is not None else "n/a")
                + f", {run['wall_s']:.0f} s; medians (ms) "
                + " ".join(f"{r['median']:.3f}" for r in run["rows"]),
                flush=True,
            )
            if run["calibration"]:
                print(f"  reference: {run['calibration']}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    print(f"{'statistic':<11} {'median spread':>13} {'IQR of spread':>17} {'max':>8}  Spearman rho")
    for name in STATISTICS:
        if any(r[name] is None for run in runs for r in run["rows"]):
            continue
        med, q1, q3, mx, rhos = summarise(runs, name)
        print(
            f"{name:<11} {med:>12.2%} {q1:>8.2%}-{q3:<8.2%} {mx:>7.1%}  "
            + ", ".join(f"{r:.4f}" for r in rhos)
        )
    loads = [x for run in runs for x in (run["load_before"][0], run["load_after"][0])]
    print(
        f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f} on "
        f"{os.cpu_count()} CPUs; goal: spread <= 3 %, rho >= 0.99"
    )


if __name__ == "__main__":
    main()
