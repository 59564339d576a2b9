"""``latbench search``: find the best architecture under latency budgets, in seconds.

    latbench search --space fbnet --predictor cpu.lbp --budget-ms 15 \\
        [--predictor pixel3.lbp --budget-ms 40] --objective zico --strategy evolution \\
        --evaluations 2000 [--verify 5] -o result.json

Each ``--predictor`` is one device with its own ``--budget-ms`` (same order). ``--objective`` is
``params``, ``flops``, a zero-cost proxy (``synflow``, ``naswot``, ``zico``: computed on the CPU
on a small batch of scikit-learn digits, cached), or a CSV file ``arch,accuracy``. Writes
``result.json`` (Pareto front, returned architectures, configuration, seed, history) and
``result.png`` (the Pareto plot). ``--verify N`` measures the N best on ``--verify-device``
(default ``local``: this machine) and reports predicted vs measured latency and whether each met
the first predictor's budget.
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

from latbench._csvfile import Reader, open_csv
from latbench._validate import out_of_range
from latbench.commands._json import dumps
from latbench.errors import ConfigError

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
    p.add_argument("--verify-device", default="local", help="device of --verify")
    p.add_argument("--verify-runtime", default="onnxruntime")
    p.add_argument("--verify-threads", type=int, default=1)
    p.add_argument("--verify-min-time", type=float, default=0.5, help="seconds per model")
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
    if args.table_only:
        raise ConfigError("--table-only needs a CSV --objective")
    if obj in PROXIES:
        res = args.proxy_resolution or DEFAULT_PROXY_RESOLUTION.get(space.name, 64)
        spec = InputSpec(data=args.proxy_data, resolution=res, batch=args.proxy_batch, seed=0)
        cache = ProxyCache(
            None if args.no_proxy_cache else (args.proxy_cache or default_cache_path())
        )
        return objectives.make_objective(obj, space, proxy_spec=spec, cache=cache)
    return objectives.make_objective(obj, space, stats=stats)


def _constraints(args: argparse.Namespace, space: Any, stats: Any) -> list[Any]:
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
    return out + trust


def _read_measured(path: str, space: Any) -> tuple[list[str], list[float]]:
    """``arch`` and ``latency_ms`` columns of a CSV of measured architectures."""

    try:
        with open_csv(path) as fh:
            rows = list(Reader(fh))
    except OSError as exc:
        raise ConfigError(f"--margin-from {path!r}: {exc}; expected a CSV file") from None
    if not rows or not {"arch", "latency_ms"} <= set(rows[0]):
        raise ConfigError(
            f"--margin-from {path!r}: expected columns arch and latency_ms and at least 5 rows"
        )
    if len(rows) < 5:
        raise ConfigError(
            f"--margin-from {path!r} holds {len(rows)} row(s); expected at least 5 (the margin "
            "is cross-validated over 5 folds)"
        )
    from latbench.errors import ArchError

    archs: list[str] = []
    lat: list[float] = []
    for line, r in enumerate(rows, start=2):
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


def _verify(
    args: argparse.Namespace, space: Any, result: Any, constraints: list[Any]
) -> list[dict[str, Any]]:
    """Measure the best ``args.verify`` architectures; predicted vs measured per candidate."""
    from latbench.config import load_config
    from latbench.devices import get_device
    from latbench.profilers.harness import HarnessSettings
    from latbench.spaces import export

    lat = next((c for c in constraints if c.kind == "latency"), None)
    cfg = load_config(args.config)
    settings = HarnessSettings.from_mapping(
        {
            **cfg.measure_for(args.verify_device),
            "min_time_s": args.verify_min_time,
            "max_time_s": max(args.verify_min_time * 4, 2.0),
            "warmup_runs": 5,
        }
    )
    rows = []
    picks = result.best[: args.verify]
    with (
        tempfile.TemporaryDirectory(prefix="latbench-verify-") as tmp,
        get_device(args.verify_device, cfg) as device,
    ):
        for i, cand in enumerate(picks):
            graph = space.build(cand.arch)
            path = export(graph, "onnx", os.path.join(tmp, f"cand{i}.onnx"), seed=0)
            m = device.measure(
                str(path),
                runtime=args.verify_runtime,
                threads=args.verify_threads,
                settings=settings,
            )
            row: dict[str, Any] = {"arch": cand.arch, "device": args.verify_device}
            row["status"] = m.status
            if lat is not None:
                budget = float(lat.info.get("budget_ms", lat.limit))
                pred = cand.values[lat.name]
                k = float(lat.info.get("sigmas", 0.0))
                std = cand.std.get(lat.name)
                if k > 0 and std is not None:
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


def _report(result: Any, verification: list[dict[str, Any]], out: Path, png: Path | None) -> str:
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
    lines.append(f"wrote {out}" + (f" and {png}" if png else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from latbench.nas import objectives, search, strategies
    from latbench.nas.plots import plot_pareto
    from latbench.spaces import get_space

    if args.evaluations < 1:
        raise ConfigError(f"--evaluations {args.evaluations}; expected >= 1")
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
    constraints = _constraints(args, space, stats)
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
    verification = _verify(args, space, result, constraints) if args.verify else []
    doc = result.to_dict(history=not args.no_history)
    doc["strategy"]["params"] = {
        k: v for k, v in doc["strategy"]["params"].items() if k != "candidates"
    }
    doc["command"] = " ".join(["latbench", *sys.argv[1:]]) if sys.argv else "latbench search"
    doc["predictors"] = list(args.predictor)
    if verification:
        doc["verification"] = verification
        doc["verification_met"] = sum(1 for r in verification if r.get("met_budget"))
    out = Path(args.output)
    out.write_text(dumps(doc, indent=1) + "\n", encoding="utf-8")
    png = None
    if not args.no_plot:
        png = plot_pareto(result, out.with_suffix(".png"))
    print(_report(result, verification, out, png))
    return 0
