"""``latbench export``: write an architecture as an ONNX, TFLite or torch model file."""

from __future__ import annotations

import argparse
from typing import Any

from latbench.commands.arch import graph_from_args
from latbench.spaces import export
from latbench.spaces.export import FORMATS, SUFFIXES


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="write an architecture as an ONNX / TFLite / torch model",
        description=(
            "Write SPACE ARCH (or SPACE:ARCH, or an imported --onnx FILE) as a model file with "
            "deterministic weights drawn from --seed; the three formats compute the same function."
        ),
    )
    p.add_argument(
        "space", nargs="?", help="search space (see `latbench spaces`), or SPACE:ARCH in one word"
    )
    p.add_argument("arch", nargs="?", help="architecture string of that space")
    p.add_argument("--onnx", metavar="FILE", help="re-emit this ONNX model's architecture instead")
    p.add_argument("--format", "-f", choices=FORMATS, default=None, help="default: from -o suffix")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0; >= 0)")
    p.add_argument(
        "--batch", type=int, default=None, help="batch size (default 1; --onnx: the file's own)"
    )
    p.add_argument(
        "--resolution", type=int, default=None, help="input resolution (not with --onnx)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from latbench.errors import ConfigError

    if args.seed < 0:
        # the weights' generator takes any integer, but latbench measure (whose inputs share
        # the seed) refuses a negative one: refuse it here too, so every seed can be measured
        raise ConfigError(f"--seed {args.seed}; expected an integer >= 0")
    fmt = args.format
    if fmt is None:
        by_suffix = {v: k for k, v in SUFFIXES.items()}
        out = args.output.lower()
        fmt = next((f for s, f in by_suffix.items() if out.endswith(s)), None)
        if fmt is None:
            raise ConfigError(
                f"cannot tell the format of {args.output!r}; pass --format "
                f"{'|'.join(FORMATS)} or use a suffix {', '.join(SUFFIXES.values())}"
            )
    graph = graph_from_args(args)
    path = export(graph, fmt, args.output, seed=args.seed)
    print(f"wrote {path} ({fmt}, {path.stat().st_size:,} bytes, graph {graph.graph_id()})")
    return 0
