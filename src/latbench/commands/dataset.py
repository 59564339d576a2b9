"""``latbench dataset``: list, show, stats, query, import, export, and the bundled reference data.

Examples::

    latbench dataset list                                  # collections in ./latbench.db
    latbench dataset show nb201-onnxruntime                # one collection: devices, drift, errors
    latbench dataset stats --space nb201                   # per device: rows, latency range
    latbench dataset export --format parquet -o nb201.parquet --space nb201 --device 'help/*'
    latbench dataset import measurements.csv --name lab    # space,arch,device,latency_ms
    latbench dataset import --reference nb201              # the bundled NAS-Bench-201 table
    latbench dataset reference                             # what is bundled, with licences
    latbench dataset query --reference nb201 --index 1234  # one arch on every device
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from latbench.commands.collect import add_db_argument, db_path
from latbench.config import load_config
from latbench.errors import ConfigError, UnknownNameError

MAX_REJECTED_SHOWN = 20


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default=None, help="only this space")
    p.add_argument("--device", default=None, help="only this device (glob: 'help/*')")
    p.add_argument("--collection", default=None, help="only this collection (glob)")
    p.add_argument("--runtime", default=None, help="only this runtime")
    p.add_argument(
        "--status", default="all", choices=["ok", "failed", "all"], help="rows by status (all)"
    )


def _filter_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "space": args.space,
        "device": args.device,
        "collection": args.collection,
        "runtime": args.runtime,
        "status": None if args.status == "all" else args.status,
    }


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dataset",
        help="list, show, import and export datasets; bundled reference data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="collections and imports in the store")
    add_db_argument(ls)
    ls.set_defaults(handler=run_list)

    show = sub.add_parser("show", help="one collection: settings, devices, drift, failures")
    show.add_argument("name", help="collection name (see `latbench dataset list`)")
    add_db_argument(show)
    show.set_defaults(handler=run_show)

    stats = sub.add_parser("stats", help="rows and latency range per device")
    add_db_argument(stats)
    _filters(stats)
    stats.set_defaults(handler=run_stats)

    exp = sub.add_parser("export", help="write rows to parquet or CSV")
    exp.add_argument("-o", "--output", required=True, metavar="FILE", help="output file")
    exp.add_argument("--format", choices=["parquet", "csv"], default=None, help="default: suffix")
    add_db_argument(exp)
    _filters(exp)
    exp.set_defaults(handler=run_export)

    imp = sub.add_parser("import", help="import a file, another store, or reference data")
    imp.add_argument("file", nargs="?", help=".db, .parquet, .csv or .csv.gz")
    imp.add_argument("--reference", metavar="NAME", help="a bundled table (nb201, fbnet)")
    imp.add_argument("--name", default=None, help="collection name of the imported rows")
    imp.add_argument("--space", default=None, help="space of a file without a space column")
    imp.add_argument("--strict", action="store_true", help="exit 1 when any row is rejected")
    add_db_argument(imp)
    imp.set_defaults(handler=run_import)

    q = sub.add_parser(
        "query",
        help="the measured latency of one architecture on every device (HW-NAS-Bench style)",
    )
    q.add_argument("arch", nargs="?", help="architecture string (or SPACE:ARCH)")
    q.add_argument("--index", type=int, default=None, help="the architecture at this index")
    q.add_argument("--reference", metavar="NAME", help="a bundled table (nb201, fbnet)")
    q.add_argument("--space", default=None, help="space of the architecture (store)")
    q.add_argument("--device", default=None, help="only these devices: names, short names, globs")
    q.add_argument("--json", action="store_true", help="JSON rows")
    add_db_argument(q)
    q.set_defaults(handler=run_query)

    ref = sub.add_parser("reference", help="the bundled reference tables (and their licences)")
    ref.add_argument("name", nargs="?", help="show one table's devices")
    ref.set_defaults(handler=run_reference)


def _open(args: argparse.Namespace, *, readonly: bool = True) -> Any:
    from latbench.datasets import open_store

    cfg = load_config(args.config)
    return open_store(db_path(args, cfg), readonly=readonly, create=not readonly)


def _print_table(df: pd.DataFrame) -> None:
    if df.empty:
        print("(no rows)")
        return
    # a missing value (an imported row has no measurement time, a collection with no
    # successful row no latency) reads as "-", not as None or NaN
    text = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    df = df.assign(**{c: df[c].where(df[c].notna(), "-").map(_cell) for c in text})
    with pd.option_context("display.max_rows", 500, "display.width", 160):
        print(df.to_string(index=False, na_rep="-"))


#: the widest text cell a table prints: one very long device name would otherwise pad every
#: line of the table to its width (the full name stays in the store and in exports)
MAX_CELL = 60


def _cell(value: object) -> object:
    """A text cell of a printed table, a long one shortened in its middle (the start and end
    of a name tell devices apart more often than its middle)."""
    if not isinstance(value, str) or len(value) <= MAX_CELL:
        return value
    keep = (MAX_CELL - 3) // 2
    return f"{value[:keep]}...{value[-(MAX_CELL - 3 - keep) :]}"


def run_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        df = store.collections().drop(columns=["params"])
        _print_table(df)
        print(f"\n{store.count()} row(s) in {store.path}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        stats = store.stats(collection=args.name)
        if stats.empty and not store.has_collection(args.name):
            names = ", ".join(store.collections()["name"]) or "(none)"
            raise ConfigError(
                f"no collection {args.name!r} in {store.path}; expected one of: {names}"
            )
        params = store.collection_params(args.name)
        print(f"collection {args.name!r} in {store.path}")
        if params:
            print("settings: " + json.dumps(params, sort_keys=True))
        _print_table(stats.drop(columns=["collection"]))
        drift = store.drift(args.name)
        if not drift.empty:
            print("\ndrift (reference model re-measurements):")
            _print_table(
                drift.groupby("device")
                .agg(
                    checks=("id", "count"),
                    baseline_ms=("baseline_ms", "last"),
                    last_ratio=("ratio", "last"),
                    max_ratio=("ratio", "max"),
                    min_ratio=("ratio", "min"),
                )
                .reset_index()
            )
        failed = store.to_pandas(
            columns=["device", "arch", "error"], collection=args.name, status="failed"
        )
        if not failed.empty:
            print(f"\nfailed architectures ({len(failed)}):")
            _print_table(failed.head(MAX_REJECTED_SHOWN))
    return 0


def _no_match_hint(store: Any, args: argparse.Namespace) -> str:
    """What the store holds for each filter given, when the filters matched no row."""
    everything = store.stats()
    parts = []
    for key in ("space", "device", "collection", "runtime"):
        if getattr(args, key, None) is not None:
            held = sorted({str(v) for v in everything[key]}) if not everything.empty else []
            shown = ", ".join(held[:12]) + (", ..." if len(held) > 12 else "")
            parts.append(f"--{key} {getattr(args, key)!r} (the store holds: {shown or 'none'})")
    status = getattr(args, "status", None)
    if status not in (None, "all") and not everything.empty:
        counts = {"ok": int(everything["ok"].sum()), "failed": int(everything["failed"].sum())}
        holds = ", ".join(f"{n} {k}" for k, n in counts.items())
        parts.append(f"--status {status!r} (the store holds {holds} row(s))")
    if not parts:
        return f"{store.path} holds no rows"
    return "no rows match " + "; ".join(parts)


def run_stats(args: argparse.Namespace) -> int:
    with _open(args) as store:
        stats = store.stats(**_filter_values(args))
        _print_table(stats)
        if stats.empty:
            print(_no_match_hint(store, args), file=sys.stderr)
    return 0


def _query_rows(args: argparse.Namespace) -> tuple[pd.DataFrame, str, str]:
    """``(rows, space, where)``: the successful rows of the reference table or the store, of
    one space, with ``space, arch, device, latency_ms`` (and the table's index column)."""
    from latbench.datasets.reference import REFERENCE_TABLES, load_reference

    if args.reference:
        if args.db:
            raise ConfigError("--reference and --db: expected one source of measurements")
        if args.reference not in REFERENCE_TABLES:
            raise UnknownNameError(
                f"unknown reference dataset {args.reference!r}; expected one of: "
                + ", ".join(sorted(REFERENCE_TABLES))
            )
        df = load_reference(args.reference)
        ref_space = str(df.space.iloc[0])
        if args.space and args.space != ref_space:
            raise ConfigError(
                f"--space {args.space}, but reference {args.reference} is {ref_space}"
            )
        return df, ref_space, f"reference {args.reference}"
    with _open(args) as store:
        df = store.to_pandas(columns=["space", "arch", "device", "latency_ms"], status="ok")
        where = str(store.path)
    spaces = sorted(df.space.astype(str).unique())
    space: str | None = args.space or (spaces[0] if len(spaces) == 1 else None)
    if space is None:
        raise ConfigError(
            f"{where} holds spaces {', '.join(spaces) or '(none)'}; expected --space SPACE"
        )
    return df[df.space.astype(str) == space], space, where


def run_query(args: argparse.Namespace) -> int:
    """One architecture's measured latency on every device, with where it stands among each
    device's architectures (the share measured faster)."""
    from latbench.commands.measure import split_space_target
    from latbench.predictors.monotonicity import select_devices
    from latbench.spaces import get_space

    if (args.arch is None) == (args.index is None):
        raise ConfigError("give an architecture or --index N (one of them)")
    arch_arg: str = args.arch or ""
    given = split_space_target(arch_arg)  # SPACE:ARCH, as `latbench measure` takes it
    if given and not args.space:
        args.space, arch_arg = given
    full, space_name, where = _query_rows(args)
    space = get_space(space_name)
    if args.index is not None:
        column = f"{space_name}_index"
        if column in full.columns:
            hit = full[full[column] == args.index]
            if hit.empty:
                top = int(full[column].max())
                raise ConfigError(f"--index {args.index}; expected 0 to {top} ({where})")
            arch = str(hit.arch.iloc[0])
        elif hasattr(space, "from_index"):
            arch = space.from_index(args.index)
        else:
            raise ConfigError(f"--index: {where} has no index of {space_name} architectures")
    else:
        arch = space.canonical(arch_arg)
    df = full[full.arch.astype(str) == arch]
    if df.empty:
        raise ConfigError(f"{arch} of {space_name} was not measured in {where}")
    devices = sorted(full.device.astype(str).unique())
    if args.device:
        from latbench.errors import PredictorError

        try:
            devices = select_devices(devices, [d.strip() for d in args.device.split(",")])
        except PredictorError as exc:
            raise ConfigError(f"--device: {exc}") from None
    rows, missing = [], []
    by_device = full.groupby(full.device.astype(str))
    for dev in devices:
        mine = df[df.device.astype(str) == dev].latency_ms.to_numpy(dtype=float)
        if not len(mine):
            missing.append(dev)
            continue
        others = by_device.get_group(dev).groupby("arch")["latency_ms"].median()
        value = float(pd.Series(mine).median())
        rows.append(
            {
                "device": dev,
                "latency_ms": value,
                "measurements": len(mine),
                "faster_pct": 100.0 * float((others < value).mean()),
                "archs": len(others),
            }
        )
    index = f" (index {space.index(arch)})" if hasattr(space, "index") else ""
    if args.json:
        from latbench.commands._json import dumps

        doc = {"space": space_name, "arch": arch, "source": where, "rows": rows}
        print(dumps({**doc, "not_measured_on": missing}, indent=1))
        return 0
    print(f"{space_name} {arch}{index} in {where}: measured on {len(rows)} device(s)")
    if rows:
        _print_table(pd.DataFrame(rows))
        print("faster_pct: the share of the device's measured architectures that ran faster")
    if missing:
        shown = ", ".join(missing[:12]) + (", ..." if len(missing) > 12 else "")
        print(f"not measured on {len(missing)} device(s): {shown}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from latbench.datasets import export_store

    with _open(args) as store:
        n = export_store(store, args.output, fmt=args.format, **_filter_values(args))
        hint = _no_match_hint(store, args) if n == 0 else ""
    print(f"wrote {n} row(s) to {args.output}")
    if hint:
        print(f"warning: {hint}", file=sys.stderr)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from latbench.datasets.reference import REFERENCE_TABLES

    if bool(args.file) == bool(args.reference):
        raise ConfigError("give either FILE or --reference NAME")
    if args.reference and args.reference not in REFERENCE_TABLES:  # before a store is made
        raise UnknownNameError(
            f"unknown reference dataset {args.reference!r}; expected one of: "
            + ", ".join(sorted(REFERENCE_TABLES))
        )
    path = db_path(args, load_config(args.config))
    created = not path.exists()
    try:
        return _import(args)
    except BaseException:
        if created:
            remove_if_empty(path)  # a failed import leaves no empty store behind
        raise


def remove_if_empty(path: Path) -> bool:
    """Delete the store at ``path`` when it holds nothing and no other process uses it (see
    :func:`latbench.datasets.store.remove_if_empty`)."""
    from latbench.datasets.store import remove_if_empty as remove

    return remove(path)


def _import(args: argparse.Namespace) -> int:
    from latbench.datasets import import_reference, import_table

    with _open(args, readonly=False) as store:
        if args.reference:
            report = import_reference(store, args.reference, collection=args.name)
        else:
            report = import_table(store, args.file, collection=args.name, space=args.space)
        for where, reason in report.rejected[:MAX_REJECTED_SHOWN]:
            print(f"{report.source} {where}: rejected: {reason}", file=sys.stderr)
        extra = len(report.rejected) - MAX_REJECTED_SHOWN
        if extra > 0:
            print(f"... and {extra} more rejected row(s)", file=sys.stderr)
        print(report.summary())
        print(f"store: {store.path}")
    return 1 if args.strict and report.rejected else 0


def run_reference(args: argparse.Namespace) -> int:
    from latbench.datasets import list_reference, reference_devices, reference_dir
    from latbench.datasets.reference import REFERENCE_TABLES, batch_of

    if args.name:
        if args.name not in REFERENCE_TABLES:
            raise UnknownNameError(
                f"unknown reference dataset {args.name!r}; expected one of "
                + ", ".join(sorted(REFERENCE_TABLES))
            )
        t = REFERENCE_TABLES[args.name]
        print(f"{t.name}: {t.description}")
        print(f"sources: {', '.join(t.sources)}")
        devices = reference_devices(t.name)
        _print_table(pd.DataFrame({"device": devices, "batch": [batch_of(d) for d in devices]}))
    else:
        listing = list_reference()
        # the prose columns are printed whole below the table: shortened in a cell, a
        # description and a list of sources lose the part a reader looks for
        prose = [c for c in ("description", "sources") if c in listing.columns]
        _print_table(listing.drop(columns=prose))
        for row in listing.itertuples(index=False):
            print(f"\n{row.name}: {getattr(row, 'description', '')}")
            if "sources" in prose:
                print(f"  sources: {row.sources}")
    ref = reference_dir()
    print(f"\nlicences: {ref / 'licenses'}\nattribution: {ref / 'ATTRIBUTION.md'}")
    return 0
