"""The ``latbench`` command.

Each sub-command lives in a module of :mod:`latbench.commands` that defines
``register(subparsers)``; this module assembles them and is the one place where library errors
become a one-line message on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from latbench import __version__
from latbench.errors import ConfigError, LatbenchError

log = logging.getLogger("latbench")

Handler = Callable[[argparse.Namespace], int | None]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole ``latbench`` parser, or, with ``command``, the parser of that command alone.

    Each command module imports what its command needs (pandas, scikit-learn, torch, ...), so
    building every sub-parser costs ~1.5 s of imports; a known ``command`` imports its own module
    only. Every command lives in the module of the same name (``latbench.commands.<command>``).
    """
    parser = argparse.ArgumentParser(
        prog="latbench",
        description="Measure, model and exploit the inference latency of neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"latbench {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    parser.add_argument(
        "--config",
        default=None,
        help="bench.toml to read (default: $LATBENCH_CONFIG if set, else ./bench.toml if present)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = command_modules()
    for name in [command] if command in names else names:
        module = importlib.import_module(f"latbench.commands.{name}")
        register: Callable[[Any], None] | None = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def command_modules() -> list[str]:
    """The modules of :mod:`latbench.commands`, sorted (found without importing them)."""
    import latbench.commands as commands_pkg

    infos = pkgutil.iter_modules(commands_pkg.__path__)
    return sorted(m.name for m in infos if not m.name.startswith("_"))


def command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv``: the first word that is no top-level option (or the
    value of ``--config``); None when there is none."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--config":
            skip = True
        elif arg == "--":
            continue
        elif not arg.startswith("-"):
            return arg
    return None


class _Format(logging.Formatter):
    """``latbench: warning: ...`` as ``latbench: error: ...`` reads; with ``-v`` every record
    also names its level and module (``INFO latbench.datasets.collect: ...``), for debugging."""

    def __init__(self, verbose: bool) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        if self.verbose or record.levelno < logging.WARNING:
            return super().format(record)
        text = f"latbench: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format(verbose=verbosity > 0))
    logging.basicConfig(level=level, handlers=[handler])
    # paramiko logs tracebacks of failures latbench reports itself (a host that sends no SSH
    # banner, a dropped link): shown with -vv only
    logging.getLogger("paramiko").setLevel(logging.DEBUG if verbosity >= 2 else logging.CRITICAL)


# the options that name a file a command writes: (attribute, how the user spelled it)
OUTPUT_OPTIONS = (
    ("output", "-o/--output"),
    ("plot", "--plot"),
    ("csv", "--csv"),
    ("samples_csv", "--samples-csv"),
    ("save_samples", "--save-samples"),
    ("profiles", "--profiles"),
)


#: image formats matplotlib writes without optional packages (its savefig picks the format
#: from the suffix; a file without one silently becomes NAME.png)
PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".eps", ".ps")


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output file whose folder does not exist (or that is a folder), or a plot whose
    name is no image format, before the command runs, so that a long fit or measurement is not
    lost at the point of writing."""
    for attr, flag in OUTPUT_OPTIONS:
        value = getattr(args, attr, None)
        if not isinstance(value, str) or not value:
            continue
        if value == "-":
            # standard output where the command writes it there; elsewhere a file named "-"
            # (and "-.png" beside it) is never what was meant
            if attr in getattr(args, "stdout_options", ()):
                continue
            raise ConfigError(
                f"{flag} -: this command does not write to standard output; expected a file name"
            )
        path = Path(value)
        if attr == "plot" and path.suffix.lower() not in PLOT_SUFFIXES:
            raise ConfigError(
                f"{flag} {value!r}: no image format has the suffix {path.suffix or '(none)'!r}; "
                f"expected a name ending in {', '.join(PLOT_SUFFIXES)}"
            )
        if path.is_dir():
            raise ConfigError(f"{flag} {value!r} is a directory; expected a file to write")
        if not path.parent.is_dir():
            blocker = next((p for p in path.parents if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise ConfigError(
                    f"{flag} {value!r}: the parent {str(blocker)!r} is not a directory; "
                    "expected an existing directory"
                )
            raise ConfigError(
                f"{flag} {value!r}: directory {str(path.parent)!r} does not exist; "
                "create it first or pick another path"
            )
        if not os.access(path.parent, os.W_OK):
            raise ConfigError(
                f"{flag} {value!r}: directory {str(path.parent)!r} is not writable; "
                "expected a directory this user may write in"
            )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_of(argv))
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        check_outputs(args)
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
    except OSError as exc:  # disk full, permission denied, ...: what and where, not a traceback
        print(f"latbench: error: {exc}", file=sys.stderr)
        log.debug("traceback", exc_info=True)
        return 1
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
