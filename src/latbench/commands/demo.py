"""``latbench demo``: the main job on this machine's CPU (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from latbench.config import load_config


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="collect, predict, adapt, search and report on this CPU (resumable)",
        description=(
            "Collect a small NB201 sample on this CPU into an embedded store, fit a predictor "
            "and evaluate it on unseen architectures, adapt the reference multi-device "
            "predictor from 10 measurements, run a latency-constrained search, verify its "
            "picks, and write an HTML report. Run it again to resume."
        ),
    )
    p.add_argument("-o", "--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--sample", type=int, default=60, help="NB201 architectures to measure")
    p.add_argument("--train", type=int, default=40, help="of which used to fit (rest: test)")
    p.add_argument("--shots", type=int, default=10, help="measurements for adaptation")
    p.add_argument("--evaluations", type=int, default=500, help="search evaluations")
    p.add_argument("--verify", type=int, default=5, help="search picks measured for real")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from latbench.demo import DemoOptions, run_demo

    options = DemoOptions(
        out_dir=Path(args.out),
        sample=args.sample,
        train=args.train,
        shots=args.shots,
        evaluations=args.evaluations,
        verify=args.verify,
        seed=args.seed,
        progress=not args.quiet,
    )

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    summary = run_demo(options, load_config(args.config), say=say)
    print("latbench demo")
    for line in summary.lines():
        print("  " + line)
    return 0
