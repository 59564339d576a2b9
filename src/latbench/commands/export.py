"""``latbench export``: write an architecture as an ONNX, TFLite or torch model file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from latbench._atomic import same_file
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
    # dest "out_file": the shared output check (latbench.cli.check_outputs) would call a parent
    # that is a regular file a missing directory; run() checks the path itself
    p.add_argument(
        "-o",
        "--output",
        dest="out_file",
        metavar="OUTPUT",
        required=True,
        help="file to write",
    )
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0; >= 0)")
    p.add_argument(
        "--batch", type=int, default=None, help="batch size (default 1; --onnx: the file's own)"
    )
    p.add_argument(
        "--resolution", type=int, default=None, help="input resolution (not with --onnx)"
    )
    p.set_defaults(handler=run)


def _check_output(value: str) -> None:
    """Refuse an output path that cannot be written before the graph is built."""
    from latbench.errors import ConfigError

    if value == "-":
        raise ConfigError(
            "-o/--output -: this command does not write to standard output; expected a file name"
        )
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"-o/--output {value!r} is a directory; expected a file to write")
    if not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        raise ConfigError(
            f"-o/--output {value!r}: the parent {str(path.parent)!r} {what}; expected an "
            "existing directory"
        )


def run(args: argparse.Namespace) -> int:
    from latbench.errors import ConfigError

    output = args.out_file
    _check_output(output)
    if args.onnx and same_file(output, args.onnx):
        # the re-emitted model carries weights drawn from --seed, not the file's own: writing
        # it over the source would lose the model it was read from
        raise ConfigError(
            f"-o/--output {output!r} is the --onnx file; expected a new file for the exported "
            "model (it would be written over the model it is read from)"
        )

    if args.seed < 0:
        # the weights' generator takes any integer, but latbench measure (whose inputs share
        # the seed) refuses a negative one: refuse it here too, so every seed can be measured
        raise ConfigError(f"--seed {args.seed}; expected an integer >= 0")
    fmt = args.format
    if fmt is None:
        by_suffix = {v: k for k, v in SUFFIXES.items()}
        out = output.lower()
        fmt = next((f for s, f in by_suffix.items() if out.endswith(s)), None)
        if fmt is None:
            raise ConfigError(
                f"cannot tell the format of {output!r}; pass --format "
                f"{'|'.join(FORMATS)} or use a suffix {', '.join(SUFFIXES.values())}"
            )
    graph = graph_from_args(args)
    # said, not asked: -o names the file to write, but a model replaced unawares is lost work
    replaced = Path(output).exists()
    path = export(graph, fmt, output, seed=args.seed)
    note = "; replaced the file already there" if replaced else ""
    print(f"wrote {path} ({fmt}, {path.stat().st_size:,} bytes, graph {graph.graph_id()}{note})")
    return 0
