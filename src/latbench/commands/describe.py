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

This module adds its options to the ``devices`` command; ``latbench devices describe DEV``
dispatches here.
"""

from __future__ import annotations

import argparse
import json
import logging
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
            "--refs", type=int, default=10, help="describe: reference archs (default 10)"
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
        default_path,
        describe,
        identity,
        reference_archs,
        resumable,
        settings_conflict,
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
    if args.refs < 1:
        raise ConfigError(f"--refs {args.refs}; expected >= 1")
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
    desc.save(path)
    partial_path.unlink(missing_ok=True)
    if args.samples_csv:
        # written beside and swapped in whole: an interrupted write keeps the file already there
        with atomic_path(args.samples_csv) as tmp:
            desc.reference_samples_csv(tmp)
    if args.json:
        doc: dict[str, Any] = json.loads(desc.to_json())
        doc["path"] = str(path)
        print(dumps(doc, indent=2, sort_keys=True))
    else:
        print(
            f"descriptor of {name}: {len(desc.kernels_ms)} micro-kernels, "
            f"{len(desc.reference_ms)} reference archs, {len(desc.failed)} failed -> {path}"
        )
    return 1 if desc.failed and not (desc.kernels_ms or desc.reference_ms) else 0


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
