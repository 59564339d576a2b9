"""``latbench spaces``: list the registered search spaces with their sizes."""

from __future__ import annotations

import argparse
from typing import Any

from latbench.commands._json import dumps
from latbench.spaces import get_space, list_spaces


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "spaces",
        help="list the search spaces",
        description="List the registered search spaces: name, size, positions and choices.",
    )
    p.add_argument("pattern", nargs="?", default="*", help="glob filter on the name")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    rows = [get_space(name).describe() for name in list_spaces(args.pattern)]
    if not rows:
        from latbench.errors import UnknownNameError

        raise UnknownNameError(
            f"no search space matches {args.pattern!r}; expected a name or glob of: "
            + ", ".join(list_spaces())
        )
    if args.json:
        print(dumps(rows, indent=2))
        return 0
    print(f"{'name':<8} {'size':>12} {'positions':>9}  choices")
    for r in rows:
        size = r["size"]
        size_s = f"{size:,}" if size < 10**12 else f"{size:.3e}"
        print(f"{r['name']:<8} {size_s:>12} {r['positions']:>9}  {', '.join(r['choices'])}")
        print(f"{'':<8} {'':>12} {'':>9}  arch: {r['arch_format']}")
    return 0
