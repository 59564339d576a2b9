"""``latbench monotonicity``: rank correlation of latency across devices; is one proxy enough?

Prints the Spearman (and, with --kendall, Kendall) matrix across devices, writes a clustered
heat-map with --plot, and for a target device with K samples lists the best proxies, says
whether one proxy is enough, and adapts the proxy's predictor with the K samples, reporting
its rank correlation before and after: on the target's other architectures for --target, by
leave-one-out on the K samples for --samples (-o saves the adapted predictor).

  latbench monotonicity --reference nb201 --devices 'help/*' --plot nb201.png
  latbench monotonicity --reference nb201 --target help/gold_6240 --k 10
  latbench monotonicity --reference fbnet --samples my_phone.csv -o my_phone.lbp
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

from latbench.commands._json import dumps
from latbench.errors import ConfigError, DatasetError, PredictorError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "monotonicity",
        help="latency rank correlation across devices and proxy-device analysis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--reference", choices=["nb201", "fbnet"], help="bundled reference table")
    src.add_argument("--data", help="latency table (any format latbench datasets reads)")
    p.add_argument(
        "--devices",
        nargs="*",
        default=None,
        help="devices: names or globs, space- or comma-separated (default: all)",
    )
    p.add_argument("--kendall", action="store_true", help="also print the Kendall matrix")
    p.add_argument("--plot", default=None, help="write the clustered heat-map (.png/.svg/.pdf)")
    p.add_argument("--csv", default=None, help="write the Spearman matrix as CSV")
    p.add_argument("--target", default=None, help="a device of the table to treat as new")
    p.add_argument("--samples", default=None, help="CSV space,arch,latency_ms of a new device")
    # None: not given (10 and 0 then), so that one given without --target can be refused
    p.add_argument("--k", type=int, default=None, help="samples drawn from --target (default 10)")
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the --target sample draw (default 0)"
    )
    p.add_argument(
        "--threshold", type=float, default=0.9, help="Spearman for 'one proxy is enough'"
    )
    p.add_argument("--top", type=int, default=5, help="proxies to list (default 5)")
    p.add_argument(
        "--adapt-method",
        default="embed+proxy",
        choices=["embed+proxy", "proxy", "meta", "bayes", "auto"],
        help="proxy adaptation: embed+proxy (default) learns from the table's other devices; "
        "proxy = calibration only",
    )
    p.add_argument(
        "--keep-outliers",
        action="store_true",
        help="fit every sample (embed+proxy and auto otherwise leave out, from 10 samples on, "
        "the ones far off the proxy's robust line)",
    )
    p.add_argument("-o", "--output", default=None, help="save the adapted proxy predictor (.lbp)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def _load(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    """The long table and its space. A latency that is not a finite positive number is
    refused, naming its architecture and device, as ``predictor fit`` refuses it: a negative
    or zero value would take a place in the ranking like any measurement and shift every
    correlation of its device without a word."""
    from latbench.commands.predictor import check_measured, read_data
    from latbench.datasets import load_reference

    long = load_reference(args.reference) if args.reference else read_data(args.data)
    spaces = sorted(set(long["space"].astype(str))) if "space" in long.columns else []
    if len(spaces) != 1:
        raise ConfigError(f"the table holds spaces {spaces}; expected exactly one")
    check_measured(long, args.data or f"reference {args.reference}")
    return long, spaces[0]


def _matches(devices: list[str], pattern: str) -> bool:
    from latbench.predictors.monotonicity import select_devices

    try:
        return bool(select_devices(devices, [pattern]))
    except PredictorError:
        return False


def _fmt_matrix(m: pd.DataFrame) -> str:
    # whole short names (titan_rtx_1 and titan_rtx_32 cut to 10 characters read alike)
    short = [c.split("/")[-1] for c in m.columns]
    cols = [max(6, len(s)) for s in short]
    width = max(len(str(i)) for i in m.index)
    lines = [" " * width + " " + " ".join(f"{s:>{w}}" for s, w in zip(short, cols, strict=True))]
    for name, row in m.iterrows():
        cells = " ".join(
            f"{v:{w}.3f}" if np.isfinite(v) else f"{'-':>{w}}"
            for v, w in zip(row, cols, strict=True)
        )
        lines.append(f"{name!s:<{width}} {cells}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from latbench.predictors import monotonicity as mono

    if args.k is not None and args.k < 3:
        raise ConfigError(f"--k {args.k}; expected at least 3 samples")
    if not -1.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold {args.threshold}; expected a Spearman value in [-1, 1]")
    if args.top < 1:
        raise ConfigError(f"--top {args.top}; expected at least 1 proxy to list")
    from latbench.commands.predictor import check_seed

    if args.seed is not None:
        check_seed(args.seed)
    # --k and --seed choose the draw from --target; --samples uses every row of its file
    # and the matrix alone draws nothing: there they would be ignored without a word
    drawn = [f"{o} {v}" for o, v in (("--k", args.k), ("--seed", args.seed)) if v is not None]
    if drawn and not args.target:
        expected = (
            f"--samples {args.samples} uses every row of its file: expected no --k/--seed with it"
            if args.samples
            else "expected --target DEVICE with them"
        )
        raise ConfigError(
            f"{', '.join(drawn)}: only --target draws samples (K of the target's "
            f"architectures); {expected}"
        )
    args.k = 10 if args.k is None else args.k
    args.seed = 0 if args.seed is None else args.seed
    if args.target and args.samples:
        raise ConfigError(
            "--target and --samples both given; expected one target (a device of the table, "
            "or a CSV of a new device's samples)"
        )
    if args.output and not (args.target or args.samples):
        raise ConfigError(f"-o {args.output}: expected --target or --samples to adapt to")
    if args.devices is not None:  # as predictor fit takes them: help/pixel3,help/gold_6240
        given = args.devices
        args.devices = [d.strip() for v in given for d in v.split(",") if d.strip()]
        if not args.devices:
            # an empty list would select every device, not the ones meant
            raise ConfigError(
                f"--devices {' '.join(repr(v) for v in given) or '(nothing)'} names no device; "
                "expected device names or globs (or no --devices for all of them)"
            )
    long, space = _load(args)
    table = mono.wide_table(long)
    every = list(table.columns)
    if args.devices:
        try:
            table = table[mono.select_devices(every, args.devices)]
        except PredictorError as exc:  # the option's value: a usage error that names it
            raise ConfigError(f"--devices: {exc}") from None
        if table.shape[1] < 2:
            raise ConfigError(
                f"--devices {' '.join(args.devices)} selects {table.shape[1]} device "
                f"({', '.join(table.columns)}); expected at least 2 distinct devices to correlate"
            )
    elif table.shape[1] < 2:
        raise DatasetError(
            f"{args.data or f'reference {args.reference}'} holds {table.shape[1]} device "
            f"({', '.join(table.columns)}); expected at least 2 devices to correlate"
        )
    sp, kd = mono.rank_correlations(table, with_kendall=args.kendall)
    order = mono.cluster_order(sp)
    sp = sp.loc[order, order]
    kd = None if kd is None else kd.loc[order, order]
    out: dict[str, Any] = {
        "space": space,
        "devices": order,
        "spearman": sp.round(4).values.tolist(),
    }
    if kd is not None:
        out["kendall"] = kd.round(4).values.tolist()
    if args.plot:
        mono.plot_heatmap(sp, args.plot)
        out["plot"] = args.plot
    if args.csv:
        from latbench._atomic import atomic_path

        with atomic_path(args.csv) as tmp:
            sp.to_csv(tmp)
    report = None
    adapt_report = None
    if args.target or args.samples:
        if args.target:
            try:
                hits = mono.select_devices(list(table.columns), [args.target])
            except PredictorError as exc:
                if args.devices and _matches(every, args.target):
                    # in the data, but left out by --devices: say so, not "matches nothing"
                    raise ConfigError(
                        f"--target {args.target!r} is in the data but not among the devices "
                        f"--devices {' '.join(args.devices)} selects "
                        f"({', '.join(table.columns)}); expected one of those, or add it to "
                        "--devices"
                    ) from None
                raise ConfigError(f"--target: {exc}") from None
            if len(hits) > 1:
                raise ConfigError(
                    f"--target {args.target!r} matches {len(hits)} devices "
                    f"({', '.join(hits[:6])}{', ...' if len(hits) > 6 else ''}); expected one"
                )
            target = hits[0]
            archs, lat = mono.draw_target_samples(table, target, args.k, args.seed)
        else:
            from latbench.commands.adapt import read_samples

            archs, lat_list = read_samples(args.samples, space, of="the latency table")
            lat = np.asarray(lat_list)
            target = "target"
        report = mono.best_proxies(table, archs, lat, target=target, threshold=args.threshold)
        out["target"] = target
        out["proxies"] = [
            {"device": d, "spearman": s, "kendall": k, "shared": report.shared[d]}
            for d, s, k in report.ranking[: args.top]
        ]
        out["one_proxy_enough"] = report.one_proxy_enough
        out["verdict"] = report.verdict()
        if args.target:
            adapt_report, adapted = mono.proxy_adaptation(
                table,
                space,
                report.best,
                target,
                k=args.k,
                seed=args.seed,
                method=args.adapt_method,
                screen_outliers=not args.keep_outliers,
            )
        else:
            adapt_report, adapted = mono.proxy_adaptation_cv(
                table,
                space,
                report.best,
                archs,
                lat,
                method=args.adapt_method,
                screen_outliers=not args.keep_outliers,
            )
        out["proxy_adaptation"] = adapt_report.as_dict()
        note = _lowered_note(adapt_report)
        if note:
            out["proxy_adaptation"]["note"] = note
        if args.output:
            from latbench.predictors.persist import save

            save(adapted, args.output)
            out["output"] = args.output
    if args.json:
        print(dumps(out, indent=2))
        return 0
    print(f"{space}: Spearman rank correlation of latency across {len(order)} devices")
    print(_fmt_matrix(sp))
    if kd is not None:
        print("\nKendall tau")
        print(_fmt_matrix(kd))
    if args.plot:
        print(f"\nheat-map written to {args.plot}")
    if report is not None:
        print(f"\nbest proxies of {report.target} on {report.n_samples} samples:")
        for d, s, k in report.ranking[: args.top]:
            n = report.shared[d]
            part = f"  (on {n} of them)" if n < report.n_samples else ""
            print(f"  {d:<40} Spearman {s:6.3f}  Kendall {k:6.3f}{part}")
        print(report.verdict())
    if adapt_report is not None:
        print(adapt_report.line())
        note = _lowered_note(adapt_report)
        if note:
            print(f"note: {note}")
    if args.output:
        print(f"adapted predictor written to {args.output}")
    return 0


def _lowered_note(report: Any) -> str | None:
    """What to do when adaptation ranked the target worse than the proxy alone, or None.

    Said rather than acted on: with K samples the score itself is noisy, and the user asked
    for this method; but a predictor saved with -o that ranks worse than the proxy's own
    ranking should not pass unremarked.
    """
    if report.method == "proxy" or not report.spearman_after < report.spearman_before:
        return None
    where = (
        "on the target's other architectures"
        if report.evaluated_on == "held-out"
        else f"by leave-one-out on the {report.k} samples, a noisy score with so few"
    )
    return (
        f"{report.method} ranked the target worse than the proxy's predictor alone "
        f"(Spearman {report.spearman_before:.3f} -> {report.spearman_after:.3f}, {where}); "
        "--adapt-method proxy keeps the proxy's ranking and only calibrates its scale"
    )
