"""``latbench rank``: order architectures by predicted latency, several devices side by side.

    latbench rank --predictor pixel3.lbp --space nb201 --all --top 20
    latbench rank --predictor pixel3.lbp --predictor pi4.lbp --archs archs.txt --csv -o rank.csv
    latbench rank --predictor base.lbp --device pixel3,gold_6240 --space nb201 --all --top 20

The first predictor orders the rows (fastest first); each predictor adds a ``latency_ms[NAME]``
column (NAME: the file name without ``.lbp``), plus ``..._std`` when it has an uncertainty. A
multi-device predictor adds a ``latency_ms[NAME:DEVICE]`` column per device, or per device of
``--device``, whose first device then orders the rows.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

from latbench._atomic import same_file, write_text_atomic
from latbench.commands._archfile import read_archs
from latbench.commands._json import dumps
from latbench.errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rank",
        help="rank architectures by predicted latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--predictor",
        action="append",
        required=True,
        metavar="FILE",
        help="a saved predictor (.lbp); repeat for several devices",
    )
    p.add_argument(
        "--device",
        metavar="DEV",
        help="of a multi-device predictor, only these devices' columns: names, short names "
        "(pixel3) or globs, comma-separated; the first orders the rows (default: every device)",
    )
    p.add_argument("--space", help="search space (default: the first predictor's)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--all", action="store_true", help="every architecture of the space")
    src.add_argument("--archs", metavar="FILE", help="text file (one a line) or CSV with 'arch'")
    src.add_argument("--sample", type=int, metavar="N", help="N random architectures (--seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--top", type=int, default=None, help="keep the N fastest (default: all)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON rows (default for -o *.json)")
    fmt.add_argument("--csv", action="store_true", help="CSV rows (default for -o *.csv)")
    p.add_argument(
        "-o",
        "--output",
        help="write to this file instead of stdout (- is stdout); a .csv or .json name sets "
        "the format, any other name gets the text table",
    )
    p.set_defaults(handler=run, stdout_options=("output",))


def load_predictors(paths: list[str]) -> dict[str, Any]:
    """``{label: predictor}``; label = file stem (made unique)."""
    from latbench import predictors

    out: dict[str, Any] = {}
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"predictor file {path!r} does not exist; expected a .lbp file")
        label = Path(path).stem
        n = 2
        while label in out:
            label = f"{Path(path).stem}_{n}"
            n += 1
        out[label] = predictors.load(path)
    return out


def _format_table(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in rows[0] if c not in ("rank", "arch")]
    width = max(len(r["arch"]) for r in rows)
    head = f"{'rank':>5}  {'arch':<{width}}  " + "  ".join(f"{c:>22}" for c in cols)
    lines = [head]
    for r in rows:
        vals = "  ".join(f"{r[c]:>22.4f}" for c in cols)
        lines.append(f"{r['rank']:>5}  {r['arch']:<{width}}  {vals}")
    return "\n".join(lines)


def _output_format(args: argparse.Namespace) -> str:
    """``json``, ``csv`` or ``table``: the flag, else the name of ``-o`` (``.json``, ``.csv``),
    else the text table. A flag that contradicts the name is refused."""
    out = (args.output or "").lower()
    by_name = "json" if out.endswith(".json") else "csv" if out.endswith(".csv") else None
    flag = "json" if args.json else "csv" if args.csv else None
    if flag and by_name and flag != by_name:
        raise ConfigError(
            f"--{flag}, but -o {args.output!r} is named as a {by_name} file; expected a name "
            f"ending in .{flag} (or leave the flag out: the name sets the format)"
        )
    return flag or by_name or "table"


def _check_apart(args: argparse.Namespace) -> None:
    """Refuse an ``-o`` that names one of the inputs: the table would be written over a
    predictor file or the --archs list, and the next rank would find a CSV where a model was."""
    if not args.output or args.output == "-":
        return
    inputs = [("--predictor", p) for p in args.predictor]
    if args.archs:
        inputs.append(("--archs", args.archs))
    for flag, path in inputs:
        if same_file(args.output, path):
            raise ConfigError(
                f"-o/--output {args.output!r} is the {flag} file; expected a new file for the "
                "ranking (it would be written over that file)"
            )


def run(args: argparse.Namespace) -> int:
    from latbench.nas.rank import rank_archs
    from latbench.spaces import get_space

    fmt = _output_format(args)
    _check_apart(args)
    preds = load_predictors(args.predictor)
    space_name = args.space or next(iter(preds.values())).space_
    space = get_space(space_name)
    if args.all:
        archs = space.enumerate_all()
    elif args.sample is not None:
        if args.sample < 1:
            raise ConfigError(f"--sample {args.sample}; expected >= 1")
        if args.sample > space.size():
            raise ConfigError(
                f"--sample {args.sample}; expected at most {space.size()} (the architectures "
                f"of {space.name}; --all ranks every one)"
            )
        archs = space.sample(args.sample, seed=args.seed)
    else:
        archs = read_archs(args.archs, space)
    devices = None
    if args.device is not None:
        devices = [d.strip() for d in args.device.split(",") if d.strip()]
        if not devices:
            raise ConfigError(f"--device {args.device!r} names no device; expected DEV[,DEV...]")
    try:
        rows = rank_archs(archs, preds, space, top=args.top, devices=devices)
    except ConfigError as exc:
        if devices is None:
            raise
        raise ConfigError(f"--device {args.device}: {exc}") from None
    if fmt == "json":
        text = dumps(rows, indent=1)
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue().rstrip("\n")
    else:
        text = _format_table(rows)
    if args.output and args.output != "-":
        # written beside and swapped in whole: a failed write keeps the file already there
        write_text_atomic(args.output, text + "\n")
        print(f"wrote {len(rows)} rows to {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0
