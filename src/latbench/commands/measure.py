"""``latbench measure TARGET [TARGET ...]``: measure a model's latency on a device, or compare
several.

TARGET is a model file (``.onnx``, ``.tflite``, ``.pt``/``.pt2``) or ``SPACE:ARCH`` (for example
``nb201:|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|``), which
is emitted for the chosen runtime with deterministic weights. Human output gives the median, the
IQR, p90, the runs and the stability verdict; ``--json`` prints the whole record, raw samples
included.

Two or more targets are measured in --rounds interleaved rounds (A B, B A, ...) with the same
time budget each, and every target after the first is given as its ratio to the first: the
median of the per-round ratios, with a 95 % confidence interval, and whether it is slower,
faster or no difference shown. ``latbench measure a.onnx b.onnx``

``--threads 1,2,4`` measures one target at each thread count, in interleaved rounds the same
way, and gives each count's ratio to the first, its speedup and its parallel efficiency
(speedup per thread, against the first count): how far the model scales on this device.
``latbench measure model.onnx --threads 1,2``

``--batch 1,8,32`` does the same for batch sizes (a SPACE:ARCH target is emitted at each), with
each size's time per sample, throughput (samples/s) and throughput gain over the first size.
``latbench measure model.onnx --batch 1,8``
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from latbench.commands._json import dumps
from latbench.config import Config, load_config
from latbench.errors import ConfigError, ModelError
from latbench.profilers.harness import HARNESS_KEYS, HarnessSettings
from latbench.profilers.record import Measurement
from latbench.profilers.runtimes import MAX_THREADS
from latbench.profilers.stats import ROUND_STATISTICS, STATISTICS

log = logging.getLogger(__name__)

SUFFIX_RUNTIME = {".onnx": "onnxruntime", ".tflite": "litert", ".pt": "torch", ".pt2": "torch"}
RUNTIME_FORMAT = {"onnxruntime": "onnx", "litert": "tflite"}
#: the statistics ``latbench measure`` offers (``normalized`` needs an interleaved reference)
CLI_STATISTICS = [x for x in STATISTICS if x != "normalized"]
#: interleaved rounds of ``latbench measure A B ...``: enough for the median of the per-round
#: ratios to have a confidence interval narrower than the range of the ratios
COMPARE_ROUNDS = 20
#: the runtime options of measure and the one runtime each applies to
RUNTIME_OPTIONS = {"--opt-level": "onnxruntime", "--no-xnnpack": "litert", "--input-shape": "torch"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "measure",
        help="measure a model's latency (a model file or SPACE:ARCH)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="+",
        help="model file (.onnx, .tflite, .pt, .pt2) or SPACE:ARCH; two or more are compared "
        "in interleaved rounds, each against the first",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        metavar="N",
        help=f"rounds A B, B A, ... of a comparison of several targets, thread counts or "
        f"batch sizes (default {COMPARE_ROUNDS})",
    )
    p.add_argument("--device", default="local", help="device from bench.toml (default: local)")
    p.add_argument(
        "--runtime",
        default=None,
        help="onnxruntime | litert | torch (default: from the file's suffix; a file of another "
        "suffix is read as this runtime's format)",
    )
    p.add_argument(
        "--threads",
        default=None,
        metavar="N[,N...]",
        help="runtime threads (default 1); several (1,2,4) compare one target's thread "
        "counts in interleaved rounds",
    )
    p.add_argument(
        "--batch",
        default=None,
        metavar="B[,B...]",
        help="batch size (default: the model's); several (1,8,32) compare one target's "
        "batch sizes in interleaved rounds",
    )
    p.add_argument("--warmup", type=int, default=None, metavar="N", help="warm-up runs")
    p.add_argument("--warmup-time", type=float, default=None, metavar="S", help="warm-up seconds")
    p.add_argument("--min-runs", type=int, default=None, metavar="N", help="minimum timed runs")
    p.add_argument("--min-time", type=float, default=None, metavar="S", help="minimum seconds")
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="S",
        help="maximum seconds (alone, it also lowers the minimum to fit)",
    )
    p.add_argument(
        "--spread", type=float, default=None, metavar="R", help="stop when IQR/median <= R (0 off)"
    )
    p.add_argument("--loops", type=int, default=None, help="inferences per sample (default: auto)")
    p.add_argument(
        "--statistic",
        default=None,
        choices=CLI_STATISTICS,
        help="what latency_ms is (default median; cpu_median and min resist load best)",
    )
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="worker timeout")
    p.add_argument("--cpus", default=None, help="pin the worker to these CPUs ('1', '0-3')")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs and emitted weights (>= 0)")
    p.add_argument(
        "--opt-level",
        default=None,
        choices=["disable", "basic", "extended", "all"],
        help="onnxruntime graph optimisation level (default all)",
    )
    p.add_argument("--no-xnnpack", action="store_true", help="LiteRT without the XNNPACK delegate")
    p.add_argument(
        "--input-shape",
        action="append",
        default=None,
        metavar="[NAME=]SHAPE[:DTYPE]",
        help="torch: an input's shape, e.g. 1x3x224x224 or x=1x3x224x224 or idx=1x5:int64; "
        "repeat it per input, in order (needed for TorchScript .pt files)",
    )
    p.add_argument("--per-op", action="store_true", help="add a per-operator profile")
    p.add_argument("--counters", action="store_true", help="add hardware/software counters")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(handler=run)


#: the timing options of measure, collect, adapt and devices describe: (harness setting,
#: option, attribute of the parsed arguments, what the option takes)
TIMING_OPTIONS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("warmup_runs", "--warmup", "warmup", {"integer": True, "low": 0}),
    ("warmup_time_s", "--warmup-time", "warmup_time", {"low": 0}),
    ("min_runs", "--min-runs", "min_runs", {"integer": True, "low": 0}),
    ("min_time_s", "--min-time", "min_time", {"low": 0}),
    ("max_time_s", "--max-time", "max_time", {"positive": True}),
    ("spread_threshold", "--spread", "spread", {"low": 0}),
    ("loops", "--loops", "loops", {"integer": True, "low": 1}),
    ("timeout_s", "--timeout", "timeout", {"positive": True}),
)


def parse_counts(flag: str, value: str, high: int | None = None) -> list[int]:
    """``--threads`` / ``--batch``: ``4`` or a comma-separated list of distinct counts
    (``1,2,4``)."""
    counts = []
    span = f">= 1 and <= {high}" if high is not None else ">= 1"
    for part in (p.strip() for p in value.split(",")):
        try:
            n = int(part)
        except ValueError:
            n = 0
        if n < 1 or (high is not None and n > high):
            what = "" if part == value else f" ({part!r} is not a count)"
            raise ConfigError(
                f"{flag} {value}{what}; expected an integer {span}, or a comma-separated list "
                "of them (1,2,4)"
            )
        counts.append(n)
    repeated = sorted({n for n in counts if counts.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"{flag} {value} names {', '.join(map(str, repeated))} twice; expected distinct values"
        )
    return counts


def measure_sources(cfg: Config, device: str) -> dict[str, str]:
    """Where each harness key of ``cfg.measure_for(device)`` comes from, for error messages:
    ``"bench.toml [devices.pi] min_runs"``, ``"bench.toml [measure] min_time_s"``; the keys
    not set by the file are left out (they are latbench's defaults)."""
    if cfg.path is None:
        return {}
    out = {k: f"{cfg.path} [measure] {k}" for k in file_measure(cfg) if k in HARNESS_KEYS}
    table = cfg.devices.get(device, {})
    out.update({k: f"{cfg.path} [devices.{device}] {k}" for k in table if k in HARNESS_KEYS})
    return out


def _named(key: str, value: Any, names: Mapping[str, str]) -> str:
    """How to name harness setting ``key`` with ``value`` in a message: its option or
    bench.toml key when known, else ``harness setting KEY``."""
    label = names.get(key)
    if label is None:
        return f"harness setting {key} = {value!r}"
    if label.startswith("--"):
        return f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}"
    return f"{label} = {value!r}"


def harness_settings(
    args: argparse.Namespace,
    measure_cfg: dict[str, Any],
    *,
    max_time_caps_min: bool = True,
    sources: Mapping[str, str] | None = None,
) -> HarnessSettings:
    """Harness settings: bench.toml ``[measure]`` (and the device's table) overridden by the
    timing options the command has; an option out of range is refused by its name.

    ``--min-time`` alone raises ``max_time_s`` to it; ``--max-time`` alone lowers ``min_time_s``
    to it (with ``max_time_caps_min``, the default). A ``--warmup-time`` longer than the
    maximum time (it would be cut short) is refused; a default or bench.toml warm-up is
    shortened. ``sources`` (:func:`measure_sources`) names where each bench.toml value came
    from, so a bad one is reported by its file, table and key.
    """
    from latbench._validate import out_of_range

    given = [
        (key, option, getattr(args, attr, None), rule) for key, option, attr, rule in TIMING_OPTIONS
    ]
    bad = out_of_range((option, value, rule) for _, option, value, rule in given)
    if bad is not None:
        raise ConfigError(bad[1])
    names: dict[str, str] = dict(sources or {})
    names.update({key: option for key, option, value, _ in given if value is not None})
    values = dict(measure_cfg)
    if getattr(args, "statistic", None):
        values["statistic"] = args.statistic
        names["statistic"] = "--statistic"
    values.update({key: value for key, _, value, _ in given if value is not None})
    min_time, max_time = getattr(args, "min_time", None), getattr(args, "max_time", None)
    if max_time is None and min_time is not None:
        values["max_time_s"] = max(float(values.get("max_time_s", 10.0)), min_time)
    if max_time_caps_min and min_time is None and max_time is not None:
        current = float(values.get("min_time_s", 1.0))
        if current > max_time:
            values["min_time_s"] = max_time
            where = names.get("min_time_s")
            (log.warning if where else log.info)(
                "--max-time %g is below the minimum time %g s%s; using --min-time %g",
                max_time,
                current,
                f" ({where})" if where else "",
                max_time,
            )
    try:
        settings = HarnessSettings.from_mapping(values)
    except ValueError as exc:
        raise ConfigError(_explain(str(exc), values, names)) from None
    if settings.warmup_time_s > settings.max_time_s:
        warm = _named("warmup_time_s", settings.warmup_time_s, names)
        cap = _named("max_time_s", settings.max_time_s, names)
        if names.get("warmup_time_s") == "--warmup-time":
            raise ConfigError(
                f"{warm} is longer than {cap}: the warm-up stops at the maximum time, so it "
                "would be cut short; expected a warm-up time <= the maximum time"
            )
        # a default (or bench.toml) warm-up under a shorter --max-time: shortened to fit
        (log.warning if "warmup_time_s" in names else log.info)(
            "%s is longer than %s; the warm-up is cut to %g s", warm, cap, settings.max_time_s
        )
        settings = replace(settings, warmup_time_s=settings.max_time_s)
    return settings


def _explain(message: str, values: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """A HarnessSettings error with each setting named as the user gave it."""
    m = re.match(r"harness setting (\w+) = (.+?) is below (\w+) = (.+?); ", message)
    if m:
        high, low = m.group(1), m.group(3)
        return (
            f"{_named(high, values.get(high), names)} is below "
            f"{_named(low, values.get(low), names)}; expected the maximum time >= the minimum "
            "time (give --min-time and --max-time together, or one alone)"
        )

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        return _named(key, values.get(key), names) if key in names else match.group(0)

    return re.sub(r"harness setting (\w+) = [^;]+", repl, message, count=1)


def file_measure(cfg: Config) -> dict[str, Any]:
    """The ``[measure]`` keys bench.toml itself sets (not latbench's defaults)."""
    if cfg.path is None:
        return {}
    try:
        data = tomllib.loads(Path(cfg.path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}
    table = data.get("measure", {})
    return dict(table) if isinstance(table, dict) else {}


def _measure_defaults(cfg: Config) -> dict[str, Any]:
    """bench.toml's own ``runtime``, ``threads``, ``batch``, ``statistic`` of ``[measure]``,
    checked (the file and key named)."""
    own = file_measure(cfg)
    out: dict[str, Any] = {}
    where = f"{cfg.path} [measure]"
    if "runtime" in own:
        from latbench.profilers.runtimes import RUNTIMES

        rt = own["runtime"]
        if rt not in RUNTIMES:
            raise ConfigError(
                f"{where} runtime = {rt!r}; expected one of: {', '.join(RUNTIMES.names())}"
            )
        out["runtime"] = rt
    for key in ("threads", "batch"):
        if key in own:
            v = own[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where} {key} = {v!r}; expected an integer >= 1")
            out[key] = v
    stat = own.get("statistic")
    if stat is not None and stat not in STATISTICS:
        raise ConfigError(
            f"{where} statistic = {stat!r}; expected one of: {', '.join(CLI_STATISTICS)}"
        )
    return out


_SPACE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def split_space_target(target: str) -> tuple[str, str] | None:
    """``(space, arch)`` when TARGET is ``SPACE:ARCH`` (not an existing file and of that form;
    the space need not exist: :func:`resolve_target` says it is unknown), else None."""
    if Path(target).exists() or ":" not in target:
        return None
    space, arch = target.split(":", 1)
    if not _SPACE_NAME.match(space) or Path(target).suffix.lower() in SUFFIX_RUNTIME:
        return None
    return space, arch


def _is_space_target(target: str) -> bool:
    return split_space_target(target) is not None


def check_file_target(target: str, runtime: str | None) -> str | None:
    """Check a model-file TARGET before anything starts; the runtime its suffix names (None for
    an unknown suffix). A missing file or a directory is a ModelError."""
    from latbench.profilers.runtimes import MODEL_SUFFIXES, missing_model_message

    if not target.strip():  # Path("") is the current directory: "'.' is a directory" misleads
        raise ConfigError(
            f"TARGET {target!r} is empty; expected a .onnx/.tflite/.pt/.pt2 file or SPACE:ARCH "
            "such as nb201:|nor_conv_3x3~0|+|...|"
        )
    path = Path(target)
    if not path.is_file():
        message = missing_model_message(path)
        if not path.exists():
            message += (
                " (expected a .onnx/.tflite/.pt/.pt2 file or SPACE:ARCH such as "
                "nb201:|nor_conv_3x3~0|+|...|)"
            )
        raise ModelError(message)
    by_suffix = SUFFIX_RUNTIME.get(path.suffix.lower())
    if runtime is not None and by_suffix is not None and by_suffix != runtime:
        article = "an" if by_suffix[0] in "aeiou" else "a"
        raise ConfigError(
            f"--runtime {runtime}: {target!r} is {article} {by_suffix} model by its suffix "
            f"{path.suffix!r}; expected a file ending in {' or '.join(MODEL_SUFFIXES[runtime])} "
            "(or another suffix, read as that format), or no --runtime"
        )
    return by_suffix


def resolve_target(
    target: str, runtime: str | None, seed: int, tmpdir: str, batch: int | None = None
) -> tuple[Any, str]:
    """(model reference, runtime) for a TARGET: a file, or SPACE:ARCH emitted for the runtime
    (at ``batch``, default 1, as ``latbench export --batch`` writes it)."""
    split = split_space_target(target)
    if split is not None:
        from latbench.spaces import export, get_space

        space_name, arch = split
        graph = get_space(space_name).build(arch, batch=batch or 1)
        rt = runtime or "onnxruntime"
        if rt == "torch":
            from latbench.spaces.emit_torch import torch_factory

            return torch_factory(graph, seed), rt
        fmt = RUNTIME_FORMAT.get(rt)
        if fmt is None:
            from latbench.profilers.runtimes import RUNTIMES

            RUNTIMES.get(rt)  # raises UnknownNameError listing the runtimes
            raise ConfigError(f"runtime {rt!r} cannot run an emitted SPACE:ARCH target")
        safe = space_name + "_" + graph.graph_id()[:12]
        path = export(graph, fmt, os.path.join(tmpdir, f"{safe}.{fmt}"), seed=seed)
        return str(path), rt
    by_suffix = check_file_target(target, runtime)
    found = runtime or by_suffix
    if found is None:
        suffix = Path(target).suffix
        raise ModelError(
            f"cannot tell the runtime of {target!r} (suffix {suffix!r}); expected "
            f"{', '.join(SUFFIX_RUNTIME)} or pass --runtime (the file is then read as that "
            "runtime's format)"
        )
    return target, found


def parse_input_shapes(values: list[str]) -> tuple[dict[str, list[int]], dict[str, str]]:
    """``--input-shape`` values -> (``input_shapes``, ``input_dtypes``) torch options.

    Each value is ``[NAME=]DxDxD[:DTYPE]``; unnamed ones are ``input0``, ``input1``, ... by
    position (torch passes the inputs positionally, so only the order matters).
    """
    from latbench.profilers.runtimes import _np_dtype

    shapes: dict[str, list[int]] = {}
    dtypes: dict[str, str] = {}
    for i, raw in enumerate(values):
        name, _, spec = raw.rpartition("=")
        name = name or f"input{i}"
        spec, _, dtype = spec.partition(":")
        try:
            dims = [int(d) for d in spec.lower().split("x")]
        except ValueError:
            dims = []
        if not dims or any(d < 1 for d in dims):
            raise ConfigError(
                f"--input-shape {raw!r}; expected [NAME=]DIMS[:DTYPE] with DIMS like 1x3x224x224 "
                "(integers >= 1)"
            )
        if name in shapes:
            raise ConfigError(f"--input-shape {raw!r}: input {name!r} is given twice")
        shapes[name] = dims
        if dtype:
            try:
                _np_dtype(dtype)
            except ModelError:
                raise ConfigError(
                    f"--input-shape {raw!r}: dtype {dtype!r}; expected one of float32, float16, "
                    "float64, int64, int32, int16, int8, uint8, bool"
                ) from None
            dtypes[name] = dtype
    return shapes, dtypes


def _device_runtime(device: Any, table: Mapping[str, Any]) -> str | None:
    """The runtime a device's bench.toml table sets (``runtime = ...``), as a latbench runtime."""
    if "runtime" not in table:
        return None
    found = getattr(device, "default_runtime", None)
    return str(found) if found else str(table["runtime"])


def _runtime_options(args: argparse.Namespace, runtime: str) -> dict[str, Any]:
    """The runtime options given, refusing those that do not apply to ``runtime`` (they would
    do nothing, yet be recorded)."""
    given = {
        "--opt-level": args.opt_level is not None,
        "--no-xnnpack": bool(args.no_xnnpack),
        "--input-shape": bool(getattr(args, "input_shape", None)),
    }
    for option, used in given.items():
        owner = RUNTIME_OPTIONS[option]
        if used and runtime != owner:
            raise ConfigError(
                f"{option} applies to the {owner} runtime only; this measurement runs on "
                f"{runtime} (expected --runtime {owner}, or no {option})"
            )
    options: dict[str, Any] = {}
    if args.opt_level:
        options["opt_level"] = args.opt_level
    if args.no_xnnpack:
        options["xnnpack"] = False
    if getattr(args, "input_shape", None):
        shapes, dtypes = parse_input_shapes(args.input_shape)
        options["input_shapes"] = shapes
        if dtypes:
            options["input_dtypes"] = dtypes
    return options


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    own = _measure_defaults(cfg)
    settings = harness_settings(
        args, cfg.measure_for(args.device), sources=measure_sources(cfg, args.device)
    )
    counts = (
        parse_counts("--threads", args.threads, MAX_THREADS) if args.threads is not None else []
    )
    batches = parse_counts("--batch", args.batch) if args.batch is not None else []
    if len(counts) > 1 and len(batches) > 1:
        raise ConfigError(
            f"--threads {args.threads} with --batch {args.batch}; expected several values for "
            "one of them (one sweep at a time)"
        )
    # the swept setting ("threads" or "batch") and its values
    key = "threads" if len(counts) > 1 else "batch" if len(batches) > 1 else ""
    sweep = counts if key == "threads" else batches if key == "batch" else []
    threads = counts[0] if counts else own.get("threads", 1)
    batch = batches[0] if batches else None
    if args.seed < 0:
        raise ConfigError(f"--seed {args.seed}; expected an integer >= 0")
    if args.runtime is not None:
        from latbench.profilers.runtimes import RUNTIMES

        RUNTIMES.get(args.runtime)  # UnknownNameError lists the runtimes
    from latbench.devices import get_device

    targets = list(args.target)
    what = {"threads": "thread counts", "batch": "batch sizes"}.get(key, "")
    if sweep and len(targets) > 1:
        raise ConfigError(
            f"--{key} {','.join(map(str, sweep))} with {len(targets)} targets; expected one "
            f"TARGET to compare {what} of, or one value to compare targets at"
        )
    compared = f"several {what}" if sweep else "several targets"
    if len(targets) > 1 or sweep:
        if args.per_op or args.counters:
            flag = "--per-op" if args.per_op else "--counters"
            raise ConfigError(
                f"{flag} profiles one model at one setting; expected one TARGET, one --threads "
                f"and one --batch with it (got {compared}: they are compared by latency alone)"
            )
        if args.statistic is not None and args.statistic not in ROUND_STATISTICS:
            raise ConfigError(
                f"--statistic {args.statistic} has no per-round value to compare; expected "
                f"one of {', '.join(ROUND_STATISTICS)} with {compared}"
            )
    if args.rounds is not None and ((len(targets) < 2 and not sweep) or args.rounds < 1):
        raise ConfigError(
            f"--rounds {args.rounds}; expected an integer >= 1 with two or more targets, "
            f"thread counts or batch sizes (got {len(targets)} target(s), --threads "
            f"{args.threads or threads})"
        )
    splits = [split_space_target(t) for t in targets]
    for target, split in zip(targets, splits, strict=True):
        if split is not None:
            from latbench.spaces import get_space

            get_space(split[0])  # an unknown space: UnknownNameError listing the spaces
        else:
            check_file_target(target, args.runtime)
    if any(split is not None for split in splits):
        if batch is None:  # [measure] batch: the batch architectures are emitted at
            batch = own.get("batch")
    elif batch is None and own.get("batch", 1) != 1:
        log.warning(
            "%s [measure] batch = %s applies to SPACE:ARCH targets; the model file %r keeps "
            "its own batch (pass --batch to change it)",
            cfg.path,
            own["batch"],
            targets[0],
        )
    dev_cfg = cfg.device(args.device)
    if args.cpus is not None:
        from latbench.devices._config import format_cpu_list
        from latbench.devices.local import parse_cpus

        cpus = parse_cpus(args.cpus, where="latbench measure", key="--cpus")  # names the option
        allowed = set(os.sched_getaffinity(0))
        if dev_cfg.get("transport") == "local" and cpus and not set(cpus) <= allowed:
            raise ConfigError(
                f"latbench measure: --cpus {args.cpus!r} names CPU "
                f"{format_cpu_list(set(cpus) - allowed)}, which this process may not use; "
                f"expected ids within {format_cpu_list(allowed)}"
            )
        cfg.devices[args.device] = {**dev_cfg, "cpus": args.cpus}
    elif cfg.measure.get("cpus") and "cpus" not in dev_cfg:
        cfg.devices[args.device] = {**dev_cfg, "cpus": cfg.measure["cpus"]}
    with (
        tempfile.TemporaryDirectory(prefix="latbench-measure-") as tmp,
        get_device(args.device, cfg) as device,
    ):
        # --runtime, else the file's suffix, else the device's runtime, else [measure]'s
        default = _device_runtime(device, dev_cfg) or own.get("runtime")
        resolved = []
        for target, split in zip(targets, splits, strict=True):
            runtime = args.runtime
            if runtime is None and (split is not None or not check_file_target(target, None)):
                runtime = default
            resolved.append(resolve_target(target, runtime, args.seed, tmp, batch))
        runtimes = {rt for _, rt in resolved}
        if len(runtimes) > 1:
            shown = ", ".join(f"{t} ({rt})" for t, (_, rt) in zip(targets, resolved, strict=True))
            raise ConfigError(
                f"the targets run on different runtimes: {shown}; expected one runtime for a "
                "comparison (pass --runtime, or compare models of one format)"
            )
        runtime = resolved[0][1]
        options = _runtime_options(args, runtime)
        common: dict[str, Any] = {
            "runtime": runtime,
            "threads": int(threads) if threads else None,
            "batch": batch,
            "settings": settings,
            "options": options,
            "seed": args.seed,
        }
        if len(targets) > 1 or sweep:
            from latbench.commands._measure_compare import (
                compare,
                compare_batches,
                compare_threads,
                print_comparison,
            )

            rounds = args.rounds or COMPARE_ROUNDS
            # bench.toml's statistic where a round has one (cpu_median has not), else the median
            statistic = args.statistic or (
                settings.statistic if settings.statistic in ROUND_STATISTICS else "median"
            )
            if key == "threads":
                records = compare_threads(device, resolved[0][0], sweep, rounds, statistic, common)
            elif key == "batch":
                # a SPACE:ARCH target is emitted at each batch size; a file is given each one
                models = [resolved[0][0]]
                for b in sweep[1:]:
                    models.append(resolve_target(targets[0], runtime, args.seed, tmp, b)[0])
                records = compare_batches(device, models, sweep, rounds, statistic, common)
            if sweep:
                return print_comparison(
                    targets * len(sweep), records, statistic, as_json=args.json, sweep=(key, sweep)
                )
            records = compare(device, [m for m, _ in resolved], rounds, statistic, common)
            return print_comparison(targets, records, statistic, as_json=args.json)
        m = device.measure(resolved[0][0], per_op=args.per_op, counters=args.counters, **common)
    if args.json:
        doc = m.to_dict()
        doc["summary"] = m.summary()
        doc["verdict"] = m.verdict()
        doc["target"] = targets[0]
        print(dumps_json(doc))
    else:
        print(format_measurement(m, targets[0]))
    if not m.ok:
        print(f"latbench: error: measurement failed: {m.error}", file=sys.stderr)
        return 1
    return 0


def dumps_json(doc: Any) -> str:
    """Strict JSON of ``doc`` (non-finite floats as null, other odd values as strings)."""
    return dumps(doc, indent=2, sort_keys=True)


def _ms(x: float) -> str:
    if x >= 100:
        return f"{x:.1f} ms"
    if x >= 1:
        return f"{x:.3f} ms"
    return f"{x * 1e3:.1f} us"


def format_measurement(m: Measurement, target: str = "") -> str:
    """The human-readable report of one measurement."""
    lines = [f"target    {target or m.model_path}"]
    if m.model_sha256:
        lines[-1] += f"  (sha256 {m.model_sha256[:12]})"
    lines.append(
        f"device    {m.device} ({m.env.get('cpu_model', '?')}, pinned cpus "
        f"{m.env.get('pinned_cpus', m.env.get('affinity', '?'))})"
    )
    settings = ", ".join(
        f"{k}={v}" for k, v in m.runtime_settings.items() if k not in ("per_op_unavailable",)
    )
    # a measurement that failed before the runtime loaded has no version and no settings
    runtime = " ".join(x for x in (m.runtime, m.runtime_version) if x)
    lines.append(f"runtime   {runtime} ({settings})" if settings else f"runtime   {runtime}")
    if m.input_shapes:
        shapes = ", ".join(f"{k} {v}" for k, v in m.input_shapes.items())
        lines.append(f"inputs    {shapes}; batch {m.batch}")
    if not m.ok:
        lines.append(f"FAILED    {m.error}")
        return "\n".join(lines)
    s = m.summary()
    spread = s["iqr_ms"] / s["median_ms"] if s["median_ms"] else float("nan")
    lines.append(
        f"latency   median {_ms(s['median_ms'])}  IQR {_ms(s['iqr_ms'])} ({spread:.1%})  "
        f"p90 {_ms(s['p90_ms'])}  p99 {_ms(s['p99_ms'])}  min {_ms(s['min_ms'])}"
    )
    lines.append(f"          95% CI of the median [{_ms(s['ci_low_ms'])}, {_ms(s['ci_high_ms'])}]")
    if m.statistic != "median":
        lines.append(f"          latency_ms = {m.statistic}: {_ms(m.latency_ms)}")
    if m.normalized_ms is not None:
        lines.append(
            f"          normalized {_ms(m.normalized_ms)} (x{m.reference['ratio']:.3f} the "
            f"reference, calibrated {_ms(float(m.reference['calibrated_ms']))})"
        )
    stop = m.harness.get("stop_reason", "?")
    timed = m.harness.get("elapsed_s")
    # the timed window is what --max-time caps; the wall time adds loading, warm-up, counters
    # and per-operator profiling
    window = f"{float(timed):.1f} s timed, " if isinstance(timed, int | float) else ""
    lines.append(
        f"runs      {m.runs} samples x {m.loops} loop(s), {m.warmup_runs} warm-up, "
        f"{window}{m.wall_s:.1f} s in all (stopped: {stop})"
    )
    v = m.verdict()
    if not v.get("judged", True):
        lines.append("verdict   unknown: " + "; ".join(v["reasons"]))
        for a in v["advice"]:
            lines.append(f"          advice: {a}")
    elif v["stable"]:
        lines.append("verdict   stable")
    else:
        lines.append("verdict   UNSTABLE: " + "; ".join(v["reasons"]))
        for a in v["advice"]:
            lines.append(f"          advice: {a}")
    if m.per_op:
        lines.append(
            "per-op    op                     node                               ms   share"
        )
        for row in m.per_op[:15]:
            lines.append(
                f"          {row['op'][:22]:<22} {row['name'][:30]:<30} "
                f"{row['time_ms']:9.4f} {row['share']:6.1%}"
            )
        if len(m.per_op) > 15:
            lines.append(f"          ... {len(m.per_op) - 15} more (see --json)")
    elif "per_op_unavailable" in m.runtime_settings:
        lines.append(f"per-op    unavailable: {m.runtime_settings['per_op_unavailable']}")
    if m.counters:
        counted = len(m.counters) > 1
        lines.append("counters  (per inference, separate pass)" if counted else "memory")
        for name, c in m.counters.items():
            if c.get("value") is None:
                lines.append(f"          {name:<24} unavailable: {c.get('unavailable', '?')}")
            else:
                value = c["value"]
                text = f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
                lines.append(f"          {name:<24} {text} {c.get('unit', '')}")
    return "\n".join(lines)
