"""``latbench collect``: measure many architectures of a space into the store, resumably.

Examples::

    latbench collect --space nb201 --device local --sample 200 --seed 0
    latbench collect --space nb201 --device local --all --db nb201.db --name nb201-ort
    latbench collect --space fbnet --device pi4,pixel7 --archs archs.txt

Running the same command again continues where the last one stopped (no row twice, none lost).
Ctrl-C (or SIGTERM) stops cleanly after the current architecture. A failed architecture is
stored with its error and the run goes on (``--retry-failed`` measures those again). With
several devices (``--device pi4,phone1,local``) the devices measure at once through the device
fleet (one model at a time each, one progress bar, failures isolated per device). Drift
control re-measures a reference model every ``--drift-every`` architectures and warns when the
machine drifted by more than ``--drift-threshold``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from latbench.commands._archfile import read_archs
from latbench.commands.measure import harness_settings, measure_sources
from latbench.config import Config, load_config
from latbench.errors import ConfigError


def add_db_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", default=None, metavar="PATH", help="store file (default: bench.toml [store] path)"
    )


def db_path(args: argparse.Namespace, cfg: Config) -> Path:
    return Path(args.db) if getattr(args, "db", None) else cfg.store_path


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "collect",
        help="measure many architectures into the store (resumable, crash-safe)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", required=True, help="search space (nb201, fbnet, ...)")
    p.add_argument(
        "--device", default="local", help="device(s) from bench.toml, comma-separated (local)"
    )
    p.add_argument("--runtime", default=None, help="onnxruntime | litert | torch (default: toml)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--sample", type=int, metavar="N", help="N random architectures")
    which.add_argument("--all", action="store_true", help="every architecture of the space")
    which.add_argument("--archs", metavar="FILE", help="architectures, one per line")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument(
        "--weights-seed", type=int, default=0, help="seed of the weights and inputs (default 0)"
    )
    add_db_argument(p)
    p.add_argument("--name", default=None, help="collection name (default: SPACE-RUNTIME)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default 1)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 1)")
    p.add_argument("--resolution", type=int, default=None, help="input resolution")
    p.add_argument("--warmup", type=int, default=None, metavar="N", help="warm-up runs")
    p.add_argument("--warmup-time", type=float, default=None, metavar="S", help="warm-up seconds")
    p.add_argument("--min-runs", type=int, default=None, metavar="N", help="minimum timed runs")
    p.add_argument("--min-time", type=float, default=None, metavar="S", help="minimum seconds")
    p.add_argument("--max-time", type=float, default=None, metavar="S", help="maximum seconds")
    p.add_argument("--spread", type=float, default=None, metavar="R", help="IQR/median stop rule")
    p.add_argument("--loops", type=int, default=None, help="inferences per sample (default auto)")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="per-model timeout")
    p.add_argument(
        "--drift-every", type=int, default=None, metavar="N", help="reference model every N (50)"
    )
    p.add_argument(
        "--drift-threshold", type=float, default=None, metavar="R", help="warn above R (0.10)"
    )
    p.add_argument("--drift-arch", default=None, help="reference architecture of drift control")
    p.add_argument("--retry-failed", action="store_true", help="measure failed archs again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


#: the numeric options of collect checked here, by the name the user gave them: (option,
#: attribute, what it takes); the timing options are checked by ``harness_settings``
COLLECT_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--threads", "threads", {"integer": True, "low": 1}),
    ("--batch", "batch", {"integer": True, "low": 1}),
    ("--weights-seed", "weights_seed", {"integer": True, "low": 0}),
    ("--drift-every", "drift_every", {"integer": True, "low": 0}),
    ("--drift-threshold", "drift_threshold", {"positive": True}),
)


def check_options(args: argparse.Namespace) -> None:
    """Refuse an option out of range, by its name (bench.toml's are checked as it is read):
    ``--drift-threshold nan`` would otherwise never warn, ``--weights-seed -1`` is refused by
    ``measure --seed`` too, and an empty ``--name`` would silently be the default name."""
    from latbench._validate import out_of_range

    bad = out_of_range(
        (option, getattr(args, attr, None), rule) for option, attr, rule in COLLECT_OPTIONS
    )
    if bad is not None:
        raise ConfigError(bad[1])
    if args.drift_arch is not None and args.drift_every == 0:
        raise ConfigError(
            f"--drift-arch {args.drift_arch!r} with --drift-every 0: drift control is off, so "
            "the reference would never be measured; expected --drift-every N >= 1, or no "
            "--drift-arch"
        )
    if args.name is not None and not args.name.strip():
        raise ConfigError(
            f"--name {args.name!r}; expected a collection name (or no --name: SPACE-RUNTIME)"
        )


def run(args: argparse.Namespace) -> int:
    from latbench.datasets import open_store
    from latbench.datasets.collect import CollectSettings, check_settings, collect
    from latbench.devices import get_device
    from latbench.spaces import get_space

    cfg = load_config(args.config)
    coll = cfg.collect
    space = get_space(args.space)
    runtime = args.runtime or str(cfg.measure.get("runtime", "onnxruntime"))
    if args.all:
        archs = space.enumerate_all()
    elif args.archs:
        archs = read_archs(args.archs, space)
    else:
        if args.sample < 1:
            raise ConfigError(f"--sample {args.sample}; expected an integer >= 1")
        from latbench.spaces.base import ENUMERATE_LIMIT

        if args.sample > ENUMERATE_LIMIT:  # drawing them alone would take hours and the memory
            raise ConfigError(
                f"--sample {args.sample}; expected at most {ENUMERATE_LIMIT:,} architectures "
                "per collection (run several collections, or list them in --archs FILE)"
            )
        archs = space.sample(args.sample, args.seed)
    names = [n.strip() for n in str(args.device).split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--device {args.device!r}; expected device names such as local")
    check_options(args)
    settings = CollectSettings(
        collection=args.name or f"{space.name}-{runtime}",
        runtime=runtime,
        threads=args.threads if args.threads is not None else int(cfg.measure.get("threads", 1)),
        batch=args.batch if args.batch is not None else int(cfg.measure.get("batch", 1)),
        resolution=args.resolution,
        seed=args.weights_seed,
        harness=harness_settings(args, cfg.measure, sources=measure_sources(cfg, "")),
        device_harness={
            n: harness_settings(args, cfg.measure_for(n), sources=measure_sources(cfg, n))
            for n in names
            if cfg.measure_for(n) != cfg.measure
        },
        # --runtime given: every device measures it (a device that cannot is refused); else
        # each device's table may name its own (a board's tflite_runtime, a phone's litert)
        device_runtime={} if args.runtime else None,
        drift_every=int(
            args.drift_every if args.drift_every is not None else coll.get("drift_every", 50)
        ),
        drift_threshold=float(
            args.drift_threshold
            if args.drift_threshold is not None
            else coll.get("drift_threshold", 0.10)
        ),
        drift_arch=args.drift_arch or coll.get("drift_arch"),
        retry_failed=args.retry_failed,
    )
    check_settings(space, settings)
    devices = [get_device(n, cfg) for n in names]
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        print("latbench: stopping after the current architecture", file=sys.stderr)
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    path = db_path(args, cfg)
    created = not Path(path).exists()
    try:
        with open_store(path) as store:
            report = collect(
                store,
                space,
                archs,
                devices,
                settings,
                progress=not args.no_progress,
                stop=stop,
            )
            print(report.summary())
            print(f"store: {store.path}")
    except BaseException:
        if created:  # a run that failed before its first measurement leaves no empty store
            from latbench.datasets.store import remove_if_empty

            # unless another process opened it meanwhile; the collection this run recorded
            # before its first measurement is no content of its own
            remove_if_empty(Path(path), own=[settings.collection])
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        for d in devices:
            d.close()
    if report.interrupted:
        return 130
    # a device that could not be reached left work undone: a failed run, for scripts too
    return 1 if any(d.unreachable for d in report.devices.values()) else 0
