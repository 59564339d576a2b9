"""``latbench arch``: inspect architectures (``show``, ``sample``).

``latbench arch show SPACE ARCH`` (or ``SPACE:ARCH``) prints the summary of a search-space
architecture (id, MACs, parameters, activation memory, operator counts); ``latbench arch show
--onnx FILE`` does the same for any ONNX model; ``--nodes`` adds the per-node table,
``--kernels`` the fused kernels a kernel predictor sums, ``--json``
prints JSON.
"""

from __future__ import annotations

import argparse
from typing import Any

from latbench.errors import ConfigError
from latbench.spaces import Graph, get_space
from latbench.spaces.onnx_import import from_onnx


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("arch", help="inspect architectures", description=__doc__)
    sub = p.add_subparsers(dest="arch_command", metavar="ACTION", required=True)

    show = sub.add_parser(
        "show",
        help="summary of one architecture (or of an ONNX model with --onnx)",
        description="Print the summary of an architecture: MACs, parameters, activation memory.",
    )
    show.add_argument(
        "space", nargs="?", help="search space (see `latbench spaces`), or SPACE:ARCH in one word"
    )
    show.add_argument("arch", nargs="?", help="architecture string of that space")
    show.add_argument("--onnx", metavar="FILE", help="summarise this ONNX model instead")
    show.add_argument(
        "--batch", type=int, default=None, help="batch size (default 1; --onnx: the file's own)"
    )
    show.add_argument(
        "--resolution", type=int, default=None, help="input resolution (not with --onnx)"
    )
    show.add_argument("--nodes", action="store_true", help="also print every node")
    show.add_argument(
        "--kernels",
        action="store_true",
        help="also print the fused kernels a kernel predictor sums (nn-Meter style)",
    )
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=run_show)

    sample = sub.add_parser("sample", help="print random architectures of a space")
    sample.add_argument("space", help="search space")
    sample.add_argument("-n", type=int, default=10, help="how many (default 10)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.set_defaults(handler=run_sample)


def graph_from_args(args: argparse.Namespace) -> Graph:
    """The graph named by ``SPACE ARCH`` or ``--onnx FILE`` (shared with ``latbench export``).

    ``--batch`` defaults to 1 for ``SPACE ARCH`` and to the model's own batch for ``--onnx``; an
    ONNX model's resolution is its own (``--resolution`` is refused with ``--onnx``).
    """
    if args.batch is not None and args.batch < 1:
        raise ConfigError(f"--batch {args.batch}; expected an integer >= 1")
    if args.onnx:
        if args.space or args.arch:
            raise ConfigError("give either SPACE ARCH or --onnx FILE, not both")
        if args.resolution is not None:
            raise ConfigError(
                f"--resolution {args.resolution} does not apply to --onnx {args.onnx!r}: an ONNX "
                "model's input resolution is its own; expected no --resolution with --onnx"
            )
        return from_onnx(args.onnx, batch=args.batch)
    if args.space and ":" in args.space:
        # SPACE:ARCH, the form `latbench measure` takes, is accepted here too
        if args.arch:
            raise ConfigError(
                f"{args.space!r} is SPACE:ARCH, followed by {args.arch!r}; expected SPACE ARCH "
                "or SPACE:ARCH, not both"
            )
        args.space, args.arch = args.space.split(":", 1)
    if not args.space or not args.arch:
        got = " ".join(repr(v) for v in (args.space, args.arch) if v) or "neither"
        raise ConfigError(
            "expected SPACE ARCH or SPACE:ARCH (e.g. nb201 '|nor_conv_3x3~0|+|...|') or "
            f"--onnx FILE; got {got}"
        )
    space = get_space(args.space)
    return space.build(args.arch, batch=args.batch or 1, resolution=args.resolution)


def _fmt_int(v: int) -> str:
    return f"{v:,}"


def run_show(args: argparse.Namespace) -> int:
    graph = graph_from_args(args)
    summary = graph.summary()
    if args.space and args.arch:
        space = get_space(args.space)
        summary["arch_id"] = space.arch_id(args.arch)
        if hasattr(space, "index"):
            summary["nb201_index"] = space.index(args.arch)
    if args.json:
        doc: dict[str, Any] = dict(summary)
        if args.nodes:
            doc["node_list"] = [
                {**n.to_dict(), "macs": graph.node_macs(n), "params": graph.node_params(n)}
                for n in graph.nodes
            ]
        if args.kernels:
            doc["kernels"] = _kernels(graph)
        from latbench.commands.measure import dumps_json

        print(dumps_json(doc))
        return 0
    labels = [
        ("space", summary.get("space", "")),
        ("arch", summary.get("arch", "")),
        ("source", summary.get("source", "")),
        ("model", summary.get("model", "")),
        ("arch_id", summary.get("arch_id", "")),
        ("nb201_index", summary.get("nb201_index", "")),
        ("graph_id", summary["graph_id"]),
        ("input", ", ".join("x".join(str(d) for d in n.shape) for n in graph.inputs)),
        ("output", ", ".join("x".join(str(d) for d in s) for s in summary["output_shape"])),
        ("nodes", summary["nodes"]),
        ("MACs", _fmt_int(summary["macs"])),
        ("FLOPs", _fmt_int(summary["flops"])),
        ("params", _fmt_int(summary["params"])),
        ("activations", f"{summary['activation_bytes'] / 2**20:.2f} MiB (sum of all outputs)"),
        ("peak act.", f"{summary['peak_activation_bytes'] / 2**20:.2f} MiB (live at once)"),
        ("ops", ", ".join(f"{k} {v}" for k, v in summary["ops"].items())),
    ]
    for key, value in labels:
        if value != "":
            print(f"{key:<12} {value}")
    if args.nodes:
        print()
        print(f"{'node':<28} {'op':<15} {'shape':<18} {'MACs':>12} {'params':>9}")
        for n in graph.nodes:
            shape = "x".join(str(d) for d in n.shape)
            print(
                f"{n.name[:28]:<28} {n.op:<15} {shape:<18} "
                f"{graph.node_macs(n):>12,} {graph.node_params(n):>9,}"
            )
    if args.kernels:
        kernels = _kernels(graph)
        print()
        print(f"{len(kernels)} fused kernels (what the kernel predictor sums):")
        head = f"{'#':>4} {'type':<16} {'hw':>5} {'cin':>5} {'cout':>5} {'k':>2} {'s':>2}"
        print(f"{head} {'MFLOPs':>9} {'params':>9}  nodes")
        for i, k in enumerate(kernels):
            print(
                f"{i:>4} {k['type'][:16]:<16} {k['hw']:>5.0f} {k['cin']:>5.0f} {k['cout']:>5.0f} "
                f"{k['kernel']:>2.0f} {k['stride']:>2.0f} {k['flops'] / 1e6:>9.3f} "
                f"{k['params']:>9,.0f}  {' '.join(k['nodes'])}"
            )
    return 0


def _kernels(graph: Any) -> list[dict[str, Any]]:
    """The graph's fused kernels (``encodings.kernel_features``), as JSON-ready dicts."""
    from latbench.predictors.encodings import kernel_features

    return [{**k, "nodes": list(k["nodes"])} for k in kernel_features(graph)]


def run_sample(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    if args.n < 1:
        from latbench.errors import ConfigError

        raise ConfigError(f"-n {args.n}; expected an integer >= 1")
    for arch in space.sample(args.n, seed=args.seed):
        print(arch)
    return 0
