"""The ``latbench`` command.

Each sub-command lives in a module of :mod:`latbench.commands` that defines
``register(subparsers)``; this module assembles them and is the one place where library errors
become a one-line message on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

from latbench import __version__
from latbench.errors import LatbenchError

log = logging.getLogger("latbench")

Handler = Callable[[argparse.Namespace], int | None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latbench",
        description="Measure, model and exploit the inference latency of neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"latbench {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    parser.add_argument(
        "--config", default=None, help="bench.toml to read (default: ./bench.toml if present)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import latbench.commands as commands_pkg

    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"latbench.commands.{info.name}")
        register: Callable[[Any], None] | None = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        rc = handler(args)
    except LatbenchError as exc:
        print(f"latbench: error: {exc}", file=sys.stderr)
        log.debug("traceback", exc_info=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("latbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
