"""``latbench report``: one self-contained HTML page about a store (plots embedded)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a store",
        description=(
            "Write one HTML file (plots embedded, no network needed) with the latency "
            "distributions, predicted vs measured latency, the monotonicity heat map with this "
            "machine among the reference devices, the Pareto front of a search and the "
            "measurement stability of each device. Sections without data say what is missing; "
            "a file named by an option that holds nothing to show is an error."
        ),
    )
    p.add_argument(
        "--db",
        default=None,
        help="store to read (default: [store] path of bench.toml, latbench.db)",
    )
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument(
        "--predictor",
        action="append",
        default=[],
        metavar="FILE",
        help="saved predictor (.lbp) to evaluate on the store's measurements (repeatable)",
    )
    p.add_argument(
        "--predictions",
        metavar="FILE",
        default=None,
        help="table of measured and predicted latency (CSV, parquet or JSON)",
    )
    p.add_argument(
        "--search", metavar="FILE", default=None, help="search result of `latbench search -o`"
    )
    p.add_argument(
        "--reference",
        default="auto",
        help="reference table for the heat map: nb201, fbnet, auto (the store's space) or none "
        "(default: auto)",
    )
    p.add_argument(
        "--local-device",
        action="append",
        default=None,
        metavar="NAME",
        help="device to mark as this machine in the heat map (repeatable; default: every "
        "measured device that is not a reference device)",
    )
    p.add_argument("--title", default="latbench report", help="page title")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from latbench.config import load_config
    from latbench.report import report_from_files

    db = args.db
    if db is None:
        default = load_config(args.config).store_path
        db = str(default) if default.exists() else None
    reference = None if args.reference in ("none", "") else args.reference
    path = report_from_files(
        args.output,
        db=db,
        predictions=args.predictions,
        predictor=args.predictor,
        search=args.search,
        reference=reference,
        local_devices=args.local_device,
        title=args.title,
    )
    size = Path(path).stat().st_size
    print(f"wrote {path} ({size / 1024:,.0f} KiB){'' if db else '; no store found (--db)'}")
    return 0
