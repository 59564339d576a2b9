"""``latbench adapt BASE.lbp``: a predictor for a new device from a few measurements.

Either from measurements you already have (``--samples FILE``, a CSV with columns
``space,arch,latency_ms``), or live: ``--device DEV --budget 10`` chooses 10 informative
architectures (``--pick design``: where the base's devices disagree most, along different
axes, inside the central 80 % of its latency range; ``--pick spread``: evenly over the whole
range), among 2,000 random ones or the ``--candidates FILE`` you can build, measures them on
the device and adapts. The result is an ordinary predictor file for ``latbench predictor
predict``. Live measurements are appended to ``--save-samples`` (default
``OUTPUT.samples.csv``) as they complete, and their whole records (raw samples, environment) to
the store (``--db``, default bench.toml's) in collection ``adapt/DEVICE``; rerunning an
interrupted command measures only what the samples file does not hold yet.

The device's HELP-style descriptor (reference-architecture latencies, ``latbench devices
describe DEV --space SPACE``) conditions the adaptation: with ``--device DEV`` the stored
``<store dir>/descriptors/DEV.json`` is used when it exists and is of the base's space;
``--descriptor FILE`` names one explicitly (also with ``--samples``); ``--no-descriptor``
ignores it.

``auto`` averages method ``embed`` with its usual choice when it has an ``embed`` prior, learned
from the source devices' own measurements (never from the new device): a base fitted with
``latbench predictor fit --devices all`` stores it, so nothing needs to be given.
``--embed-data`` learns it instead from the measurements named (``reference``: the bundled
reference table of the base's space; or a CSV with columns ``arch,device,latency_ms``), e.g. for
an older base file without one, or with ``--exclude``; ``--no-embed-prior`` ignores a stored
prior.

From 15 samples on, ``auto`` leaves out the samples that look like measurement outliers (more
than 4 robust standard deviations off the best proxy's Theil-Sen line, at most a fifth of them)
and lists them; from 10 to 14 samples, only those more than 3x off that line;
``--keep-outliers`` fits every sample.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, TextIO

from latbench._atomic import same_file
from latbench._csvfile import read_csv, rows
from latbench.commands._archfile import read_archs
from latbench.commands._json import dumps
from latbench.commands._progress import ItemProgress
from latbench.config import load_config
from latbench.errors import (
    ArchError,
    ConfigError,
    DeviceError,
    LatbenchError,
    MeasurementError,
    PredictorError,
    UnknownNameError,
)

log = logging.getLogger(__name__)

#: from this many samples on, ``adapt`` says that a predictor fitted on the samples alone may
#: rank better (BENCHMARKS.md, "Few-shot or the new device alone")
MANY_SAMPLES = 100
#: what the live path emits each architecture to, by runtime
LIVE_FORMATS = {"onnxruntime": "onnx", "litert": "tflite"}


def live_format(runtime: str) -> str:
    """The model format ``--runtime`` measures (``onnx`` / ``tflite``), or a ConfigError."""
    fmt = LIVE_FORMATS.get(runtime)
    if fmt is None:
        raise ConfigError(f"--runtime {runtime!r}; expected {' or '.join(LIVE_FORMATS)}")
    return fmt


def _cells(path: str, line: int, row: dict[str, Any], need: Any) -> None:
    """Refuse a row with fewer cells than the header (``csv`` fills the missing ones with
    None), naming the file, the line and the columns it lacks."""
    missing = [c for c in need if row.get(c) is None]
    if missing:
        raise ConfigError(
            f"{path}:{line}: no {', '.join(missing)} cell; expected a value in every column of "
            f"the header ({', '.join(need)})"
        )


def _latency(path: str, line: int, text: str | None) -> float:
    """The ``latency_ms`` cell of a samples file: finite positive milliseconds, else an error
    that names the file and line."""
    if text is None:
        raise ConfigError(f"{path}:{line}: no latency_ms cell; expected a number")
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(f"{path}:{line}: latency_ms {text!r}; expected a number") from None
    if not (math.isfinite(v) and v > 0):
        raise ConfigError(
            f"{path}:{line}: latency_ms {text!r}; expected finite positive milliseconds"
        )
    return v


#: the options of a live adaptation (``--device``): with ``--samples`` they would do nothing
LIVE_ONLY = (
    ("budget", "--budget"),
    ("pick", "--pick"),
    ("candidates", "--candidates"),
    ("runtime", "--runtime"),
    ("threads", "--threads"),
    ("min_runs", "--min-runs"),
    ("min_time", "--min-time"),
    ("max_time", "--max-time"),
    ("save_samples", "--save-samples"),
    ("db", "--db"),
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "adapt",
        help="adapt a multi-device predictor to a new device from a few measurements",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("base", help="multi-device base predictor (.lbp), e.g. from predictor fit")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", help="CSV with columns space,arch,latency_ms")
    src.add_argument("--device", help="measure live on this device (bench.toml name or local)")
    p.add_argument("--budget", type=int, default=10, help="architectures to measure (--device)")
    p.add_argument(
        "--pick",
        default="design",
        choices=["design", "spread"],
        help="how --device chooses what to measure: design (default; a Bayesian design for the "
        "base's embed prior, or one learned from its predictions) or spread (evenly over the "
        "predicted latency)",
    )
    p.add_argument(
        "--candidates",
        default=None,
        metavar="FILE",
        help="choose among these architectures (--device; one per line or a CSV with an arch "
        "column) instead of 2,000 random ones",
    )
    p.add_argument(
        "--method",
        default="auto",
        choices=["auto", "proxy", "soft", "combo", "meta", "bayes", "embed", "embed+proxy"],
        help="adaptation method (default auto: bayes averaged with soft on NB201, elsewhere "
        "chosen by leave-one-out on the samples; averaged with embed when there is an embed "
        "prior, stored in the base or from --embed-data)",
    )
    p.add_argument(
        "--embed-data",
        default=None,
        help="source devices' measurements to learn the embed prior from: 'reference' (the "
        "bundled table of the base's space) or a CSV with columns arch,device,latency_ms",
    )
    p.add_argument(
        "--no-embed-prior",
        action="store_true",
        help="ignore the embed prior stored in the base (auto as without embed; --pick "
        "design still uses it to choose what to measure)",
    )
    p.add_argument(
        "--keep-outliers",
        action="store_true",
        help="fit every sample (auto and embed+proxy otherwise leave out, from 10 samples on, "
        "the ones far off the best proxy's robust line, and list them)",
    )
    p.add_argument(
        "--descriptor",
        default=None,
        help="descriptor .json (devices describe --space) to condition on; default with "
        "--device: the stored descriptor of that device, if any",
    )
    p.add_argument("--no-descriptor", action="store_true", help="do not use a stored descriptor")
    p.add_argument("--name", default=None, help="device name stored in the predictor")
    p.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        help="base devices not to use: names, short names or globs ('help/*')",
    )
    p.add_argument("--runtime", default="onnxruntime", help="runtime for --device")
    p.add_argument("--threads", type=int, default=1, help="runtime threads for --device")
    p.add_argument("--min-runs", type=int, default=None, help="harness minimum runs (--device)")
    p.add_argument("--min-time", type=float, default=None, help="harness minimum seconds")
    p.add_argument("--max-time", type=float, default=None, help="harness maximum seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample choice and weights")
    p.add_argument(
        "--save-samples",
        default=None,
        help="CSV the live measurements are appended to as each completes (--device; default "
        "OUTPUT.samples.csv); a rerun with the same file measures only what is not in it yet",
    )
    p.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="store the live measurement records go to, with their environment (--device; "
        "default: bench.toml [store] path), in collection adapt/DEVICE",
    )
    p.add_argument("-o", "--output", required=True, help="adapted predictor file (.lbp)")
    p.add_argument("--json", action="store_true", help="print the adaptation summary as JSON")
    p.set_defaults(
        handler=run,
        live_defaults={dest: p.get_default(dest) for dest, _ in LIVE_ONLY},
    )


def _check_input(path: str, what: str, expected: str, missing: str = "") -> None:
    """Refuse an input ``path`` that is a directory or missing, naming it as ``what``;
    ``missing`` is what follows "does not exist" (``"; expected"``: the expected kind too)."""
    if os.path.isdir(path):
        raise ConfigError(f"{what} {path!r} is a directory; expected {expected}")
    if not os.path.isfile(path):
        tail = f"{missing} {expected}" if missing else ""
        raise ConfigError(f"{what} {path!r} does not exist{tail}")


def read_samples(
    path: str, space: str, *, of: str = "the base predictor"
) -> tuple[list[str], list[float]]:
    """Rows of a ``space,arch,latency_ms`` CSV; every row must be of ``space`` (the space of
    ``of``, named in the error) and, where the file has a ``device`` column (the samples file
    of a live run), of one device.

    Architectures of a registered space come back canonical; a bad one, like a bad latency,
    is reported with the file and line.
    """
    from latbench.spaces import get_space

    _check_input(path, "samples file", "a CSV of space,arch,latency_ms")
    check: Callable[[str], str]
    try:
        check = get_space(space).canonical
    except UnknownNameError:  # a user dataset's own space (imported graphs): taken as written
        check = str
    archs: list[str] = []
    lat: list[float] = []
    devices: dict[str, int] = {}  # a device column (the live samples file has one): name -> line
    with read_csv(path) as reader:
        need = {"space", "arch", "latency_ms"}
        have = set(reader.fieldnames or [])
        if not need <= have:
            raise ConfigError(f"{path}: columns {sorted(have)}; expected at least {sorted(need)}")
        for i, row in rows(path, reader):
            _cells(path, i, row, ("space", "arch", "latency_ms"))
            if row.get("device"):
                devices.setdefault(row["device"], i)
            if row["space"] != space:
                raise PredictorError(
                    f"{path}:{i}: space {row['space']!r}; expected {space!r}, the space of {of}"
                )
            v = _latency(path, i, row["latency_ms"])
            try:
                archs.append(check(row["arch"] or ""))
            except ArchError as exc:
                raise ArchError(f"{path}:{i}: {exc}") from None
            lat.append(v)
    if not archs:
        raise ConfigError(f"samples file {path!r} holds no rows; expected K measured architectures")
    if len(devices) > 1:
        # one target only: the rows of two devices would be fitted as one device's
        named = ", ".join(f"{d} (from line {line})" for d, line in devices.items())
        raise ConfigError(
            f"{path}: rows of {len(devices)} devices, {named}; expected the measurements of "
            "one device (keep only the new device's rows)"
        )
    return archs, lat


def embed_prior(path: str, base: Any, exclude: list[str]) -> Any:
    """The ``embed`` prior of ``base``'s sources (minus ``exclude``) from ``path``'s rows."""
    from latbench.predictors.adapt import learn_embed_prior

    if path == "reference":
        from latbench.datasets import load_reference

        df = load_reference(base.space_)
        archs = df["arch"].astype(str).tolist()
        devices = df["device"].astype(str).tolist()
        lat = df["latency_ms"].astype(float).tolist()
    else:
        _check_input(path, "--embed-data", "'reference' or a CSV", missing="; expected")
        archs, devices, lat = [], [], []
        with read_csv(path) as reader:
            need = {"arch", "device", "latency_ms"}
            have = set(reader.fieldnames or [])
            if not need <= have:
                raise ConfigError(
                    f"{path}: columns {sorted(have)}; expected at least {sorted(need)}"
                )
            first_line: dict[str, int] = {}
            for i, row in rows(path, reader):
                _cells(path, i, row, ("arch", "device", "latency_ms"))
                lat.append(_latency(path, i, row["latency_ms"]))
                archs.append(row["arch"])
                devices.append(row["device"])
                first_line.setdefault(row["arch"], i)
        _check_archs(path, base.space_, first_line)
    from latbench.predictors.adapt import excluded_devices

    dropped = set(excluded_devices(base, exclude))
    sources = [d for d in base.devices_ if d not in dropped]
    keep = [i for i, d in enumerate(devices) if d in set(sources)]
    return learn_embed_prior(
        base,
        [archs[i] for i in keep],
        [lat[i] for i in keep],
        [devices[i] for i in keep],
        sources=sources,
    )


def _check_archs(path: str, space: str, first_line: dict[str, int]) -> None:
    """Each distinct architecture of ``path`` must parse in ``space``; the first that does not
    is an :class:`ArchError` naming its line (``first_line``: arch -> the line it is first on)."""
    from latbench.spaces import get_space

    try:
        check = get_space(space).canonical
    except UnknownNameError:  # a user dataset's own space: taken as written
        return
    for arch, line in first_line.items():
        try:
            check(arch)
        except ArchError as exc:
            raise ArchError(f"{path}:{line}: {exc}") from None


def _status_file(args: argparse.Namespace) -> TextIO:
    """Where the lines about progress go: stdout, or stderr with ``--json`` (whose stdout is
    the JSON document alone, for ``| jq``)."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def _settings(args: argparse.Namespace, cfg: Any, device: str) -> Any:
    """The harness settings of ``--device``, a bad bench.toml value named by file and table."""
    from latbench.commands.measure import harness_settings, measure_sources

    return harness_settings(args, cfg.measure_for(device), sources=measure_sources(cfg, device))


SAMPLE_COLUMNS = ("space", "arch", "latency_ms", "device")


def samples_path(args: argparse.Namespace) -> str:
    """Where live measurements go: ``--save-samples``, else next to the output."""
    if args.save_samples:
        return str(args.save_samples)
    stem = args.output[:-4] if args.output.endswith(".lbp") else args.output
    return f"{stem}.samples.csv"


def measured_before(path: str, space: str, device: str) -> dict[str, float]:
    """The measurements of ``device`` a previous (interrupted) run left in ``path``."""
    if not os.path.isfile(path):
        return {}
    done: dict[str, float] = {}
    other = 0
    with read_csv(path) as reader:
        have = set(reader.fieldnames or [])
        if not set(SAMPLE_COLUMNS) <= have:
            raise ConfigError(
                f"{path}: columns {sorted(have)}; expected {list(SAMPLE_COLUMNS)} (the file "
                "latbench adapt --device appends its measurements to); give another "
                "--save-samples or remove it"
            )
        for i, row in rows(path, reader):
            _cells(path, i, row, SAMPLE_COLUMNS)
            if row["device"] != device or row["space"] != space:
                other += 1
                continue
            done[row["arch"]] = _latency(path, i, row["latency_ms"])
    if other:
        log.warning(
            "%s: %d row(s) of another device or space than %s / %s are not used",
            path, other, device, space,
        )  # fmt: skip
    return done


def record_store(args: argparse.Namespace) -> str:
    """The store live measurement records go to: ``--db``, else bench.toml's ``[store]``."""
    return str(args.db) if args.db else str(load_config(args.config).store_path)


class _Recorder:
    """Keeps each live measurement as it completes: its latency in the samples CSV (what a
    rerun resumes from and ``--samples`` reads), the whole record (raw samples, harness,
    environment; failed ones too) in the store, collection ``adapt/DEVICE``."""

    def __init__(self, csv_path: str, db: str, space: str, device: str) -> None:
        from latbench import datasets
        from latbench.spaces import get_space

        self.csv_path, self.space, self.device = csv_path, space, device
        self.collection = f"adapt/{device}"
        self._space = get_space(space)
        self._store = datasets.open(db)
        self._store.upsert_collection(self.collection, {"space": space, "command": "adapt"})

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._store.close()

    def __call__(self, arch: str, m: Any) -> None:
        from latbench.datasets import schema

        if m.ok:
            # the samples file first: it is what a rerun resumes from, so a measurement is kept
            # even when the store then cannot be written (disk full, locked, ...)
            new = not os.path.isfile(self.csv_path)
            with open(self.csv_path, "a", newline="") as fh:
                w = csv.writer(fh)
                if new:
                    w.writerow(SAMPLE_COLUMNS)
                w.writerow([self.space, arch, f"{m.latency_ms:.6g}", self.device])
        self._store.add(
            schema.row_from_measurement(
                m,
                collection=self.collection,
                space=self.space,
                arch=arch,
                arch_id=self._space.arch_id(arch),
                arch_index=None,
                device=self.device,
            )
        )


def measure_live(
    args: argparse.Namespace,
    base: Any,
    archs: list[str],
    on_result: Any = None,
    *,
    config: Any,
    settings: Any,
) -> tuple[list[str], list[float]]:
    """Emit and measure ``archs`` on ``args.device`` with the harness ``settings`` (those
    ``run`` checked before choosing them); an architecture whose measurement fails is skipped.

    ``on_result(arch, measurement)`` is called as each measurement completes, failed ones
    included (the CLI appends it to the samples file and to the store, so that an interrupted
    run loses nothing). A measurement's latency is its ``latency_ms``: the statistic of the
    harness settings (``[measure] statistic`` in bench.toml; the median by default).

    A failure of the device rather than of the architecture (a dropped link, kind
    ``"transport"``, tried once more first, as ``devices describe`` does; or a device that
    cannot measure at all, kind ``"device"``) stops the run with a
    :class:`~latbench.errors.DeviceError`: every later measurement would fail the same way,
    each after its timeout, and the rerun measures what is left once the device is back.
    """
    from latbench.devices import get_device
    from latbench.devices.remote import DEVICE_FAILURES, failure_kind, measure_once_more
    from latbench.spaces import export, get_space

    fmt = live_format(args.runtime)
    sp = get_space(base.space_)
    done: list[str] = []
    lat: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="latbench-adapt-") as tmp,
        get_device(args.device, config) as dev,
    ):
        progress = ItemProgress(len(archs), file=_status_file(args))
        for i, arch in enumerate(archs):
            path = export(sp.build(arch), fmt, os.path.join(tmp, f"a{i}.{fmt}"), seed=args.seed)
            m = measure_once_more(
                dev, str(path), arch, runtime=args.runtime, threads=args.threads, settings=settings
            )
            if on_result is not None:
                on_result(arch, m)
            if not m.ok and failure_kind(m) in DEVICE_FAILURES:
                raise DeviceError(
                    f"device {args.device!r} failed while measuring {arch} "
                    f"({i + 1} of {len(archs)}): {m.error}"
                )
            if not m.ok:
                log.warning("measurement of %s failed: %s%s", arch, m.error, progress.step())
                continue
            progress.line(f"{m.latency_ms:9.3f} ms  {arch}")
            done.append(arch)
            lat.append(float(m.latency_ms))
    return done, lat


def _kept(path: str, space: str, device: str, picks: list[str]) -> str:
    """What an interrupted live run leaves behind, and how to go on from it."""
    try:
        done = measured_before(path, space, device)
    except LatbenchError:
        done = {}
    n = len([a for a in picks if a in done])
    return (
        f"{n} of {len(picks)} architectures measured on {device} are kept in {path}; run the "
        "same command again to measure only the rest"
    )


def descriptor_reference(args: argparse.Namespace, space: str) -> dict[str, float] | None:
    """The reference latencies of the descriptor to condition on, or None.

    An explicit ``--descriptor`` must exist and be of ``space``; the stored descriptor of
    ``--device`` is used only when it exists, is of ``space`` and has reference latencies.
    """
    from latbench.devices.descriptor import Descriptor, default_path

    if args.no_descriptor:
        return None
    if args.descriptor:
        _check_input(args.descriptor, "--descriptor", "a descriptor file (JSON)")
        desc = Descriptor.load(args.descriptor)
        if desc.space != space or not desc.reference_ms:
            raise ConfigError(
                f"--descriptor {args.descriptor}: space {desc.space!r} with "
                f"{len(desc.reference_ms)} reference archs; expected reference archs of {space!r}"
                f" (devices describe DEV --space {space})"
            )
        return dict(desc.reference_ms)
    if not args.device:
        return None
    path = default_path(load_config(args.config).store_path, args.device)
    if not path.is_file():
        return None
    desc = Descriptor.load(path)
    if desc.space != space or not desc.reference_ms:
        log.info("stored descriptor %s is not of space %s; not used", path, space)
        return None
    return dict(desc.reference_ms)


def _check_apart(args: argparse.Namespace) -> None:
    """Refuse an output that is one of the command's inputs: the adapted predictor is written
    last, over the file, so that ``-o`` naming the samples file (a slip of tab completion)
    would replace the measurements it was adapted from, and the live samples file naming the
    base would append CSV rows to the predictor file."""
    inputs = [
        ("the base predictor", args.base),
        ("--samples", args.samples),
        ("--descriptor", args.descriptor),
        ("--embed-data", None if args.embed_data == "reference" else args.embed_data),
        ("--candidates", args.candidates),
    ]
    new_lbp = "a new file for the adapted predictor (it would be written over that file)"
    outputs = [("-o/--output", args.output, new_lbp)]
    if args.device:
        own = "a file of its own for the live measurements (they would be appended to it)"
        outputs.append(("--save-samples", samples_path(args), own))
        if args.db:
            inputs.append(("--db", args.db))
    for flag, out, expected in outputs:
        for what, path in inputs:
            if path and same_file(out, path):
                raise ConfigError(f"{flag} {out!r} is the file of {what}; expected {expected}")
    if args.device and same_file(args.output, samples_path(args)):
        raise ConfigError(
            f"--save-samples {samples_path(args)!r} is the -o/--output file; expected a file of "
            "its own for the live measurements"
        )


def run(args: argparse.Namespace) -> int:
    from latbench.commands.predictor import check_seed
    from latbench.predictors import load, save
    from latbench.predictors.adapt import adapt, choose_samples, stored_prior
    from latbench.predictors.fewshot import MIN_SAMPLES
    from latbench.spaces import get_space

    _check_apart(args)
    if args.name is not None and not args.name.strip():
        raise ConfigError(f"--name {args.name!r}; expected a non-empty device name")
    check_seed(args.seed)
    base = load(args.base)
    prior = None
    use_stored = not args.no_embed_prior
    if args.embed_data:
        prior = embed_prior(args.embed_data, base, list(args.exclude))
    elif args.method == "embed" and (not use_stored or stored_prior(base) is None):
        raise ConfigError(
            "--method embed needs --embed-data (reference, or the source devices' measurements) "
            "or a base that stores its embed prior (predictor fit --devices all)"
        )
    if args.samples:
        defaults = getattr(args, "live_defaults", {})
        given = [o for d, o in LIVE_ONLY if d in defaults and getattr(args, d) != defaults[d]]
        if given:
            raise ConfigError(
                f"{', '.join(given)} with --samples: for a live adaptation (--device) only; "
                "expected them without --samples"
            )
    ref = descriptor_reference(args, base.space_)
    if args.samples:
        archs, lat = read_samples(args.samples, base.space_)
        name = args.name or os.path.splitext(os.path.basename(args.samples))[0]
    else:
        if args.budget < MIN_SAMPLES:
            raise ConfigError(
                f"--budget {args.budget}; expected at least {MIN_SAMPLES} architectures"
            )
        live_format(args.runtime)  # as an unknown device, refused before anything is chosen
        cfg = load_config(args.config)
        cfg.device(args.device)  # an unknown device fails before anything
        # bad timing options too, resumed or not
        settings = _settings(args, cfg, args.device)
        cands = (
            read_archs(args.candidates, get_space(base.space_), option="--candidates")
            if args.candidates
            else None
        )
        picks = choose_samples(
            base,
            args.budget,
            seed=args.seed,
            candidates=cands,
            measured=list(ref or ()),
            strategy=args.pick,
            prior=prior,  # None: the base's stored prior (also with --no-embed-prior)
        )
        path = samples_path(args)
        before = measured_before(path, base.space_, args.device)
        todo = [a for a in picks if a not in before]
        if len(todo) < len(picks):
            print(
                f"resuming: {len(picks) - len(todo)} of {len(picks)} architectures already "
                f"measured on {args.device} in {path}",
                file=_status_file(args),
            )

        archs, lat = [a for a in picks if a in before], [before[a] for a in picks if a in before]
        if todo:
            db = record_store(args)
            print(
                f"measuring {len(todo)} architectures on {args.device} (-> {path}, {db}):",
                file=_status_file(args),
            )
            try:
                with _Recorder(path, db, base.space_, args.device) as record:
                    got, ms = measure_live(
                        args, base, todo, on_result=record, config=cfg, settings=settings
                    )
            except (LatbenchError, OSError) as exc:  # the device, the disk, the store
                kept = _kept(path, base.space_, args.device, picks)
                raise type(exc)(f"{exc}; {kept}") from exc
            except KeyboardInterrupt:
                print(
                    f"latbench adapt: {_kept(path, base.space_, args.device, picks)}",
                    file=sys.stderr,
                )
                raise
            archs, lat = archs + got, lat + ms
            failed = len(todo) - len(got)
            if failed and archs and len(archs) + len(ref or ()) >= MIN_SAMPLES:
                print(
                    f"measured {len(archs)} of {len(picks)} architectures on {args.device}: "
                    f"{failed} failed (see the warnings; not used, measured again by a rerun)",
                    file=_status_file(args),
                )
        # the descriptor's reference architectures count towards the samples adapt needs
        if not archs or len(archs) + len(ref or ()) < MIN_SAMPLES:
            raise MeasurementError(
                f"{len(archs)} of {len(picks)} architectures measured on {args.device!r} "
                f"(the others failed, see the warnings); expected at least {MIN_SAMPLES} to "
                f"adapt from. The measured ones are kept in {path}: run the same command again "
                "to measure the failed ones once more, or pick others with --candidates or a "
                "larger --budget"
            )
        name = args.name or args.device
    if ref:
        print(
            f"conditioning on the descriptor of {name}: {len(ref)} reference architectures",
            file=_status_file(args),
        )
    t0 = time.perf_counter()
    adapted = adapt(
        base,
        archs,
        lat,
        method=args.method,
        device=name,
        exclude=args.exclude,
        descriptor=ref,
        embed_prior=prior,
        use_stored_prior=use_stored,
        screen_outliers=not args.keep_outliers,
    )
    elapsed_s = time.perf_counter() - t0
    save(adapted, args.output)
    summary = adapted.summary()
    summary["adapt_time_s"] = round(elapsed_s, 3)
    summary["output"] = args.output
    if args.json:
        print(dumps(summary, indent=2, sort_keys=True))
    else:
        print(
            f"adapted {summary['base']} to {name!r} with {summary['method']} from "
            f"{summary['samples']} samples in {elapsed_s:.2f} s -> {args.output}"
        )
        print(f"  ranks most like: {', '.join(summary['ranks_like'])} (Spearman)")
        print(f"  largest source weights: {', '.join(summary['sources']) or '(none)'}")
        if summary["embed_prior"]:
            print(f"  embed prior: {summary['embed_prior']}")
        if summary["outliers"]:
            left = ", ".join(f"{a} ({v:.4g} ms)" for a, v in summary["outliers"].items())
            print(
                f"  left out {len(summary['outliers'])} sample(s) as measurement outliers "
                f"(--keep-outliers fits them): {left}"
            )
        if summary["cv_kendall"]:
            cv = ", ".join(f"{k} {v:.3f}" for k, v in summary["cv_kendall"].items())
            print(f"  leave-one-out Kendall: {cv}")
        print(f"  fit on the samples: Spearman {summary['train_spearman']:.3f}")
        if summary["samples"] >= MANY_SAMPLES:
            print(
                f"  note: with {summary['samples']} samples, a predictor fitted on them alone "
                "may rank better (NAS-Bench-201 reference devices: from about 100 samples; "
                "FBNet: not below 900); compare both on samples held out: `latbench "
                "predictor fit --data SAMPLES --device NAME --train-size N -o alone.lbp`, then "
                "`latbench predictor evaluate alone.lbp --data HELD_OUT --device NAME`"
            )
    return 0
