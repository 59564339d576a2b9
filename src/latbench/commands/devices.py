"""``latbench devices``: the devices of bench.toml plus ``local``, probed, with descriptors.

Exit status: 0 when every device listed is available, 1 when one is not (UNAVAILABLE, with the
reason; with --json the list is printed all the same), 2 when a device table is malformed.
"""

from __future__ import annotations

import argparse
from typing import Any

from latbench.commands._json import dumps
from latbench.config import load_config
from latbench.errors import ConfigError, LatbenchError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "devices",
        help="list the configured devices (plus local) and probe them",
        description=__doc__,
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("names", nargs="*", help="only these devices (default: all)")
    from latbench.commands.describe import add_describe_options

    describe_only = add_describe_options(p)  # `latbench devices describe DEV`
    p.set_defaults(handler=run, describe_only=describe_only)


def probe(name: str, cfg: Any) -> dict[str, Any]:
    """``{"name", "transport", "available", "descriptor" | "reason", "fingerprint"}``."""
    from latbench.devices import get_device

    table = cfg.device(name)
    entry: dict[str, Any] = {"name": name, "transport": table.get("transport")}
    try:
        with get_device(name, cfg) as dev:
            entry["descriptor"] = dev.describe()
            entry["fingerprint"] = dev.fingerprint()
            entry["available"] = True
    except ConfigError:  # a malformed table is the user's to fix: exit 2 with its message
        raise
    except (LatbenchError, OSError) as exc:
        entry["available"] = False
        entry["reason"] = str(exc)
    return entry


def run(args: argparse.Namespace) -> int:
    if args.names[:1] == ["describe"]:
        from latbench.commands.describe import run_describe

        return run_describe(args, args.names[1:])
    given = [
        "/".join(a.option_strings)
        for a in getattr(args, "describe_only", [])
        if getattr(args, a.dest, a.default) != a.default
    ]
    if given:
        raise ConfigError(
            f"{', '.join(given)}: only `latbench devices describe NAME` reads "
            f"{'it' if len(given) == 1 else 'them'}; the device list takes --json and names"
        )
    cfg = load_config(args.config)
    # a name given twice is probed and listed once
    names = list(dict.fromkeys(args.names)) or [
        "local",
        *sorted(n for n in cfg.devices if n != "local"),
    ]
    entries = [probe(n, cfg) for n in names]
    rc = 0 if all(e["available"] for e in entries) else 1
    if args.json:
        print(dumps(entries, indent=2, sort_keys=True))
        return rc
    for e in entries:
        status = "ok" if e["available"] else "UNAVAILABLE"
        print(f"{e['name']}  [{e['transport']}]  {status}")
        if not e["available"]:
            print(f"    reason: {e['reason']}")
            continue
        print(f"    fingerprint: {e['fingerprint']}")
        for key, value in e["descriptor"].items():
            if key in ("name", "kind") or value in (None, {}, []):
                continue
            print(f"    {key}: {value}")
    return rc
