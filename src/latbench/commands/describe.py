"""``latbench devices describe DEV``: measure a device's descriptor and store it.

The descriptor (``latbench.devices.descriptor``) holds MAPLE-style micro-kernel timings (and
hardware counters where the device exposes them) and, with ``--space``, HELP-style latencies of
fixed reference architectures. It is stored as ``<store dir>/descriptors/DEV.json`` (or ``-o``);
``--samples-csv`` also writes the reference latencies as few-shot samples for ``latbench adapt``.
Each item is printed as it completes, with the time left; the descriptor so far is kept in
``DEV.json.partial`` beside it, so that an interrupted run started again measures only the rest.
The descriptor records the timing settings and thread count its items were measured with; a
partial one of other settings (``--max-time``, ``--min-runs``, the bench.toml harness keys) is
refused rather than mixed with this run's items: rerun with its settings or delete it.
Kernels and reference architectures are written in the device's own format (TFLite for an adb
phone or a LiteRT board). An item whose connection dropped is tried again after the device
reconnects; when the device still fails, the partial file is kept and the command exits 1.
A descriptor already at the destination is replaced by this run's, except for the part this
run does not measure: with ``--no-kernels`` its micro-kernels, without ``--space`` its
reference architectures are kept, provided it was measured with the same device, runtime,
timing settings and thread count (else a warning, before measuring, says what will be lost).
The summary line says whether the descriptor is new, replaced or updated.

This module adds its options to the ``devices`` command; ``latbench devices describe DEV``
dispatches here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from latbench._atomic import atomic_path
from latbench.commands._json import dumps
from latbench.commands._progress import ItemProgress
from latbench.config import load_config
from latbench.errors import ConfigError, DatasetError, DeviceError

log = logging.getLogger(__name__)

#: how many architectures ``reference_archs`` draws its references from (at most)
REFERENCE_CANDIDATES = 200


def add_describe_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``devices describe`` (added to the ``devices`` parser); returns them, so
    that the device list can refuse them when given without ``describe``."""
    g = p.add_argument_group("devices describe DEV")
    return [
        g.add_argument(
            "--space", default=None, help="describe: also time N reference archs of SPACE"
        ),
        g.add_argument(
            # None: not given (10), so that --refs without --space can be refused
            "--refs",
            type=int,
            default=None,
            help="describe: reference archs (default 10)",
        ),
        g.add_argument(
            "--no-kernels", action="store_true", help="describe: skip the micro-kernels"
        ),
        g.add_argument("--min-runs", type=int, default=None, help="describe: harness minimum runs"),
        g.add_argument(
            "--max-time", type=float, default=None, help="describe: harness max seconds"
        ),
        g.add_argument("-o", "--output", default=None, help="describe: descriptor file (.json)"),
        g.add_argument(
            "--samples-csv",
            default=None,
            help="describe: write reference samples CSV (needs --space)",
        ),
    ]


def run_describe(args: argparse.Namespace, names: list[str]) -> int:
    from latbench.commands.measure import harness_settings, measure_sources
    from latbench.devices import get_device
    from latbench.devices.descriptor import (
        MICRO_KERNELS,
        Descriptor,
        carry_over,
        default_path,
        describe,
        identity,
        reference_archs,
        resumable,
        settings_conflict,
        update_conflict,
    )

    if len(names) != 1:
        raise ConfigError(f"devices describe takes one device name; got {names or 'none'}")
    name = names[0]
    if args.samples_csv and not args.space:
        # refused before measuring: the CSV holds the reference archs' latencies, which only
        # --space measures (the kernels alone take minutes on a phone)
        raise ConfigError(
            f"--samples-csv {args.samples_csv!r} writes the latencies of a space's reference "
            "architectures; expected --space SPACE too (e.g. --space nb201)"
        )
    cfg = load_config(args.config)
    settings = harness_settings(
        args, cfg.measure_for(name), max_time_caps_min=True, sources=measure_sources(cfg, name)
    )
    if args.refs is not None and args.refs < 1:
        raise ConfigError(f"--refs {args.refs}; expected >= 1")
    if args.refs is not None and not args.space:
        # the micro-kernels alone would be measured, and --refs ignored without a word
        raise ConfigError(
            f"--refs {args.refs} is the number of reference architectures of --space; "
            "expected --space SPACE too (e.g. --space nb201)"
        )
    args.refs = 10 if args.refs is None else args.refs
    if args.no_kernels and not args.space:
        raise ConfigError(
            f"devices describe {name}: --no-kernels without --space leaves nothing to measure; "
            "expected --space SPACE (reference architectures), or the micro-kernels"
        )
    if args.space:
        from latbench.spaces import get_space

        most = min(REFERENCE_CANDIDATES, get_space(args.space).size())
        if args.refs > most:
            raise ConfigError(
                f"--refs {args.refs}; expected at most {most} (the reference architectures of "
                f"{args.space} are drawn from {most})"
            )

    path = Path(args.output or default_path(cfg.store_path, name))
    partial_path = path.with_name(path.name + ".partial")
    _check_destination(path, partial_path, None if args.output else cfg.store_path)
    if args.samples_csv:
        # the CSV is written after the descriptor: at the same path it would replace it
        csv_at = Path(args.samples_csv).resolve()
        for what, p in (("descriptor", path), ("partial descriptor", partial_path)):
            if csv_at == p.resolve():
                raise ConfigError(
                    f"--samples-csv {args.samples_csv!r} is the {what} file {str(p)!r}; "
                    "expected another file (the CSV would replace it)"
                )
    earlier = _earlier(path)
    resume = None
    if partial_path.is_file():
        try:
            resume = Descriptor.load(partial_path)
        except DatasetError as exc:  # a partial file is ours to redo, never a reason to stop
            log.warning("%s; starting over", exc)
    kernels = () if args.no_kernels else MICRO_KERNELS
    items = [k.name for k in kernels]
    items += reference_archs(args.space, args.refs) if args.space else []

    with get_device(name, cfg) as dev:
        fresh = identity(dev, space=args.space, settings=settings)
        why = resumable(resume, fresh) if resume is not None else ""
        if resume is not None and why:
            log.warning("not resuming from %s: %s; starting over", partial_path, why)
            resume = None
        if resume is not None:
            conflict = settings_conflict(resume, fresh)
            if conflict:
                raise ConfigError(_conflict_message(name, partial_path, resume, fresh, conflict))
        # said before measuring, so that a run about to drop an earlier descriptor's items
        # can be stopped (or pointed elsewhere with -o) before it has cost anything
        mismatch = update_conflict(earlier, fresh) if earlier is not None else ""
        if earlier is not None:
            _warn_dropped(path, earlier, args, mismatch)
        held = {*resume.kernels_ms, *resume.reference_ms} if resume is not None else set()
        todo = len([i for i in items if i not in held])
        bar = ItemProgress(todo, enabled=not args.json)

        def progress(item: str, ms: float | None) -> None:
            if ms is None:
                log.warning("%s failed on %s%s", item, name, bar.step())
            else:
                bar.line(f"{ms:10.4f} ms  {item}")

        if resume is not None and not args.json:
            print(f"resuming from {partial_path}: {len(items) - todo} of {len(items)} measured")
        desc = describe(
            dev,
            space=args.space,
            n_reference=args.refs,
            kernels=kernels,
            settings=settings,
            progress=progress,
            resume=resume,
            checkpoint=lambda d: d.save(partial_path),
        )
    if desc.unfinished:
        # the device's link or setup failed on some items: keep the partial descriptor, so that
        # the same command run again (once the device is back or fixed) measures only those
        desc.save(partial_path)
        first = desc.failed.get(desc.unfinished[0], "")
        raise DeviceError(
            f"descriptor of {name} incomplete: {len(desc.unfinished)} of {len(items)} items not "
            f"measured because of the device ({first}); kept {partial_path}: run the same "
            "command again to measure the rest"
        )
    kept = ""
    if earlier is not None and not mismatch:
        kept = carry_over(desc, earlier, kernels=not args.no_kernels, references=bool(args.space))
    stored = "new" if not path.exists() else "updated" if kept else "replaced"
    desc.save(path)
    partial_path.unlink(missing_ok=True)
    if args.samples_csv:
        # written beside and swapped in whole: an interrupted write keeps the file already there
        with atomic_path(args.samples_csv) as tmp:
            desc.reference_samples_csv(tmp)
    if args.json:
        doc: dict[str, Any] = json.loads(desc.to_json())
        doc["path"] = str(path)
        doc["stored"] = stored
        if kept:
            doc["kept"] = kept
        print(dumps(doc, indent=2, sort_keys=True))
    else:
        how = {
            "new": "",
            "updated": f" (updated: kept the earlier descriptor's {kept})",
            "replaced": " (replaced the earlier descriptor)",
        }[stored]
        print(
            f"descriptor of {name}: {len(desc.kernels_ms)} micro-kernels, "
            f"{len(desc.reference_ms)} reference archs, {len(desc.failed)} failed -> {path}{how}"
        )
    return 1 if desc.failed and not (desc.kernels_ms or desc.reference_ms) else 0


def _check_destination(path: Path, partial_path: Path, store: Any) -> None:
    """Refuse a descriptor path that cannot be written before anything is measured.

    ``-o`` is checked with every output option (``latbench.cli.check_outputs``); the default
    ``<store dir>/descriptors/DEV.json`` is not, and a folder in its place (or a file where
    its ``descriptors`` folder goes) failed only at the first checkpoint or, for a folder
    ``DEV.json``, after every item had been measured. ``store``: the store path the default
    came from (None for ``-o``), named in the message.
    """
    where = f" (beside the store {str(store)!r})" if store is not None else ""
    for p in (path, partial_path):
        if p.is_dir():
            raise ConfigError(
                f"descriptor file {str(p)!r}{where} is a directory; expected a file to write "
                "(remove the directory, or pass -o FILE)"
            )
    # the folder is made at the first checkpoint; here only what stands in its way is looked
    # for, so that a command refused later (an unknown device) leaves nothing behind
    there = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not there.is_dir():
        raise ConfigError(
            f"descriptor folder {str(path.parent)!r}{where} cannot be created: "
            f"{str(there)!r} is a file; expected a directory (or pass -o FILE to write "
            "elsewhere)"
        )
    if not os.access(there, os.W_OK):
        raise ConfigError(
            f"descriptor folder {str(there)!r}{where} is not writable; expected a directory "
            "this user may write in (or pass -o FILE)"
        )


def _earlier(path: Path) -> Any:
    """The descriptor already at ``path``, or None (none there, or a file that is not one:
    it is replaced, said with a warning, as -o names a file to write)."""
    from latbench.devices.descriptor import Descriptor

    if not path.is_file():
        return None
    try:
        return Descriptor.load(path)
    except DatasetError as exc:
        log.warning("%s; it will be replaced by this run's descriptor", exc)
        return None


def _warn_dropped(path: Path, earlier: Any, args: argparse.Namespace, mismatch: str) -> None:
    """Warn about the items of the descriptor at ``path`` that this run will not keep: those
    of a part it does not measure when ``earlier`` was measured another way (``mismatch``),
    and the reference architectures of another space than ``--space``."""
    lost = []
    if mismatch:
        if args.no_kernels and earlier.kernels_ms:
            lost.append(f"{len(earlier.kernels_ms)} micro-kernels")
        if not args.space and earlier.reference_ms:
            lost.append(f"{len(earlier.reference_ms)} reference archs of {earlier.space}")
        if lost:
            log.warning(
                "%s holds %s, which this run does not measure and will not keep: it was "
                "measured with %s; pass -o FILE to keep it",
                path,
                " and ".join(lost),
                mismatch,
            )
    if args.space and earlier.reference_ms and earlier.space and earlier.space != args.space:
        log.warning(
            "%s holds %d reference archs of %s; this run replaces them with %s's (a descriptor "
            "holds one space's); pass -o FILE to keep both",
            path,
            len(earlier.reference_ms),
            earlier.space,
            args.space,
        )


#: the describe options that set a harness setting
_SETTING_OPTIONS = {"min_runs": "--min-runs", "max_time_s": "--max-time"}


def _conflict_message(
    name: str, partial_path: Path, partial: Any, fresh: Any, conflict: str
) -> str:
    """A partial descriptor measured with other timing settings: refused, never mixed."""
    held = len(partial.kernels_ms) + len(partial.reference_ms)
    options = [
        f"{option} {partial.settings[key]!r}"
        for key, option in _SETTING_OPTIONS.items()
        if key in partial.settings and partial.settings[key] != fresh.settings.get(key)
    ]
    same = f" ({' '.join(options)})" if options else ""
    return (
        f"devices describe {name}: the partial descriptor {str(partial_path)!r} ({held} items) "
        f"was measured with {conflict}; continuing it would mix items timed both ways. "
        f"Expected the settings it was made with{same}, or delete {str(partial_path)!r} to "
        "start over"
    )
