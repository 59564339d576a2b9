"""``latbench search``: find the best architecture under latency budgets, in seconds.

    latbench search --space fbnet --predictor cpu.lbp --budget-ms 15 \\
        [--predictor pixel3.lbp --budget-ms 40] --objective zico --strategy evolution \\
        --evaluations 2000 [--verify 5] -o result.json

Each ``--predictor`` is one device with its own ``--budget-ms`` (same order). ``--objective`` is
``params``, ``flops``, a zero-cost proxy (``synflow``, ``naswot``, ``zico``: computed on the CPU
on a small batch of scikit-learn digits, cached), or a CSV file ``arch,accuracy``. Writes
``result.json`` (Pareto front, returned architectures, configuration, seed, history) and
``result.png`` (the Pareto plot). ``--verify N`` measures the N best on ``--verify-device``
(default ``local``: this machine), exported for ``--verify-runtime`` (default: the device's), and
reports predicted vs measured latency and whether each met the first predictor's budget. The
verification options are checked before the search starts, and the result is written before the
verification runs: a verification that fails leaves the search's result.json in place.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import shlex
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latbench._atomic import write_text_atomic
from latbench._csvfile import read_csv, rows
from latbench._validate import out_of_range
from latbench.commands._json import dumps
from latbench.errors import ConfigError, LatbenchError, UnknownNameError, reraised

log = logging.getLogger(__name__)

#: the --verify-* options' defaults (argparse dest -> value): given without --verify N, a
#: changed one is named in a warning
_VERIFY_DEFAULTS: dict[str, object] = {
    "verify_device": "local",
    "verify_runtime": None,
    "verify_threads": 1,
    "verify_min_time": 0.5,
}

DEFAULT_PROXY_RESOLUTION = {"nb201": 32, "fbnet": 64}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "search",
        help="latency-constrained architecture search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--space", help="search space (nb201, fbnet, ...; default: the first predictor's)"
    )
    p.add_argument(
        "--predictor",
        action="append",
        default=[],
        metavar="FILE",
        help="latency predictor (.lbp) of one device; repeat for several devices",
    )
    p.add_argument(
        "--budget-ms",
        action="append",
        type=float,
        default=[],
        metavar="MS",
        help="latency budget of the predictor at the same position",
    )
    p.add_argument(
        "--predictor-device",
        action="append",
        default=[],
        metavar="NAME",
        help="device of a multi-device predictor (same position as --predictor)",
    )
    p.add_argument(
        "--sigmas",
        type=float,
        default=0.0,
        help="check mean + K*std against the budget where the predictor has an uncertainty",
    )
    p.add_argument(
        "--budget-margin",
        type=float,
        default=0.0,
        metavar="PCT",
        help="search under budget*(1-PCT/100) to absorb prediction error (default 0)",
    )
    p.add_argument(
        "--margin-from",
        metavar="CSV",
        help="measured archs (columns arch, latency_ms) of the first predictor's device: the "
        "margin becomes the --margin-quantile of the predictor's cross-validated "
        "under-prediction on them (if larger than --budget-margin) and the search stays in "
        "their region (params and MACs at most their maximum)",
    )
    p.add_argument(
        "--margin-quantile",
        type=float,
        default=0.97,
        metavar="Q",
        help="quantile of the cross-validated under-prediction used by --margin-from (0.97: "
        "the returned archs sit at the predictor's error tail, a p90 margin is too small)",
    )
    p.add_argument("--max-params", type=float, help="at most this many parameters")
    p.add_argument("--max-flops", type=float, help="at most this many MACs")
    p.add_argument("--max-memory-mb", type=float, help="at most this peak activation memory")
    p.add_argument(
        "--objective",
        default="params",
        help="params, flops, synflow, naswot, zico, or a CSV file arch,accuracy (default params)",
    )
    p.add_argument("--objective-column", help="value column of a CSV objective")
    p.add_argument("--minimize", action="store_true", help="the CSV column is lower-is-better")
    p.add_argument(
        "--table-only",
        action="store_true",
        help="search only the architectures of the CSV table (exhaustive or random)",
    )
    p.add_argument("--proxy-data", choices=["digits", "random"], default="digits")
    p.add_argument(
        "--proxy-resolution",
        type=int,
        help="image side for zero-cost proxies (default: nb201 32, fbnet 64)",
    )
    p.add_argument("--proxy-batch", type=int, default=16, help="images per proxy batch")
    p.add_argument("--proxy-cache", help="SQLite cache file (default ~/.cache/latbench)")
    p.add_argument("--no-proxy-cache", action="store_true", help="do not cache proxy scores")
    p.add_argument(
        "--strategy",
        default="evolution",
        help="exhaustive, random, evolution or reinforce (default evolution)",
    )
    p.add_argument("--strategy-params", help="JSON settings, e.g. '{\"population\": 64}'")
    p.add_argument("--evaluations", type=int, default=1000, help="budget of architectures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=10, help="architectures returned (default 10)")
    p.add_argument("--verify", type=int, default=0, metavar="N", help="measure the N best")
    p.add_argument(
        "--verify-device",
        default=_VERIFY_DEFAULTS["verify_device"],
        help="device of --verify (local: this machine; or any device of bench.toml)",
    )
    p.add_argument(
        "--verify-runtime",
        default=None,
        help="runtime of --verify, whose format the candidates are exported in (default: the "
        "device's own, e.g. litert on an adb phone, else bench.toml [measure] runtime, else "
        "onnxruntime)",
    )
    p.add_argument(
        "--verify-threads",
        type=int,
        default=_VERIFY_DEFAULTS["verify_threads"],
        help="runtime threads of --verify",
    )
    p.add_argument(
        "--verify-min-time",
        type=float,
        default=_VERIFY_DEFAULTS["verify_min_time"],
        help="seconds per model",
    )
    p.add_argument("-o", "--output", required=True, help="result JSON")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--no-history", action="store_true", help="leave the history out of JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, short output")
    p.set_defaults(handler=run)


def _objective(args: argparse.Namespace, space: Any, stats: Any) -> Any:
    from latbench.nas import objectives
    from latbench.nas.proxies import PROXIES, InputSpec, ProxyCache, default_cache_path

    obj = args.objective
    if obj.lower().endswith(".csv") or (os.path.sep in obj) or Path(obj).is_file():
        return objectives.load_table(
            obj, space, value_column=args.objective_column, higher_is_better=not args.minimize
        )
    for flag, given in (
        ("--table-only", args.table_only),
        ("--minimize", args.minimize),
        ("--objective-column", args.objective_column is not None),
    ):
        if given:  # about the columns of a table: without one it would change nothing
            raise ConfigError(
                f"{flag} needs a CSV --objective; got --objective {obj!r} (expected a .csv file)"
            )
    if obj in PROXIES:
        res = args.proxy_resolution
        if res is None:  # not ``or``: --proxy-resolution 0 is refused, not replaced
            res = DEFAULT_PROXY_RESOLUTION.get(space.name, 64)
        try:
            space.input_size(1, res, res)  # checked now, not at the first feasible candidate
        except LatbenchError as exc:
            raise ConfigError(f"--proxy-resolution {res}: {exc}") from None
        spec = InputSpec(data=args.proxy_data, resolution=res, batch=args.proxy_batch, seed=0)
        cache = ProxyCache(
            None if args.no_proxy_cache else (args.proxy_cache or default_cache_path())
        )
        return objectives.make_objective(obj, space, proxy_spec=spec, cache=cache)
    return objectives.make_objective(obj, space, stats=stats)


def _constraints(
    args: argparse.Namespace, space: Any, stats: Any
) -> tuple[list[Any], dict[str, Any]]:
    """The constraints of the search, and the predictors (``{label: predictor}``) loaded."""
    from latbench.commands.predictor import resolve_device
    from latbench.commands.rank import load_predictors
    from latbench.nas import objectives

    if len(args.budget_ms) != len(args.predictor):
        raise ConfigError(
            f"got {len(args.predictor)} --predictor and {len(args.budget_ms)} --budget-ms; "
            "expected one budget per predictor, in the same order"
        )
    if args.predictor_device and len(args.predictor_device) != len(args.predictor):
        raise ConfigError("expected one --predictor-device per --predictor when it is given")
    if not 0 <= args.budget_margin < 100:
        raise ConfigError(f"--budget-margin {args.budget_margin}; expected 0 <= PCT < 100")
    bad = out_of_range(
        [
            ("--sigmas", args.sigmas, {"low": 0.0}),
            ("--margin-quantile", args.margin_quantile, {"low": 0.0, "high": 1.0}),
            ("--max-params", args.max_params, {"positive": True}),
            ("--max-flops", args.max_flops, {"positive": True}),
            ("--max-memory-mb", args.max_memory_mb, {"positive": True}),
        ]
    )
    if bad is not None:
        raise ConfigError(bad[1])
    preds = load_predictors(args.predictor)
    margins = [args.budget_margin / 100] * len(preds)
    trust: list[Any] = []
    if args.margin_from:
        archs, lat = _read_measured(args.margin_from, space)
        first = next(iter(preds.values()))
        margins[0] = max(
            margins[0], objectives.error_margin(first, archs, lat, quantile=args.margin_quantile)
        )
        if margins[0] >= 1:
            raise ConfigError(
                f"--margin-from {args.margin_from}: the predictor under-predicts by "
                f"{100 * margins[0]:.0f} % (quantile {args.margin_quantile}); expected less "
                "than 100 %: refit it"
            )
        trust = objectives.trust_region(archs, stats)
        print(
            f"budget margin {100 * margins[0]:.1f} % (cross-validated under-prediction, "
            f"quantile {args.margin_quantile}, on {len(archs)} archs)"
        )
    out = []
    for i, ((label, p), budget) in enumerate(zip(preds.items(), args.budget_ms, strict=True)):
        if not (math.isfinite(budget) and budget > 0):
            raise ConfigError(f"--budget-ms {budget}; expected a positive number of ms")
        dev = (
            resolve_device(p, args.predictor_device[i], "--predictor-device")
            if args.predictor_device
            else None
        )
        c = objectives.latency_constraint(
            p,
            budget * (1 - margins[i]),
            space,
            device=dev,
            label=label if dev is None else f"{label}:{dev}",
            sigmas=args.sigmas,
        )
        c.info["budget_ms"] = budget
        out.append(c)
    for metric, value, scale in (
        ("params", args.max_params, 1.0),
        ("flops", args.max_flops, 1.0),
        ("memory", args.max_memory_mb, 1e6),
    ):
        if value is not None:
            out.append(objectives.metric_constraint(metric, value * scale, stats))
    return out + trust, preds


def _read_measured(path: str, space: Any) -> tuple[list[str], list[float]]:
    """``arch`` and ``latency_ms`` columns of a CSV of measured architectures."""

    try:
        with read_csv(path, "--margin-from") as reader:
            columns = set(reader.fieldnames or [])
            table = list(rows(path, reader, "--margin-from"))
    except OSError as exc:
        raise ConfigError(f"--margin-from {path!r}: {exc}; expected a CSV file") from None
    if not {"arch", "latency_ms"} <= columns:
        raise ConfigError(
            f"--margin-from {path!r}: expected columns arch and latency_ms and at least 5 rows"
        )
    if len(table) < 5:
        raise ConfigError(
            f"--margin-from {path!r} holds {len(table)} row(s); expected at least 5 (the margin "
            "is cross-validated over 5 folds)"
        )
    from latbench.errors import ArchError

    archs: list[str] = []
    lat: list[float] = []
    for line, r in table:
        try:
            v = float(r["latency_ms"])
        except (TypeError, ValueError):
            v = math.nan
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(
                f"--margin-from {path}:{line}: latency_ms = {r['latency_ms']!r}; expected "
                "finite positive milliseconds"
            )
        try:
            archs.append(space.canonical(r["arch"] or ""))
        except ArchError as exc:
            raise ArchError(f"--margin-from {path}:{line}: {exc}") from None
        lat.append(v)
    return archs, lat


#: the model format the candidates are exported in for each runtime (as collection emits them)
VERIFY_FORMATS = {"onnxruntime": "onnx", "litert": "tflite", "torch": "torch"}
#: the runtimes a device kind can run, where it cannot run them all
KIND_RUNTIMES = {"adb": ("litert",), "cuda": ("torch", "onnxruntime")}
#: device kinds that measure in this process's machine (a torch model may be a module factory);
#: the others are handed model files
IN_PROCESS_KINDS = ("local", "cuda")


@dataclass
class VerifyPlan:
    """What ``--verify`` measures on, checked before the search: the open device, the runtime,
    the exported format and the harness settings."""

    device: Any
    runtime: str
    fmt: str
    settings: Any

    def describe(self) -> dict[str, Any]:
        return {
            "device": self.device.name,
            "runtime": self.runtime,
            "format": self.fmt,
            "settings": self.settings.to_dict(),
        }


def _verify_plan(args: argparse.Namespace, stack: contextlib.ExitStack) -> VerifyPlan:
    """Check every ``--verify-*`` option and open the device, before any search work.

    The runtime is ``--verify-runtime``, else the device table's (an adb phone: litert), else
    bench.toml's ``[measure] runtime``, else the device's default, else onnxruntime (as
    ``latbench measure`` picks it); the candidates are exported in its format.
    """
    from latbench._validate import out_of_range
    from latbench.commands.measure import _measure_defaults
    from latbench.config import load_config
    from latbench.devices import get_device
    from latbench.profilers.harness import HarnessSettings
    from latbench.profilers.runtimes import RUNTIMES

    bad = out_of_range(
        [
            ("--verify-threads", args.verify_threads, {"integer": True, "low": 1}),
            ("--verify-min-time", args.verify_min_time, {"positive": True}),
        ]
    )
    if bad is not None:
        raise ConfigError(bad[1])
    name = args.verify_device
    cfg = load_config(args.config)
    try:
        cfg.device(name)
    except ConfigError as exc:
        raise ConfigError(f"--verify-device: {exc}") from None
    given = args.verify_runtime
    if given is not None:
        try:
            RUNTIMES.get(given)
        except UnknownNameError as exc:
            raise UnknownNameError(f"--verify-runtime: {exc}") from None
    try:
        settings = HarnessSettings.from_mapping(
            {
                **cfg.measure_for(name),
                "min_time_s": args.verify_min_time,
                "max_time_s": max(args.verify_min_time * 4, 2.0),
                "warmup_runs": 5,
            }
        )
    except ValueError as exc:
        raise ConfigError(f"--verify-device {name!r}: {exc}") from None
    own = _measure_defaults(cfg)  # a bad [measure] runtime: named by its file and key
    try:
        device = stack.enter_context(get_device(name, cfg))
    except LatbenchError as exc:
        raise reraised(exc, f"--verify-device {name!r}: {exc}") from None
    runtime = str(
        given
        or getattr(device, "table_runtime", None)
        or own.get("runtime")
        or getattr(device, "default_runtime", None)
        or "onnxruntime"
    )
    where = f"--verify-runtime {runtime}" if given else f"the runtime {runtime!r} of {name!r}"
    fmt = VERIFY_FORMATS.get(runtime)
    if fmt is None:
        raise UnknownNameError(
            f"{where}: latbench cannot export architectures for it; expected one of "
            + ", ".join(sorted(VERIFY_FORMATS))
        )
    kind = str(getattr(device, "kind", ""))
    allowed = KIND_RUNTIMES.get(kind)
    if allowed is not None and runtime not in allowed:
        raise ConfigError(
            f"{where}: device {name!r} ({kind}) runs {' or '.join(allowed)}; expected "
            f"--verify-runtime {allowed[0]} (or no --verify-runtime: the device's own)"
        )
    if kind == "local":
        try:
            RUNTIMES.get(runtime).package_version()  # not installed: names the extra
        except LatbenchError as exc:
            raise reraised(exc, f"{where}: {exc}") from None
    return VerifyPlan(device=device, runtime=runtime, fmt=fmt, settings=settings)


def _emit(space: Any, arch: str, plan: VerifyPlan, directory: str, i: int) -> Any:
    """Candidate ``arch`` as a model ``plan.runtime`` measures: a file of its format, or (torch
    on a device of this machine) a module factory."""
    from latbench.spaces import export

    graph = space.build(arch, batch=1)
    if plan.fmt == "torch" and getattr(plan.device, "kind", "") in IN_PROCESS_KINDS:
        from latbench.spaces.emit_torch import torch_factory

        return torch_factory(graph, 0)
    suffix = {"onnx": ".onnx", "tflite": ".tflite", "torch": ".pt2"}[plan.fmt]
    return str(export(graph, plan.fmt, os.path.join(directory, f"cand{i}{suffix}"), seed=0))


def _verify_device_mismatch(
    args: argparse.Namespace, plan: VerifyPlan, constraints: list[Any]
) -> str:
    """Why the verification would not check the first latency predictor, or ``""``: the device
    that predictor predicts (its one device, or ``--predictor-device``) is not the
    ``--verify-device``. A predictor fitted without a device name predicts any device."""
    from latbench.predictors.base import DEFAULT_DEVICE

    lat = next((c for c in constraints if c.kind == "latency"), None)
    if lat is None:
        return ""
    predicted = str(lat.info.get("device") or "")
    if not predicted or predicted in (DEFAULT_DEVICE, plan.device.name):
        return ""
    return (
        f"--verify measures on {plan.device.name!r}, but the first --predictor "
        f"({args.predictor[0]}) predicts {predicted!r}: the verification says whether the "
        f"picks meet the budget on {plan.device.name!r}, not how well that predictor predicts; "
        f"expected a first --predictor of {plan.device.name!r} (fitted on its measurements, or "
        f"a base adapted to it: latbench adapt BASE.lbp --device {plan.device.name} --budget "
        f"10 -o {plan.device.name}.lbp)"
    )


#: measured / predicted, median over the verified candidates, outside this range: the first
#: predictor is not the verification device's (a reference device's predictor verified on this
#: machine is 10x off); a predictor of the device is within 10-20 %
VERIFY_SCALE_RANGE = (0.5, 2.0)


def _verify_scale_note(rows: list[dict[str, Any]], plan: VerifyPlan) -> str:
    """A note when the measured latencies are on another scale than the predictions, or ``""``."""
    ratios = [
        r["measured_ms"] / r["predicted_ms"]
        for r in rows
        if r.get("measured_ms") and r.get("predicted_ms") and r["predicted_ms"] > 0
    ]
    if not ratios:
        return ""
    n, med = len(ratios), statistics.median(ratios)
    low, high = VERIFY_SCALE_RANGE
    if low <= med <= high:
        return ""
    how = f"{1 / med:.1f}x below" if med < 1 else f"{med:.1f}x above"
    return (
        f"measured latencies are {how} the predictions (median over {n}): the first "
        f"--predictor does not predict {plan.device.name!r}; whether the picks met the budget "
        "there holds, the predicted_ms column does not"
    )


def _verify(
    args: argparse.Namespace,
    plan: VerifyPlan,
    space: Any,
    result: Any,
    constraints: list[Any],
    rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Measure the best ``args.verify`` architectures; predicted vs measured per candidate,
    appended to ``rows`` as each is measured (what was measured survives an error)."""
    lat = next((c for c in constraints if c.kind == "latency"), None)
    picks = result.best[: args.verify]
    with tempfile.TemporaryDirectory(prefix="latbench-verify-") as tmp:
        for i, cand in enumerate(picks):
            model = _emit(space, cand.arch, plan, tmp, i)
            m = plan.device.measure(
                model,
                runtime=plan.runtime,
                threads=args.verify_threads,
                settings=plan.settings,
            )
            row: dict[str, Any] = {
                "arch": cand.arch,
                "device": plan.device.name,
                "runtime": plan.runtime,
            }
            row["status"] = m.status
            if lat is not None:
                budget = float(lat.info.get("budget_ms", lat.limit))
                pred = cand.values[lat.name]
                k = float(lat.info.get("sigmas", 0.0))
                std = cand.std.get(lat.name)
                if lat.info.get("sigmas_applied") and k > 0 and std is not None:
                    # the constraint checked mean + k * std; the prediction is the mean
                    row["checked_ms"] = pred
                    pred = pred - k * std
                row.update({"predicted_ms": pred, "budget_ms": budget, "predictor": lat.name})
            if m.ok:
                row["measured_ms"] = m.median_ms
                row["iqr_ms"] = m.iqr_ms
                row["runs"] = m.runs
                if lat is not None:
                    row["error_pct"] = 100.0 * (row["predicted_ms"] / m.median_ms - 1.0)
                    row["met_budget"] = bool(m.median_ms <= row["budget_ms"])
            else:
                row["error"] = m.error
            rows.append(row)
            if not args.quiet:
                print(
                    f"  verified {i + 1}/{len(picks)}: measured "
                    f"{row.get('measured_ms', float('nan')):.3f} ms",
                    file=sys.stderr,
                )
    return rows


def command_line(args: argparse.Namespace) -> str:
    """The ``latbench search`` command line of ``args``, shell-quoted (:func:`shlex.join`), that
    parses back to the same options: every option that differs from its default, by its long
    name, as ``--option=value`` (a value that starts with ``-`` or holds spaces or quotes, such
    as ``--strategy-params``' JSON, stays one word)."""
    from latbench.cli import build_parser

    top = build_parser("search")
    words = ["latbench"]
    sub: argparse.ArgumentParser | None = None
    for parser in (top, None):
        if parser is None:
            if sub is None:
                break
            words.append("search")
            parser = sub
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                sub = action.choices.get("search")
                continue
            if not action.option_strings or isinstance(
                action, argparse._HelpAction | argparse._VersionAction
            ):
                continue
            value: Any = getattr(args, action.dest, None)
            if value == action.default or (value in (None, []) and not action.default):
                continue
            flag = next((o for o in action.option_strings if o.startswith("--")), None)
            flag = flag or action.option_strings[0]
            if isinstance(action, argparse._StoreTrueAction):
                words.append(flag)
            elif isinstance(action, argparse._CountAction):
                words.extend([flag] * int(value))
            elif isinstance(action, argparse._AppendAction):
                words.extend(f"{flag}={v}" for v in value)
            else:
                words.append(f"{flag}={value}")
    return shlex.join(words)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def predictor_records(paths: list[str], preds: dict[str, Any]) -> list[dict[str, Any]]:
    """What identifies each ``--predictor`` file later: the path as given, its absolute path,
    the sha256 of its bytes, the label its constraint is named after, the model and its
    devices."""
    out = []
    for path, (label, p) in zip(paths, preds.items(), strict=True):
        out.append(
            {
                "label": label,
                "path": path,
                "abs_path": str(Path(path).resolve()),
                "sha256": _sha256(path),
                "model": getattr(p, "name", type(p).__name__),
                "devices": [str(d) for d in getattr(p, "devices_", None) or []],
            }
        )
    return out


def _write(out: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``out`` through a temporary file, so an interrupted write never leaves a
    truncated result."""
    write_text_atomic(out, dumps(doc, indent=1) + "\n")


def _report(
    result: Any,
    verification: list[dict[str, Any]],
    out: Path,
    png: Path | None,
    note: str = "",
) -> str:
    lines = [
        f"{result.space} · {result.strategy} · {result.evaluations} evaluations in "
        f"{result.wall_s:.2f} s ({result.evaluations_per_s:,.0f}/s) · seed {result.seed}",
        f"objective {result.objective_name}; constraints: "
        + (
            ", ".join(f"{c['name']} <= {c['limit']:g} {c['unit']}" for c in result.constraints)
            or "none (no Pareto front without a latency axis)"
        ),
        f"Pareto front: {len(result.pareto)} architectures; best:",
    ]
    names = [c["name"] for c in result.constraints]
    for i, c in enumerate(result.best, start=1):
        vals = "  ".join(f"{n}={c.values[n]:.4g}" for n in names)
        lines.append(f"{i:>3}. {c.objective:.6g}  {vals}  {c.arch}")
    if verification:
        met = sum(1 for r in verification if r.get("met_budget"))
        lines.append(
            f"verification on {verification[0]['device']}: {met} of "
            f"{len(verification)} met the budget"
        )
        for r in verification:
            lines.append(
                f"     predicted {r.get('predicted_ms', float('nan')):8.3f} ms  measured "
                f"{r.get('measured_ms', float('nan')):8.3f} ms  budget "
                f"{r.get('budget_ms', float('nan')):g}  "
                f"{'ok' if r.get('met_budget') else 'OVER' if 'measured_ms' in r else r['status']}"
                f"  {r['arch']}"
            )
        if note:
            lines.append(f"note: {note}")
    lines.append(f"wrote {out}" + (f" and {png}" if png else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from latbench.nas import objectives, search, strategies
    from latbench.nas.plots import plot_pareto
    from latbench.spaces import get_space

    command = command_line(args)  # before anything below fills in a default (--space)
    if args.evaluations < 1:
        raise ConfigError(f"--evaluations {args.evaluations}; expected >= 1")
    if args.top < 1:
        raise ConfigError(f"--top {args.top}; expected >= 1")
    if args.seed < 0:
        raise ConfigError(f"--seed {args.seed}; expected an integer >= 0")
    if not args.no_plot and Path(args.output).suffix.lower() == ".png":
        raise ConfigError(
            f"-o {args.output!r}: the Pareto plot is written next to the result as "
            f"{Path(args.output).with_suffix('.png').name}, over it; expected a result name "
            "such as result.json (or --no-plot)"
        )
    if args.verify < 0:
        raise ConfigError(f"--verify {args.verify}; expected >= 0")
    if args.verify > args.top:
        raise ConfigError(
            f"--verify {args.verify} with --top {args.top}: only the returned architectures "
            f"are measured; expected --verify <= --top (or --top {args.verify})"
        )
    if not args.space:
        if not args.predictor:
            raise ConfigError("--space SPACE is needed when no --predictor names the space")
        from latbench.commands.rank import load_predictors

        first = next(iter(load_predictors(args.predictor[:1]).values()))
        args.space = getattr(first, "space_", None)
        if not args.space:
            raise ConfigError(f"{args.predictor[0]} names no search space; pass --space SPACE")
    space = get_space(args.space)
    stats = objectives.GraphStats(space)
    constraints, preds = _constraints(args, space, stats)
    objective = _objective(args, space, stats)
    params: dict[str, Any] = {}
    if args.strategy_params:
        try:
            params = json.loads(args.strategy_params)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--strategy-params is not JSON: {exc}") from None
        if not isinstance(params, dict):
            raise ConfigError("--strategy-params: expected a JSON object")
    if args.table_only:
        if args.strategy not in ("exhaustive", "random"):
            raise ConfigError("--table-only works with --strategy exhaustive or random")
        params["candidates"] = sorted(objective.table)
    strat = strategies.create_strategy(args.strategy, **params)
    with contextlib.ExitStack() as stack:
        # the verification device and runtime are checked (and the device opened) before the
        # search: a typo must not cost a search
        plan = _verify_plan(args, stack) if args.verify else None
        if plan is not None:
            mismatch = _verify_device_mismatch(args, plan, constraints)
            if mismatch:
                log.warning("%s", mismatch)
        if not args.verify:
            given = [
                "--" + dest.replace("_", "-")
                for dest, default in _VERIFY_DEFAULTS.items()
                if getattr(args, dest) != default
            ]
            if given:
                log.warning("%s given without --verify N: nothing is measured", ", ".join(given))
        result = search.run_search(
            space,
            objective,
            constraints,
            strat,
            evaluations=args.evaluations,
            seed=args.seed,
            top=args.top,
            progress=not args.quiet,
        )
        doc = result.to_dict(history=not args.no_history)
        doc["strategy"]["params"] = {
            k: v for k, v in doc["strategy"]["params"].items() if k != "candidates"
        }
        doc["command"] = command
        doc["cwd"] = os.getcwd()
        doc["predictors"] = predictor_records(list(args.predictor), preds)
        if getattr(objective, "source", ""):
            # a table objective: which file, and which bytes, the quality came from
            doc["objective"].update(
                path=objective.source,
                abs_path=str(Path(objective.source).resolve()),
                sha256=_sha256(objective.source),
            )
        if plan is not None:
            doc["verify"] = plan.describe()
        out = Path(args.output)
        # the search is saved before it is verified: a verification that fails keeps it
        _write(out, doc)
        png = None
        if not args.no_plot:
            png = plot_pareto(result, out.with_suffix(".png"))
        verification: list[dict[str, Any]] = []
        note = ""
        if plan is not None:
            try:
                _verify(args, plan, space, result, constraints, verification)
            except BaseException as exc:
                doc["verification"] = verification
                doc["verification_error"] = (
                    str(exc)
                    if isinstance(exc, LatbenchError)
                    else (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                )
                _write(out, doc)
                kept = (
                    f"the search result was kept in {out} (verification_error, with the "
                    f"{len(verification)} candidate(s) measured before it)"
                )
                if isinstance(exc, LatbenchError):
                    print(_report(result, verification, out, png))  # the search, at least
                    raise reraised(exc, f"--verify: {exc}; {kept}") from exc
                print(f"latbench: {kept}", file=sys.stderr)
                raise
            doc["verification"] = verification
            doc["verification_met"] = sum(1 for r in verification if r.get("met_budget"))
            note = _verify_scale_note(verification, plan)
            if note:
                doc["verification_note"] = note
            _write(out, doc)
    print(_report(result, verification, out, png, note))
    return 0
