"""``latbench measure TARGET``: measure one model's latency on a device.

TARGET is a model file (``.onnx``, ``.tflite``, ``.pt``/``.pt2``) or ``SPACE:ARCH`` (for example
``nb201:|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|``), which
is emitted for the chosen runtime with deterministic weights. Human output gives the median, the
IQR, p90, the runs and the stability verdict; ``--json`` prints the whole record, raw samples
included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from latbench.config import load_config
from latbench.errors import ConfigError, ModelError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement
from latbench.profilers.stats import STATISTICS

SUFFIX_RUNTIME = {".onnx": "onnxruntime", ".tflite": "litert", ".pt": "torch", ".pt2": "torch"}
RUNTIME_FORMAT = {"onnxruntime": "onnx", "litert": "tflite"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "measure",
        help="measure a model's latency (a model file or SPACE:ARCH)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="model file (.onnx, .tflite, .pt, .pt2) or SPACE:ARCH")
    p.add_argument("--device", default="local", help="device from bench.toml (default: local)")
    p.add_argument(
        "--runtime", default=None, help="onnxruntime | litert | torch (default: from the file)"
    )
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default 1)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the model's)")
    p.add_argument("--warmup", type=int, default=None, metavar="N", help="warm-up runs")
    p.add_argument("--warmup-time", type=float, default=None, metavar="S", help="warm-up seconds")
    p.add_argument("--min-runs", type=int, default=None, metavar="N", help="minimum timed runs")
    p.add_argument("--min-time", type=float, default=None, metavar="S", help="minimum seconds")
    p.add_argument("--max-time", type=float, default=None, metavar="S", help="maximum seconds")
    p.add_argument(
        "--spread", type=float, default=None, metavar="R", help="stop when IQR/median <= R (0 off)"
    )
    p.add_argument("--loops", type=int, default=None, help="inferences per sample (default: auto)")
    p.add_argument(
        "--statistic",
        default=None,
        choices=[x for x in STATISTICS if x != "normalized"],
        help="what latency_ms is (default median; cpu_median and min resist load best)",
    )
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="worker timeout")
    p.add_argument("--cpus", default=None, help="pin the worker to these CPUs ('1', '0-3')")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs and emitted weights")
    p.add_argument(
        "--opt-level",
        default=None,
        choices=["disable", "basic", "extended", "all"],
        help="onnxruntime graph optimisation level (default all)",
    )
    p.add_argument("--no-xnnpack", action="store_true", help="LiteRT without the XNNPACK delegate")
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


def harness_settings(
    args: argparse.Namespace, measure_cfg: dict[str, Any], *, max_time_caps_min: bool = False
) -> HarnessSettings:
    """Harness settings: bench.toml ``[measure]`` (and the device's table) overridden by the
    timing options the command has; an option out of range is refused by its name.

    ``--min-time`` alone raises ``max_time_s`` to it; with ``max_time_caps_min``, ``--max-time``
    alone lowers ``min_time_s`` to it (``devices describe``, whose one option is a cap).
    """
    from latbench._validate import out_of_range

    given = [
        (key, option, getattr(args, attr, None), rule) for key, option, attr, rule in TIMING_OPTIONS
    ]
    bad = out_of_range((option, value, rule) for _, option, value, rule in given)
    if bad is not None:
        raise ConfigError(bad[1])
    values = dict(measure_cfg)
    if getattr(args, "statistic", None):
        values["statistic"] = args.statistic
    values.update({key: value for key, _, value, _ in given if value is not None})
    min_time, max_time = getattr(args, "min_time", None), getattr(args, "max_time", None)
    if max_time is None and min_time is not None:
        values["max_time_s"] = max(float(values.get("max_time_s", 10.0)), min_time)
    if max_time_caps_min and min_time is None and max_time is not None:
        values["min_time_s"] = min(float(values.get("min_time_s", 1.0)), max_time)
    try:
        return HarnessSettings.from_mapping(values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _is_space_target(target: str) -> bool:
    if Path(target).exists() or ":" not in target:
        return False
    from latbench.spaces import list_spaces

    return target.split(":", 1)[0] in list_spaces()


def resolve_target(target: str, runtime: str | None, seed: int, tmpdir: str) -> tuple[Any, str]:
    """(model reference, runtime) for a TARGET: a file, or SPACE:ARCH emitted for the runtime."""
    if _is_space_target(target):
        from latbench.spaces import export, get_space

        space_name, arch = target.split(":", 1)
        graph = get_space(space_name).build(arch)
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
    path = Path(target)
    if not path.exists():
        raise ModelError(
            f"model file {target!r} does not exist (expected a .onnx/.tflite/.pt/.pt2 file or "
            "SPACE:ARCH such as nb201:|nor_conv_3x3~0|+|...|)"
        )
    found = runtime or SUFFIX_RUNTIME.get(path.suffix.lower())
    if found is None:
        raise ModelError(
            f"cannot tell the runtime of {target!r} (suffix {path.suffix!r}); expected "
            f"{', '.join(SUFFIX_RUNTIME)} or pass --runtime"
        )
    return str(path), found


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    settings = harness_settings(args, cfg.measure_for(args.device))
    threads = args.threads if args.threads is not None else cfg.measure.get("threads", 1)
    if threads is not None and int(threads) < 1:
        raise ConfigError(f"--threads {threads}; expected an integer >= 1")
    if args.batch is not None and args.batch < 1:
        raise ConfigError(f"--batch {args.batch}; expected an integer >= 1")
    from latbench.devices import get_device

    options: dict[str, Any] = {}
    if args.opt_level:
        options["opt_level"] = args.opt_level
    if args.no_xnnpack:
        options["xnnpack"] = False
    dev_cfg = cfg.device(args.device)
    if args.cpus is not None:
        cfg.devices[args.device] = {**dev_cfg, "cpus": args.cpus}
    elif cfg.measure.get("cpus") and "cpus" not in dev_cfg:
        cfg.devices[args.device] = {**dev_cfg, "cpus": cfg.measure["cpus"]}
    with tempfile.TemporaryDirectory(prefix="latbench-measure-") as tmp:
        model, runtime = resolve_target(args.target, args.runtime, args.seed, tmp)
        with get_device(args.device, cfg) as device:
            m = device.measure(
                model,
                runtime=runtime,
                threads=int(threads) if threads else None,
                batch=args.batch,
                settings=settings,
                per_op=args.per_op,
                counters=args.counters,
                options=options,
                seed=args.seed,
            )
    if args.json:
        doc = m.to_dict()
        doc["summary"] = m.summary()
        doc["verdict"] = m.verdict()
        doc["target"] = args.target
        print(json.dumps(doc, indent=2, sort_keys=True, default=_json_default))
    else:
        print(format_measurement(m, args.target))
    if not m.ok:
        print(f"latbench: error: measurement failed: {m.error}", file=sys.stderr)
        return 1
    return 0


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return str(obj)


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
    lines.append(f"runtime   {m.runtime} {m.runtime_version} ({settings})")
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
    lines.append(
        f"runs      {m.runs} samples x {m.loops} loop(s), {m.warmup_runs} warm-up, "
        f"{m.wall_s:.1f} s (stopped: {stop})"
    )
    v = m.verdict()
    if v["stable"]:
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
